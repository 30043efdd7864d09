// Package histcache keeps the message histories of active conversations in
// memory, exact, by following Django's chat tables through the PostgreSQL
// change feed (package pgfeed), so a new_message needs no history query.
//
// Exactness: a history is served only after the feed has passed a WAL
// position read after the caller asked (after the write that triggered it:
// the caller asks once it has seen the write's event). The feed applies
// every committed insert, update and delete of the messages, their
// attachments and their senders in commit order, whoever made them (the
// REST API, the admin, other sidecars). A conversation is loaded from the
// database on first use: the changes applied while its query runs are kept
// and replayed onto the rows it read, which is exact because each change
// sets a whole row (or removes one) and replaying a change the query
// already saw changes nothing. When the feed is down or behind its bound,
// Get says so and the caller queries the database; the cache is dropped
// and refills once the feed is back.
package histcache

import (
	"container/list"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/djangodb"
	"github.com/chatsidecar/sidecar/pgfeed"
)

// Names are Django's table and column names, as the schema map has them.
type Names struct {
	Table  func(model string) string
	Column func(model, col string) string
}

// Loader reads a conversation's history from the database (djangodb.DB).
type Loader interface {
	History(ctx context.Context, conversationID int64, each func(chat.Message) error) error
}

// Feed is where the changes come from (pgfeed.Feed).
type Feed interface {
	Up() bool
	WaitFor(ctx context.Context, lsn pgfeed.LSN) error
}

// Config bounds the cache.
type Config struct {
	// MaxBytes bounds the memory of the cached histories; the least
	// recently used conversations are dropped past it. One history may
	// take an eighth of it: a larger one is not kept (ErrTooLarge).
	MaxBytes int64
	// MaxLag is how long Get waits for the feed to reach the caller's
	// position before it sends the caller to the database.
	MaxLag time.Duration
	// Encode is a message's JSON as frames carry it.
	Encode func(chat.Message) ([]byte, error)
	// QueryTimeout bounds a read of the WAL position (DB_TIMEOUT).
	QueryTimeout time.Duration
	// Served, when set, is told how long each history served took: mostly
	// the wait for the feed to pass the caller's position.
	Served func(time.Duration)
}

// ErrNotExact is Get's answer when it cannot serve an exact history: the
// feed is down or behind, or the conversation's load raced a reset. Query
// the database instead.
var ErrNotExact = errors.New("histcache: feed down or behind")

// tables and columns are the names the changes carry, worked out once
// from Names: the feed applies every change of the chat tables.
type tables struct{ message, attachment, user string }

type columns struct {
	msg struct{ id, conversation, sender, content, messageType, isRead, createdAt string }
	att struct{ id, message, file, filename, fileSize, fileType string }
	usr struct{ id, email, fullName, userType string }
}

func resolve(n Names) (tables, columns) {
	t := tables{message: n.Table("message"), attachment: n.Table("attachment"), user: n.Table("user")}
	var c columns
	m := func(col string) string { return n.Column("message", col) }
	c.msg.id, c.msg.conversation, c.msg.sender, c.msg.content = m("id"), m("conversation_id"), m("sender_id"), m("content")
	c.msg.messageType, c.msg.isRead, c.msg.createdAt = m("message_type"), m("is_read"), m("created_at")
	a := func(col string) string { return n.Column("attachment", col) }
	c.att.id, c.att.message, c.att.file = a("id"), a("message_id"), a("file")
	c.att.filename, c.att.fileSize, c.att.fileType = a("filename"), a("file_size"), a("file_type")
	u := func(col string) string { return n.Column("user", col) }
	c.usr.id, c.usr.email, c.usr.fullName, c.usr.userType = u("id"), u("email"), u("full_name"), u("user_type")
	return t, c
}

