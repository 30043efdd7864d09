package pgfeed

import (
	"fmt"
	"time"
)

// Op is what a change did to its table.
type Op byte

// The operations, with pgoutput's message letters.
const (
	Insert   Op = 'I'
	Update   Op = 'U'
	Delete   Op = 'D'
	Truncate Op = 'T'
)

func (o Op) String() string {
	switch o {
	case Insert:
		return "insert"
	case Update:
		return "update"
	case Delete:
		return "delete"
	case Truncate:
		return "truncate"
	}
	return fmt.Sprintf("Op(%q)", byte(o))
}

// Kind says what a Value holds.
type Kind byte

// The kinds of value pgoutput sends, with its letters.
const (
	// Text is a value in PostgreSQL's text output format ('t').
	Text Kind = 't'
	// Null is SQL NULL ('n').
	Null Kind = 'n'
	// Unchanged is a TOASTed value the statement did not change ('u'):
	// pgoutput does not send it, so an UPDATE of another column of a row
	// with large content carries the content only as this marker. Keep the
	// value you had.
	Unchanged Kind = 'u'
)

// Value is one column's value.
type Value struct {
	Kind Kind
	Text string // the value when Kind is Text
}

func (v Value) String() string {
	switch v.Kind {
	case Text:
		return fmt.Sprintf("%q", v.Text)
	case Null:
		return "NULL"
	case Unchanged:
		return "(unchanged)"
	}
	return fmt.Sprintf("Value(%q)", byte(v.Kind))
}

// Column is one published column of a relation.
type Column struct {
	Name    string
	Key     bool   // part of the replica identity (the primary key by default)
	TypeOID uint32 // the column's type (pg_type.oid)
	TypeMod int32  // its modifier (atttypmod), -1 if none
}

// Relation is a published table as the server last described it. The
// server describes a table again after its definition changes (an ALTER
// TABLE), so changes of one transaction can point to different Relations
// of one table; a Relation itself never changes.
type Relation struct {
	ID              uint32 // the table's oid
	Namespace       string // schema, e.g. public
	Table           string
	ReplicaIdentity byte // 'd' default (primary key), 'f' full, 'i' index, 'n' nothing
	Columns         []Column
}

// Change is one row changed, or one table truncated.
type Change struct {
	Op  Op
	Rel *Relation
	// New is the row after an Insert or Update: every published column by
	// name. After an Update, a column may be Unchanged.
	New map[string]Value
	// Old holds, for a Delete, the replica identity key only (the primary
	// key by default); for an Update, the old key if the update changed it;
	// otherwise nil. Under REPLICA IDENTITY FULL it is the whole old row.
	Old map[string]Value
}

// Tx is one committed transaction's changes to the publication's tables,
// in the order they were made.
type Tx struct {
	Xid        uint32
	CommitLSN  LSN // where the commit record starts
	EndLSN     LSN // where it ends: Applied reaches it once Apply returns
	CommitTime time.Time
	Changes    []Change
	// Overflow is set when the transaction's changes weighed more than
	// Config.MaxTxBytes: they were not kept, Changes is nil, and Relations
	// names the tables they touched. Drop whatever you derived from those
	// tables; the rows are in the database.
	Overflow  bool
	Relations []*Relation
}
