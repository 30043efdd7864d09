// Package djangodb reads and writes Django's own tables: users,
// conversations, messages, file attachments and the listener-blocked-talker
// table. All SQL of the sidecar lives here. It never runs DDL.
package djangodb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/chatsidecar/sidecar/chat"
)

// DB is Django's database, seen through the schema map.
type DB struct {
	db      *sql.DB
	dialect Dialect
	q       queries
	iq      inboxQueries
	s       Schema
	metrics *metrics
	// writer holds a token while one of the sidecar's writes runs on
	// SQLite, where a database has one writer at a time.
	writer chan struct{}
	queued atomic.Int64 // writes waiting for writer
	stmts  stmts
	blocks *batcher[blockPair, bool] // PostgreSQL: IsBlocked calls share statements
}

// Options are the choices New leaves to the caller.
type Options struct {
	// Unprepared runs every statement unprepared: for a connection pooler
	// that cannot keep prepared statements (PgBouncer in transaction mode
	// before 1.21).
	Unprepared bool
}

// New wraps an open database of the given dialect (for SQLite, open it
// with OpenSQLite). The schema is not checked here: call CheckSchema at
// start-up.
func New(db *sql.DB, dialect Dialect, s Schema, opts Options) (*DB, error) {
	if dialect != Postgres && dialect != SQLite {
		return nil, fmt.Errorf("djangodb: unknown dialect %v", dialect)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	d := &DB{db: db, dialect: dialect, q: buildQueries(s, dialect), iq: buildInboxQueries(s), s: s,
		metrics: newMetrics(), writer: make(chan struct{}, 1),
		stmts: stmts{db: db, off: opts.Unprepared, m: make(map[string]*sql.Stmt)}}
	if dialect == Postgres {
		d.blocks = d.newBlockChecks()
	}
	return d, nil
}

// Ping reports whether the database answers.
func (d *DB) Ping(ctx context.Context) error {
	return d.db.PingContext(ctx)
}

// User loads a user by id.
func (d *DB) User(ctx context.Context, id int64) (chat.User, error) {
	defer d.metrics.time("user")()
	var u chat.User
	err := d.queryRow(ctx, d.q.user, id).Scan(&u.ID, &u.Email, &u.FullName, &u.UserType, &u.IsActive)
	if errors.Is(err, sql.ErrNoRows) {
		return u, chat.ErrUserNotFound
	}
	if err != nil {
		return u, fmt.Errorf("load user %d: %w", id, err)
	}
	return u, nil
}

// Conversation loads a conversation and whether its pair is blocked.
// A missing row is chat.ErrConversationGone.
func (d *DB) Conversation(ctx context.Context, id int64) (chat.Conversation, bool, error) {
	defer d.metrics.time("conversation")()
	var c chat.Conversation
	var blocked bool
	err := d.queryRow(ctx, d.q.conversation, id).Scan(&c.ID, &c.ListenerID, &c.TalkerID, &c.Status, &blocked)
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, chat.ErrConversationGone
	}
	if err != nil {
		return c, false, fmt.Errorf("load conversation %d: %w", id, err)
	}
	return c, blocked, nil
}

// UserConversation is User and Conversation in one query, as a chat
// connect needs both: a missing user is chat.ErrUserNotFound, then a
// missing conversation chat.ErrConversationGone (with the user).
func (d *DB) UserConversation(ctx context.Context, userID, convID int64) (chat.User, chat.Conversation, bool, error) {
	defer d.metrics.time("user_conversation")()
	var (
		u                         chat.User
		c                         chat.Conversation
		cID, listenerID, talkerID sql.NullInt64
		status                    sql.NullString
		blocked                   bool
	)
	err := d.queryRow(ctx, d.q.userConversation, userID, convID).Scan(&u.ID, &u.Email, &u.FullName, &u.UserType, &u.IsActive,
		&cID, &listenerID, &talkerID, &status, &blocked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return u, c, false, chat.ErrUserNotFound
	case err != nil:
		return u, c, false, fmt.Errorf("load user %d and conversation %d: %w", userID, convID, err)
	case !cID.Valid:
		return u, c, false, chat.ErrConversationGone
	}
	c = chat.Conversation{ID: cID.Int64, ListenerID: listenerID.Int64, TalkerID: talkerID.Int64, Status: status.String}
	return u, c, blocked, nil
}

