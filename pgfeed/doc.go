// Package pgfeed follows Django's tables in PostgreSQL through logical
// replication: a Feed streams the committed changes of one publication to a
// Handler, one whole transaction at a time and in commit order, knows how
// far it has applied them (Applied), and lets a caller wait until it has
// passed a WAL position (WaitFor, with CurrentLSN taken after a commit).
//
// # Setting up the database (once, by its owner)
//
// In postgresql.conf, wal_level = logical (a restart), and one free
// replication slot and WAL sender (max_replication_slots, max_wal_senders)
// per running sidecar. Then, in the Django database:
//
//	-- PostgreSQL 15 or later: the column list keeps password hashes and
//	-- the other private columns of users_user out of the stream. It must
//	-- hold the primary key, or UPDATE and DELETE of users_user fail.
//	CREATE PUBLICATION sidecar_feed FOR TABLE
//	    chat_message, chat_fileattachment,
//	    users_user (id, email, full_name, user_type, is_active);
//
//	-- the role in the sidecar's DATABASE_URL:
//	ALTER ROLE sidecar REPLICATION;
//
// REPLICATION lets a role stream changes of any published table and, where
// pg_hba.conf has a "replication" line for it, the whole cluster's WAL:
// give it to the sidecar's role only. A logical replication connection is
// matched in pg_hba.conf by database name, like any other.
//
// Before PostgreSQL 15 a publication has no column list: publishing
// users_user would publish every column, password hashes included. The
// sidecar's histories need the senders' names from the stream to stay
// exact, so there the feed stays off (its check says so) unless the owner
// chooses to publish the whole table.
//
// Check verifies all of this before the sidecar starts the feed, and names
// what is missing in one line ("feed off: <reason>").
//
// # What a handler sees
//
// Each stream begins with Reset: the feed uses a TEMPORARY slot that the
// server drops when the connection ends (nothing is retained on the server
// once the sidecar is gone), so a new stream starts at the current WAL
// position and changes made in between are never delivered; whatever the
// handler derived must be rebuilt from the database. Then come the
// transactions, each as a Tx once it has committed (rolled back ones never
// appear; pgoutput protocol 1 sends a transaction only at its commit).
// Values are in PostgreSQL's text format, NULL, or Unchanged: a TOASTed
// value (large text) that an UPDATE did not touch is not sent, and the
// consumer keeps the value it had. A Delete carries the replica identity
// (the primary key) only. A transaction heavier than Config.MaxTxBytes
// comes as a Tx with Overflow set and no changes.
//
// The feed talks to the walsender over pgx's pgconn; pgoutput's messages
// are parsed by github.com/jackc/pglogrepl.
package pgfeed
