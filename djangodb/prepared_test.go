package djangodb_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/DATA-DOG/go-sqlmock"
	_ "github.com/lib/pq"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

// Statements are prepared on the connection that runs them, once, and
// Unprepared prepares none. Seen from PostgreSQL itself: a pool of one
// connection, asked for its pg_prepared_statements.
func TestPreparedStatements(t *testing.T) {
	for _, c := range []struct {
		name string
		opts djangodb.Options
		want bool
	}{{"default", djangodb.Options{}, true}, {"unprepared", djangodb.Options{Unprepared: true}, false}} {
		t.Run(c.name, func(t *testing.T) {
			pg := testenv.Postgres(t)
			p := newPairIn(t, pg, newStore(t, pg, djangodb.Schema{}), "active")
			one, err := sql.Open("postgres", pg.DSN)
			if err != nil {
				t.Fatal(err)
			}
			defer one.Close()
			one.SetMaxOpenConns(1)
			db, err := djangodb.New(one, djangodb.Postgres, djangodb.Schema{}, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			for range 3 {
				if _, err := db.User(ctx, p.talker.ID); err != nil {
					t.Fatal(err)
				}
				if _, err := db.SaveText(ctx, chat.Draft{ConversationID: p.conv, Sender: p.talker, Content: "hello"}); err != nil {
					t.Fatal(err)
				}
			}
			var prepared []string
			rows, err := one.Query(`SELECT statement FROM pg_prepared_statements`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					t.Fatal(err)
				}
				prepared = append(prepared, s)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			// The query above is lib/pq's unnamed statement, not listed.
			if c.want && len(prepared) != 2 {
				t.Errorf("prepared statements on the connection: %q; want the user query and the checked insert, once each", prepared)
			}
			if !c.want && len(prepared) != 0 {
				t.Errorf("prepared statements on the connection: %q; want none", prepared)
			}
			var n int
			if err := pg.DB.QueryRow(`SELECT count(*) FROM chat_message WHERE conversation_id = $1`, p.conv).Scan(&n); err != nil || n != 3 {
				t.Errorf("%d messages saved (%v), want 3", n, err)
			}
		})
	}
}

// A statement that cannot be prepared runs unprepared, and the next call
// tries to prepare it again.
func TestMockPrepareFails(t *testing.T) {
	sqldb, mock, err := sqlmock.New(sqlmock.QueryMatcherOption(sqlmock.QueryMatcherRegexp))
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	db, err := djangodb.New(sqldb, djangodb.Postgres, djangodb.Schema{}, djangodb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const reUser = `SELECT .* FROM "users_user" WHERE "id" = \$1`
	userRow := func() *sqlmock.Rows {
		return sqlmock.NewRows([]string{"id", "email", "full_name", "user_type", "is_active"}).AddRow(int64(2), "t@example.com", "", "talker", true)
	}
	mock.ExpectPrepare(reUser).WillReturnError(errors.New("connection reset by peer"))
	mock.ExpectQuery(reUser).WithArgs(int64(2)).WillReturnRows(userRow())
	prep := mock.ExpectPrepare(reUser)
	prep.ExpectQuery().WithArgs(int64(2)).WillReturnRows(userRow())
	prep.ExpectQuery().WithArgs(int64(2)).WillReturnRows(userRow())
	for i := range 3 {
		if u, err := db.User(context.Background(), 2); err != nil || u.Email != "t@example.com" {
			t.Fatalf("call %d: User = %+v, %v", i, u, err)
		}
	}
	if err := mock.ExpectationsWereMet(); err != nil {
		t.Error(err)
	}
}
