package consumer

import (
	"strconv"

	"github.com/chatsidecar/sidecar/chat"
	"github.com/chatsidecar/sidecar/pyjson"
)

// The error texts of the contract (PROTOCOL.md section 5), sent as written.
const (
	errInvalidJSON      = "Invalid JSON"
	errInvalidFormat    = "Invalid message format"
	errBinary           = "Binary frames are not supported"
	errContentRequired  = "Message content is required"
	errContentNotString = "Message content must be a string"
	errBlockedText      = "You cannot message this user because they have blocked you or you have blocked them"
	errBlockedFile      = "You cannot send files to this user because they have blocked you or you have blocked them"
	errConversationGone = "Conversation matching query does not exist."
	errNotTalker        = "Only the talker can send messages in a pending conversation"
	errFileRequired     = "File data and filename are required"
	errInvalidFileData  = "Invalid file data"
	errInvalidFileName  = "Invalid file name"
	// errTooComplex refuses a frame with more values or deeper nesting than
	// a client frame needs (a divergence: Python decoded anything).
	errTooComplex = "Message is too complex"
	// errNotDelivered: saved, but the channel layer did not take the event.
	errNotDelivered = "Message saved but could not be delivered to the conversation, please reconnect"
	// errServer replaces the database error texts the Python consumer
	// leaked; the sidecar logs the cause instead.
	errServer = "Could not complete the request, please try again"
)

// errorFrame is {"type": "error", "message": text}.
func errorFrame(text string) []byte {
	return mustMarshal(pyjson.Object{{Key: "type", Value: "error"}, {Key: "message", Value: text}})
}

func mustMarshal(v pyjson.Value) []byte {
	b, err := pyjson.Marshal(v)
	if err != nil {
		// Only values built by this package reach here; a failure is a bug.
		panic("consumer: marshal frame: " + err.Error())
	}
	return b
}

func connectedFrame() []byte {
	return mustMarshal(pyjson.Object{
		{Key: "type", Value: "connection_established"},
		{Key: "message", Value: "Connected to chat"},
	})
}

// apiInfoFrame tells the client where to upload files; segment is the
// conversation id as written in the URL.
func apiInfoFrame(publicBaseURL, segment string) []byte {
	endpoint := "/api/chat/conversations/" + segment + "/upload_file/"
	return mustMarshal(pyjson.Object{
		{Key: "type", Value: "api_info"},
		{Key: "endpoint", Value: endpoint},
		{Key: "method", Value: "POST"},
		{Key: "description", Value: "Upload image or file to conversation"},
		{Key: "content_type", Value: "multipart/form-data"},
		{Key: "parameters", Value: pyjson.Object{
			{Key: "file", Value: "Required - The image or file to upload"},
			{Key: "content", Value: "Optional - Message description"},
		}},
		{Key: "headers", Value: pyjson.Object{{Key: "Authorization", Value: "Bearer YOUR_JWT_TOKEN"}}},
		{Key: "example_url", Value: publicBaseURL + endpoint},
		{Key: "message", Value: "Use the endpoint above to upload files. Files will be automatically broadcasted to all connected users."},
	})
}

// historyFrameParts are what goes around the history list in
// {"type": "conversation_history", "messages": [...], "count": N,
// "message": "Loaded N previous message(s)"}, as json.dumps writes it.
func historyFrameParts(count int) (head, tail []byte) {
	n := strconv.Itoa(count)
	return []byte(`{"type": "conversation_history", "messages": `),
		[]byte(`, "count": ` + n + `, "message": "Loaded ` + n + ` previous message(s)"}`)
}

// newMessageHead and newMessageTail go around the history list in
// {"type": "new_message", "messages": [...], "count": N, "latest_message": <latest>}.
// The head is the same for every frame, which only read it.
var newMessageHead = []byte(`{"type": "new_message", "messages": `)

