package config

import (
	"strings"
	"testing"
)

// DATABASE_URL may name Django's SQLite file, Django-style.
func TestDatabaseURLSQLite(t *testing.T) {
	for _, ok := range []string{"sqlite:///srv/app/db.sqlite3", "sqlite:db.sqlite3", "sqlite:////srv/app/db.sqlite3"} {
		setenv(t, "DATABASE_URL", ok, "SECRET_KEY", "k")
		if _, err := Load(); err != nil {
			t.Errorf("DATABASE_URL=%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"sqlite:", "sqlite:///a?mode=ro", "sqlite3:///a"} {
		setenv(t, "DATABASE_URL", bad, "SECRET_KEY", "k")
		if _, err := Load(); err == nil || !strings.HasPrefix(err.Error(), "DATABASE_URL:") {
			t.Errorf("DATABASE_URL=%s: error %v, want one naming DATABASE_URL", bad, err)
		}
	}
}
