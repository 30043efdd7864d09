package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/mediastore"
	"github.com/chatsidecar/sidecar/pyjson"
)

// handle dispatches one text frame from the client (PROTOCOL.md section 5).
// Every error goes to the sender only and never closes the connection.
func (c *conn) handle(data []byte) {
	v, err := pyjson.Decode(data)
	if err != nil {
		c.enqueue(errorFrame(errInvalidJSON))
		return
	}
	frame, ok := v.(pyjson.Object)
	if !ok {
		c.enqueue(errorFrame(errInvalidFormat))
		return
	}
	typ, _ := frame.Get("type")
	name, _ := typ.(string) // a type that is not a string matches no handler
	ctx := c.srv.ctx
	switch name {
	case "connection_established", "new_message", "read_receipt":
		// Server frames echoed back by the client: ignored.
	case "chat_message":
		c.chatMessage(ctx, frame)
	case "file_message":
		c.fileMessage(ctx, frame)
	case "typing":
		c.typing(ctx, frame)
	case "mark_read":
		c.markRead(ctx)
	default:
		c.enqueue(errorFrame("Unknown message type: " + pyjson.Str(typ)))
	}
}

// chatMessage is section 5.1.
func (c *conn) chatMessage(ctx context.Context, frame pyjson.Object) {
	content, errText := messageText(frame, true)
	if errText != "" {
		c.enqueue(errorFrame(errText))
		return
	}
	if !c.mayWrite(ctx, errBlockedText) {
		return
	}
	msg, err := c.srv.store.SaveText(ctx, chat.Draft{
		ConversationID: c.conv.ID, Sender: c.user, Content: content, CreatedAt: time.Now(),
	})
	if err != nil {
		c.saveFailed(err, errBlockedText)
		return
	}
	c.broadcast(ctx, msg)
}

// fileMessage is section 5.2.
func (c *conn) fileMessage(ctx context.Context, frame pyjson.Object) {
	fileV, _ := frame.Get("file")
	nameV, _ := frame.Get("filename")
	if !pyjson.Truthy(fileV) || !pyjson.Truthy(nameV) {
		c.enqueue(errorFrame(errFileRequired))
		return
	}
	caption, errText := messageText(frame, false)
	if errText != "" {
		c.enqueue(errorFrame(errText))
		return
	}
	if !c.mayWrite(ctx, errBlockedFile) {
		return
	}
	data, filename, clean, errText := c.decodeFile(fileV, nameV)
	if errText != "" {
		// The save would have refused a gone or blocked conversation before
		// looking at the file: keep that order.
		if _, blocked, err := c.srv.store.Conversation(ctx, c.conv.ID); errors.Is(err, chat.ErrConversationGone) {
			errText = errConversationGone
		} else if err == nil && blocked {
			errText = errBlockedFile
		}
		c.enqueue(errorFrame(errText))
		return
	}
	msg, err := c.srv.store.SaveFile(ctx,
		chat.Draft{ConversationID: c.conv.ID, Sender: c.user, Content: caption, CreatedAt: time.Now()},
		chat.FileDraft{Name: clean, Filename: filename, Data: data, FileType: mediastore.DetectType(clean, data)},
		c.srv.media)
	if err != nil {
		c.saveFailed(err, errBlockedFile)
		return
	}
	c.broadcast(ctx, msg)
}

// mayWrite is layer 1 of the blocking design: the block is checked before
// trying to save. When it reports false, the client has had its error frame.
func (c *conn) mayWrite(ctx context.Context, blockedText string) bool {
	blocked, err := c.srv.store.IsBlocked(ctx, c.conv.ListenerID, c.conv.TalkerID)
	switch {
	case err != nil:
		c.serverError("check block", err)
		return false
	case blocked:
		c.enqueue(errorFrame(blockedText))
		return false
	}
	return true
}

