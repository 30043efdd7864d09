package djangodb

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/chatsidecar/sidecar/chat"
)

// inboxQueries are the conversation list's statements: one query per list,
// where Python's consumer made two per conversation.
type inboxQueries struct {
	inbox   string
	pending string
}

// buildInboxQueries writes them from the schema map. The order is Django's
// order_by('-last_message_at', '-created_at') as each engine runs it:
// PostgreSQL sorts NULLs first in DESC, SQLite last; remaining ties go to
// the greatest id, which Python left to the database.
func buildInboxQueries(s Schema) inboxQueries {
	t := func(model string) string { return quote(s.table(model)) }
	c := func(model, col string) string { return quote(s.column(model, col)) }
	u, cv, m := t("user"), t("conversation"), t("message")
	order := fmt.Sprintf(`ORDER BY c.%s DESC, c.%s DESC, c.%s DESC`,
		c("conversation", "last_message_at"), c("conversation", "created_at"), c("conversation", "id"))
	// latest picks the conversation's latest message: greatest created_at,
	// then greatest id.
	latest := func(col string) string {
		return fmt.Sprintf(`(SELECT %s FROM %s m WHERE m.%s = c.%s ORDER BY m.%s DESC, m.%s DESC LIMIT 1)`,
			col, m, c("message", "conversation_id"), c("conversation", "id"),
			c("message", "created_at"), c("message", "id"))
	}
	var q inboxQueries
	q.inbox = fmt.Sprintf(`SELECT c.%[1]s, c.%[2]s, lu.%[3]s, lu.%[4]s, c.%[5]s, tu.%[3]s, tu.%[4]s,
	c.%[6]s, c.%[7]s, c.%[8]s, c.%[9]s,
	%[10]s, %[11]s,
	(SELECT count(*) FROM %[12]s m WHERE m.%[13]s = c.%[1]s)
FROM %[14]s c
JOIN %[15]s lu ON lu.%[16]s = c.%[2]s
JOIN %[15]s tu ON tu.%[16]s = c.%[5]s
WHERE c.%[2]s = $1 OR c.%[5]s = $1
%[17]s`,
		c("conversation", "id"), c("conversation", "listener_id"), c("user", "email"), c("user", "full_name"),
		c("conversation", "talker_id"), c("conversation", "status"), c("conversation", "initial_message"),
		c("conversation", "created_at"), c("conversation", "last_message_at"),
		latest(fmt.Sprintf("substr(m.%s, 1, %d)", c("message", "content"), chat.PreviewChars)),
		latest("m."+c("message", "sender_id")),
		m, c("message", "conversation_id"), cv, u, c("user", "id"), order)
	q.pending = fmt.Sprintf(`SELECT c.%s, c.%s, tu.%s, tu.%s, c.%s, c.%s
FROM %s c JOIN %s tu ON tu.%s = c.%s
WHERE c.%s = $1 AND c.%s = 'pending'
%s`,
		c("conversation", "id"), c("conversation", "talker_id"), c("user", "email"), c("user", "full_name"),
		c("conversation", "initial_message"), c("conversation", "created_at"),
		cv, u, c("user", "id"), c("conversation", "talker_id"),
		c("conversation", "listener_id"), c("conversation", "status"), order)
	return q
}

// Inbox returns the conversations where the user is the listener or the
// talker, in the conversation list's order, each with its latest message
// and its message count, in one query.
func (d *DB) Inbox(ctx context.Context, userID int64) ([]chat.InboxItem, error) {
	defer d.metrics.time("inbox")()
	rows, err := d.query(ctx, d.iq.inbox, userID)
	if err != nil {
		return nil, fmt.Errorf("load conversation list of user %d: %w", userID, err)
	}
	defer rows.Close()
	var out []chat.InboxItem
	for rows.Next() {
		var (
			it            chat.InboxItem
			created, last Timestamp
			preview       sql.NullString
			sender        sql.NullInt64
		)
		if err := rows.Scan(&it.ID, &it.Listener.ID, &it.Listener.Email, &it.Listener.FullName,
			&it.Talker.ID, &it.Talker.Email, &it.Talker.FullName, &it.Status, &it.InitialMessage,
			&created, &last, &preview, &sender, &it.TotalMessages); err != nil {
			return nil, fmt.Errorf("load conversation list of user %d: %w", userID, err)
		}
		it.CreatedAt, it.LastMessageAt = created.Time, last.Time
		it.Preview, it.LatestSenderID, it.HasLatest = preview.String, sender.Int64, sender.Valid
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load conversation list of user %d: %w", userID, err)
	}
	return out, nil
}

// PendingConversations returns the conversations awaiting the listener's
// answer, in the conversation list's order.
func (d *DB) PendingConversations(ctx context.Context, listenerID int64) ([]chat.PendingItem, error) {
	defer d.metrics.time("pending")()
	rows, err := d.query(ctx, d.iq.pending, listenerID)
	if err != nil {
		return nil, fmt.Errorf("load pending conversations of user %d: %w", listenerID, err)
	}
	defer rows.Close()
	var out []chat.PendingItem
	for rows.Next() {
		var (
			it      chat.PendingItem
			created Timestamp
		)
		if err := rows.Scan(&it.ID, &it.Talker.ID, &it.Talker.Email, &it.Talker.FullName, &it.InitialMessage, &created); err != nil {
			return nil, fmt.Errorf("load pending conversations of user %d: %w", listenerID, err)
		}
		it.CreatedAt = created.Time
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load pending conversations of user %d: %w", listenerID, err)
	}
	return out, nil
}
