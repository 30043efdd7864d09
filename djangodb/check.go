package djangodb

import (
	"context"
	"fmt"
	"strings"
)

// columnInfo is one column of a live table.
type columnInfo struct {
	name       string
	dataType   string // as information_schema names it, lower case
	notNull    bool
	hasDefault bool // a DEFAULT, a sequence, an identity or a generated column
}

// CheckSchema verifies against the live database that every table and
// column the sidecar uses exists with a compatible type, and that the tables
// it inserts into have no other NOT NULL column without a default. A failure
// names the table, the column and the variable to set.
func (d *DB) CheckSchema(ctx context.Context) error {
	var problems []string
	for _, m := range models {
		table := d.s.table(m.name)
		cols, err := d.columns(ctx, table)
		if err != nil {
			return fmt.Errorf("check schema: %w", err)
		}
		if len(cols) == 0 {
			problems = append(problems, fmt.Sprintf("table %q does not exist (set %s)", table, m.env))
			continue
		}
		used := map[string]bool{}
		for _, c := range m.columns {
			name := d.s.column(m.name, c.name)
			used[name] = true
			info, ok := cols[name]
			if !ok {
				problems = append(problems, fmt.Sprintf("table %q has no column %q (set %s or DB_COLUMNS=%s.%s:<name>)",
					table, name, m.env, m.name, c.name))
				continue
			}
			if !d.compatible(c.kind, info.dataType) {
				problems = append(problems, fmt.Sprintf("column %q.%q is %s, want %s", table, name, info.dataType, c.kind))
			}
			if c.name == "id" && m.inserts && !info.hasDefault {
				problems = append(problems, fmt.Sprintf("column %q.%q has no default: ids must come from a sequence", table, name))
			}
		}
		if !m.inserts {
			continue
		}
		for name, info := range cols {
			if !used[name] && info.notNull && !info.hasDefault {
				problems = append(problems, fmt.Sprintf("table %q has NOT NULL column %q without a default, which the sidecar cannot fill (set %s to another table or give the column a default)",
					table, name, m.env))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("check schema: %s", strings.Join(problems, "; "))
	}
	return nil
}

// columns lists the columns of a table; an empty map means no such table.
func (d *DB) columns(ctx context.Context, table string) (map[string]columnInfo, error) {
	if d.dialect == SQLite {
		return d.sqliteColumns(ctx, table)
	}
	rows, err := d.db.QueryContext(ctx, `SELECT column_name, lower(data_type), is_nullable = 'NO',
	column_default IS NOT NULL OR is_identity = 'YES' OR is_generated = 'ALWAYS'
FROM information_schema.columns
WHERE table_schema = ANY (current_schemas(false)) AND table_name = $1`, table)
	if err != nil {
		return nil, fmt.Errorf("list columns of %q: %w", table, err)
	}
	defer rows.Close()
	cols := map[string]columnInfo{}
	for rows.Next() {
		var c columnInfo
		if err := rows.Scan(&c.name, &c.dataType, &c.notNull, &c.hasDefault); err != nil {
			return nil, fmt.Errorf("list columns of %q: %w", table, err)
		}
		cols[c.name] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list columns of %q: %w", table, err)
	}
	return cols, nil
}

// sqliteColumns lists a table's columns with pragma_table_xinfo, which is
// pragma_table_info (name, type, notnull, dflt_value, pk) plus the hidden
// flag of generated columns. Types are as Django declares them on SQLite
// (integer, bigint, varchar(254), text, bool, datetime…), lower-cased. A
// column has a default when it declares one, is generated, or is the
// table's only primary key column declared "integer" (a rowid alias, which
// SQLite numbers itself: Django's AutoField and BigAutoField).
func (d *DB) sqliteColumns(ctx context.Context, table string) (map[string]columnInfo, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT name, lower(trim(type)), "notnull" <> 0, dflt_value IS NOT NULL, pk, hidden
FROM pragma_table_xinfo($1)`, table)
	if err != nil {
		return nil, fmt.Errorf("list columns of %q: %w", table, err)
	}
	defer rows.Close()
	cols := map[string]columnInfo{}
	var pks []string
	for rows.Next() {
		var (
			c          columnInfo
			pk, hidden int64
		)
		if err := rows.Scan(&c.name, &c.dataType, &c.notNull, &c.hasDefault, &pk, &hidden); err != nil {
			return nil, fmt.Errorf("list columns of %q: %w", table, err)
		}
		if hidden == 2 || hidden == 3 { // generated: VIRTUAL or STORED
			c.hasDefault = true
		}
		if pk > 0 {
			pks = append(pks, c.name)
		}
		cols[c.name] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list columns of %q: %w", table, err)
	}
	if len(pks) == 1 && cols[pks[0]].dataType == "integer" {
		c := cols[pks[0]]
		c.hasDefault = true
		cols[pks[0]] = c
	}
	return cols, nil
}

func (d *DB) compatible(k kind, dataType string) bool {
	if d.dialect == SQLite {
		return compatibleSQLite(k, dataType)
	}
	return compatible(k, dataType)
}

// compatibleSQLite accepts the types Django's SQLite backend declares for
// the fields behind each kind.
func compatibleSQLite(k kind, dataType string) bool {
	switch k {
	case kindInt:
		t := strings.TrimSuffix(dataType, " unsigned")
		return t == "integer" || t == "bigint" || t == "smallint" || t == "int"
	case kindText:
		return dataType == "text" || strings.HasPrefix(dataType, "varchar") || strings.HasPrefix(dataType, "char") ||
			strings.HasPrefix(dataType, "nvarchar")
	case kindBool:
		return dataType == "bool" || dataType == "boolean"
	case kindTime:
		return dataType == "datetime" || dataType == "timestamp"
	}
	return false
}

func compatible(k kind, dataType string) bool {
	switch k {
	case kindInt:
		return dataType == "bigint" || dataType == "integer" || dataType == "smallint"
	case kindText:
		return dataType == "character varying" || dataType == "text" || dataType == "character"
	case kindBool:
		return dataType == "boolean"
	case kindTime:
		return dataType == "timestamp with time zone" || dataType == "timestamp without time zone"
	}
	return false
}
