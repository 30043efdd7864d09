package testenv

import "testing"

// PostgresFeed creates a fresh Django database on the test process's own
// PostgreSQL cluster with wal_level=logical (LogicalCluster), where the
// fixture's migrations also create the publication the change feed follows:
// a sidecar on it with FEED=auto (the default) streams its histories.
func PostgresFeed(t testing.TB) *Database {
	t.Helper()
	return LogicalCluster(t).Postgres(t)
}

// FeedBackend is PostgreSQL with the sidecar's change feed on.
var FeedBackend = Backend{"postgres-feed", PostgresFeed}
