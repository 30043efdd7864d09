package pgfeed_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chatsidecar/sidecar/pgfeed"
	"github.com/chatsidecar/sidecar/tests/testenv"
)

var feedTables = []string{"chat_message", "chat_fileattachment", "users_user"}

// checkSays runs Check and wants an error of one line holding each of want
// (and none of notWant), or nil when want is empty.
func checkSays(t *testing.T, db *sql.DB, publication string, tables []string, want []string, notWant ...string) {
	t.Helper()
	err := pgfeed.Check(context.Background(), db, publication, tables)
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("Check(%s): %v, want nil", publication, err)
		}
		return
	}
	if err == nil {
		t.Fatalf("Check(%s): nil, want %q", publication, want)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("Check(%s): not one line: %q", publication, msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("Check(%s) = %q, want it to say %q", publication, msg, w)
		}
	}
	for _, w := range notWant {
		if strings.Contains(msg, w) {
			t.Errorf("Check(%s) = %q, should not say %q", publication, msg, w)
		}
	}
	t.Logf("feed off: %s", msg)
}

func TestCheckPublication(t *testing.T) {
	t.Parallel()
	db := testenv.LogicalCluster(t).Postgres(t)
	for _, q := range []string{
		publicationDDL,
		`CREATE PUBLICATION partial FOR TABLE chat_message`,
		`CREATE PUBLICATION inserts_only FOR TABLE chat_message WITH (publish = 'insert')`,
		`CREATE PUBLICATION "Mixed Case" FOR ALL TABLES`,
	} {
		if _, err := db.DB.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	checkSays(t, db.DB, publication, feedTables, nil)
	checkSays(t, db.DB, "Mixed Case", feedTables, nil)
	checkSays(t, db.DB, "nope", feedTables, []string{`publication "nope" does not exist`})
	checkSays(t, db.DB, "partial", feedTables,
		[]string{`publication "partial" does not cover table chat_fileattachment`, `publication "partial" does not cover table users_user`},
		"table chat_message")
	checkSays(t, db.DB, "inserts_only", []string{"chat_message"}, []string{`publication "inserts_only" does not publish update, delete, truncate`})
	checkSays(t, db.DB, publication, []string{"chat_message", "chat_nothing"}, []string{"table chat_nothing does not exist"})
}

// The shared server runs with wal_level=replica.
func TestCheckWalLevel(t *testing.T) {
	t.Parallel()
	db := testenv.Postgres(t)
	checkSays(t, db.DB, publication, feedTables, []string{"wal_level is replica, not logical"})
}

func TestCheckRoleWithoutReplication(t *testing.T) {
	t.Parallel()
	db := testenv.LogicalCluster(t).Postgres(t)
	if _, err := db.DB.Exec(publicationDDL); err != nil {
		t.Fatal(err)
	}
	role := "feed_norep_" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "_"))
	if _, err := db.DB.Exec(`CREATE ROLE ` + role + ` LOGIN`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.DB.Exec(`DROP ROLE ` + role) })
	u, _ := url.Parse(db.DSN)
	u.User = url.User(role)
	as, err := sql.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	checkSays(t, as, publication, feedTables, []string{fmt.Sprintf(`role "%s" may not replicate`, role)}, "wal_level", "publication")

	// And the feed itself, run as that role, cannot start.
	conn, err := pgconn.Connect(context.Background(), u.String()+"&replication=database")
	if err == nil {
		conn.Close(context.Background())
		t.Fatal("a role without REPLICATION opened a replication connection")
	}
	t.Logf("the server says: %v", err)
}

// A server with every replication slot and WAL sender taken.
func TestCheckNoFreeSlotOrSender(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t, "max_replication_slots=1", "max_wal_senders=1")
	db, err := sql.Open("postgres", c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION p FOR TABLE t`); err != nil {
		t.Fatal(err)
	}
	checkSays(t, db, "p", []string{"t"}, nil)
	if _, err := db.Exec(`SELECT pg_create_physical_replication_slot('taken')`); err != nil {
		t.Fatal(err)
	}
	// A replication connection holds a WAL sender from its start.
	conn, err := pgconn.Connect(context.Background(), c.URL()+"&replication=database")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	checkSays(t, db, "p", []string{"t"}, []string{
		"no free replication slot: 1 in use of max_replication_slots = 1",
		"no free WAL sender: 1 running of max_wal_senders = 1",
	})
}
