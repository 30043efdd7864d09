// Package djangodb reads and writes Django's own tables: users,
// conversations, messages, file attachments and the listener-blocked-talker
// table. All SQL of the sidecar lives here. It never runs DDL.
package djangodb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatsidecar/sidecar/chat"
)

// ErrUserNotFound is returned by User when no row has the id.
var ErrUserNotFound = errors.New("user not found")

// ErrNUL refuses text holding a NUL character, which PostgreSQL cannot store;
// its text is the error Django raises, and the client sees it as written.
var ErrNUL = errors.New("A string literal cannot contain NUL (0x00) characters.")

// DB is Django's database, seen through the schema map.
type DB struct {
	db *sql.DB
	q  queries
	s  Schema
}

// New wraps an open database. The schema is not checked here: call
// CheckSchema at start-up.
func New(db *sql.DB, s Schema) (*DB, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &DB{db: db, q: buildQueries(s), s: s}, nil
}

// Ping reports whether the database answers.
func (d *DB) Ping(ctx context.Context) error {
	return d.db.PingContext(ctx)
}

// User loads a user by id.
func (d *DB) User(ctx context.Context, id int64) (chat.User, error) {
	var u chat.User
	err := d.db.QueryRowContext(ctx, d.q.user, id).Scan(&u.ID, &u.Email, &u.FullName, &u.UserType, &u.IsActive)
	if errors.Is(err, sql.ErrNoRows) {
		return u, ErrUserNotFound
	}
	if err != nil {
		return u, fmt.Errorf("load user %d: %w", id, err)
	}
	return u, nil
}

// Conversation loads a conversation and whether its pair is blocked.
// A missing row is chat.ErrConversationGone.
func (d *DB) Conversation(ctx context.Context, id int64) (chat.Conversation, bool, error) {
	var c chat.Conversation
	var blocked bool
	err := d.db.QueryRowContext(ctx, d.q.conversation, id).Scan(&c.ID, &c.ListenerID, &c.TalkerID, &c.Status, &blocked)
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, chat.ErrConversationGone
	}
	if err != nil {
		return c, false, fmt.Errorf("load conversation %d: %w", id, err)
	}
	return c, blocked, nil
}

// IsBlocked reports whether a block row exists for the pair.
func (d *DB) IsBlocked(ctx context.Context, listenerID, talkerID int64) (bool, error) {
	var blocked bool
	if err := d.db.QueryRowContext(ctx, d.q.isBlocked, listenerID, talkerID).Scan(&blocked); err != nil {
		return false, fmt.Errorf("check block %d/%d: %w", listenerID, talkerID, err)
	}
	return blocked, nil
}

// Draft is a message to be written.
type Draft struct {
	ConversationID int64
	Sender         chat.User
	Content        string
	CreatedAt      time.Time // truncated to microseconds and made UTC by the save
}

// FileDraft is the attachment of a file message.
type FileDraft struct {
	Name     string // cleaned name to store under (see mediastore.CleanName)
	Filename string // the name as the client sent it
	Data     []byte
	FileType string
}

// Files stores attachment bytes. The save writes them inside its transaction
// and removes them when the transaction does not commit.
type Files interface {
	Save(ctx context.Context, name string, data []byte, now time.Time) (string, error)
	Remove(relPath string) error
}

// SaveText writes a text message and the conversation's last_message_at in
// one statement, after re-checking the block, existence and status rules.
func (d *DB) SaveText(ctx context.Context, m Draft) (chat.Message, error) {
	if err := checkText(m.Content); err != nil {
		return chat.Message{}, d.refuseText(ctx, m, err)
	}
	now := normTime(m.CreatedAt)
	id, err := d.insertMessage(ctx, d.db, m, chat.TypeText, now)
	if err != nil {
		return chat.Message{}, err
	}
	return chat.Message{
		ID: id, ConversationID: m.ConversationID, Sender: m.Sender, Content: m.Content,
		MessageType: chat.TypeText, CreatedAt: now,
	}, nil
}