// Cache is the histories in memory. It is a pgfeed.Handler.
type Cache struct {
	cfg     Config
	maxConv int64 // the most one history may take: an eighth of MaxBytes
	tables  tables
	cols    columns
	pos     positions
	feed    Feed
	loader  Loader

	mu      sync.Mutex
	gen     uint64 // counts resets: a load started in another generation is void
	convs   map[int64]*conv
	msgConv map[int64]int64 // message id → its cached conversation
	attMsg  map[int64]int64 // attachment id → its message
	users   map[int64]*user // senders of cached messages
	lru     *list.List      // of *conv, most recently used first
	bytes   int64
	seq     uint64              // counts changes applied
	ring    []ringEntry         // the changes applied while loads run, for them to replay
	loads   int                 // loads in progress
	applied chan struct{}       // closed, and replaced, by every Apply
	behind  int                 // Gets in a row that found the feed behind
	grown   []*conv             // grew past maxConv in this Apply
	large   map[int64]time.Time // conversations found too large, and when
	stats   Stats
}

// Stats count what the cache did, for metrics, and Bytes is what it
// holds now.
type Stats struct {
	Hits, Loads, NotExact, Evictions uint64
	Bytes                            int64
}

type ringEntry struct {
	seq uint64
	ch  *pgfeed.Change
}

// ringSize bounds the changes kept for loads in progress; a load during
// which more changes arrive gives up (ErrNotExact, the caller queries).
const ringSize = 4096

type conv struct {
	id      int64
	loading chan struct{} // closed when the load ends; nil once ready
	mark    uint64        // seq when the load began
	msgs    []*msg        // oldest first: (created_at, id) ascending
	list    encList       // body nil: rebuild
	bytes   int64
	lruElem *list.Element
	loadErr error
}

type msg struct {
	m    chat.Message // Sender holds only the id; names come from users
	json []byte       // nil: encode again
}

type user struct {
	chat.User
	refs int // cached messages it sent
}

// New returns an empty cache; run the feed with it as the handler.
func New(cfg Config, names Names, db *sql.DB, feed Feed, loader Loader) *Cache {
	c := &Cache{cfg: cfg, maxConv: cfg.MaxBytes / 8, feed: feed, loader: loader, ring: make([]ringEntry, ringSize),
		applied: make(chan struct{}), pos: positions{db: db, timeout: cfg.QueryTimeout},
		large: map[int64]time.Time{}}
	c.tables, c.cols = resolve(names)
	c.clear()
	return c
}

func (c *Cache) clear() {
	c.convs = map[int64]*conv{}
	c.msgConv = map[int64]int64{}
	c.attMsg = map[int64]int64{}
	c.users = map[int64]*user{}
	c.lru = list.New()
	c.bytes = 0
	c.gen++
}

// Stats returns the counts so far.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stats
	st.Bytes = c.bytes
	return st
}

// Get returns the history of conversation id, newest first, as the JSON
// list frames carry, in parts to write one after the other (never to
// modify), and its length, exact as of a moment after the call; or
// ErrNotExact when the caller must query the database.
//
// after, when not empty, are messages of the conversation whose writers
// committed them before asking: the history then holds them and every
// change committed before them, which needs no look at the WAL position
// (the feed applies transactions in commit order). One of them deleted
// before the feed applied its insert is waited for in vain: MaxLag, then
// ErrNotExact.
func (c *Cache) Get(ctx context.Context, id int64, after []int64) ([][]byte, int, error) {
	start := time.Now()
	body, n, err := c.get(ctx, id, after)
	if err != nil {
		return nil, 0, err
	}
	if c.cfg.Served != nil {
		c.cfg.Served(time.Since(start))
	}
	return [][]byte{openList, body}, n, nil
}

var openList = []byte("[")

