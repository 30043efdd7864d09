package pgfeed

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Check reports, in one line, everything that keeps the feed from
// following tables through publication on the database db connects to, as
// the role db connects as: wal_level not logical, a role that may not
// replicate, the publication missing, not publishing every kind of change
// or not covering one of tables (names as in SQL, optionally
// schema-qualified), a table that does not exist, and no free replication
// slot or WAL sender. It returns nil when the feed can start.
func Check(ctx context.Context, db *sql.DB, publication string, tables []string) error {
	var problems []string
	var (
		walLevel                    string
		role                        string
		mayReplicate                bool
		maxSlots, slots, maxSenders int
		senders                     int
	)
	err := db.QueryRowContext(ctx, `SELECT current_setting('wal_level'), current_user,
	(SELECT rolsuper OR rolreplication FROM pg_roles WHERE rolname = current_user),
	current_setting('max_replication_slots')::int, (SELECT count(*) FROM pg_replication_slots),
	current_setting('max_wal_senders')::int, (SELECT count(*) FROM pg_stat_replication)`).
		Scan(&walLevel, &role, &mayReplicate, &maxSlots, &slots, &maxSenders, &senders)
	if err != nil {
		return fmt.Errorf("check feed: read server settings: %w", err)
	}
	if walLevel != "logical" {
		problems = append(problems, fmt.Sprintf("wal_level is %s, not logical (set wal_level = logical in postgresql.conf and restart PostgreSQL)", walLevel))
	}
	if !mayReplicate {
		problems = append(problems, fmt.Sprintf("role %s may not replicate: it is neither superuser nor REPLICATION (ALTER ROLE %s REPLICATION)", quoteIdent(role), quoteIdent(role)))
	}
	if slots >= maxSlots {
		problems = append(problems, fmt.Sprintf("no free replication slot: %d in use of max_replication_slots = %d (raise it and restart PostgreSQL, or drop unused slots)", slots, maxSlots))
	}
	if senders >= maxSenders {
		problems = append(problems, fmt.Sprintf("no free WAL sender: %d running of max_wal_senders = %d (raise it and restart PostgreSQL)", senders, maxSenders))
	}
	pubProblems, err := checkPublication(ctx, db, publication, tables)
	if err != nil {
		return fmt.Errorf("check feed: %w", err)
	}
	problems = append(problems, pubProblems...)
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// checkPublication names what publication lacks for tables.
func checkPublication(ctx context.Context, db *sql.DB, publication string, tables []string) ([]string, error) {
	pub := quoteIdent(publication)
	var ins, upd, del, trunc bool
	err := db.QueryRowContext(ctx, `SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1`,
		publication).Scan(&ins, &upd, &del, &trunc)
	if errors.Is(err, sql.ErrNoRows) {
		// No ready-made DDL: users_user needs a column list (see doc.go).
		return []string{fmt.Sprintf("publication %s does not exist (create it as the pgfeed package doc shows)", pub)}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read publication %s: %w", pub, err)
	}
	var problems []string
	var missing []string
	for _, p := range []struct {
		ok   bool
		name string
	}{{ins, "insert"}, {upd, "update"}, {del, "delete"}, {trunc, "truncate"}} {
		if !p.ok {
			missing = append(missing, p.name)
		}
	}
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("publication %s does not publish %s (ALTER PUBLICATION %s SET (publish = 'insert, update, delete, truncate'))",
			pub, strings.Join(missing, ", "), pub))
	}
	for _, table := range tables {
		var exists, covered bool
		// pg_publication_tables lists the tables of FOR TABLE, FOR TABLES IN
		// SCHEMA and FOR ALL TABLES alike.
		// By name: casting the view's rows to regclass needs rights on
		// every schema, which a plain role lacks.
		err := db.QueryRowContext(ctx, `SELECT c.oid IS NOT NULL,
	EXISTS (SELECT 1 FROM pg_publication_tables pt
		WHERE pt.pubname = $1 AND pt.schemaname = n.nspname AND pt.tablename = c.relname)
FROM (SELECT to_regclass($2) AS oid) r
LEFT JOIN pg_class c ON c.oid = r.oid
LEFT JOIN pg_namespace n ON n.oid = c.relnamespace`,
			publication, table).Scan(&exists, &covered)
		if err != nil {
			return nil, fmt.Errorf("look up table %s in publication %s: %w", table, pub, err)
		}
		switch {
		case !exists:
			problems = append(problems, fmt.Sprintf("table %s does not exist", table))
		case !covered:
			problems = append(problems, fmt.Sprintf("publication %s does not cover table %s (ALTER PUBLICATION %s ADD TABLE %s, with a column list for users_user as the pgfeed package doc shows)", pub, table, pub, table))
		}
	}
	return problems, nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