// IsBlocked reports whether a block row exists for the pair.
func (d *DB) IsBlocked(ctx context.Context, listenerID, talkerID int64) (bool, error) {
	defer d.metrics.time("is_blocked")()
	var blocked bool
	var err error
	if d.blocks != nil {
		blocked, err = d.blocks.do(ctx, blockPair{listenerID, talkerID})
	} else {
		blocked, err = d.isBlocked(ctx, listenerID, talkerID)
	}
	if err != nil {
		return false, fmt.Errorf("check block %d/%d: %w", listenerID, talkerID, err)
	}
	return blocked, nil
}

// isBlocked is IsBlocked in a statement of its own.
func (d *DB) isBlocked(ctx context.Context, listenerID, talkerID int64) (bool, error) {
	var blocked bool
	err := d.queryRow(ctx, d.q.isBlocked, listenerID, talkerID).Scan(&blocked)
	return blocked, err
}

// SaveText writes a text message and the conversation's last_message_at
// after re-checking the block, existence and status rules, all in one
// statement on PostgreSQL and in one BEGIN IMMEDIATE transaction on SQLite.
func (d *DB) SaveText(ctx context.Context, m chat.Draft) (chat.Message, error) {
	defer d.metrics.time("save_text")()
	if err := checkText(m.Content); err != nil {
		return chat.Message{}, d.refuseText(ctx, m, err)
	}
	now := normTime(m.CreatedAt)
	var id int64
	err := d.write(ctx, func() (err error) {
		if d.dialect == Postgres {
			id, err = d.insertMessage(ctx, nil, m, chat.TypeText, now)
			return err
		}
		id, err = d.saveTextTx(ctx, m, now)
		return err
	})
	if err != nil {
		return chat.Message{}, err
	}
	return chat.Message{
		ID: id, ConversationID: m.ConversationID, Sender: m.Sender, Content: m.Content,
		MessageType: chat.TypeText, CreatedAt: now,
	}, nil
}

// saveTextTx is SaveText on SQLite: one short write transaction.
func (d *DB) saveTextTx(ctx context.Context, m chat.Draft, now time.Time) (id int64, err error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("save message: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if id, err = d.insertChecked(ctx, tx, m, chat.TypeText, now); err != nil {
		return 0, err
	}
	if err = tx.Commit(); err != nil {
		return 0, fmt.Errorf("save message: commit: %w", err)
	}
	return id, nil
}

// SaveFile writes a file message, its bytes and its attachment row in one
// transaction. The file is removed when the transaction fails.
func (d *DB) SaveFile(ctx context.Context, m chat.Draft, f chat.FileDraft, files chat.Files) (chat.Message, error) {
	defer d.metrics.time("save_file")()
	if err := checkText(m.Content, f.Filename); err != nil {
		return chat.Message{}, d.refuseText(ctx, m, err)
	}
	now := normTime(m.CreatedAt)
	var msg chat.Message
	err := d.write(ctx, func() (err error) {
		msg, err = d.saveFileTx(ctx, m, f, files, now)
		return err
	})
	return msg, err
}

