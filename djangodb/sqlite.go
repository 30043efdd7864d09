package djangodb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite settings. Django's own connections wait 5 s for a lock (Python's
// sqlite3 default timeout); the sidecar waits as long, then retries.
const (
	// sqliteBusyTimeout is how long one statement waits for another
	// connection's write lock (PRAGMA busy_timeout, milliseconds).
	sqliteBusyTimeout = 5000
	// sqliteWriteAttempts bounds how often a write that still found the
	// database locked is run again.
	sqliteWriteAttempts = 5
	// sqliteBackoff is the first pause between attempts; it doubles.
	sqliteBackoff = 20 * time.Millisecond
	// sqliteMaxBreather bounds the gap left after one of the sidecar's
	// writes when another is queued: SQLite has no queue for its write
	// lock, and another process (Django) waiting in its busy handler only
	// gets the lock if one of its polls falls in a gap between ours.
	sqliteMaxBreather = 5 * time.Millisecond
)

// OpenSQLite opens Django's SQLite database file as the sidecar uses it:
// foreign keys on (as Django turns them on), a busy timeout, transactions
// begun with BEGIN IMMEDIATE so a write takes the lock before it reads, and
// the file in WAL mode where the file allows it, so Django's readers and
// the sidecar's do not wait for writers. The file must exist: the sidecar
// never creates Django's database.
func OpenSQLite(path string, maxConns int) (*sql.DB, error) {
	if path == "" {
		return nil, errors.New("no SQLite file path")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("SQLite path %q: '?' and '#' are not supported in the path", path)
	}
	if st, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("SQLite database %s: %w (run manage.py migrate first)", path, err)
	} else if st.IsDir() {
		return nil, fmt.Errorf("SQLite database %s is a directory", path)
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout))
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open SQLite database %s: %w", path, err)
	}
	if maxConns <= 0 {
		maxConns = 1
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)

	ctx, cancel := context.WithTimeout(context.Background(), 2*sqliteBusyTimeout*time.Millisecond)
	defer cancel()
	// journal_mode is stored in the file: once WAL, Django's connections
	// use it too. A file that cannot be WAL (read-only directory, some
	// network file systems) keeps its mode; that is slower, not wrong.
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode); err != nil {
		db.Close()
		return nil, fmt.Errorf("open SQLite database %s: %w", path, err)
	}
	return db, nil
}

// isBusy reports whether err is SQLite's "database is locked" (SQLITE_BUSY)
// or "database table is locked" (SQLITE_LOCKED), which a retry can cure.
func isBusy(err error) bool {
	if err == nil {
		return false
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return true
		}
	}
	msg := err.Error()
	return strings.Contains(msg, "database is locked") || strings.Contains(msg, "database table is locked") ||
		strings.Contains(msg, "SQLITE_BUSY")
}

// write runs one write of the sidecar. On PostgreSQL it just runs fn. On
// SQLite the sidecar's writers take turns (one writer of ours at a time, so
// our own connections never wait on each other's lock), and fn is run again,
// after a pause, when it found the database locked by another process
// (Django) for longer than the busy timeout. fn must leave nothing behind
// when it fails.
func (d *DB) write(ctx context.Context, fn func() error) error {
	if d.dialect != SQLite {
		return fn()
	}
	d.queued.Add(1)
	select {
	case d.writer <- struct{}{}:
		d.queued.Add(-1)
	case <-ctx.Done():
		d.queued.Add(-1)
		return ctx.Err()
	}
	start := time.Now()
	defer func() {
		// Under a burst, leave a gap as long as the write took (so at most
		// half of the time is ours), for Django's writers to get in.
		if d.queued.Load() > 0 {
			time.Sleep(min(time.Since(start), sqliteMaxBreather))
		}
		<-d.writer
	}()
	pause := sqliteBackoff
	for attempt := 1; ; attempt++ {
		err := fn()
		if !isBusy(err) || attempt == sqliteWriteAttempts {
			return err
		}
		// Jitter, so the sidecar does not fall in step with Django's retries.
		wait := pause/2 + rand.N(pause)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return err
		}
		pause *= 2
	}
}

// timeArg is a datetime as the driver must be given it: lib/pq writes a
// time.Time as timestamptz; on SQLite the text is Django's, never the
// driver's own format.
func (d *DB) timeArg(t time.Time) any {
	if d.dialect == SQLite {
		return FormatTime(t)
	}
	return t
}
