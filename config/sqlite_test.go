package config

import (
	"strings"
	"testing"
)

// DATABASE_URL may name Django's SQLite file, Django-style.
func TestDatabaseURLSQLite(t *testing.T) {
	for url, want := range map[string]string{
		"sqlite:///srv/app/db.sqlite3":  "/srv/app/db.sqlite3",
		"sqlite:db.sqlite3":             "db.sqlite3",
		"sqlite:////srv/app/db.sqlite3": "/srv/app/db.sqlite3",
	} {
		setenv(t, "DATABASE_URL", url, "SECRET_KEY", "k")
		c, err := Load()
		if err != nil {
			t.Errorf("DATABASE_URL=%s: %v", url, err)
			continue
		}
		if got, ok := c.SQLitePath(); !ok || got != want {
			t.Errorf("SQLitePath(%q) = %q, %v; want %q", url, got, ok, want)
		}
	}
	for _, bad := range []string{"sqlite:", "sqlite:///a?mode=ro", "sqlite3:///a"} {
		setenv(t, "DATABASE_URL", bad, "SECRET_KEY", "k")
		if _, err := Load(); err == nil || !strings.HasPrefix(err.Error(), "DATABASE_URL:") {
			t.Errorf("DATABASE_URL=%s: error %v, want one naming DATABASE_URL", bad, err)
		}
	}
	for _, pg := range []string{"postgres://u@h/db", "postgresql://h/db"} {
		if _, ok := (Config{DatabaseURL: pg}).SQLitePath(); ok {
			t.Errorf("SQLitePath(%q): want not SQLite", pg)
		}
	}
}
