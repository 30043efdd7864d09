// Package chat holds the domain of the chat contract: the rows the sidecar
// reads and writes, and the outcomes callers branch on. It depends on nothing.
package chat

import (
	"context"
	"errors"
	"time"
)

// User is a row of Django's user table, as far as the chat needs it.
type User struct {
	ID       int64
	Email    string
	FullName string
	UserType string
	IsActive bool
}

// DisplayName is what the message object shows: the full name, or the email
// when the full name is empty (PROTOCOL.md section 6).
func (u User) DisplayName() string {
	if u.FullName == "" {
		return u.Email
	}
	return u.FullName
}

// ISOFormat is Python's datetime.isoformat() of an aware UTC datetime, as
// Django's rows print their times: microseconds only when non-zero.
func ISOFormat(t time.Time) string { return string(AppendISOFormat(nil, t)) }

// AppendISOFormat appends ISOFormat(t) to dst.
func AppendISOFormat(dst []byte, t time.Time) []byte {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.AppendFormat(dst, "2006-01-02T15:04:05+00:00")
	}
	return t.AppendFormat(dst, "2006-01-02T15:04:05.000000+00:00")
}

// Conversation is a row of the conversation table.
type Conversation struct {
	ID         int64
	ListenerID int64
	TalkerID   int64
	Status     string
}

// Conversation statuses, as Django stores them.
const (
	StatusPending  = "pending"
	StatusActive   = "active"
	StatusRejected = "rejected"
	StatusClosed   = "closed"
)

// HasParticipant reports whether the user is the listener or the talker.
func (c Conversation) HasParticipant(userID int64) bool {
	return userID == c.ListenerID || userID == c.TalkerID
}

// Message types, as Django stores them.
const (
	TypeText = "text"
	TypeFile = "file"
)

// Message is a row of the message table with what its serialization needs.
type Message struct {
	ID             int64
	ConversationID int64
	Sender         User
	Content        string
	MessageType    string
	CreatedAt      time.Time
	IsRead         bool
	Attachment     *Attachment // nil when the message has no attachment row
}

// Attachment is a row of the file attachment table.
type Attachment struct {
	ID       int64
	File     string // path relative to MEDIA_ROOT, forward slashes
	Filename string // the name as the client sent it
	FileSize int64
	FileType string
}

// Outcomes that callers branch on: a save the consumer turns into an error
// frame, a connect it refuses.
var (
	ErrConversationGone = errors.New("conversation does not exist")
	ErrBlocked          = errors.New("conversation is blocked")
	ErrNotTalker        = errors.New("only the talker can send in a pending conversation")
	ErrUserNotFound     = errors.New("user not found")
	// ErrNUL refuses text holding a NUL character, which PostgreSQL cannot
	// store; its text is the error Django raises, and the client sees it as
	// written. The sidecar refuses it on every backend.
	ErrNUL = errors.New("A string literal cannot contain NUL (0x00) characters.")
)

// Draft is a message to be written.
type Draft struct {
	ConversationID int64
	Sender         User
	Content        string
	CreatedAt      time.Time // truncated to microseconds and made UTC by the save
}

// FileDraft is the attachment of a file message.
type FileDraft struct {
	Name     string // cleaned name to store under (see mediastore.CleanName)
	Filename string // the name as the client sent it
	Data     []byte
	FileType string
}

// Files stores attachment bytes. A save writes them inside its transaction
// and removes them when the transaction does not commit.
type Files interface {
	Save(ctx context.Context, name string, data []byte, now time.Time) (string, error)
	Remove(relPath string) error
}

// StatusError refuses a message because of the conversation's status.
type StatusError struct{ Status string }

func (e *StatusError) Error() string { return "conversation is " + e.Status }

// StatusDisplay is Django's get_status_display() for the model's choices.
func StatusDisplay(status string) string {
	switch status {
	case StatusPending:
		return "Pending"
	case StatusActive:
		return "Active"
	case StatusRejected:
		return "Rejected"
	case StatusClosed:
		return "Closed"
	}
	return status
}

// CanSend applies the model-level status rules to a sender.
func (c Conversation) CanSend(senderID int64) error {
	switch c.Status {
	case StatusActive:
		return nil
	case StatusPending:
		if senderID != c.TalkerID {
			return ErrNotTalker
		}
		return nil
	}
	return &StatusError{Status: c.Status}
}

// InboxItem is one conversation of a user's conversation list (the live
// inbox): the conversation, both participants and its latest message.
type InboxItem struct {
	ID             int64
	Listener       User // ID, Email, FullName
	Talker         User
	Status         string
	InitialMessage string
	CreatedAt      time.Time
	LastMessageAt  time.Time // zero when NULL
	// Preview is the latest message's content cut to its first
	// PreviewChars code points, and LatestSenderID its sender; HasLatest
	// is false when the conversation has no message.
	Preview        string
	LatestSenderID int64
	HasLatest      bool
	TotalMessages  int64
}

// PreviewChars is how much of the latest message an inbox shows, in code
// points as Python slices a str.
const PreviewChars = 50

// PendingItem is one conversation request awaiting a listener's answer.
type PendingItem struct {
	ID             int64
	Talker         User // ID, Email, FullName
	InitialMessage string
	CreatedAt      time.Time
}
