package pgfeed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Defaults of Config's zero fields.
const (
	DefaultStatusInterval = 10 * time.Second // as wal_receiver_status_interval
	DefaultReceiveTimeout = 60 * time.Second // as wal_receiver_timeout
	DefaultStartTimeout   = 60 * time.Second
	DefaultMaxTxBytes     = 64 << 20
	DefaultRetryMin       = 100 * time.Millisecond
	DefaultRetryMax       = 10 * time.Second
)

// stopTimeout bounds the orderly end of a stream (CopyDone, dropping the slot).
const stopTimeout = 5 * time.Second

// ErrDown is WaitFor's answer while the feed is not streaming, or when the
// stream it was waiting on ended.
var ErrDown = errors.New("pgfeed: feed is not streaming")

// Config configures a Feed. Only DSN and Publication are required.
type Config struct {
	// DSN is the database's URL as lib/pq takes it
	// (postgres://user:password@host:port/dbname?sslmode=...). The feed
	// opens its own replication connection with it; the role needs
	// REPLICATION (or superuser). A DSN without sslmode tries TLS and falls
	// back to plain TCP, where lib/pq would insist on TLS.
	DSN string
	// Publication is the publication's exact name (pg_publication.pubname).
	Publication string
	// StatusInterval is how often the feed reports its applied position to
	// the server when nothing made it report sooner, so the server can
	// recycle WAL and sees the feed alive. Default 10s; keep it well under
	// the server's wal_sender_timeout (default 60s).
	StatusInterval time.Duration
	// ReceiveTimeout is how long the stream may stay silent: after half of
	// it the feed asks the server for an answer, after all of it the
	// connection counts as lost. Default 60s.
	ReceiveTimeout time.Duration
	// StartTimeout bounds connecting, creating the slot and starting the
	// stream. Creating a slot waits for the transactions running at that
	// moment to end. Default 60s.
	StartTimeout time.Duration
	// MaxTxBytes bounds the memory one transaction's changes may take while
	// the feed waits for its commit: a value costs its text plus 64 bytes, a
	// change 96 more. A heavier transaction is handed over as an Overflow Tx
	// without its changes. Default 64 MiB.
	MaxTxBytes int64
	// RetryMin and RetryMax bound the wait before reconnecting: it starts
	// at RetryMin and doubles up to RetryMax while attempts keep failing.
	// Defaults 100ms and 10s.
	RetryMin, RetryMax time.Duration
	// Log receives the feed's events (never a password). Nil discards them.
	Log *slog.Logger
}

// Handler receives a feed's transactions. Its methods are called from
// Run's goroutine, one at a time; they must not block for long (the
// server ends a stream that does not answer within wal_sender_timeout) and
// must not call the Feed's WaitFor, which waits for them.
type Handler interface {
	// Reset starts a new stream (the first, or one after a reconnection):
	// drop everything derived from changes seen earlier. Changes committed
	// before the new stream started are never delivered; a read from the
	// database that starts after Reset returns sees them (creating the slot
	// waits for every transaction running at the time to end).
	Reset()
	// Apply takes one committed transaction; transactions come in commit
	// order. The Tx is the handler's to keep.
	Apply(tx *Tx)
}

// Feed streams the committed changes of a publication; see the package
// documentation. Create it with New, run it with Run.
type Feed struct {
	cfg     Config
	connCfg *pgconn.Config
	log     *slog.Logger
	running atomic.Bool

	mu      sync.Mutex
	up      bool
	stream  uint64 // counts streams started
	applied LSN
	changed chan struct{} // closed, then replaced, whenever the three above change
}

