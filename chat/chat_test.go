package chat

import (
	"errors"
	"testing"
	"time"
)

func TestCanSend(t *testing.T) {
	const listener, talker = 1, 2
	for _, tc := range []struct {
		status string
		sender int64
		want   error
	}{
		{StatusActive, listener, nil}, {StatusActive, talker, nil},
		{StatusPending, talker, nil}, {StatusPending, listener, ErrNotTalker},
	} {
		c := Conversation{ListenerID: listener, TalkerID: talker, Status: tc.status}
		if err := c.CanSend(tc.sender); !errors.Is(err, tc.want) {
			t.Errorf("%s from %d: %v, want %v", tc.status, tc.sender, err, tc.want)
		}
	}
	for status, display := range map[string]string{StatusRejected: "Rejected", StatusClosed: "Closed", "archived": "archived"} {
		var se *StatusError
		err := Conversation{TalkerID: talker, Status: status}.CanSend(talker)
		if !errors.As(err, &se) || se.Status != status || StatusDisplay(status) != display {
			t.Errorf("%s: %v, display %q", status, err, StatusDisplay(status))
		}
	}
}

func TestDisplayNameAndParticipants(t *testing.T) {
	if got := (User{Email: "a@x.com"}).DisplayName(); got != "a@x.com" {
		t.Errorf("empty full name: %q", got)
	}
	if got := (User{Email: "a@x.com", FullName: "Ann"}).DisplayName(); got != "Ann" {
		t.Errorf("full name: %q", got)
	}
	c := Conversation{ListenerID: 1, TalkerID: 2}
	if !c.HasParticipant(1) || !c.HasParticipant(2) || c.HasParticipant(3) {
		t.Error("HasParticipant")
	}
}

func TestISOFormat(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 1, 14, 10, 0, 0, 0, time.UTC), "2026-01-14T10:00:00+00:00"},
		{time.Date(2026, 1, 14, 10, 0, 0, 123456000, time.UTC), "2026-01-14T10:00:00.123456+00:00"},
		{time.Date(2026, 1, 14, 10, 0, 0, 120000000, time.UTC), "2026-01-14T10:00:00.120000+00:00"},
		{time.Date(2026, 1, 14, 10, 0, 0, 999, time.UTC), "2026-01-14T10:00:00+00:00"},
		{time.Date(2026, 1, 14, 11, 0, 0, 1000, time.FixedZone("x", 3600)), "2026-01-14T10:00:00.000001+00:00"},
	} {
		if got := ISOFormat(tc.t); got != tc.want {
			t.Errorf("ISOFormat(%v) = %s, want %s", tc.t, got, tc.want)
		}
	}
}
