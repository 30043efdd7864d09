// Package demo is `sidecar demo`: a fresh SQLite database with Django's
// schema, a listener, a talker and an active conversation between them, a
// second talker who has none yet, access tokens minted as SimpleJWT mints
// them, and the sidecar serving them with a page (/demo/) that shows both
// participants side by side, the listener's live conversation list and
// everyone's notifications. It exists for a newcomer's first five minutes
// and for the browser test; the routes it adds (/demo/..., /media/) exist
// only in demo mode.
package demo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/chatsidecar/sidecar/auth"
	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/fixture"
)

// TokenLifetime is how long the demo's access tokens stay valid.
const TokenLifetime = 30 * 24 * time.Hour

// Options says where Prepare puts the demo.
type Options struct {
	// Dir holds MEDIA_ROOT (and the database when DBPath is empty). Empty
	// means a new temporary directory, which Close removes.
	Dir string
	// DBPath is the SQLite file to create; empty means Dir/db.sqlite3.
	DBPath string
	// Overwrite allows replacing an existing DBPath.
	Overwrite bool
}

// Participant is one of the demo's users.
type Participant struct {
	ID    int64  `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name"`
	Role  string `json:"role"` // "listener" or "talker"
	Token string `json:"token"`
}

// Demo is a prepared demo database.
type Demo struct {
	Dir            string
	DBPath         string
	MediaRoot      string
	SecretKey      string
	ConversationID int64
	Listener       Participant
	Talker         Participant
	// Requester is a second talker with no conversation yet: the page's
	// conversation requests are theirs, to Listener, so that the
	// listener's one inbox shows both the chat and the request.
	Requester Participant

	ownDir bool
}

// Prepare creates the database from the embedded schema, seeds the three
// users and the conversation and mints their tokens.
func Prepare(ctx context.Context, opts Options) (_ *Demo, err error) {
	d := &Demo{Dir: opts.Dir, DBPath: opts.DBPath, SecretKey: newSecretKey()}
	if d.Dir == "" && d.DBPath != "" {
		// A database to keep keeps its files beside it, as Django's
		// MEDIA_ROOT beside db.sqlite3.
		abs, err := filepath.Abs(d.DBPath)
		if err != nil {
			return nil, err
		}
		d.Dir = filepath.Dir(abs)
	}
	if d.Dir == "" {
		if d.Dir, err = os.MkdirTemp("", "sidecar-demo-"); err != nil {
			return nil, err
		}
		d.ownDir = true
	}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if d.DBPath == "" {
		d.DBPath = filepath.Join(d.Dir, "db.sqlite3")
	}
	if d.DBPath, err = filepath.Abs(d.DBPath); err != nil {
		return nil, err
	}
	d.MediaRoot = filepath.Join(d.Dir, "media")
	if err := os.MkdirAll(d.MediaRoot, 0o755); err != nil {
		return nil, err
	}
	if err := createFile(d.DBPath, opts.Overwrite); err != nil {
		return nil, err
	}
	db, err := djangodb.OpenSQLite(d.DBPath, 1)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, schemaSQL); err != nil {
		return nil, fmt.Errorf("create the Django schema in %s: %w", d.DBPath, err)
	}
	if err := d.seed(ctx, db); err != nil {
		return nil, fmt.Errorf("seed %s: %w", d.DBPath, err)
	}
	now := time.Now()
	for _, p := range []*Participant{&d.Listener, &d.Talker, &d.Requester} {
		p.Token = auth.MintAccess(d.SecretKey, p.ID, now, TokenLifetime)
	}
	return d, nil
}

// Close removes the temporary directory Prepare made, if it made one.
func (d *Demo) Close() error {
	if !d.ownDir {
		return nil
	}
	return os.RemoveAll(d.Dir)
}

// createFile makes an empty database file, refusing to replace an existing
// one unless overwrite is set.
func createFile(path string, overwrite bool) error {
	if overwrite {
		for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; pass -force to replace it, or choose another -db path", path)
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// seed inserts the users and the conversation as Django's ORM writes them.
func (d *Demo) seed(ctx context.Context, db *sql.DB) error {
	fx := fixture.New(db, djangodb.SQLite)
	users := []*Participant{
		{Email: "lena@example.com", Name: "Lena Listener", Role: "listener"},
		{Email: "tom@example.com", Name: "Tom Talker", Role: "talker"},
		{Email: "nora@example.com", Name: "Nora Newcomer", Role: "talker"},
	}
	for _, u := range users {
		id, err := fx.User(ctx, fixture.User{Email: u.Email, FullName: u.Name, Type: u.Role})
		if err != nil {
			return err
		}
		u.ID = id
	}
	d.Listener, d.Talker, d.Requester = *users[0], *users[1], *users[2]
	id, err := fx.Conversation(ctx, fixture.Conversation{ListenerID: d.Listener.ID, TalkerID: d.Talker.ID, Status: "active"})
	d.ConversationID = id
	return err
}
