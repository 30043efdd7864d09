package djangodb

import (
	"context"
	"fmt"
	"time"
)

// Block makes listenerID block talkerID the way the REST block_talker
// endpoint does (ListenerBlockedTalker.objects.get_or_create): a row with
// blocked_at = now, unless the pair already has one. created reports
// whether a row was written. Only the demo calls it: in production the
// REST API owns blocking.
func (d *DB) Block(ctx context.Context, listenerID, talkerID int64, now time.Time) (created bool, err error) {
	b := quote(d.s.table("block"))
	l, t := quote(d.s.column("block", "listener_id")), quote(d.s.column("block", "talker_id"))
	q := fmt.Sprintf(`INSERT INTO %s (%s, %s, %s) VALUES ($1, $2, $3) ON CONFLICT (%s, %s) DO NOTHING`,
		b, l, t, quote(d.s.column("block", "blocked_at")), l, t)
	err = d.write(ctx, func() error {
		res, err := d.db.ExecContext(ctx, q, listenerID, talkerID, d.timeArg(normTime(now)))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		created = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("block %d/%d: %w", listenerID, talkerID, err)
	}
	return created, nil
}

// Unblock deletes the pair's block row, as the REST unblock_talker endpoint
// does (filter(...).delete()), and reports whether there was one.
func (d *DB) Unblock(ctx context.Context, listenerID, talkerID int64) (deleted bool, err error) {
	q := fmt.Sprintf(`DELETE FROM %s WHERE %s = $1 AND %s = $2`, quote(d.s.table("block")),
		quote(d.s.column("block", "listener_id")), quote(d.s.column("block", "talker_id")))
	err = d.write(ctx, func() error {
		res, err := d.db.ExecContext(ctx, q, listenerID, talkerID)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		deleted = n > 0
		return err
	})
	if err != nil {
		return false, fmt.Errorf("unblock %d/%d: %w", listenerID, talkerID, err)
	}
	return deleted, nil
}