func (c *Cache) get(ctx context.Context, id int64, after []int64) ([]byte, int, error) {
	if !c.feed.Up() {
		c.dropAll()
		return nil, 0, ErrNotExact
	}
	lag := time.NewTimer(c.cfg.MaxLag)
	defer lag.Stop()
	if len(after) == 0 {
		lsn, err := c.pos.current(ctx)
		if err != nil {
			return nil, 0, err
		}
		wctx, cancel := context.WithTimeout(ctx, c.cfg.MaxLag)
		err = c.feed.WaitFor(wctx, lsn)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, 0, ctx.Err()
			}
			c.notExact()
			return nil, 0, ErrNotExact
		}
	}
	c.mu.Lock()
	for {
		cv := c.convs[id]
		if cv == nil {
			if time.Since(c.large[id]) < largeFor {
				c.mu.Unlock()
				return nil, 0, ErrTooLarge
			}
			break // a load now is exact: it starts after every write asked about
		}
		var wait <-chan struct{}
		var lagged <-chan time.Time
		switch {
		case cv.loading != nil:
			wait = cv.loading // however long the load takes: it is exact
		case !c.holdsLocked(cv, after):
			wait, lagged = c.applied, lag.C
		default:
			c.behind = 0
			c.lru.MoveToFront(cv.lruElem)
			list, n, err := c.encodedLocked(cv)
			if err == nil && c.tooLargeLocked(cv) {
				err = ErrTooLarge
			}
			c.stats.Hits++
			c.mu.Unlock()
			return list, n, err
		}
		c.mu.Unlock()
		select {
		case <-wait:
		case <-lagged:
			c.notExact()
			return nil, 0, ErrNotExact
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
		c.mu.Lock()
		if cv.loadErr != nil && c.convs[id] == nil {
			c.mu.Unlock()
			return nil, 0, ErrNotExact
		}
	}
	c.behind = 0
	cv := &conv{id: id, loading: make(chan struct{}), mark: c.seq}
	c.convs[id] = cv
	gen := c.gen
	c.stats.Loads++
	c.loads++
	c.mu.Unlock()
	return c.load(ctx, cv, gen)
}

// holdsLocked reports whether every message of ids is in cv.
func (c *Cache) holdsLocked(cv *conv, ids []int64) bool {
	for _, m := range ids {
		if c.msgConv[m] != cv.id {
			return false
		}
	}
	return true
}

// notExact counts a Get that found the feed behind; a feed that stays
// behind has its cache dropped, to be refilled once it catches up.
func (c *Cache) notExact() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.NotExact++
	if c.behind++; c.behind >= 10 {
		c.clearLocked()
	}
}

func (c *Cache) dropAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.convs) > 0 {
		c.clearLocked()
	}
}

// clearLocked drops everything and voids the loads in progress.
func (c *Cache) clearLocked() {
	for _, cv := range c.convs {
		if cv.loading != nil {
			cv.loadErr = ErrNotExact
			close(cv.loading)
			cv.loading = nil
		}
	}
	c.clear()
	c.behind = 0
}