func newMessageTail(count int, latest pyjson.Value) []byte {
	tail := append([]byte(`, "count": `+strconv.Itoa(count)+`, "latest_message": `), mustMarshal(latest)...)
	return append(tail, '}')
}

// EncodeMessage returns the encoder of the message object of section 6,
// for a history cache to keep messages as frames carry them.
func EncodeMessage(media Media) func(chat.Message) ([]byte, error) {
	return func(m chat.Message) ([]byte, error) { return appendMessage(nil, m, media), nil }
}

// appendMessage appends the JSON of messageObject(m, media) as pyjson
// writes it, without building the object: histories encode every message
// of a conversation for each new one when they are not cached, and this
// is most of that work (unit_test.go holds it to pyjson's bytes).
func appendMessage(dst []byte, m chat.Message, media Media) []byte {
	dst = append(dst, `{"id": `...)
	dst = strconv.AppendInt(dst, m.ID, 10)
	dst = append(dst, `, "conversation": `...)
	dst = strconv.AppendInt(dst, m.ConversationID, 10)
	dst = append(dst, `, "sender": {"id": `...)
	dst = strconv.AppendInt(dst, m.Sender.ID, 10)
	dst = append(dst, `, "email": `...)
	dst = pyjson.AppendString(dst, m.Sender.Email)
	dst = append(dst, `, "full_name": `...)
	dst = pyjson.AppendString(dst, m.Sender.DisplayName())
	dst = append(dst, `, "user_type": `...)
	dst = pyjson.AppendString(dst, m.Sender.UserType)
	dst = append(dst, `}, "content": `...)
	dst = pyjson.AppendString(dst, m.Content)
	dst = append(dst, `, "message_type": `...)
	dst = pyjson.AppendString(dst, m.MessageType)
	dst = append(dst, `, "created_at": "`...)
	dst = chat.AppendISOFormat(dst, m.CreatedAt)
	dst = append(dst, `", "is_read": `...)
	dst = strconv.AppendBool(dst, m.IsRead)
	dst = append(dst, `, "file_attachment": `...)
	a := m.Attachment
	if a == nil {
		return append(dst, `null}`...)
	}
	dst = append(dst, `{"id": `...)
	dst = strconv.AppendInt(dst, a.ID, 10)
	dst = append(dst, `, "filename": `...)
	dst = pyjson.AppendString(dst, a.Filename)
	dst = append(dst, `, "file_url": `...)
	dst = pyjson.AppendString(dst, media.URL(a.File))
	dst = append(dst, `, "file_size": `...)
	dst = strconv.AppendInt(dst, a.FileSize, 10)
	dst = append(dst, `, "file_type": `...)
	dst = pyjson.AppendString(dst, a.FileType)
	return append(dst, `}}`...)
}

// messageObject is the message of PROTOCOL.md section 6, keys in order.
func messageObject(m chat.Message, media Media) pyjson.Object {
	var att pyjson.Value
	if a := m.Attachment; a != nil {
		att = pyjson.Object{
			{Key: "id", Value: a.ID},
			{Key: "filename", Value: a.Filename},
			{Key: "file_url", Value: media.URL(a.File)},
			{Key: "file_size", Value: a.FileSize},
			{Key: "file_type", Value: a.FileType},
		}
	}
	return pyjson.Object{
		{Key: "id", Value: m.ID},
		{Key: "conversation", Value: m.ConversationID},
		{Key: "sender", Value: pyjson.Object{
			{Key: "id", Value: m.Sender.ID},
			{Key: "email", Value: m.Sender.Email},
			{Key: "full_name", Value: m.Sender.DisplayName()},
			{Key: "user_type", Value: m.Sender.UserType},
		}},
		{Key: "content", Value: m.Content},
		{Key: "message_type", Value: m.MessageType},
		{Key: "created_at", Value: chat.ISOFormat(m.CreatedAt)},
		{Key: "is_read", Value: m.IsRead},
		{Key: "file_attachment", Value: att},
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
