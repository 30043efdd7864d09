package consumer

import (
	"context"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatsidecar/sidecar/chat"
)

// memStore is Django's database in memory, with the rules a save applies
// (gone, blocked, status, NUL), for the dispatch tests. djangodb's own
// tests prove the SQL does the same on PostgreSQL and SQLite.
type memStore struct {
	mu     sync.Mutex
	users  map[int64]chat.User
	convs  map[int64]chat.Conversation
	blocks map[[2]int64]bool
	meta   map[int64]convMeta
	msgs   []chat.Message
	nextID int64
	fail   error // when set, every call fails with it
}

func newMemStore() *memStore {
	return &memStore{users: map[int64]chat.User{}, convs: map[int64]chat.Conversation{}, blocks: map[[2]int64]bool{},
		meta: map[int64]convMeta{}}
}

func (s *memStore) addUser(u chat.User) chat.User {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[u.ID] = u
	return u
}

// convMeta is what the conversation list shows besides the rules' fields.
type convMeta struct {
	created, last time.Time
	initial       string
}

func (s *memStore) addConversation(c chat.Conversation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.convs[c.ID] = c
	if _, ok := s.meta[c.ID]; !ok {
		s.meta[c.ID] = convMeta{created: time.Date(2026, 1, 14, 10, 0, 0, 0, time.UTC).Add(time.Duration(c.ID) * time.Second)}
	}
}

func (s *memStore) setMeta(id int64, m convMeta) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.meta[id] = m
}

func (s *memStore) setBlocked(listener, talker int64, blocked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocks[[2]int64{listener, talker}] = blocked
}

func (s *memStore) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *memStore) messages() []chat.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]chat.Message(nil), s.msgs...)
}

func (s *memStore) User(_ context.Context, id int64) (chat.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return chat.User{}, s.fail
	}
	u, ok := s.users[id]
	if !ok {
		return u, chat.ErrUserNotFound
	}
	return u, nil
}

func (s *memStore) Conversation(_ context.Context, id int64) (chat.Conversation, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conversation(id)
}

func (s *memStore) UserConversation(ctx context.Context, userID, convID int64) (chat.User, chat.Conversation, bool, error) {
	u, err := s.User(ctx, userID)
	if err != nil {
		return u, chat.Conversation{}, false, err
	}
	c, blocked, err := s.Conversation(ctx, convID)
	return u, c, blocked, err
}

func (s *memStore) conversation(id int64) (chat.Conversation, bool, error) {
	if s.fail != nil {
		return chat.Conversation{}, false, s.fail
	}
	c, ok := s.convs[id]
	if !ok {
		return c, false, chat.ErrConversationGone
	}
	return c, s.blocks[[2]int64{c.ListenerID, c.TalkerID}], nil
}

func (s *memStore) IsBlocked(_ context.Context, listenerID, talkerID int64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return false, s.fail
	}
	return s.blocks[[2]int64{listenerID, talkerID}], nil
}

// insert applies the rules of a save in the contract's order and appends
// the message.
func (s *memStore) insert(m chat.Draft, typ string, texts ...string) (chat.Message, error) {
	conv, blocked, err := s.conversation(m.ConversationID)
	switch {
	case err != nil:
		return chat.Message{}, err
	case blocked:
		return chat.Message{}, chat.ErrBlocked
	}
	if err := conv.CanSend(m.Sender.ID); err != nil {
		return chat.Message{}, err
	}
	for _, t := range texts {
		if strings.IndexByte(t, 0) >= 0 {
			return chat.Message{}, chat.ErrNUL
		}
	}
	s.nextID++
	msg := chat.Message{ID: s.nextID, ConversationID: m.ConversationID, Sender: m.Sender, Content: m.Content,
		MessageType: typ, CreatedAt: m.CreatedAt.UTC().Truncate(time.Microsecond)}
	s.msgs = append(s.msgs, msg)
	meta := s.meta[m.ConversationID]
	meta.last = msg.CreatedAt
	s.meta[m.ConversationID] = meta
	return msg, nil
}

func (s *memStore) SaveText(_ context.Context, m chat.Draft) (chat.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.insert(m, chat.TypeText, m.Content)
}

func (s *memStore) SaveFile(ctx context.Context, m chat.Draft, f chat.FileDraft, files chat.Files) (chat.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	msg, err := s.insert(m, chat.TypeFile, m.Content, f.Filename)
	if err != nil {
		return msg, err
	}
	path, err := files.Save(ctx, f.Name, f.Data, msg.CreatedAt)
	if err != nil {
		s.msgs = s.msgs[:len(s.msgs)-1]
		return chat.Message{}, err
	}
	msg.Attachment = &chat.Attachment{ID: msg.ID, File: path, Filename: f.Filename, FileSize: int64(len(f.Data)), FileType: f.FileType}
	s.msgs[len(s.msgs)-1] = msg
	return msg, nil
}

func (s *memStore) History(_ context.Context, conversationID int64, each func(chat.Message) error) error {
	s.mu.Lock()
	msgs, err := s.history(conversationID)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := each(m); err != nil {
			return err
		}
	}
	return nil
}