func (d *DB) saveFileTx(ctx context.Context, m chat.Draft, f chat.FileDraft, files chat.Files, now time.Time) (msg chat.Message, err error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return chat.Message{}, fmt.Errorf("save file message: begin: %w", err)
	}
	var written string
	defer func() {
		if err == nil {
			return
		}
		// Roll back first, so no row points at the file once it is gone.
		_ = tx.Rollback()
		if written == "" {
			return
		}
		if rmErr := files.Remove(written); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("remove file %s: %w", written, rmErr))
		}
	}()
	id, err := d.insertChecked(ctx, tx, m, chat.TypeFile, now)
	if err != nil {
		return chat.Message{}, err
	}
	written, err = files.Save(ctx, f.Name, f.Data, now)
	if err != nil {
		return chat.Message{}, fmt.Errorf("save file message: store file: %w", err)
	}
	att := &chat.Attachment{File: written, Filename: f.Filename, FileSize: int64(len(f.Data)), FileType: f.FileType}
	if err = d.txQueryRow(ctx, tx, d.q.insertFile, id, att.File, att.Filename, att.FileSize, att.FileType, d.timeArg(now)).Scan(&att.ID); err != nil {
		return chat.Message{}, fmt.Errorf("save file message: insert attachment: %w", err)
	}
	msg = chat.Message{
		ID: id, ConversationID: m.ConversationID, Sender: m.Sender, Content: m.Content,
		MessageType: chat.TypeFile, CreatedAt: now, Attachment: att,
	}
	if err = tx.Commit(); err != nil {
		// A COMMIT can fail after the server committed (the connection
		// dropped before the answer): the file goes only if the row is
		// really absent, and stays when that cannot be told.
		committed, checkErr := d.attachmentExists(ctx, att.ID)
		switch {
		case checkErr != nil:
			written = "" // keep the file: an orphan file harms nothing, a row without its file does
			return chat.Message{}, errors.Join(fmt.Errorf("save file message: commit: %w", err),
				fmt.Errorf("file %s kept: cannot tell whether the row committed: %w", att.File, checkErr))
		case committed:
			return msg, nil
		}
		return chat.Message{}, fmt.Errorf("save file message: commit: %w", err)
	}
	return msg, nil
}

// commitCheckTimeout bounds the look for a row after a failed COMMIT.
const commitCheckTimeout = 5 * time.Second

// attachmentExists reports whether the attachment row id is in the
// database, on a connection of its own and a deadline of its own (the
// caller's may be what failed).
func (d *DB) attachmentExists(ctx context.Context, id int64) (bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitCheckTimeout)
	defer cancel()
	var n int
	if err := d.queryRow(ctx, d.q.attachmentExists, id).Scan(&n); err != nil {
		return false, fmt.Errorf("look for attachment %d: %w", id, err)
	}
	return n > 0, nil
}

// insertChecked inserts a message inside tx under the block, existence and
// status rules, and sets last_message_at. On PostgreSQL that is the one
// checked statement; on SQLite, which has no data-modifying CTEs, it is the
// same steps one by one inside the transaction, which BEGIN IMMEDIATE
// started with the write lock held, so nothing can change in between.
func (d *DB) insertChecked(ctx context.Context, tx *sql.Tx, m chat.Draft, typ string, now time.Time) (int64, error) {
	if d.dialect == Postgres {
		return d.insertMessage(ctx, tx, m, typ, now)
	}
	conv := chat.Conversation{ID: m.ConversationID}
	var blocked bool
	err := d.txQueryRow(ctx, tx, d.q.sendState, m.ConversationID).Scan(&conv.TalkerID, &conv.Status, &blocked)
	if err := refusal(err, conv, blocked, m.Sender.ID); err != nil {
		return 0, err
	}
	at := d.timeArg(now)
	var id int64
	if err := d.txQueryRow(ctx, tx, d.q.insertRow, m.ConversationID, m.Sender.ID, m.Content, typ, at).Scan(&id); err != nil {
		return 0, fmt.Errorf("insert message into conversation %d: %w", m.ConversationID, err)
	}
	if _, err := d.txExec(ctx, tx, d.q.touch, m.ConversationID, at); err != nil {
		return 0, fmt.Errorf("insert message into conversation %d: set last_message_at: %w", m.ConversationID, err)
	}
	return id, nil
}

