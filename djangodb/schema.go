package djangodb

import (
	"fmt"
	"sort"
	"strings"
)

// Schema names Django's tables and columns. Teams rename apps and user models,
// so every name can be changed; the zero value means Django's defaults
// (PROTOCOL.md section 2).
type Schema struct {
	UserTable         string
	ConversationTable string
	MessageTable      string
	AttachmentTable   string
	BlockTable        string
	// Columns renames columns, keyed by "<model>.<default column>", where
	// model is user, conversation, message, attachment or block
	// (for example "message.sender_id": "author_id").
	Columns map[string]string
}

// Default table names (Django's "<app_label>_<model>").
const (
	DefaultUserTable         = "users_user"
	DefaultConversationTable = "chat_conversation"
	DefaultMessageTable      = "chat_message"
	DefaultAttachmentTable   = "chat_fileattachment"
	DefaultBlockTable        = "listener_listenerblockedtalker"
)

// model describes one table the sidecar uses: the columns it reads or writes
// and the kind of value each holds, for the start-up check.
type model struct {
	name    string // key prefix in Schema.Columns
	env     string // the configuration variable naming the table
	inserts bool   // the sidecar inserts rows: no other NOT NULL column may lack a default
	columns []column
}

type column struct {
	name string
	kind kind
}

type kind int

const (
	kindInt kind = iota
	kindText
	kindBool
	kindTime
)

func (k kind) String() string {
	return [...]string{"integer", "text", "boolean", "timestamp"}[k]
}

var models = []model{
	{name: "user", env: "USER_TABLE", columns: []column{
		{"id", kindInt}, {"email", kindText}, {"full_name", kindText}, {"user_type", kindText}, {"is_active", kindBool},
	}},
	{name: "conversation", env: "CONVERSATION_TABLE", columns: []column{
		{"id", kindInt}, {"listener_id", kindInt}, {"talker_id", kindInt}, {"status", kindText}, {"last_message_at", kindTime},
		{"created_at", kindTime}, {"initial_message", kindText},
	}},
	{name: "message", env: "MESSAGE_TABLE", inserts: true, columns: []column{
		{"id", kindInt}, {"conversation_id", kindInt}, {"sender_id", kindInt}, {"content", kindText},
		{"message_type", kindText}, {"is_read", kindBool}, {"created_at", kindTime},
	}},
	{name: "attachment", env: "ATTACHMENT_TABLE", inserts: true, columns: []column{
		{"id", kindInt}, {"message_id", kindInt}, {"file", kindText}, {"filename", kindText},
		{"file_size", kindInt}, {"file_type", kindText}, {"uploaded_at", kindTime},
	}},
	{name: "block", env: "BLOCK_TABLE", columns: []column{
		{"id", kindInt}, {"listener_id", kindInt}, {"talker_id", kindInt},
	}},
}

// Table is the table name of model (user, conversation, message,
// attachment, block).
func (s Schema) Table(model string) string { return s.table(model) }

// Column is the column name of model's column col (its Django name).
func (s Schema) Column(model, col string) string { return s.column(model, col) }

func (s Schema) table(model string) string {
	var name, def string
	switch model {
	case "user":
		name, def = s.UserTable, DefaultUserTable
	case "conversation":
		name, def = s.ConversationTable, DefaultConversationTable
	case "message":
		name, def = s.MessageTable, DefaultMessageTable
	case "attachment":
		name, def = s.AttachmentTable, DefaultAttachmentTable
	case "block":
		name, def = s.BlockTable, DefaultBlockTable
	default:
		panic("djangodb: unknown model " + model)
	}
	if name == "" {
		return def
	}
	return name
}

func (s Schema) column(model, col string) string {
	if c, ok := s.Columns[model+"."+col]; ok && c != "" {
		return c
	}
	return col
}

// Validate refuses column overrides that name no known column, so a typo in
// DB_COLUMNS stops start-up instead of being ignored.
func (s Schema) Validate() error {
	known := map[string]bool{}
	for _, m := range models {
		for _, c := range m.columns {
			known[m.name+"."+c.name] = true
		}
	}
	var bad []string
	for k := range s.Columns {
		if !known[k] {
			bad = append(bad, k)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("DB_COLUMNS: unknown column %s (keys look like message.sender_id)", strings.Join(bad, ", "))
	}
	return nil
}

// quote quotes an SQL identifier for PostgreSQL and SQLite alike.
func quote(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}