// load reads the conversation from the database, then replays onto it the
// changes applied since its load began.
func (c *Cache) load(ctx context.Context, cv *conv, gen uint64) ([]byte, int, error) {
	var rows []chat.Message
	var size int64
	err := c.loader.History(ctx, cv.id, func(m chat.Message) error {
		// What it will take, at least: a large history stops the query.
		if size += rowCost(m); size > c.maxConv {
			return ErrTooLarge
		}
		rows = append(rows, m)
		return nil
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() { // after the replay below, which reads the ring
		if c.loads--; c.loads == 0 {
			clear(c.ring) // let the changes go
		}
	}()
	fail := func(err error) ([]byte, int, error) {
		if c.gen == gen && c.convs[cv.id] == cv {
			delete(c.convs, cv.id)
			cv.loadErr = err
			close(cv.loading)
			cv.loading = nil
		}
		return nil, 0, err
	}
	switch {
	case errors.Is(err, ErrTooLarge):
		c.markLargeLocked(cv.id)
		return fail(err)
	case err != nil:
		return fail(err)
	case c.gen != gen:
		return nil, 0, ErrNotExact // reset meanwhile: cv is gone already
	case c.seq-cv.mark >= ringSize:
		return fail(ErrNotExact) // too many changes meanwhile to replay
	}
	for i := len(rows) - 1; i >= 0; i-- { // rows are newest first
		m := rows[i]
		c.userSeenLocked(m.Sender)
		c.putLocked(cv, m)
	}
	for s := cv.mark + 1; s <= c.seq; s++ {
		e := c.ring[s%ringSize]
		if e.seq != s {
			return fail(ErrNotExact) // not kept: cannot replay
		}
		if !c.changeLocked(e.ch, cv) {
			return fail(ErrNotExact)
		}
	}
	close(cv.loading)
	cv.loading = nil
	cv.lruElem = c.lru.PushFront(cv)
	list, n, err := c.encodedLocked(cv)
	if err == nil && c.tooLargeLocked(cv) {
		return nil, 0, ErrTooLarge
	}
	c.evictLocked()
	return list, n, err
}

// tooLargeLocked drops cv, a conversation ready in the cache, if it takes
// more than one history may, and reports whether it did.
func (c *Cache) tooLargeLocked(cv *conv) bool {
	if cv.bytes <= c.maxConv || c.convs[cv.id] != cv || cv.loading != nil {
		return false
	}
	c.dropLocked(cv)
	c.markLargeLocked(cv.id)
	return true
}

// markLargeLocked sends the Gets of conversation id to the database for
// largeFor; expired marks go.
func (c *Cache) markLargeLocked(id int64) {
	now := time.Now()
	for k, t := range c.large {
		if now.Sub(t) >= largeFor {
			delete(c.large, k)
		}
	}
	c.large[id] = now
}

// Reset drops everything: a new stream begins (pgfeed.Handler).
func (c *Cache) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clearLocked()
}

// Apply applies one committed transaction (pgfeed.Handler).
func (c *Cache) Apply(tx *pgfeed.Tx) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() { // wake the Gets waiting for a message
		close(c.applied)
		c.applied = make(chan struct{})
	}()
	if tx.Overflow {
		for _, r := range tx.Relations {
			if c.ours(r.Table) {
				c.clearLocked() // its changes were not kept
				return
			}
		}
		return
	}
	for i := range tx.Changes {
		ch := &tx.Changes[i]
		if !c.ours(ch.Rel.Table) {
			continue
		}
		if ch.Op == pgfeed.Truncate {
			c.clearLocked()
			continue
		}
		c.seq++
		if c.loads > 0 {
			c.ring[c.seq%ringSize] = ringEntry{seq: c.seq, ch: ch}
		}
		c.changeLocked(ch, nil)
	}
	for _, cv := range c.grown {
		c.tooLargeLocked(cv)
	}
	clear(c.grown)
	c.grown = c.grown[:0]
	c.evictLocked()
}

func (c *Cache) ours(table string) bool {
	return table == c.tables.message || table == c.tables.attachment || table == c.tables.user
}

// changeLocked applies a change to the cached conversations it concerns,
// or, with only set, to only: a change made while only loaded, replayed.
// false means only cannot be made exact from what the cache has.
func (c *Cache) changeLocked(ch *pgfeed.Change, only *conv) bool {
	switch ch.Rel.Table {
	case c.tables.message:
		return c.messageChange(ch, only)
	case c.tables.attachment:
		return c.attachmentChange(ch, only)
	case c.tables.user:
		c.userChange(ch)
	}
	return true
}

// messageChange applies a change of the message table to the cached
// conversation it belongs to (or to only when set). A conversation it
// cannot keep exact is dropped, to be loaded again (false when that is the
// conversation being loaded).
func (c *Cache) messageChange(ch *pgfeed.Change, only *conv) bool {
	col := &c.cols.msg
	if ch.Op == pgfeed.Delete {
		id, ok := intValue(ch.Old, col.id)
		if !ok {
			return c.invalidate(only, c.msgConv[id])
		}
		if cv := c.convs[c.msgConv[id]]; cv != nil && (only == nil || cv == only) {
			c.removeLocked(cv, id)
		}
		return true
	}
	id, ok := intValue(ch.New, col.id)
	convID, ok2 := intValue(ch.New, col.conversation)
	if !ok || !ok2 {
		return c.invalidate(only, c.msgConv[id])
	}
	if old, had := c.msgConv[id]; had && old != convID {
		if !c.invalidate(only, old) { // moved to another conversation
			return false
		}
	}
	cv := c.convs[convID]
	if cv == nil || (only != nil && cv != only) || (cv.loading != nil && only == nil) {
		return true // not cached, or loading: the load replays it
	}
	var prev *msg
	if i := cv.index(id, c); i >= 0 {
		prev = cv.msgs[i]
	}
	m, ok := c.messageRow(ch.New, prev)
	if !ok {
		return c.invalidate(only, convID)
	}
	if _, known := c.users[m.Sender.ID]; !known {
		return c.invalidate(only, convID) // a sender whose name the cache does not have
	}
	if prev != nil {
		m.Attachment = prev.m.Attachment
	}
	c.putLocked(cv, m)
	return true
}

