package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/mediastore"
	"github.com/chatsidecar/sidecar/pyjson"
)

// clientFrameLimits bound what decoding a client frame may build: the
// contract's frames have a handful of values; typing relays one the client
// chose (docs/PROTOCOL.md section 5.3), which may nest, within these.
var clientFrameLimits = pyjson.Limits{MaxDepth: 32, MaxValues: 4096}

// handleChat dispatches one client message of the chat route (section 5).
// Every error goes to the sender only and never closes the connection,
// but for messages over the size limits (1009).
func (c *conn) handleChat(typ int, data []byte) {
	if typ == websocket.BinaryMessage {
		c.srv.metrics.framesIn.WithLabelValues("chat", "binary").Inc()
		c.sendError("binary", errBinary)
		return
	}
	// A file_message may be as large as MaxFrameBytes; anything else only
	// MaxTextFrameBytes. The type is known once decoded, and the decoder is
	// bounded, so a large frame costs a small multiple of its size at most
	// (the budget holds twice its size while it is decoded).
	big := int64(len(data)) > c.srv.cfg.MaxTextFrameBytes
	if big {
		extra := 2 * int64(len(data))
		if err := c.srv.mem.acquire(c.srv.ctx, extra, c.srv.cfg.BudgetWait, false); err != nil {
			c.srv.metrics.drop("memory_budget")
			c.end(closeTryAgainLater, "server busy")
			return
		}
		defer c.srv.mem.release(extra)
	}
	v, err := pyjson.DecodeLimited(data, clientFrameLimits)
	if err != nil && big {
		// Larger than anything but a file_message, and not one.
		c.srv.metrics.framesIn.WithLabelValues("chat", "invalid").Inc()
		c.srv.metrics.closed("frame_too_big")
		c.end(websocket.CloseMessageTooBig, "message too big")
		return
	}
	if err != nil {
		c.srv.metrics.framesIn.WithLabelValues("chat", "invalid").Inc()
		if errors.Is(err, pyjson.ErrTooMany) || errors.Is(err, pyjson.ErrTooDeep) {
			c.sendError("too_complex", errTooComplex)
			return
		}
		c.sendError("invalid_json", errInvalidJSON)
		return
	}
	frame, ok := v.(pyjson.Object)
	if !ok {
		c.srv.metrics.framesIn.WithLabelValues("chat", "invalid").Inc()
		c.sendError("invalid_format", errInvalidFormat)
		return
	}
	t, _ := frame.Get("type")
	name, _ := t.(string) // a type that is not a string matches no handler
	if big && name != "file_message" {
		c.srv.metrics.closed("frame_too_big")
		c.end(websocket.CloseMessageTooBig, "message too big")
		return
	}
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
		name = "unknown"
		c.sendError("unknown_type", "Unknown message type: "+pyjson.Str(t))
	}
	c.srv.metrics.framesIn.WithLabelValues("chat", name).Inc()
}

// sendError queues the error frame {"type": "error", "message": text};
// kind names it in the metrics.
func (c *conn) sendError(kind, text string) {
	c.srv.metrics.errorFrames.WithLabelValues(kind).Inc()
	c.send("error", errorFrame(text))
}

// dbCtx bounds one database call.
func (c *conn) dbCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.srv.cfg.DBTimeout)
}

// chatMessage is section 5.1.
func (c *conn) chatMessage(ctx context.Context, frame pyjson.Object) {
	content, kind, errText := c.messageText(frame, true)
	if errText != "" {
		c.sendError(kind, errText)
		return
	}
	if !c.mayWrite(ctx, errBlockedText) {
		return
	}
	dbctx, cancel := c.dbCtx(ctx)
	msg, err := c.srv.store.SaveText(dbctx, chat.Draft{
		ConversationID: c.conv.ID, Sender: c.user, Content: content, CreatedAt: time.Now(),
	})
	cancel()
	if err != nil {
		c.saveFailed(err, errBlockedText)
		return
	}
	c.srv.metrics.saved.WithLabelValues(chat.TypeText).Inc()
	c.broadcast(ctx, msg)
}

