package chat

import (
	"errors"
	"testing"
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