func (s *memStore) history(conversationID int64) ([]chat.Message, error) {
	if s.fail != nil {
		return nil, s.fail
	}
	var out []chat.Message
	for _, m := range s.msgs {
		if m.ConversationID == conversationID {
			out = append(out, m)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].ID > out[j].ID
	})
	return out, nil
}

func (s *memStore) MarkRead(_ context.Context, conversationID, readerID int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return 0, s.fail
	}
	var n int64
	for i, m := range s.msgs {
		if m.ConversationID == conversationID && !m.IsRead && m.Sender.ID != readerID {
			s.msgs[i].IsRead = true
			n++
		}
	}
	return n, nil
}

// Inbox orders as PostgreSQL does (NULL last_message_at first).
func (s *memStore) Inbox(_ context.Context, userID int64) ([]chat.InboxItem, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	var out []chat.InboxItem
	for id, c := range s.convs {
		if !c.HasParticipant(userID) {
			continue
		}
		m := s.meta[id]
		it := chat.InboxItem{ID: id, Listener: s.users[c.ListenerID], Talker: s.users[c.TalkerID], Status: c.Status,
			InitialMessage: m.initial, CreatedAt: m.created, LastMessageAt: m.last}
		msgs, _ := s.history(id)
		if len(msgs) > 0 {
			r := []rune(msgs[0].Content)
			it.Preview, it.LatestSenderID, it.HasLatest = string(r[:min(len(r), chat.PreviewChars)]), msgs[0].Sender.ID, true
		}
		it.TotalMessages = int64(len(msgs))
		out = append(out, it)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.LastMessageAt.IsZero() != b.LastMessageAt.IsZero() {
			return a.LastMessageAt.IsZero()
		}
		if !a.LastMessageAt.Equal(b.LastMessageAt) {
			return a.LastMessageAt.After(b.LastMessageAt)
		}
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.After(b.CreatedAt)
		}
		return a.ID > b.ID
	})
	return out, nil
}

func (s *memStore) PendingConversations(ctx context.Context, listenerID int64) ([]chat.PendingItem, error) {
	items, err := s.Inbox(ctx, listenerID)
	var out []chat.PendingItem
	for _, it := range items {
		if it.Status == chat.StatusPending && it.Listener.ID == listenerID {
			out = append(out, chat.PendingItem{ID: it.ID, Talker: it.Talker, InitialMessage: it.InitialMessage, CreatedAt: it.CreatedAt})
		}
	}
	return out, err
}

// memFiles is MEDIA_ROOT in memory.
type memFiles struct {
	mu    sync.Mutex
	files map[string][]byte
}

func (f *memFiles) Save(_ context.Context, name string, data []byte, now time.Time) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.files == nil {
		f.files = map[string][]byte{}
	}
	p := now.Format("chat_files/2006/01/02/") + name
	f.files[p] = data
	return p, nil
}

func (f *memFiles) Remove(p string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.files, p)
	return nil
}

func (f *memFiles) URL(p string) string { return "https://chat.example.com/media/" + p }

func (f *memFiles) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.files)
}

// swapStore lets a test change the store under a running server.
type swapStore struct{ cur atomic.Pointer[Store] }

func (s *swapStore) set(st Store) { s.cur.Store(&st) }
func (s *swapStore) get() Store   { return *s.cur.Load() }

func (s *swapStore) User(ctx context.Context, id int64) (chat.User, error) {
	return s.get().User(ctx, id)
}
func (s *swapStore) Conversation(ctx context.Context, id int64) (chat.Conversation, bool, error) {
	return s.get().Conversation(ctx, id)
}
func (s *swapStore) UserConversation(ctx context.Context, userID, convID int64) (chat.User, chat.Conversation, bool, error) {
	return s.get().UserConversation(ctx, userID, convID)
}
func (s *swapStore) IsBlocked(ctx context.Context, l, t int64) (bool, error) {
	return s.get().IsBlocked(ctx, l, t)
}
func (s *swapStore) SaveText(ctx context.Context, m chat.Draft) (chat.Message, error) {
	return s.get().SaveText(ctx, m)
}
func (s *swapStore) SaveFile(ctx context.Context, m chat.Draft, f chat.FileDraft, files chat.Files) (chat.Message, error) {
	return s.get().SaveFile(ctx, m, f, files)
}
func (s *swapStore) History(ctx context.Context, conv int64, each func(chat.Message) error) error {
	return s.get().History(ctx, conv, each)
}
func (s *swapStore) MarkRead(ctx context.Context, conv, reader int64) (int64, error) {
	return s.get().MarkRead(ctx, conv, reader)
}
func (s *swapStore) Inbox(ctx context.Context, user int64) ([]chat.InboxItem, error) {
	return s.get().Inbox(ctx, user)
}
func (s *swapStore) PendingConversations(ctx context.Context, listener int64) ([]chat.PendingItem, error) {
	return s.get().PendingConversations(ctx, listener)
}