// SaveFile writes a file message, its bytes and its attachment row in one
// transaction. The file is removed when the transaction fails.
func (d *DB) SaveFile(ctx context.Context, m Draft, f FileDraft, files Files) (msg chat.Message, err error) {
	if err := checkText(m.Content, f.Filename); err != nil {
		return chat.Message{}, d.refuseText(ctx, m, err)
	}
	now := normTime(m.CreatedAt)
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
		if written != "" {
			_ = files.Remove(written)
		}
	}()
	id, err := d.insertMessage(ctx, tx, m, chat.TypeFile, now)
	if err != nil {
		return chat.Message{}, err
	}
	written, err = files.Save(ctx, f.Name, f.Data, now)
	if err != nil {
		return chat.Message{}, fmt.Errorf("save file message: store file: %w", err)
	}
	att := &chat.Attachment{File: written, Filename: f.Filename, FileSize: int64(len(f.Data)), FileType: f.FileType}
	if err = tx.QueryRowContext(ctx, d.q.insertFile, id, att.File, att.Filename, att.FileSize, att.FileType, now).Scan(&att.ID); err != nil {
		return chat.Message{}, fmt.Errorf("save file message: insert attachment: %w", err)
	}
	if err = tx.Commit(); err != nil {
		return chat.Message{}, fmt.Errorf("save file message: commit: %w", err)
	}
	return chat.Message{
		ID: id, ConversationID: m.ConversationID, Sender: m.Sender, Content: m.Content,
		MessageType: chat.TypeFile, CreatedAt: now, Attachment: att,
	}, nil
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// insertMessage runs the checked insert and maps its outcome to the
// contract's errors, in the contract's order: gone, blocked, status.
func (d *DB) insertMessage(ctx context.Context, q queryRower, m Draft, typ string, now time.Time) (int64, error) {
	var (
		status   string
		talkerID int64
		blocked  bool
		id       sql.NullInt64
	)
	err := q.QueryRowContext(ctx, d.q.insertMessage, m.ConversationID, m.Sender.ID, m.Content, typ, now).
		Scan(&status, &talkerID, &blocked, &id)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, chat.ErrConversationGone
	case err != nil:
		return 0, fmt.Errorf("insert message into conversation %d: %w", m.ConversationID, err)
	case blocked:
		return 0, chat.ErrBlocked
	case !id.Valid:
		conv := chat.Conversation{ID: m.ConversationID, TalkerID: talkerID, Status: status}
		if err := conv.CanSend(m.Sender.ID); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("insert message into conversation %d: no row written", m.ConversationID)
	}
	return id.Int64, nil
}

// History returns every message of the conversation, newest first.
func (d *DB) History(ctx context.Context, conversationID int64) ([]chat.Message, error) {
	rows, err := d.db.QueryContext(ctx, d.q.history, conversationID)
	if err != nil {
		return nil, fmt.Errorf("load history of conversation %d: %w", conversationID, err)
	}
	defer rows.Close()
	var out []chat.Message
	for rows.Next() {
		m := chat.Message{ConversationID: conversationID}
		var (
			attID, attSize            sql.NullInt64
			attFile, attName, attType sql.NullString
		)
		if err := rows.Scan(&m.ID, &m.Content, &m.MessageType, &m.CreatedAt, &m.IsRead,
			&m.Sender.ID, &m.Sender.Email, &m.Sender.FullName, &m.Sender.UserType,
			&attID, &attFile, &attName, &attSize, &attType); err != nil {
			return nil, fmt.Errorf("load history of conversation %d: %w", conversationID, err)
		}
		m.CreatedAt = m.CreatedAt.UTC()
		if attID.Valid {
			m.Attachment = &chat.Attachment{
				ID: attID.Int64, File: attFile.String, Filename: attName.String,
				FileSize: attSize.Int64, FileType: attType.String,
			}
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load history of conversation %d: %w", conversationID, err)
	}
	return out, nil
}

// MarkRead marks as read every unread message of the conversation not sent
// by the reader, and returns how many rows changed.
func (d *DB) MarkRead(ctx context.Context, conversationID, readerID int64) (int64, error) {
	res, err := d.db.ExecContext(ctx, d.q.markRead, conversationID, readerID)
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
func (d *DB) refuseText(ctx context.Context, m Draft, textErr error) error {
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
			return ErrNUL
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
