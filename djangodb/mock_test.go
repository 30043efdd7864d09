package djangodb_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/DATA-DOG/go-sqlmock"
	"github.com/lib/pq"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/djangodb"
)

// These tests make the database fail in the middle of an operation, which a
// real PostgreSQL does not do on demand. They run unprepared, so each
// expectation is the statement itself; prepared_test.go covers preparing.

func newMock(t *testing.T) (*djangodb.DB, sqlmock.Sqlmock) {
	t.Helper()
	sqldb, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherRegexp))
	if err != nil {
		t.Fatalf("sqlmock.New: %v", err)
	}
	t.Cleanup(func() { sqldb.Close() })
	db, err := djangodb.New(sqldb, djangodb.Postgres, djangodb.Schema{}, djangodb.Options{Unprepared: true})
	if err != nil {
		t.Fatalf("djangodb.New: %v", err)
	}
	return db, mock
}

const (
	reInsertMessage = `INSERT INTO "chat_message"`
	reInsertFile    = `INSERT INTO "chat_fileattachment"`
	reAttExists     = `SELECT count\(\*\) FROM "chat_fileattachment" WHERE "id" = \$1`
	reHistory       = `SELECT .* FROM "chat_message" m .*ORDER BY`
)

// insertedRow is what the checked insert returns when it wrote message id.
func insertedRow(id int64) *sqlmock.Rows {
	return sqlmock.NewRows([]string{"status", "talker_id", "blocked", "id"}).AddRow("active", int64(2), false, id)
}

var (
	mockTalker = chat.User{ID: 2, Email: "t@example.com", UserType: "talker", IsActive: true}
	mockDraft  = chat.Draft{ConversationID: 7, Sender: mockTalker, Content: "cap", CreatedAt: time.Date(2026, 1, 14, 10, 0, 0, 0, time.UTC)}
	mockFile   = chat.FileDraft{Name: "a.png", Filename: "a.png", Data: []byte("png"), FileType: "image/png"}
)

const mockPath = "chat_files/2026/01/14/a.png"

// notSentinel fails the test when err is one of the outcomes the consumer
// turns into a client error frame: a database failure must not look like one.
func notSentinel(t *testing.T, err error) {
	t.Helper()
	var se *chat.StatusError
	for _, target := range []error{chat.ErrConversationGone, chat.ErrBlocked, chat.ErrNotTalker, chat.ErrNUL, chat.ErrUserNotFound} {
		if errors.Is(err, target) {
			t.Errorf("error %v is %v", err, target)
		}
	}
	if errors.As(err, &se) {
		t.Errorf("error %v is a StatusError", err)
	}
}