// fileMessage is section 5.2.
func (c *conn) fileMessage(ctx context.Context, frame pyjson.Object) {
	fileV, _ := frame.Get("file")
	nameV, _ := frame.Get("filename")
	if !pyjson.Truthy(fileV) || !pyjson.Truthy(nameV) {
		c.sendError("file_required", errFileRequired)
		return
	}
	caption, kind, errText := c.messageText(frame, false)
	if errText != "" {
		c.sendError(kind, errText)
		return
	}
	if !c.mayWrite(ctx, errBlockedFile) {
		return
	}
	data, filename, clean, kind, errText := c.decodeFile(fileV, nameV)
	if errText != "" {
		// The save would have refused a gone or blocked conversation before
		// looking at the file: keep that order.
		dbctx, cancel := c.dbCtx(ctx)
		_, blocked, err := c.srv.store.Conversation(dbctx, c.conv.ID)
		cancel()
		if errors.Is(err, chat.ErrConversationGone) {
			kind, errText = "conversation_gone", errConversationGone
		} else if err == nil && blocked {
			kind, errText = "blocked", errBlockedFile
		}
		c.sendError(kind, errText)
		return
	}
	// A file costs a row, an inode and a directory entry whatever its size.
	if lim := c.srv.fileLimiter(c.user.ID); lim != nil && !lim.AllowN(time.Now(), max(len(data), minFileCost)) {
		c.sendError("file_rate", fmt.Sprintf("Too many files: at most %s per second", humanSize(int64(c.srv.cfg.FileBytesPerSecond))))
		return
	}
	dbctx, cancel := c.dbCtx(ctx)
	msg, err := c.srv.store.SaveFile(dbctx,
		chat.Draft{ConversationID: c.conv.ID, Sender: c.user, Content: caption, CreatedAt: time.Now()},
		chat.FileDraft{Name: clean, Filename: filename, Data: data, FileType: mediastore.DetectType(clean, data)},
		c.srv.media)
	cancel()
	if err != nil {
		c.saveFailed(err, errBlockedFile)
		return
	}
	c.srv.metrics.saved.WithLabelValues(chat.TypeFile).Inc()
	c.broadcast(ctx, msg)
}

// mayWrite is layer 1 of the blocking design: the block is checked before
// trying to save. When it reports false, the client has had its error frame.
func (c *conn) mayWrite(ctx context.Context, blockedText string) bool {
	dbctx, cancel := c.dbCtx(ctx)
	blocked, err := c.srv.store.IsBlocked(dbctx, c.conv.ListenerID, c.conv.TalkerID)
	cancel()
	switch {
	case err != nil:
		c.serverError("check block", err)
		return false
	case blocked:
		c.sendError("blocked", blockedText)
		return false
	}
	return true
}

