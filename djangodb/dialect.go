package djangodb

import (
	"fmt"
	"strings"
	"time"
)

// Dialect is the database engine behind Django's DATABASES["default"].
// The schema map, the rules and the errors are the same on both; what
// differs is how a message is written under the checks, how values are
// stored, and how the start-up check lists columns.
type Dialect int

const (
	// Postgres is django.db.backends.postgresql: the checked insert is one
	// statement (data-modifying CTEs), datetimes are timestamptz.
	Postgres Dialect = iota
	// SQLite is django.db.backends.sqlite3: the checked insert is one short
	// BEGIN IMMEDIATE transaction, datetimes are UTC text, booleans 0/1,
	// and the sidecar's own writers take turns (see DB.write).
	SQLite
)

func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "postgresql"
	case SQLite:
		return "sqlite"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// FormatTime is a datetime as Django's SQLite backend stores it with
// USE_TZ = True: made naive in UTC and written as Python's str(datetime),
// "YYYY-MM-DD HH:MM:SS" with ".ffffff" only when the microseconds are not zero.
func FormatTime(t time.Time) string {
	t = t.UTC().Truncate(time.Microsecond)
	s := t.Format("2006-01-02 15:04:05")
	if us := t.Nanosecond() / 1000; us != 0 {
		s += fmt.Sprintf(".%06d", us)
	}
	return s
}

// ParseTime reads a datetime as Django may have stored it in SQLite text:
// "YYYY-MM-DD HH:MM[:SS[.f…]]" or with a "T", naive (taken as UTC, as Django
// does with USE_TZ = True) or with "Z" or a ±HH[:MM] offset, or a bare date.
// The result is UTC.
func ParseTime(s string) (time.Time, error) {
	v := strings.TrimSpace(s)
	if len(v) > 10 && (v[10] == 'T' || v[10] == 't') {
		v = v[:10] + " " + v[11:]
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot read %q as a datetime", s)
}

var timeLayouts = []string{
	"2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z0700",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999 Z07:00",
	"2006-01-02 15:04",
	"2006-01-02 15:04Z07:00",
	"2006-01-02",
}

// Timestamp scans a datetime column as either driver returns it: a
// time.Time (lib/pq) or text (SQLite). NULL leaves Valid false.
type Timestamp struct {
	Time  time.Time // UTC
	Valid bool
}

// Scan implements sql.Scanner.
func (t *Timestamp) Scan(v any) error {
	*t = Timestamp{}
	switch x := v.(type) {
	case nil:
		return nil
	case time.Time:
		t.Time, t.Valid = x.UTC(), true
		return nil
	case string:
		return t.parse(x)
	case []byte:
		return t.parse(string(x))
	}
	return fmt.Errorf("cannot read %T as a datetime", v)
}

func (t *Timestamp) parse(s string) error {
	tm, err := ParseTime(s)
	if err != nil {
		return err
	}
	t.Time, t.Valid = tm, true
	return nil
}