// New checks cfg and fills in its defaults. It does not connect.
func New(cfg Config) (*Feed, error) {
	if cfg.DSN == "" {
		return nil, errors.New("pgfeed: no DSN")
	}
	if cfg.Publication == "" {
		return nil, errors.New("pgfeed: no publication")
	}
	connCfg, err := pgconn.ParseConfig(cfg.DSN) // its errors mask the password
	if err != nil {
		return nil, fmt.Errorf("pgfeed: parse DSN: %w", err)
	}
	connCfg.RuntimeParams["replication"] = "database"
	// Timestamps in the stream in UTC, as Django reads and writes them.
	connCfg.RuntimeParams["TimeZone"] = "UTC"
	// The walsender's stream is one long command: the sidecar's own
	// statement and lock timeouts must not end it.
	for _, k := range []string{"binary_parameters", "statement_timeout", "lock_timeout"} {
		delete(connCfg.RuntimeParams, k) // binary_parameters: lib/pq's own, unknown to the server
	}
	if connCfg.RuntimeParams["application_name"] == "" {
		connCfg.RuntimeParams["application_name"] = "pgfeed"
	}
	setDefault(&cfg.StatusInterval, DefaultStatusInterval)
	setDefault(&cfg.ReceiveTimeout, DefaultReceiveTimeout)
	setDefault(&cfg.StartTimeout, DefaultStartTimeout)
	setDefault(&cfg.MaxTxBytes, DefaultMaxTxBytes)
	setDefault(&cfg.RetryMin, DefaultRetryMin)
	setDefault(&cfg.RetryMax, DefaultRetryMax)
	cfg.RetryMax = max(cfg.RetryMax, cfg.RetryMin)
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	server := fmt.Sprintf("%s:%d/%s", connCfg.Host, connCfg.Port, connCfg.Database)
	return &Feed{cfg: cfg, connCfg: connCfg, log: log.With("server", server, "publication", cfg.Publication),
		changed: make(chan struct{})}, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Up reports whether the feed is streaming.
func (f *Feed) Up() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.up
}

// Applied is the position the current (or last) stream has passed: every
// transaction that committed at or before it has been handed to Apply, or
// committed before the stream started.
func (f *Feed) Applied() LSN {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

// WaitFor returns nil once every transaction that committed at or before
// lsn has been handed to the handler (Apply has returned). It returns
// ErrDown at once if the feed is not streaming, or as soon as the stream
// ends while it waits (even if another starts), and ctx's error if ctx ends
// first. Take lsn with CurrentLSN.
//
// Why the wait is exact, and short: the feed's position advances on two
// messages of the walsender. A Commit carries the end of its commit record
// and comes after all its changes; Applied takes it once Apply returns. A
// keepalive carries the walsender's sent position: the end of the last WAL
// record it has decoded. Decoding a commit record sends the whole
// transaction before the walsender reads any further record, and a
// keepalive goes out on the same connection after it, so when a keepalive
// says P, every transaction whose commit record ends at or before P has
// already reached the feed, and has been applied by the time the feed reads
// the keepalive (one goroutine reads and applies in order). A keepalive in
// the middle of a large transaction's changes says at most where that
// commit record starts, so the rule holds there too. Records that publish
// nothing (other tables, other databases, empty transactions, which
// PostgreSQL 15 does not even announce) advance the sent position all the
// same.
//
// It is fast because the walsender sends a keepalive every time it has
// decoded all flushed WAL and goes to wait for more while the client has
// not yet confirmed its sent position; the feed confirms each keepalive at
// once, so the next advance is announced too. On an idle server the
// keepalive that follows a commit carries exactly the commit's end, which
// is then pg_current_wal_flush_lsn(). Measured (BenchmarkCommitToApplied,
// TestWaitForIdle): from a commit's return to WaitFor(CurrentLSN)'s,
// 0.2 to 0.3 ms, of which CurrentLSN's own round trip is about 0.17 ms; the
// change has mostly been applied before CurrentLSN answers. After a commit
// that publishes nothing, the keepalive alone does it as fast.
//
// One case waits longer: the walsender decodes whole records only, and
// the flush position can end inside one. The WAL writer flushes completed
// pages in the background, so while a transaction that wrote a record
// spanning two pages stays open and idle, the flush position is that page
// boundary and the walsender stays at the record's start, short of it.
// Nothing committed lies between the two (a commit record is flushed whole
// before its commit returns), but the feed cannot know that. The wait ends
// at the next commit anywhere on the server (which flushes all WAL
// written), or when the background writer logs its periodic running-
// transactions record (every 15 s after WAL activity; about 20 s in the
// package tests). So pass a ctx with a deadline, and on its expiry read
// from the database instead.
func (f *Feed) WaitFor(ctx context.Context, lsn LSN) error {
	f.mu.Lock()
	stream := f.stream
	f.mu.Unlock()
	for {
		f.mu.Lock()
		up, s, applied, changed := f.up, f.stream, f.applied, f.changed
		f.mu.Unlock()
		if !up || s != stream {
			return ErrDown
		}
		if applied >= lsn {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// wakeLocked wakes the waiters; f.mu is held.
func (f *Feed) wakeLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *Feed) setUp(start LSN) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.up, f.applied = true, start
	f.stream++
	f.wakeLocked()
}

func (f *Feed) setDown() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.up = false
	f.wakeLocked()
}

func (f *Feed) advance(pos LSN) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if pos > f.applied {
		f.applied = pos
		f.wakeLocked()
	}
}