// insertMessage runs the checked insert and maps its outcome to the
// contract's errors, in the contract's order: gone, blocked, status.
// tx nil runs it on its own.
func (d *DB) insertMessage(ctx context.Context, tx *sql.Tx, m chat.Draft, typ string, now time.Time) (int64, error) {
	var (
		status   string
		talkerID int64
		blocked  bool
		id       sql.NullInt64
	)
	args := []any{m.ConversationID, m.Sender.ID, m.Content, typ, now}
	var row *sql.Row
	if tx != nil {
		row = d.txQueryRow(ctx, tx, d.q.insertMessage, args...)
	} else {
		row = d.queryRow(ctx, d.q.insertMessage, args...)
	}
	err := row.Scan(&status, &talkerID, &blocked, &id)
	conv := chat.Conversation{ID: m.ConversationID, TalkerID: talkerID, Status: status}
	if err := refusal(err, conv, blocked, m.Sender.ID); err != nil {
		return 0, err
	}
	if !id.Valid {
		return 0, fmt.Errorf("insert message into conversation %d: no row written", m.ConversationID)
	}
	return id.Int64, nil
}

// refusal maps the conversation's state, as read by the write itself (scan
// is the error of reading it), to the contract's errors in the contract's
// order: gone, blocked, status. Nil means the sender may write.
func refusal(scan error, conv chat.Conversation, blocked bool, senderID int64) error {
	switch {
	case errors.Is(scan, sql.ErrNoRows):
		return chat.ErrConversationGone
	case scan != nil:
		return fmt.Errorf("insert message into conversation %d: %w", conv.ID, scan)
	case blocked:
		return chat.ErrBlocked
	}
	return conv.CanSend(senderID)
}

// History calls each with every message of the conversation, newest
// first (created_at, then id, descending), as the rows arrive; an error
// from each stops the query and is returned.
func (d *DB) History(ctx context.Context, conversationID int64, each func(chat.Message) error) error {
	defer d.metrics.time("history")()
	rows, err := d.query(ctx, d.q.history, conversationID)
	if err != nil {
		return fmt.Errorf("load history of conversation %d: %w", conversationID, err)
	}
	defer rows.Close()
	var r historyRow
	dest := r.dest() // Scan sets every column of every row
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("load history of conversation %d: %w", conversationID, err)
		}
		m, err := r.message(conversationID)
		if err != nil {
			return err
		}
		if err := each(m); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load history of conversation %d: %w", conversationID, err)
	}
	return nil
}

// historyRow is one row of the history queries' message columns; the
// message columns are NULL in historySince's row without a message.
type historyRow struct {
	id, senderID, attID, attSize                    sql.NullInt64
	content, messageType, email, fullName, userType sql.NullString
	attFile, attName, attType                       sql.NullString
	isRead                                          sql.NullBool
	createdAt                                       Timestamp
}

func (r *historyRow) dest() []any {
	return []any{&r.id, &r.content, &r.messageType, &r.createdAt, &r.isRead,
		&r.senderID, &r.email, &r.fullName, &r.userType,
		&r.attID, &r.attFile, &r.attName, &r.attSize, &r.attType}
}

func (r *historyRow) message(conversationID int64) (chat.Message, error) {
	if !r.createdAt.Valid {
		return chat.Message{}, fmt.Errorf("load history of conversation %d: message %d has no created_at", conversationID, r.id.Int64)
	}
	m := chat.Message{
		ID: r.id.Int64, ConversationID: conversationID, Content: r.content.String, MessageType: r.messageType.String,
		CreatedAt: r.createdAt.Time, IsRead: r.isRead.Bool,
		Sender: chat.User{ID: r.senderID.Int64, Email: r.email.String, FullName: r.fullName.String, UserType: r.userType.String},
	}
	if r.attID.Valid {
		m.Attachment = &chat.Attachment{
			ID: r.attID.Int64, File: r.attFile.String, Filename: r.attName.String,
			FileSize: r.attSize.Int64, FileType: r.attType.String,
		}
	}
	return m, nil
}

// Digest sums the versions of a set of a history's rows, as
// HistorySince reports them: equal digests of the same message ids mean
// no row changed, whoever wrote.
type Digest struct {
	Count int64
	Sum   *big.Int
}

