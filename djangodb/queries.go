package djangodb

import "fmt"

// queries holds every statement, built once from the schema map.
type queries struct {
	user             string
	conversation     string
	userConversation string
	isBlocked        string
	isBlockedMany    string // PostgreSQL only
	insertMessage    string
	insertFile       string
	attachmentExists string
	history          string
	historyVersions  string // PostgreSQL only
	historySince     string // PostgreSQL only
	markRead         string

	// SQLite's checked insert, run in one BEGIN IMMEDIATE transaction.
	sendState string
	insertRow string
	touch     string
}

// buildQueries writes the statements of the schema map. Placeholders are
// $1, $2… on both dialects (SQLite reads $N as the N-th argument); only the
// checked insert differs.
func buildQueries(s Schema, dialect Dialect) queries {
	t := func(model string) string { return quote(s.table(model)) }
	c := func(model, col string) string { return quote(s.column(model, col)) }
	u, cv, m, a, b := t("user"), t("conversation"), t("message"), t("attachment"), t("block")

	// blockedPair is true when a block row exists for the conversation's pair.
	blockedPair := fmt.Sprintf(`EXISTS (SELECT 1 FROM %s b WHERE b.%s = c.%s AND b.%s = c.%s)`,
		b, c("block", "listener_id"), c("conversation", "listener_id"), c("block", "talker_id"), c("conversation", "talker_id"))

	var q queries
	q.user = fmt.Sprintf(`SELECT %s, %s, %s, %s, %s FROM %s WHERE %s = $1`,
		c("user", "id"), c("user", "email"), c("user", "full_name"), c("user", "user_type"), c("user", "is_active"),
		u, c("user", "id"))

	q.conversation = fmt.Sprintf(`SELECT c.%s, c.%s, c.%s, c.%s, %s FROM %s c WHERE c.%s = $1`,
		c("conversation", "id"), c("conversation", "listener_id"), c("conversation", "talker_id"), c("conversation", "status"),
		blockedPair, cv, c("conversation", "id"))

	// userConversation is user and conversation in one round trip: the
	// user's row, and the conversation's columns (NULL when it is gone).
	q.userConversation = fmt.Sprintf(`SELECT u.%s, u.%s, u.%s, u.%s, u.%s, c.%s, c.%s, c.%s, c.%s, %s
FROM %s u LEFT JOIN %s c ON c.%s = $2 WHERE u.%s = $1`,
		c("user", "id"), c("user", "email"), c("user", "full_name"), c("user", "user_type"), c("user", "is_active"),
		c("conversation", "id"), c("conversation", "listener_id"), c("conversation", "talker_id"), c("conversation", "status"),
		blockedPair, u, cv, c("conversation", "id"), c("user", "id"))

	q.isBlocked = fmt.Sprintf(`SELECT EXISTS (SELECT 1 FROM %s WHERE %s = $1 AND %s = $2)`,
		b, c("block", "listener_id"), c("block", "talker_id"))
	if dialect == Postgres {
		// isBlockedMany is isBlocked for many pairs: the pairs, of the
		// listeners $1 and talkers $2 (arrays, in order), that have a block row.
		q.isBlockedMany = fmt.Sprintf(`SELECT p.l, p.t FROM unnest($1::bigint[], $2::bigint[]) AS p(l, t)
WHERE EXISTS (SELECT 1 FROM %s WHERE %s = p.l AND %s = p.t)`, b, c("block", "listener_id"), c("block", "talker_id"))
	}

	// insertMessage is layer 2 of the blocking design: the block, existence
	// and status rules are checked by the same statement that inserts, so a
	// block row committed before it starts is always seen. It returns the
	// conversation's state, and the new id only when the row was written;
	// last_message_at is set by the same statement.
	// Params: $1 conversation, $2 sender, $3 content, $4 message_type, $5 now.
	q.insertMessage = fmt.Sprintf(`WITH c AS (
	SELECT c.%[1]s AS id, c.%[2]s AS talker_id, c.%[3]s AS status, %[4]s AS blocked
	FROM %[5]s c WHERE c.%[1]s = $1
), ins AS (
	INSERT INTO %[6]s (%[7]s, %[8]s, %[9]s, %[10]s, %[11]s, %[12]s)
	SELECT c.id, $2, $3, $4, false, $5 FROM c
	WHERE NOT c.blocked AND (c.status = 'active' OR (c.status = 'pending' AND c.talker_id = $2))
	RETURNING %[13]s AS id
), touch AS (
	UPDATE %[5]s SET %[14]s = $5 WHERE %[1]s IN (SELECT c.id FROM c JOIN ins ON true)
)
SELECT c.status, c.talker_id, c.blocked, ins.id FROM c LEFT JOIN ins ON true`,
		c("conversation", "id"), c("conversation", "talker_id"), c("conversation", "status"), blockedPair, cv,
		m, c("message", "conversation_id"), c("message", "sender_id"), c("message", "content"),
		c("message", "message_type"), c("message", "is_read"), c("message", "created_at"), c("message", "id"),
		c("conversation", "last_message_at"))

	// insertFile inserts the attachment row. Params: $1 message, $2 file,
	// $3 filename, $4 size, $5 type, $6 now.
	q.insertFile = fmt.Sprintf(`INSERT INTO %s (%s, %s, %s, %s, %s, %s) VALUES ($1, $2, $3, $4, $5, $6) RETURNING %s`,
		a, c("attachment", "message_id"), c("attachment", "file"), c("attachment", "filename"),
		c("attachment", "file_size"), c("attachment", "file_type"), c("attachment", "uploaded_at"), c("attachment", "id"))

	q.attachmentExists = fmt.Sprintf(`SELECT count(*) FROM %s WHERE %s = $1`, a, c("attachment", "id"))

	// historyCols and historyFrom are a history's rows, the columns
	// historyRow scans, for both history queries. Params: $1 conversation.
	historyCols := fmt.Sprintf(`m.%s, m.%s, m.%s, m.%s, m.%s, u.%s, u.%s, u.%s, u.%s, a.%s, a.%s, a.%s, a.%s, a.%s`,
		c("message", "id"), c("message", "content"), c("message", "message_type"), c("message", "created_at"), c("message", "is_read"),
		c("user", "id"), c("user", "email"), c("user", "full_name"), c("user", "user_type"),
		c("attachment", "id"), c("attachment", "file"), c("attachment", "filename"), c("attachment", "file_size"), c("attachment", "file_type"))
	historyFrom := fmt.Sprintf(`FROM %s m JOIN %s u ON u.%s = m.%s
LEFT JOIN %s a ON a.%s = m.%s
WHERE m.%s = $1`, m, u, c("user", "id"), c("message", "sender_id"), a, c("attachment", "message_id"),
		c("message", "id"), c("message", "conversation_id"))

	q.history = fmt.Sprintf("SELECT %s\n%s\nORDER BY m.%s DESC, m.%s DESC",
		historyCols, historyFrom, c("message", "created_at"), c("message", "id"))

	if dialect == Postgres {
		// A row's version is the xmin of the message, of its sender and of
		// its attachment: every UPDATE changes it, row locks do not.
		version := fmt.Sprintf(`hashtextextended(m.xmin::text || '.' || u.xmin::text || '.' || coalesce(a.xmin::text, ''), m.%s)`,
			c("message", "id"))
		// historyVersions is the history's rows, each with its version, in
		// no order. Params: $1 conversation.
		q.historyVersions = fmt.Sprintf("SELECT NULL::bigint, NULL::text, %s, %s\n%s", historyCols, version, historyFrom)
		// historySince is the history's rows above a message id ($2), each
		// with its version, and one more row with the count and the sum of
		// the versions of the rows up to $2, all read in one snapshot: a
		// cached copy of those rows is checked against it. The
		// conversation's rows are visited once (v), the new ones read
		// again by primary key. The digest row's message columns are NULL;
		// the rows come in no order. Params: $1 conversation, $2 message id.
		q.historySince = fmt.Sprintf(`WITH v AS MATERIALIZED (SELECT m.%[4]s AS id, %[2]s AS version
%[3]s)
SELECT NULL::bigint, NULL::text, %[1]s, v.version
FROM v JOIN %[5]s m ON m.%[4]s = v.id JOIN %[6]s u ON u.%[7]s = m.%[8]s
LEFT JOIN %[9]s a ON a.%[10]s = m.%[4]s
WHERE v.id > $2
UNION ALL
SELECT count(*), coalesce(sum(v.version), 0)::text,
	NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM v WHERE v.id <= $2`,
			historyCols, version, historyFrom, c("message", "id"), m, u, c("user", "id"), c("message", "sender_id"),
			a, c("attachment", "message_id"))
	}

	if dialect == SQLite {
		// sendState is the conversation's state for the rules; no row means gone.
		// Params: $1 conversation.
		q.sendState = fmt.Sprintf(`SELECT c.%s, c.%s, %s FROM %s c WHERE c.%s = $1`,
			c("conversation", "talker_id"), c("conversation", "status"), blockedPair, cv, c("conversation", "id"))
		// insertRow: $1 conversation, $2 sender, $3 content, $4 message_type, $5 now.
		q.insertRow = fmt.Sprintf(`INSERT INTO %s (%s, %s, %s, %s, %s, %s) VALUES ($1, $2, $3, $4, 0, $5) RETURNING %s`,
			m, c("message", "conversation_id"), c("message", "sender_id"), c("message", "content"),
			c("message", "message_type"), c("message", "is_read"), c("message", "created_at"), c("message", "id"))
		// touch: $1 conversation, $2 now.
		q.touch = fmt.Sprintf(`UPDATE %s SET %s = $2 WHERE %s = $1`,
			cv, c("conversation", "last_message_at"), c("conversation", "id"))
	}

	q.markRead = fmt.Sprintf(`UPDATE %s SET %s = true WHERE %s = $1 AND %s = false AND %s <> $2`,
		m, c("message", "is_read"), c("message", "conversation_id"), c("message", "is_read"), c("message", "sender_id"))
	return q
}
