package pgfeed

import (
	"fmt"
	"sort"

	"github.com/jackc/pglogrepl"
)

// The weight of a transaction held in memory, in bytes: a value's text plus
// what its map entry costs, and each change's own header.
const (
	valueOverhead  = 64
	changeOverhead = 96
)

// decoder turns one stream's pgoutput (protocol 1) messages into
// transactions. It belongs to the stream: relation ids mean nothing across
// streams.
type decoder struct {
	maxBytes int64
	rels     map[uint32]*Relation

	tx      *Tx // open between Begin and Commit
	size    int64
	touched map[uint32]*Relation // tables of an overflowing transaction
}

func newDecoder(maxBytes int64) *decoder {
	return &decoder{maxBytes: maxBytes, rels: map[uint32]*Relation{}}
}

// decode takes one message and returns the transaction it completes, if it
// is a Commit.
func (d *decoder) decode(data []byte) (*Tx, error) {
	msg, err := pglogrepl.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("parse pgoutput message: %w", err)
	}
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		d.relation(m)
	case *pglogrepl.BeginMessage:
		if d.tx != nil {
			return nil, fmt.Errorf("begin of xid %d inside xid %d", m.Xid, d.tx.Xid)
		}
		d.tx = &Tx{Xid: m.Xid, CommitLSN: LSN(m.FinalLSN), CommitTime: m.CommitTime}
		d.size, d.touched = 0, nil
	case *pglogrepl.InsertMessage:
		return nil, d.change(Insert, m.RelationID, m.Tuple, 0, nil)
	case *pglogrepl.UpdateMessage:
		return nil, d.change(Update, m.RelationID, m.NewTuple, m.OldTupleType, m.OldTuple)
	case *pglogrepl.DeleteMessage:
		return nil, d.change(Delete, m.RelationID, nil, m.OldTupleType, m.OldTuple)
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			if err := d.change(Truncate, id, nil, 0, nil); err != nil {
				return nil, err
			}
		}
	case *pglogrepl.CommitMessage:
		tx := d.tx
		if tx == nil {
			return nil, fmt.Errorf("commit at %s outside a transaction", LSN(m.CommitLSN))
		}
		if tx.Overflow {
			tx.Relations = d.relations()
		}
		d.tx, d.touched = nil, nil
		tx.CommitLSN, tx.EndLSN, tx.CommitTime = LSN(m.CommitLSN), LSN(m.TransactionEndLSN), m.CommitTime
		return tx, nil
	default:
		// Type and Origin messages carry nothing a consumer of rows needs.
	}
	return nil, nil
}

// relation records a table's description, replacing any earlier one.
func (d *decoder) relation(m *pglogrepl.RelationMessage) {
	r := &Relation{ID: m.RelationID, Namespace: m.Namespace, Table: m.RelationName, ReplicaIdentity: m.ReplicaIdentity,
		Columns: make([]Column, len(m.Columns))}
	for i, c := range m.Columns {
		r.Columns[i] = Column{Name: c.Name, Key: c.Flags&1 != 0, TypeOID: c.DataType, TypeMod: c.TypeModifier}
	}
	d.rels[m.RelationID] = r
}

// change adds one change to the open transaction, unless it overflows.
func (d *decoder) change(op Op, relID uint32, newTuple *pglogrepl.TupleData, oldType uint8, oldTuple *pglogrepl.TupleData) error {
	if d.tx == nil {
		return fmt.Errorf("%s outside a transaction", op)
	}
	rel, ok := d.rels[relID]
	if !ok {
		return fmt.Errorf("%s on relation %d, which the server has not described", op, relID)
	}
	if d.tx.Overflow {
		d.touched[relID] = rel
		return nil
	}
	c := Change{Op: op, Rel: rel}
	d.size += changeOverhead
	var err error
	if c.New, err = d.tuple(rel, newTuple, false); err != nil {
		return fmt.Errorf("%s on %s.%s: %w", op, rel.Namespace, rel.Table, err)
	}
	// A key tuple ('K') lists every column, the non-key ones as NULL:
	// keep the key alone, which is all it says.
	if c.Old, err = d.tuple(rel, oldTuple, oldType == pglogrepl.UpdateMessageTupleTypeKey); err != nil {
		return fmt.Errorf("%s on %s.%s: %w", op, rel.Namespace, rel.Table, err)
	}
	d.tx.Changes = append(d.tx.Changes, c)
	if d.size > d.maxBytes {
		d.overflow()
	}
	return nil
}

// overflow drops the open transaction's changes, keeping the tables they touched.
func (d *decoder) overflow() {
	d.tx.Overflow = true
	d.touched = map[uint32]*Relation{}
	for _, c := range d.tx.Changes {
		d.touched[c.Rel.ID] = c.Rel
	}
	d.tx.Changes = nil
	d.size = 0
}

// tuple decodes a row by column name; keyOnly keeps the key columns alone.
func (d *decoder) tuple(rel *Relation, t *pglogrepl.TupleData, keyOnly bool) (map[string]Value, error) {
	if t == nil {
		return nil, nil
	}
	if len(t.Columns) != len(rel.Columns) {
		return nil, fmt.Errorf("row has %d columns, the relation %d", len(t.Columns), len(rel.Columns))
	}
	row := make(map[string]Value, len(t.Columns))
	for i, c := range t.Columns {
		col := rel.Columns[i]
		if keyOnly && !col.Key {
			continue
		}
		var v Value
		switch c.DataType {
		case pglogrepl.TupleDataTypeText:
			v = Value{Kind: Text, Text: string(c.Data)} // copies: the buffer is reused
		case pglogrepl.TupleDataTypeNull:
			v = Value{Kind: Null}
		case pglogrepl.TupleDataTypeToast:
			v = Value{Kind: Unchanged}
		default:
			return nil, fmt.Errorf("column %s: value of kind %q, want text, null or unchanged", col.Name, c.DataType)
		}
		row[col.Name] = v
		d.size += valueOverhead + int64(len(v.Text))
	}
	return row, nil
}

// relations lists the tables an overflowing transaction touched.
func (d *decoder) relations() []*Relation {
	rs := make([]*Relation, 0, len(d.touched))
	for _, r := range d.touched {
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].ID < rs[j].ID })
	return rs
}