// Add counts one more row of the given version.
func (d *Digest) Add(version int64) {
	if d.Sum == nil {
		d.Sum = new(big.Int)
	}
	d.Count++
	d.Sum.Add(d.Sum, big.NewInt(version))
}

// Equal reports whether d and o are the same digest.
func (d Digest) Equal(o Digest) bool {
	zero := new(big.Int)
	ds, os := d.Sum, o.Sum
	if ds == nil {
		ds = zero
	}
	if os == nil {
		os = zero
	}
	return d.Count == o.Count && ds.Cmp(os) == 0
}

// ErrNoDigest is HistorySince's answer on SQLite, whose rows carry no
// version.
var ErrNoDigest = errors.New("djangodb: history digests need PostgreSQL")

// HistorySince calls each with every message of the conversation whose
// id is above afterID, in no order, and its version; it returns the
// digest of the rows up to afterID, read in the same snapshot.
func (d *DB) HistorySince(ctx context.Context, conversationID, afterID int64, each func(m chat.Message, version int64) error) (Digest, error) {
	defer d.metrics.time("history_since")()
	var old Digest
	if d.q.historySince == "" {
		return old, ErrNoDigest
	}
	fail := func(err error) (Digest, error) {
		return Digest{}, fmt.Errorf("load history of conversation %d after message %d: %w", conversationID, afterID, err)
	}
	// With nothing cached, every row is new and the digest is of none.
	query, args, want := d.q.historySince, []any{conversationID, afterID}, 1
	if afterID <= 0 {
		query, args, want = d.q.historyVersions, args[:1], 0
		old.Sum = new(big.Int)
	}
	rows, err := d.query(ctx, query, args...)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	digests := 0
	var (
		r       historyRow
		n       sql.NullInt64
		sum     sql.NullString
		version sql.NullInt64
	)
	dest := append(append([]any{&n, &sum}, r.dest()...), &version) // Scan sets every column of every row
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fail(err)
		}
		if n.Valid { // the digest's row
			old.Count, old.Sum = n.Int64, new(big.Int)
			if _, ok := old.Sum.SetString(sum.String, 10); !ok {
				return fail(fmt.Errorf("digest sum %q is not a number", sum.String))
			}
			digests++
			continue
		}
		m, err := r.message(conversationID)
		if err != nil {
			return Digest{}, err
		}
		if err := each(m, version.Int64); err != nil {
			return Digest{}, err
		}
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	if digests != want {
		return fail(fmt.Errorf("%d digest rows", digests))
	}
	return old, nil
}

// MarkRead marks as read every unread message of the conversation not sent
// by the reader, and returns how many rows changed.
func (d *DB) MarkRead(ctx context.Context, conversationID, readerID int64) (int64, error) {
	defer d.metrics.time("mark_read")()
	var res sql.Result
	err := d.write(ctx, func() (err error) {
		res, err = d.exec(ctx, d.q.markRead, conversationID, readerID)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("mark conversation %d read: %w", conversationID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("mark conversation %d read: %w", conversationID, err)
	}
	return n, nil
}

// refuseText reports unstorable text after the checks Django makes before
// its INSERT fails on it (conversation gone, blocked, status), so the client
// sees the error Python's consumer sent.
func (d *DB) refuseText(ctx context.Context, m chat.Draft, textErr error) error {
	conv, blocked, err := d.Conversation(ctx, m.ConversationID)
	switch {
	case err != nil:
		return err
	case blocked:
		return chat.ErrBlocked
	}
	if err := conv.CanSend(m.Sender.ID); err != nil {
		return err
	}
	return textErr
}

// checkText refuses what PostgreSQL cannot store: NUL characters and invalid
// UTF-8. The sidecar refuses them on every backend.
func checkText(texts ...string) error {
	for _, s := range texts {
		if strings.IndexByte(s, 0) >= 0 {
			return chat.ErrNUL
		}
		if !utf8.ValidString(s) {
			return fmt.Errorf("text is not valid UTF-8")
		}
	}
	return nil
}

// normTime is the time as Django stores it: UTC, microsecond precision.
func normTime(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Truncate(time.Microsecond)
}