// Run streams the publication's changes to h until ctx is done, then
// returns nil; it reconnects on its own, with backoff, whenever the stream
// breaks. Each stream uses a new TEMPORARY slot, which the server drops
// when the connection ends, so a sidecar that dies retains no WAL on the
// server; the price is that a stream cannot resume where the last one
// stopped, hence Reset. Run errors at once only if the Feed is already
// running. Call Check before, to tell a missing setting (which Run would
// retry forever) from a passing failure.
func (f *Feed) Run(ctx context.Context, h Handler) error {
	if !f.running.CompareAndSwap(false, true) {
		return errors.New("pgfeed: Run called twice")
	}
	defer f.running.Store(false)
	wait := f.cfg.RetryMin
	for {
		began := time.Now()
		streamed, err := f.runStream(ctx, h)
		if ctx.Err() != nil {
			return nil
		}
		// A stream that lived longer than the longest wait was not a
		// failure in a loop: start again from the shortest wait.
		if streamed && time.Since(began) > f.cfg.RetryMax {
			wait = f.cfg.RetryMin
		}
		f.log.Warn("feed down, reconnecting", "err", oneLine(err), "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		wait = min(2*wait, f.cfg.RetryMax)
	}
}

// runStream connects, creates a slot, streams until the connection or ctx
// ends, and reports whether it got to stream.
func (f *Feed) runStream(ctx context.Context, h Handler) (streamed bool, err error) {
	sctx, cancel := context.WithTimeout(ctx, f.cfg.StartTimeout)
	defer cancel()
	conn, err := pgconn.ConnectConfig(sctx, f.connCfg)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	slot, start, err := f.startStream(sctx, conn)
	if err != nil {
		closeConn(conn)
		return false, err
	}
	cancel()

	h.Reset()
	f.setUp(start)
	f.log.Info("feed streaming", "slot", slot, "from", start)
	err = f.receive(ctx, conn, h, start)
	f.setDown()
	if ctx.Err() != nil {
		if err := endStream(conn, slot); err != nil {
			f.log.Warn("feed: orderly end failed; the server drops the slot with the connection", "slot", slot, "err", oneLine(err))
		}
		closeConn(conn)
		f.log.Info("feed stopped", "slot", slot)
		return true, nil
	}
	closeConn(conn)
	return true, err
}

// startStream creates a temporary slot with a random name and starts
// streaming the publication from the slot's consistent point.
func (f *Feed) startStream(ctx context.Context, conn *pgconn.PgConn) (slot string, start LSN, err error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	slot = "pgfeed_" + hex.EncodeToString(b[:])
	// No snapshot: nobody reads the database as of the slot's start.
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, SnapshotAction: "NOEXPORT_SNAPSHOT", Mode: pglogrepl.LogicalReplication})
	if err != nil {
		return "", 0, fmt.Errorf("create replication slot: %w", err)
	}
	if start, err = ParseLSN(res.ConsistentPoint); err != nil {
		return "", 0, fmt.Errorf("create replication slot: %w", err)
	}
	// publication_names is a list of identifiers inside a string literal.
	pub := quoteIdent(f.cfg.Publication)
	args := []string{"proto_version '1'", "publication_names '" + strings.ReplaceAll(pub, "'", "''") + "'"}
	err = pglogrepl.StartReplication(ctx, conn, slot, pglogrepl.LSN(start), pglogrepl.StartReplicationOptions{PluginArgs: args})
	if err != nil {
		return "", 0, fmt.Errorf("start replication: %w", err)
	}
	return slot, start, nil
}