// messageRow reads a message row; an unchanged (TOASTed) value keeps
// prev's.
func (c *Cache) messageRow(row map[string]pgfeed.Value, prev *msg) (chat.Message, bool) {
	col := &c.cols.msg
	var m chat.Message
	var ok [6]bool
	m.ID, ok[0] = intValue(row, col.id)
	m.ConversationID, ok[1] = intValue(row, col.conversation)
	m.Sender.ID, ok[2] = intValue(row, col.sender)
	m.MessageType, ok[3] = textValue(row, col.messageType)
	m.IsRead, ok[4] = boolValue(row, col.isRead)
	m.CreatedAt, ok[5] = timeValue(row, col.createdAt)
	for _, o := range ok {
		if !o {
			return m, false
		}
	}
	content, has := row[col.content]
	switch {
	case has && content.Kind == pgfeed.Text:
		m.Content = content.Text
	case has && content.Kind == pgfeed.Unchanged && prev != nil:
		m.Content = prev.m.Content
	default:
		return m, false
	}
	return m, true
}

// attachmentChange applies a change of the attachment table, as
// messageChange does.
func (c *Cache) attachmentChange(ch *pgfeed.Change, only *conv) bool {
	col := &c.cols.att
	if ch.Op == pgfeed.Delete {
		id, ok := intValue(ch.Old, col.id)
		if !ok {
			return c.invalidate(only, c.msgConv[c.attMsg[id]])
		}
		msgID := c.attMsg[id]
		if cv := c.convs[c.msgConv[msgID]]; cv != nil && (only == nil || cv == only) {
			if i := cv.index(msgID, c); i >= 0 {
				m := cv.msgs[i].m
				m.Attachment = nil
				delete(c.attMsg, id)
				c.putLocked(cv, m)
			}
		}
		return true
	}
	var a chat.Attachment
	var msgID int64
	var ok [6]bool
	a.ID, ok[0] = intValue(ch.New, col.id)
	msgID, ok[1] = intValue(ch.New, col.message)
	a.File, ok[2] = textValue(ch.New, col.file)
	a.Filename, ok[3] = textValue(ch.New, col.filename)
	a.FileSize, ok[4] = intValue(ch.New, col.fileSize)
	a.FileType, ok[5] = textValue(ch.New, col.fileType)
	if old, had := c.attMsg[a.ID]; had && old != msgID {
		if !c.invalidate(only, c.msgConv[old]) {
			return false
		}
	}
	cv := c.convs[c.msgConv[msgID]]
	if cv == nil || (only != nil && cv != only) || (cv.loading != nil && only == nil) {
		return true
	}
	for _, o := range ok {
		if !o {
			return c.invalidate(only, cv.id)
		}
	}
	if i := cv.index(msgID, c); i >= 0 {
		m := cv.msgs[i].m
		m.Attachment = &a
		c.putLocked(cv, m)
	}
	return true
}

