package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u:hunter2@db:5432/app?sslmode=disable":               "postgres://u:xxxxx@db:5432/app?sslmode=disable",
		"postgres://u@db/app?password=hunter2&sslmode=require":           "postgres://u@db/app?password=xxxxx&sslmode=require",
		"postgres://db/app?sslpassword=hunter2&PASSWORD=hunter2":         "postgres://db/app?PASSWORD=xxxxx&sslpassword=xxxxx",
		"redis://:hunter2@cache:6379/0":                                  "redis://:xxxxx@cache:6379/0",
		"rediss://cache:6379?password=hunter2":                           "rediss://cache:6379?password=xxxxx",
		"sqlite:///srv/app/db.sqlite3":                                   "sqlite:///srv/app/db.sqlite3",
		"postgres://u@db/app?application_name=sidecar&connect_timeout=5": "postgres://u@db/app?application_name=sidecar&connect_timeout=5",
		"%zz://hunter2": "xxxxx",
	} {
		got := URL(in)
		if got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(got, "hunter2") {
			t.Errorf("URL(%q) shows the secret", in)
		}
	}
}
