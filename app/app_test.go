package app

import (
	"net/url"
	"testing"
	"time"
)

func TestWithTimeouts(t *testing.T) {
	for _, tc := range []struct {
		dsn             string
		statement, lock string
	}{
		{"postgres://u@h/db?sslmode=disable", "7000", "5000"},
		// DATABASE_URL's own settings win.
		{"postgres://u@h/db?statement_timeout=100", "100", "5000"},
		{"postgres://u@h/db?lock_timeout=0&statement_timeout=0", "0", "0"},
	} {
		got, err := withTimeouts(tc.dsn, 7*time.Second, 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", tc.dsn, err)
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		if q.Get("statement_timeout") != tc.statement || q.Get("lock_timeout") != tc.lock {
			t.Errorf("%s: %s, want statement_timeout=%s lock_timeout=%s", tc.dsn, got, tc.statement, tc.lock)
		}
	}
	if _, err := withTimeouts("postgres://u@h:port/db", time.Second, time.Second); err == nil {
		t.Error("a DSN that is not a URL: no error")
	}
}