// userChange applies a change of the user table to the cached senders;
// the messages they sent are encoded again.
func (c *Cache) userChange(ch *pgfeed.Change) {
	col := &c.cols.usr
	row := ch.New
	if ch.Op == pgfeed.Delete {
		row = ch.Old
	}
	id, ok := intValue(row, col.id)
	u := c.users[id]
	if !ok || u == nil {
		return
	}
	if ch.Op == pgfeed.Delete {
		return // its messages go with it (CASCADE), one delete each
	}
	email, ok1 := textValue(row, col.email)
	fullName, ok2 := textValue(row, col.fullName)
	userType, ok3 := textValue(row, col.userType)
	if !ok1 || !ok2 || !ok3 {
		for _, cv := range c.convs {
			if cv.loading == nil {
				c.invalidate(nil, cv.id)
			}
		}
		return
	}
	if email == u.Email && fullName == u.FullName && userType == u.UserType {
		return // nothing a message shows changed (a login, a password)
	}
	u.Email, u.FullName, u.UserType = email, fullName, userType
	for _, cv := range c.convs {
		if cv.loading != nil {
			continue
		}
		for _, m := range cv.msgs {
			if m.m.Sender.ID == id && m.json != nil {
				cv.bytes -= int64(len(m.json))
				c.bytes -= int64(len(m.json))
				m.json = nil
				cv.list.body = nil
			}
		}
	}
}

// invalidate drops a cached conversation: the next Get loads it again.
// It reports false when that is the conversation being loaded (loading),
// whose load must then give up.
func (c *Cache) invalidate(loading *conv, id int64) bool {
	cv := c.convs[id]
	if cv == nil {
		return true
	}
	if cv == loading {
		return false
	}
	if cv.loading == nil {
		c.dropLocked(cv)
	}
	return true
}

func (c *Cache) dropLocked(cv *conv) {
	for _, m := range cv.msgs {
		c.forgetMsgLocked(m)
	}
	c.bytes -= cv.bytes
	if cv.lruElem != nil {
		c.lru.Remove(cv.lruElem)
	}
	delete(c.convs, cv.id)
}

func (c *Cache) forgetMsgLocked(m *msg) {
	delete(c.msgConv, m.m.ID)
	if m.m.Attachment != nil {
		delete(c.attMsg, m.m.Attachment.ID)
	}
	if u := c.users[m.m.Sender.ID]; u != nil {
		if u.refs--; u.refs <= 0 {
			delete(c.users, m.m.Sender.ID)
		}
	}
}

// userSeenLocked records a sender's names from a loaded row.
func (c *Cache) userSeenLocked(u chat.User) {
	if _, ok := c.users[u.ID]; !ok {
		c.users[u.ID] = &user{User: chat.User{ID: u.ID, Email: u.Email, FullName: u.FullName, UserType: u.UserType}}
	}
}

// index finds a message in cv by id (-1: none).
func (cv *conv) index(id int64, c *Cache) int {
	if c.msgConv[id] != cv.id {
		return -1
	}
	for i := len(cv.msgs) - 1; i >= 0; i-- { // recent ones change most
		if cv.msgs[i].m.ID == id {
			return i
		}
	}
	return -1
}

// putLocked inserts or replaces a message of cv, in order.
func (c *Cache) putLocked(cv *conv, m chat.Message) {
	m.Sender = chat.User{ID: m.Sender.ID}
	if u := c.users[m.Sender.ID]; u != nil {
		u.refs++ // before the old version lets go of the same sender
	}
	replaced := c.removeLocked(cv, m.ID)
	nm := &msg{m: m}
	i := sort.Search(len(cv.msgs), func(i int) bool { return before(m, cv.msgs[i].m) })
	cv.msgs = append(cv.msgs, nil)
	copy(cv.msgs[i+1:], cv.msgs[i:])
	cv.msgs[i] = nm
	c.msgConv[m.ID] = cv.id
	if m.Attachment != nil {
		c.attMsg[m.Attachment.ID] = m.ID
	}
	cv.bytes += msgCost(nm)
	c.bytes += msgCost(nm)
	if cv.bytes > c.maxConv && cv.loading == nil {
		c.grown = append(c.grown, cv) // Apply drops it
	}
	// Only a new newest message goes in front of the body; any other
	// change rebuilds it.
	if replaced || i != len(cv.msgs)-1 || !c.prependLocked(cv, nm) {
		cv.list.body = nil
	}
}

