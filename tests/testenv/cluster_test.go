package testenv_test

import (
	"database/sql"
	"testing"

	"github.com/chatsidecar/sidecar/tests/testenv"
)

// A private cluster keeps its data across a fast stop and a crash, and a
// database on the shared one holds Django's tables on wal_level=logical.
func TestClusterRestartAndCrash(t *testing.T) {
	t.Parallel()
	c := testenv.NewCluster(t, "max_replication_slots=3")
	db, err := sql.Open("postgres", c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before')`); err != nil {
		t.Fatal(err)
	}
	var slots string
	if err := db.QueryRow(`SHOW max_replication_slots`).Scan(&slots); err != nil || slots != "3" {
		t.Fatalf("max_replication_slots = %q, %v; want the extra setting 3", slots, err)
	}
	c.Restart(t)
	c.Crash(t)
	c.Start(t)
	var v string
	if err := db.QueryRow(`SELECT v FROM kept`).Scan(&v); err != nil || v != "before" {
		t.Fatalf("after restart and crash: %q, %v", v, err)
	}
}

func TestLogicalClusterDjangoDatabase(t *testing.T) {
	t.Parallel()
	c := testenv.LogicalCluster(t)
	d := c.Postgres(t)
	var level string
	if err := d.DB.QueryRow(`SHOW wal_level`).Scan(&level); err != nil || level != "logical" {
		t.Fatalf("wal_level = %q, %v", level, err)
	}
	id := d.CreateUser(t, "c@example.com", "C", "talker")
	if id == 0 {
		t.Fatal("no user id")
	}
	if testenv.LogicalCluster(t) != c {
		t.Fatal("LogicalCluster started a second cluster")
	}
}
