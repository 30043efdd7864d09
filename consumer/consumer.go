// Package consumer is the WebSocket protocol of the Python consumers the
// sidecar replaces (docs/PROTOCOL.md sections 4–11): the upgrades at
// ws/chat/<conversation_id>/, ws/conversations/ and ws/notifications/, one
// reader and one writer per connection, the dispatch of client frames and
// of group events.
package consumer

import (
	"context"
	"time"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/pyjson"
)

// Store is Django's database as the consumer needs it (djangodb.DB).
type Store interface {
	User(ctx context.Context, id int64) (chat.User, error)
	Conversation(ctx context.Context, id int64) (conv chat.Conversation, blocked bool, err error)
	// UserConversation is User and Conversation in one round trip, for a
	// chat connect: chat.ErrUserNotFound first, then chat.ErrConversationGone.
	UserConversation(ctx context.Context, userID, convID int64) (chat.User, chat.Conversation, bool, error)
	IsBlocked(ctx context.Context, listenerID, talkerID int64) (bool, error)
	SaveText(ctx context.Context, m chat.Draft) (chat.Message, error)
	SaveFile(ctx context.Context, m chat.Draft, f chat.FileDraft, files chat.Files) (chat.Message, error)
	// History calls each with every message of the conversation, newest
	// first, as it reads them, so a long history is never held twice.
	History(ctx context.Context, conversationID int64, each func(chat.Message) error) error
	MarkRead(ctx context.Context, conversationID, readerID int64) (int64, error)
	// Inbox is the user's conversation list (section 10), in one query.
	Inbox(ctx context.Context, userID int64) ([]chat.InboxItem, error)
	PendingConversations(ctx context.Context, listenerID int64) ([]chat.PendingItem, error)
}

// HistoryCache serves histories from memory (histcache.Cache): the JSON
// list of a conversation's messages, newest first, in parts that are
// written one after the other and never modified, exact as of a moment
// after the call, and its length; with after, exact as of the commits of
// those messages, which their writers committed before asking. Any error
// sends the caller to the database (the feed is down or behind, or the
// cache could not load).
type HistoryCache interface {
	Get(ctx context.Context, conversationID int64, after []int64) (list [][]byte, count int, err error)
}

// Verifier checks a SimpleJWT access token and returns its user id (auth.Verifier).
type Verifier interface {
	Verify(token string) (int64, error)
}

// Media is Django's FileSystemStorage (mediastore.Storage).
type Media interface {
	chat.Files
	URL(relPath string) string
}

// Layer is the Channels channel layer shared with other processes (or only
// this one): groups of channels, and events sent to a group. Every
// connection has its own channel name, as a Channels consumer does.
type Layer interface {
	// NewChannel returns a fresh channel name owned by this process.
	NewChannel() string
	GroupAdd(ctx context.Context, group, channel string) error
	GroupDiscard(ctx context.Context, group, channel string) error
	GroupSend(ctx context.Context, group string, event pyjson.Object) error
	// Receive blocks until the next event for channels of this process and
	// returns it with the local channels it is for.
	Receive(ctx context.Context) (channels []string, event pyjson.Object, err error)
}

// Config holds the protocol's settings and limits. Every field is used as
// given: the defaults are the configuration's (package config).
type Config struct {
	AllowedHosts  []string // Django's ALLOWED_HOSTS, for the Origin check
	PublicBaseURL string   // base of api_info's example_url

	// MaxFrameBytes bounds a client message (a file_message); larger
	// closes the connection with 1009. MaxTextFrameBytes bounds every
	// other message the same way.
	MaxFrameBytes     int64
	MaxTextFrameBytes int64
	// MaxFileBytes bounds a decoded file; larger is an error frame.
	MaxFileBytes int64
	// MaxMessageChars bounds a message's text (and a file's caption) in
	// code points; longer is an error frame (0: no bound).
	MaxMessageChars int
	// MessageTimeout is how long a client message may take to arrive whole,
	// however it is fragmented.
	MessageTimeout time.Duration

	// SendQueueBytes bounds the bytes queued for one connection; a
	// connection that would pass it is closed with 1008.
	SendQueueBytes int64
	// MemoryBudget bounds the bytes the process holds for clients (frames
	// read or queued, histories); BudgetWait is how long work waits for it.
	MemoryBudget int64
	BudgetWait   time.Duration

	PingInterval time.Duration
	PingTimeout  time.Duration
	WriteTimeout time.Duration

	// RateLimit is the frames per second a connection may send on average
	// (0: no limit), RateBurst how many it may send at once. A frame over
	// the limit is refused with an error frame; a client that goes on
	// sending RateBurst more is closed with 1008.
	RateLimit float64
	RateBurst int
	// MaxUserConnections bounds one user's connections (0: no bound);
	// more are refused with 403. FileBytesPerSecond (0: no limit) and
	// FileBurstBytes bound the bytes of files one user may store.
	MaxUserConnections int
	FileBytesPerSecond float64
	FileBurstBytes     int64

	// InboxConcurrency bounds the conversation lists computed at once.
	InboxConcurrency int

	// DBTimeout and LayerTimeout bound every database call and every call
	// to the channel layer.
	DBTimeout    time.Duration
	LayerTimeout time.Duration
}