// prependLocked writes m, the newest message, in front of cv's body when
// the headroom has room, and reports whether it did.
func (c *Cache) prependLocked(cv *conv, m *msg) bool {
	if cv.list.body == nil {
		return false
	}
	if err := c.encodeLocked(cv, m); err != nil {
		return false // the rebuild reports it
	}
	return cv.list.prepend(m.json)
}

// removeLocked removes message id from cv, and reports whether it was there.
func (c *Cache) removeLocked(cv *conv, id int64) bool {
	i := cv.index(id, c)
	if i < 0 {
		return false
	}
	old := cv.msgs[i]
	c.forgetMsgLocked(old)
	cv.bytes -= msgCost(old)
	c.bytes -= msgCost(old)
	cv.msgs = append(cv.msgs[:i], cv.msgs[i+1:]...)
	cv.list.body = nil
	return true
}

// before is the history's order, oldest first.
func before(a, b chat.Message) bool { return older(a.CreatedAt, a.ID, b.CreatedAt, b.ID) }

// msgCost is what a cached message holds, roughly: its text, its encoding
// and the structures around them.
func msgCost(m *msg) int64 { return rowCost(m.m) + int64(len(m.json)) }

// rowCost is what a message read from the database will hold before it is
// encoded: what both caches count against a history's bound as they read.
func rowCost(m chat.Message) int64 { return int64(2*len(m.Content)) + 256 }

// encodedLocked returns cv's body, encoding what changed.
func (c *Cache) encodedLocked(cv *conv) ([]byte, int, error) {
	if cv.list.body != nil {
		return cv.list.body, len(cv.msgs), nil
	}
	for _, m := range cv.msgs {
		if err := c.encodeLocked(cv, m); err != nil {
			return nil, 0, err
		}
	}
	old := cap(cv.list.buf)
	n := len(cv.msgs)
	cv.list.build(n, func(i int) []byte { return cv.msgs[n-1-i].json }) // msgs are oldest first
	grown := int64(cap(cv.list.buf) - old)
	c.bytes += grown
	cv.bytes += grown
	return cv.list.body, n, nil
}

// encodeLocked encodes m, if it is not yet, with its sender's names.
func (c *Cache) encodeLocked(cv *conv, m *msg) error {
	if m.json != nil {
		return nil
	}
	full := m.m
	if u := c.users[m.m.Sender.ID]; u != nil {
		full.Sender = u.User
	}
	b, err := c.cfg.Encode(full)
	if err != nil {
		return fmt.Errorf("encode message %d: %w", m.m.ID, err)
	}
	cv.bytes += int64(len(b))
	c.bytes += int64(len(b))
	m.json = b
	return nil
}

func (c *Cache) evictLocked() {
	for c.bytes > c.cfg.MaxBytes && c.lru.Len() > 0 {
		cv := c.lru.Back().Value.(*conv)
		c.dropLocked(cv)
		c.stats.Evictions++
	}
}

func intValue(row map[string]pgfeed.Value, col string) (int64, bool) {
	v, ok := row[col]
	if !ok || v.Kind != pgfeed.Text {
		return 0, false
	}
	n, err := strconv.ParseInt(v.Text, 10, 64)
	return n, err == nil
}

func textValue(row map[string]pgfeed.Value, col string) (string, bool) {
	v, ok := row[col]
	if !ok || v.Kind != pgfeed.Text {
		return "", false
	}
	return v.Text, true
}

func boolValue(row map[string]pgfeed.Value, col string) (bool, bool) {
	v, ok := row[col]
	if !ok || v.Kind != pgfeed.Text {
		return false, false
	}
	switch v.Text {
	case "t":
		return true, true
	case "f":
		return false, true
	}
	return false, false
}

// timeValue reads a timestamptz as PostgreSQL writes it in text
// ("2026-01-14 10:00:00.123456+00"), in UTC.
func timeValue(row map[string]pgfeed.Value, col string) (time.Time, bool) {
	v, ok := row[col]
	if !ok || v.Kind != pgfeed.Text {
		return time.Time{}, false
	}
	t, err := djangodb.ParseTime(v.Text)
	return t, err == nil
}
