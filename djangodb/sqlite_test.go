package djangodb_test

import (
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/djangodb"
)

// Django's SQLite text for a datetime is str() of the naive UTC datetime.
func TestFormatTime(t *testing.T) {
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 1, 14, 10, 0, 0, 0, time.UTC), "2026-01-14 10:00:00"},
		{time.Date(2026, 1, 14, 10, 0, 0, 123456789, time.UTC), "2026-01-14 10:00:00.123456"},
		{time.Date(2026, 1, 14, 10, 0, 0, 1000, time.UTC), "2026-01-14 10:00:00.000001"},
		{time.Date(2026, 1, 14, 10, 0, 0, 999, time.UTC), "2026-01-14 10:00:00"}, // below a microsecond
		{time.Date(2026, 1, 14, 11, 0, 5, 500000000, time.FixedZone("CET", 3600)), "2026-01-14 10:00:05.500000"},
	} {
		if got := djangodb.FormatTime(tc.in); got != tc.want {
			t.Errorf("FormatTime(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// What Django (or a hand-written row) may have stored reads back in UTC.
func TestParseTime(t *testing.T) {
	base := time.Date(2026, 1, 14, 10, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2026-01-14 10:00:00":             base,
		"2026-01-14 10:00:00.123456":      base.Add(123456 * time.Microsecond),
		"2026-01-14T10:00:00.5":           base.Add(500 * time.Millisecond),
		"2026-01-14 10:00:00+00:00":       base,
		"2026-01-14T11:00:00+01:00":       base,
		"2026-01-14 10:00:00.123456Z":     base.Add(123456 * time.Microsecond),
		"2026-01-14 12:00:00.000001+0200": base.Add(time.Microsecond),
		"2026-01-14 10:00":                base,
		"2026-01-14":                      base.Add(-10 * time.Hour),
		" 2026-01-14 10:00:00 ":           base,
	} {
		got, err := djangodb.ParseTime(in)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "yesterday", "14/01/2026 10:00", "2026-01-14 25:00:00"} {
		if got, err := djangodb.ParseTime(in); err == nil {
			t.Errorf("ParseTime(%q) = %v, want an error", in, got)
		}
	}
}