// decodeFile checks and decodes the file of a file_message; errText is the
// error frame's text when it is refused.
func (c *conn) decodeFile(fileV, nameV pyjson.Value) (data []byte, filename, clean, errText string) {
	b64, ok := fileV.(string)
	if !ok {
		return nil, "", "", errInvalidFileData
	}
	limit := c.srv.cfg.MaxFileBytes
	tooLarge := "File is too large (max " + humanSize(limit) + ")"
	if int64(mediastore.DecodedLenUpperBound(b64)) > limit+limit/2+16 {
		// Far above the limit whatever is discarded: do not decode it.
		return nil, "", "", tooLarge
	}
	data, err := mediastore.DecodeBase64(b64)
	if err != nil {
		return nil, "", "", errInvalidFileData
	}
	if int64(len(data)) > limit {
		return nil, "", "", tooLarge
	}
	filename, ok = nameV.(string)
	if !ok || utf8.RuneCountInString(filename) > maxFilenameLen {
		// Divergence: Python failed on the varchar(255) after committing the message.
		return nil, "", "", errInvalidFileName
	}
	clean, err = mediastore.CleanName(filename)
	if err != nil {
		return nil, "", "", errInvalidFileName
	}
	return data, filename, clean, ""
}

// humanSize prints a limit the way the default reads: "10 MB".
func humanSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// maxFilenameLen is the attachment's filename column, varchar(255).
const maxFilenameLen = 255

// messageText reads the "message" of a frame: required for chat_message,
// an optional caption for file_message.
func messageText(frame pyjson.Object, required bool) (string, string) {
	v, _ := frame.Get("message")
	if !pyjson.Truthy(v) {
		if required {
			return "", errContentRequired
		}
		return "", ""
	}
	s, ok := v.(string)
	if !ok {
		// Divergence: Python failed later with an unrelated text.
		return "", errContentNotString
	}
	return s, ""
}

// saveFailed turns a refused or failed save into the contract's error frame.
func (c *conn) saveFailed(err error, blockedText string) {
	var status *chat.StatusError
	switch {
	case errors.Is(err, chat.ErrConversationGone):
		c.enqueue(errorFrame(errConversationGone))
	case errors.Is(err, chat.ErrBlocked):
		c.enqueue(errorFrame(blockedText))
	case errors.As(err, &status):
		c.enqueue(errorFrame("Cannot send messages in a " + chat.StatusDisplay(status.Status) + " conversation"))
	case errors.Is(err, chat.ErrNotTalker):
		c.enqueue(errorFrame(errNotTalker))
	case errors.Is(err, chat.ErrNUL):
		c.enqueue(errorFrame(chat.ErrNUL.Error()))
	default:
		c.serverError("save message", err)
	}
}

func (c *conn) serverError(what string, err error) {
	c.logger().Error(what, "err", err)
	c.enqueue(errorFrame(errServer))
}

// broadcast sends a saved message to the group (section 5.1 step 4).
func (c *conn) broadcast(ctx context.Context, msg chat.Message) {
	event := pyjson.Object{
		{Key: "type", Value: "chat_message"},
		{Key: "message", Value: messageObject(msg, c.srv.media)},
	}
	if err := c.srv.layer.GroupSend(ctx, c.group, event); err != nil {
		// The message is saved and in the history; say it was not delivered.
		c.logger().Error("broadcast message", "message", msg.ID, "err", err)
		c.enqueue(errorFrame("Message saved but could not be delivered to the conversation, please reconnect"))
	}
}

// typing is section 5.3: nothing at all when blocked.
func (c *conn) typing(ctx context.Context, frame pyjson.Object) {
	blocked, err := c.srv.store.IsBlocked(ctx, c.conv.ListenerID, c.conv.TalkerID)
	if err != nil {
		c.logger().Error("check block for typing", "err", err)
		return
	}
	if blocked {
		return
	}
	isTyping, ok := frame.Get("is_typing")
	if !ok {
		isTyping = false
	}
	c.groupSend(ctx, pyjson.Object{
		{Key: "type", Value: "typing_indicator"},
		{Key: "user_id", Value: c.user.ID},
		{Key: "user_email", Value: c.user.Email},
		{Key: "is_typing", Value: isTyping},
	})
}

// markRead is section 5.4: not subject to blocking.
func (c *conn) markRead(ctx context.Context) {
	if _, err := c.srv.store.MarkRead(ctx, c.conv.ID, c.user.ID); err != nil {
		c.serverError("mark read", err)
		return
	}
	c.groupSend(ctx, pyjson.Object{{Key: "type", Value: "messages_read"}, {Key: "user_id", Value: c.user.ID}})
}

func (c *conn) groupSend(ctx context.Context, event pyjson.Object) {
	if err := c.srv.layer.GroupSend(ctx, c.group, event); err != nil {
		c.logger().Error("group send", "group", c.group, "err", err)
	}
}