// decodeFile checks and decodes the file of a file_message; errText is the
// error frame's text when it is refused, kind its metrics label.
func (c *conn) decodeFile(fileV, nameV pyjson.Value) (data []byte, filename, clean, kind, errText string) {
	b64, ok := fileV.(string)
	if !ok {
		return nil, "", "", "invalid_file_data", errInvalidFileData
	}
	limit := c.srv.cfg.MaxFileBytes
	tooLarge := "File is too large (max " + humanSize(limit) + ")"
	if int64(mediastore.DecodedLenUpperBound(b64)) > limit+limit/2+16 {
		// Far above the limit whatever is discarded: do not decode it.
		return nil, "", "", "file_too_large", tooLarge
	}
	data, err := mediastore.DecodeBase64(b64)
	if err != nil {
		return nil, "", "", "invalid_file_data", errInvalidFileData
	}
	if int64(len(data)) > limit {
		return nil, "", "", "file_too_large", tooLarge
	}
	filename, ok = nameV.(string)
	if !ok || utf8.RuneCountInString(filename) > maxFilenameLen {
		// Divergence: Python failed on the varchar(255) after committing the message.
		return nil, "", "", "invalid_file_name", errInvalidFileName
	}
	clean, err = mediastore.CleanName(filename)
	if err != nil {
		return nil, "", "", "invalid_file_name", errInvalidFileName
	}
	return data, filename, clean, "", ""
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

// minFileCost is what a file counts for against the user's file rate.
const minFileCost = 64 << 10

// messageText reads the "message" of a frame: required for chat_message,
// an optional caption for file_message. On refusal it returns the error
// frame's metrics kind and text.
func (c *conn) messageText(frame pyjson.Object, required bool) (text, kind, errText string) {
	v, _ := frame.Get("message")
	if !pyjson.Truthy(v) {
		if required {
			return "", "content_required", errContentRequired
		}
		return "", "", ""
	}
	s, ok := v.(string)
	if !ok {
		// Divergence: Python failed later with an unrelated text.
		return "", "content_not_string", errContentNotString
	}
	if max := c.srv.cfg.MaxMessageChars; max > 0 && utf8.RuneCountInString(s) > max {
		// Divergence: Python stored any length.
		return "", "message_too_long", fmt.Sprintf("Message is too long (max %d characters)", max)
	}
	return s, "", ""
}

// saveFailed turns a refused or failed save into the contract's error frame.
func (c *conn) saveFailed(err error, blockedText string) {
	var status *chat.StatusError
	switch {
	case errors.Is(err, chat.ErrConversationGone):
		c.sendError("conversation_gone", errConversationGone)
	case errors.Is(err, chat.ErrBlocked):
		c.sendError("blocked", blockedText)
	case errors.As(err, &status):
		c.sendError("status", "Cannot send messages in a "+chat.StatusDisplay(status.Status)+" conversation")
	case errors.Is(err, chat.ErrNotTalker):
		c.sendError("not_talker", errNotTalker)
	case errors.Is(err, chat.ErrNUL):
		c.sendError("nul", chat.ErrNUL.Error())
	default:
		c.serverError("save message", err)
	}
}

func (c *conn) serverError(what string, err error) {
	c.logger().Error(what, "err", err)
	c.sendError("server", errServer)
}

// broadcast sends a saved message to the group (section 5.1 step 4).
func (c *conn) broadcast(ctx context.Context, msg chat.Message) {
	event := pyjson.Object{
		{Key: "type", Value: "chat_message"},
		{Key: "message", Value: messageObject(msg, c.srv.media)},
	}
	c.srv.saves.add(msg.ID)
	lctx, cancel := context.WithTimeout(ctx, c.srv.cfg.LayerTimeout)
	defer cancel()
	if err := c.srv.layer.GroupSend(lctx, c.group, event); err != nil {
		// The message is saved and in the history; say it was not delivered.
		c.logger().Error("broadcast message", "message", msg.ID, "err", err)
		c.sendError("not_delivered", errNotDelivered)
	}
}

// typing is section 5.3: nothing at all when blocked.
func (c *conn) typing(ctx context.Context, frame pyjson.Object) {
	dbctx, cancel := c.dbCtx(ctx)
	blocked, err := c.srv.store.IsBlocked(dbctx, c.conv.ListenerID, c.conv.TalkerID)
	cancel()
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
	dbctx, cancel := c.dbCtx(ctx)
	_, err := c.srv.store.MarkRead(dbctx, c.conv.ID, c.user.ID)
	cancel()
	if err != nil {
		c.serverError("mark read", err)
		return
	}
	c.groupSend(ctx, pyjson.Object{{Key: "type", Value: "messages_read"}, {Key: "user_id", Value: c.user.ID}})
}

func (c *conn) groupSend(ctx context.Context, event pyjson.Object) {
	lctx, cancel := context.WithTimeout(ctx, c.srv.cfg.LayerTimeout)
	defer cancel()
	if err := c.srv.layer.GroupSend(lctx, c.group, event); err != nil {
		c.logger().Error("group send", "group", c.group, "err", err)
	}
}