func TestMockSaveFileAttachmentInsertFails(t *testing.T) {
	db, mock := newMock(t)
	insertErr := errors.New("value too long for type character varying(255)")
	mock.ExpectBegin()
	mock.ExpectQuery(reInsertMessage).WithArgs(int64(7), int64(2), "cap", "file", sqlmock.AnyArg()).WillReturnRows(insertedRow(10))
	mock.ExpectQuery(reInsertFile).WithArgs(int64(10), mockPath, "a.png", int64(3), "image/png", sqlmock.AnyArg()).WillReturnError(insertErr)
	mock.ExpectRollback()

	var rolledBackFirst error = errors.New("Remove not called")
	files := &fakeFiles{onRemove: func(string) { rolledBackFirst = mock.ExpectationsWereMet() }}
	msg, err := db.SaveFile(context.Background(), mockDraft, mockFile, files)
	if !errors.Is(err, insertErr) {
		t.Fatalf("SaveFile error = %v, want it to wrap %v", err, insertErr)
	}
	notSentinel(t, err)
	if msg.ID != 0 || msg.Attachment != nil {
		t.Errorf("SaveFile returned %+v", msg)
	}
	if len(files.removed) != 1 || files.removed[0] != mockPath {
		t.Errorf("removed %v, want [%s]", files.removed, mockPath)
	}
	if rolledBackFirst != nil {
		t.Errorf("at Remove, the transaction was not yet rolled back: %v", rolledBackFirst)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
}

// A failed COMMIT removes the file only when the row is really absent.
func TestMockSaveFileCommitFails(t *testing.T) {
	commitErr := errors.New("connection reset by peer")
	for _, tc := range []struct {
		name      string
		exists    *sqlmock.Rows // nil: the look fails too
		rmErr     error
		wantErr   bool
		wantGone  bool
		errSubstr string
	}{
		{name: "row absent", exists: sqlmock.NewRows([]string{"n"}).AddRow(0), wantErr: true, wantGone: true},
		{name: "row committed after all", exists: sqlmock.NewRows([]string{"n"}).AddRow(1)},
		{name: "cannot tell", wantErr: true, errSubstr: "kept"},
		{name: "removal fails", exists: sqlmock.NewRows([]string{"n"}).AddRow(0), rmErr: errors.New("EACCES"),
			wantErr: true, wantGone: true, errSubstr: "EACCES"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, mock := newMock(t)
			mock.ExpectBegin()
			mock.ExpectQuery(reInsertMessage).WillReturnRows(insertedRow(10))
			mock.ExpectQuery(reInsertFile).WillReturnRows(sqlmock.NewRows([]string{"id"}).AddRow(int64(20)))
			mock.ExpectCommit().WillReturnError(commitErr)
			look := mock.ExpectQuery(reAttExists).WithArgs(int64(20))
			if tc.exists != nil {
				look.WillReturnRows(tc.exists)
			} else {
				look.WillReturnError(errors.New("server closed the connection"))
			}
			files := &fakeFiles{rmErr: tc.rmErr}
			msg, err := db.SaveFile(context.Background(), mockDraft, mockFile, files)
			if tc.wantErr {
				if !errors.Is(err, commitErr) {
					t.Fatalf("SaveFile error = %v, want it to wrap %v", err, commitErr)
				}
				notSentinel(t, err)
				if msg.ID != 0 {
					t.Errorf("SaveFile returned %+v", msg)
				}
				if tc.errSubstr != "" && !strings.Contains(err.Error(), tc.errSubstr) {
					t.Errorf("error %q does not say %q", err, tc.errSubstr)
				}
			} else if err != nil || msg.ID != 10 || msg.Attachment == nil || msg.Attachment.ID != 20 {
				t.Fatalf("SaveFile = %+v, %v; want the committed message", msg, err)
			}
			if gone := len(files.removed) == 1; gone != tc.wantGone {
				t.Errorf("removed %v; want removed=%v", files.removed, tc.wantGone)
			}
			if err := mock.ExpectationsWereMet(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestMockSaveFileStoreFails(t *testing.T) {
	db, mock := newMock(t)
	saveErr := errors.New("disk full")
	mock.ExpectBegin()
	mock.ExpectQuery(reInsertMessage).WillReturnRows(insertedRow(10))
	mock.ExpectRollback()

	files := &fakeFiles{saveErr: saveErr}
	_, err := db.SaveFile(context.Background(), mockDraft, mockFile, files)
	if !errors.Is(err, saveErr) {
		t.Fatalf("SaveFile error = %v, want it to wrap %v", err, saveErr)
	}
	notSentinel(t, err)
	if len(files.removed) != 0 {
		t.Errorf("removed %v after a failed store; want nothing", files.removed)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
}

func TestMockSaveFileBeginFails(t *testing.T) {
	db, mock := newMock(t)
	beginErr := errors.New("too many connections")
	mock.ExpectBegin().WillReturnError(beginErr)

	files := &fakeFiles{}
	_, err := db.SaveFile(context.Background(), mockDraft, mockFile, files)
	if !errors.Is(err, beginErr) {
		t.Fatalf("SaveFile error = %v, want it to wrap %v", err, beginErr)
	}
	if len(files.saved) != 0 || len(files.removed) != 0 {
		t.Errorf("files saved %v removed %v; want nothing", files.saved, files.removed)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
}

func TestMockSaveFileBlocked(t *testing.T) {
	db, mock := newMock(t)
	mock.ExpectBegin()
	mock.ExpectQuery(reInsertMessage).WillReturnRows(
		sqlmock.NewRows([]string{"status", "talker_id", "blocked", "id"}).AddRow("active", int64(2), true, nil))
	mock.ExpectRollback()

	files := &fakeFiles{}
	if _, err := db.SaveFile(context.Background(), mockDraft, mockFile, files); !errors.Is(err, chat.ErrBlocked) {
		t.Fatalf("SaveFile error = %v, want chat.ErrBlocked", err)
	}
	if len(files.saved) != 0 || len(files.removed) != 0 {
		t.Errorf("files saved %v removed %v; want nothing", files.saved, files.removed)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
}

func historyColumns() []string {
	return []string{"id", "content", "message_type", "created_at", "is_read",
		"sender_id", "email", "full_name", "user_type",
		"att_id", "file", "filename", "file_size", "file_type"}
}

func TestMockHistoryRowsErr(t *testing.T) {
	db, mock := newMock(t)
	rowErr := errors.New("canceling statement due to conflict with recovery")
	ts := time.Date(2026, 1, 14, 10, 0, 0, 0, time.UTC)
	rows := sqlmock.NewRows(historyColumns()).
		AddRow(int64(3), "c", "text", ts, false, int64(2), "t@example.com", "", "talker", nil, nil, nil, nil, nil).
		AddRow(int64(2), "b", "file", ts, false, int64(2), "t@example.com", "", "talker", int64(9), "chat_files/x", "x", int64(1), "").
		AddRow(int64(1), "a", "text", ts, false, int64(2), "t@example.com", "", "talker", nil, nil, nil, nil, nil).
		RowError(1, rowErr)
	mock.ExpectQuery(reHistory).WithArgs(int64(7)).WillReturnRows(rows)

	h, err := historyOf(context.Background(), db, 7)
	if !errors.Is(err, rowErr) {
		t.Fatalf("History error = %v, want it to wrap %v", err, rowErr)
	}
	notSentinel(t, err)
	if h != nil {
		t.Errorf("History returned %d messages with its error; want none", len(h))
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
}

func TestMockHistoryQueryFails(t *testing.T) {
	db, mock := newMock(t)
	qErr := errors.New("relation does not exist")
	mock.ExpectQuery(reHistory).WillReturnError(qErr)
	if _, err := historyOf(context.Background(), db, 7); !errors.Is(err, qErr) {
		t.Fatalf("History error = %v, want it to wrap %v", err, qErr)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
}

func TestMockSaveTextDriverError(t *testing.T) {
	db, mock := newMock(t)
	pqErr := &pq.Error{Code: "57014", Message: "canceling statement due to statement timeout"}
	mock.ExpectQuery(reInsertMessage).WithArgs(int64(7), int64(2), "hello", "text", sqlmock.AnyArg()).WillReturnError(pqErr)

	d := mockDraft
	d.Content = "hello"
	msg, err := db.SaveText(context.Background(), d)
	var got *pq.Error
	if !errors.As(err, &got) || got.Code != "57014" {
		t.Fatalf("SaveText error = %v, want it to wrap the *pq.Error", err)
	}
	notSentinel(t, err)
	if msg.ID != 0 {
		t.Errorf("SaveText returned %+v", msg)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
}

// A statement that reports neither a refusal nor a new id is an error, not
// a success with id 0.
func TestMockSaveTextNoRow(t *testing.T) {
	db, mock := newMock(t)
	mock.ExpectQuery(reInsertMessage).WillReturnRows(
		sqlmock.NewRows([]string{"status", "talker_id", "blocked", "id"}).AddRow("active", int64(2), false, nil))
	_, err := db.SaveText(context.Background(), mockDraft)
	if err == nil {
		t.Fatalf("SaveText succeeded without an id")
	}
	notSentinel(t, err)
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
}

func TestMockMarkReadFails(t *testing.T) {
	db, mock := newMock(t)
	execErr := errors.New("deadlock detected")
	mock.ExpectExec(`UPDATE "chat_message" SET "is_read" = true`).WithArgs(int64(7), int64(2)).WillReturnError(execErr)
	if n, err := db.MarkRead(context.Background(), 7, 2); !errors.Is(err, execErr) || n != 0 {
		t.Fatalf("MarkRead = %d, %v; want 0 and an error wrapping %v", n, err, execErr)
	}
	resErr := errors.New("rows affected unavailable")
	mock.ExpectExec(`UPDATE "chat_message"`).WillReturnResult(sqlmock.NewErrorResult(resErr))
	if n, err := db.MarkRead(context.Background(), 7, 2); !errors.Is(err, resErr) || n != 0 {
		t.Fatalf("MarkRead = %d, %v; want 0 and an error wrapping %v", n, err, resErr)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
}

func TestMockUserAndConversationErrors(t *testing.T) {
	db, mock := newMock(t)
	dbErr := errors.New("connection refused")
	mock.ExpectQuery(`FROM "users_user"`).WithArgs(int64(2)).WillReturnError(dbErr)
	mock.ExpectQuery(`FROM "chat_conversation" c`).WithArgs(int64(7)).WillReturnError(dbErr)
	mock.ExpectQuery(`FROM "listener_listenerblockedtalker"`).WithArgs(int64(1), int64(2)).WillReturnError(dbErr)
	ctx := context.Background()
	if _, err := db.User(ctx, 2); !errors.Is(err, dbErr) || errors.Is(err, chat.ErrUserNotFound) {
		t.Errorf("User error = %v", err)
	}
	if _, _, err := db.Conversation(ctx, 7); !errors.Is(err, dbErr) || errors.Is(err, chat.ErrConversationGone) {
		t.Errorf("Conversation error = %v", err)
	}
	if b, err := db.IsBlocked(ctx, 1, 2); !errors.Is(err, dbErr) || b {
		t.Errorf("IsBlocked = %v, %v", b, err)
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
}
