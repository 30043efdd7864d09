package pgfeed

import (
	"context"
	"database/sql"
	"fmt"
)

// LSN is a position in PostgreSQL's write-ahead log.
type LSN uint64

// String writes the LSN as PostgreSQL does (16/B374D848).
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l)) }

// ParseLSN reads an LSN written as PostgreSQL writes it.
func ParseLSN(s string) (LSN, error) {
	var hi, lo uint32
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		return 0, fmt.Errorf("parse LSN %q: %w", s, err)
	}
	return LSN(uint64(hi)<<32 | uint64(lo)), nil
}

// CurrentLSN is the position to wait for (with WaitFor) after one's own
// commit, or after hearing of someone else's: pg_current_wal_flush_lsn(),
// the end of the WAL known to be on disk.
//
// Why the flush position: a synchronous commit (Django's default) returns
// only once its commit record is flushed, so the flush position read after
// it is at or past the commit's end; and the walsender decodes exactly the
// flushed WAL, so it reaches that position without anyone writing more.
// The insert and write positions (pg_current_wal_insert_lsn,
// pg_current_wal_lsn) may lie past the flushed WAL, or just past a page
// header where no record ends; on an idle server nothing would carry the
// walsender there. Under synchronous_commit = off a commit returns before
// its flush, so the position read after it may precede the commit: there,
// WaitFor(CurrentLSN) does not prove the commit has been applied.
func CurrentLSN(ctx context.Context, db *sql.DB) (LSN, error) {
	var s string
	if err := db.QueryRowContext(ctx, "SELECT pg_current_wal_flush_lsn()::text").Scan(&s); err != nil {
		return 0, fmt.Errorf("read WAL flush position: %w", err)
	}
	return ParseLSN(s)
}