// receive reads the stream, hands transactions to h and keeps the server
// informed of the applied position, until the connection fails or ctx ends.
func (f *Feed) receive(ctx context.Context, conn *pgconn.PgConn, h Handler, start LSN) error {
	dec := newDecoder(f.cfg.MaxTxBytes)
	pos := start // applied position of this stream
	lastStatus := time.Now()
	lastHeard := time.Now()
	pinged := false
	status := func(reply bool) error {
		lastStatus = time.Now()
		err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{
			WALWritePosition: pglogrepl.LSN(pos), ReplyRequested: reply})
		if err != nil {
			return fmt.Errorf("send status: %w", err)
		}
		return nil
	}
	for {
		now := time.Now()
		silent := now.Sub(lastHeard)
		if silent >= f.cfg.ReceiveTimeout {
			return fmt.Errorf("no message from the server for %s", silent.Round(time.Millisecond))
		}
		if silent >= f.cfg.ReceiveTimeout/2 && !pinged {
			if err := status(true); err != nil {
				return err
			}
			pinged = true
		} else if now.Sub(lastStatus) >= f.cfg.StatusInterval {
			if err := status(false); err != nil {
				return err
			}
		}
		wake := lastStatus.Add(f.cfg.StatusInterval)
		if pinged {
			wake = earliest(wake, lastHeard.Add(f.cfg.ReceiveTimeout))
		} else {
			wake = earliest(wake, lastHeard.Add(f.cfg.ReceiveTimeout/2))
		}
		rctx, cancel := context.WithDeadline(ctx, wake)
		msg, err := conn.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("receive: %w", err)
		}
		lastHeard, pinged = time.Now(), false

		var data []byte
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			data = m.Data
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("server: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyDone:
			return errors.New("the server ended the stream")
		default:
			continue // notices, parameter changes
		}
		if len(data) == 0 {
			return errors.New("empty CopyData message")
		}
		switch data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
			if err != nil {
				return fmt.Errorf("keepalive: %w", err)
			}
			// See WaitFor: everything committed up to the sent position has
			// been applied by now.
			if p := LSN(ka.ServerWALEnd); p > pos {
				pos = p
				f.advance(pos)
			}
			// Confirming at once makes the walsender announce its next
			// advance too (it sends a keepalive when it waits for WAL while
			// its sent position is unconfirmed), and lets it recycle WAL.
			if err := status(false); err != nil {
				return err
			}
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(data[1:])
			if err != nil {
				return fmt.Errorf("XLogData: %w", err)
			}
			tx, err := dec.decode(xld.WALData)
			if err != nil {
				return fmt.Errorf("decode: %w", err)
			}
			if tx == nil {
				continue
			}
			if tx.Overflow {
				f.log.Warn("feed: transaction over MaxTxBytes handed over without its changes",
					"xid", tx.Xid, "end", tx.EndLSN, "tables", len(tx.Relations))
			}
			h.Apply(tx)
			if tx.EndLSN > pos {
				pos = tx.EndLSN
				f.advance(pos)
			}
		default:
			return fmt.Errorf("unknown replication message %q", data[0])
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// endStream leaves streaming (CopyDone, then the rest of the stream until
// the server is ready for a command) and drops the slot, so that it is gone
// when Run returns rather than when the server notices the closed
// connection.
func endStream(conn *pgconn.PgConn, slot string) error {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	conn.Frontend().Send(&pgproto3.CopyDone{})
	if err := conn.Frontend().Flush(); err != nil {
		return fmt.Errorf("send CopyDone: %w", err)
	}
	for ready := false; !ready; {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			return fmt.Errorf("end stream: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.ReadyForQuery:
			ready = true
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("end stream: %w", pgconn.ErrorResponseToPgError(m))
		}
	}
	if err := pglogrepl.DropReplicationSlot(ctx, conn, slot, pglogrepl.DropReplicationSlotOptions{}); err != nil {
		return fmt.Errorf("drop slot %s: %w", slot, err)
	}
	return nil
}

func closeConn(conn *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	_ = conn.Close(ctx)
}

// oneLine keeps an error to one line for the log.
func oneLine(err error) string {
	if err == nil {
		return ""
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}
