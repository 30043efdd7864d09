package conformance

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// idents are the database ids of one scenario run, mapped to symbols.
type idents struct {
	users  map[int64]string // user id → actor name
	emails map[string]string
	convs  map[int64]string // conversation id → @<name>
	msgs   map[int64]string // message id → @m<rank>
	files  map[int64]string // attachment id → @f<rank>
	ts     map[string]time.Time
	tsEpoc int  // bumped by sql steps: timestamps may change legitimately
	rest   bool // normalising a REST body: DRF prints UTC as Z
	// divFields are the declared divergent keys; divSeen their values.
	divFields map[string]string
	divSeen   map[string]map[string]bool
	notes     []string
}

// rankIDs gives message and attachment ids symbols by their order in the
// database (ids grow with creation), so the two runs agree even when a
// failed insert consumed a sequence value on one side only.
func rankIDs(frames []any) (msgs, files map[int64]string) {
	ms, fs := map[int64]bool{}, map[int64]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch t := v.(type) {
		case []any:
			for _, e := range t {
				walk(e)
			}
		case *object:
			if isMessage(t) {
				if id, ok := num(t.vals["id"]); ok {
					ms[id] = true
				}
				if fa, ok := t.vals["file_attachment"].(*object); ok {
					if id, ok := num(fa.vals["id"]); ok {
						fs[id] = true
					}
				}
			}
			for _, k := range t.keys {
				walk(t.vals[k])
			}
		}
	}
	for _, f := range frames {
		walk(f)
	}
	return symbols(ms, "@m"), symbols(fs, "@f")
}

func symbols(set map[int64]bool, prefix string) map[int64]string {
	ids := make([]int64, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	out := map[int64]string{}
	for i, id := range ids {
		out[id] = prefix + strconv.Itoa(i+1)
	}
	return out
}

func isMessage(o *object) bool {
	_, c := o.vals["conversation"]
	_, s := o.vals["sender"]
	_, id := o.vals["id"]
	return c && s && id
}

func num(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := strconv.ParseInt(string(n), 10, 64)
	return i, err == nil
}

// isConversation tells a conversation object (a list item, a pending
// item, a REST answer) from the other objects that have an id.
func isConversation(o *object) bool {
	_, id := o.vals["id"]
	_, im := o.vals["initial_message"]
	return id && im && !isMessage(o)
}

// Keys whose values are user ids, conversation ids and timestamps, in every
// frame and REST answer (the id keys of nested objects are told by parent).
var (
	userKeys = map[string]bool{"user_id": true, "listener_id": true, "talker_id": true, "other_user_id": true,
		"last_message_sender_id": true, "ended_by": true}
	userParents = map[string]bool{"sender": true, "listener": true, "talker": true}
	convKeys    = map[string]bool{"conversation": true, "conversation_id": true, "latest_conversation_id": true}
	tsKeys      = map[string]bool{"created_at": true, "last_message_at": true, "accepted_at": true, "rejected_at": true,
		"updated_at": true, "timestamp": true}
)

var (
	tsRe      = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$`)
	tsRESTRe  = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?(\+00:00|Z)$`)
	convURLRe = regexp.MustCompile(`/conversations/(\w+)/`)
	fileURLRe = regexp.MustCompile(`/chat_files/(\d{4}/\d\d/\d\d)/`)
	suffixRe  = regexp.MustCompile(`_[A-Za-z0-9]{7}(\.[^/.]*)?$`)
)

// normalize rewrites one parsed frame in place of ids, emails, timestamps and
// file names; parent is the key holding v ("" at the top).
func (ids *idents) normalize(v any, parent string) any {
	switch t := v.(type) {
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = ids.normalize(e, parent)
		}
		return out
	case *object:
		o := &object{keys: t.keys, vals: map[string]any{}}
		msg, conv := isMessage(t), isConversation(t)
		for _, k := range t.keys {
			val := t.vals[k]
			if _, ok := ids.divFields[k]; ok {
				if ids.divSeen[k] == nil {
					ids.divSeen[k] = map[string]bool{}
				}
				ids.divSeen[k][pyDumps(val)] = true
				o.vals[k] = "<divergent " + k + ">"
				continue
			}
			switch {
			case k == "id" && msg:
				o.vals[k] = sym(val, ids.msgs, "@m?")
			case k == "id" && parent == "file_attachment":
				o.vals[k] = sym(val, ids.files, "@f?")
			case k == "id" && conv:
				o.vals[k] = ids.convSym(val)
			case k == "id" && userParents[parent], userKeys[k]:
				o.vals[k] = ids.user(val)
			case convKeys[k]:
				o.vals[k] = ids.convSym(val)
			case tsKeys[k]:
				o.vals[k] = ids.timestamp(k, val, t, msg, conv)
			case k == "endpoint" || k == "example_url":
				o.vals[k] = ids.convURL(val)
			case k == "file_url":
				o.vals[k] = fileURL(val)
			default:
				o.vals[k] = ids.normalize(val, k)
			}
		}
		return o
	case string:
		return ids.text(t, parent)
	default:
		return v
	}
}

// convUpdatedRe is the text of a conversation_list_updated frame.
var convUpdatedRe = regexp.MustCompile(`^Conversation (-?\d+) updated with new message$`)

// text hides the actors' emails in a string (names fall back to emails,
// and texts quote names) and the conversation id in the text of key.
func (ids *idents) text(s, key string) string {
	if strings.Contains(s, "@") {
		emails := make([]string, 0, len(ids.emails))
		for e := range ids.emails {
			emails = append(emails, e)
		}
		// Longest first: ba@x.com contains a@x.com.
		sort.Slice(emails, func(i, j int) bool { return len(emails[i]) > len(emails[j]) })
		for _, e := range emails {
			s = strings.ReplaceAll(s, e, "@"+ids.emails[e]+".email")
		}
	}
	if m := convUpdatedRe.FindStringSubmatch(s); m != nil && key == "message" {
		id, _ := strconv.ParseInt(m[1], 10, 64)
		if sym, ok := ids.convs[id]; ok {
			return "Conversation " + sym + " updated with new message"
		}
	}
	return s
}

func sym(v any, m map[int64]string, unknown string) any {
	if id, ok := num(v); ok {
		if s, ok := m[id]; ok {
			return s
		}
		return unknown + strconv.FormatInt(id, 10)
	}
	return v
}

func (ids *idents) user(v any) any {
	if id, ok := num(v); ok {
		if a, ok := ids.users[id]; ok {
			return "@" + a
		}
		return fmt.Sprintf("@user?%d", id)
	}
	return v
}

func (ids *idents) convSym(v any) any {
	if id, ok := num(v); ok {
		if s, ok := ids.convs[id]; ok {
			return s
		}
		return fmt.Sprintf("@conv?%d", id)
	}
	return v
}

func (ids *idents) convURL(v any) any {
	s, ok := v.(string)
	if !ok {
		return v
	}
	return convURLRe.ReplaceAllStringFunc(s, func(m string) string {
		seg := convURLRe.FindStringSubmatch(m)[1]
		for id, sym := range ids.convs {
			if seg == strconv.FormatInt(id, 10) {
				return "/conversations/" + sym + "/"
			}
		}
		return m
	})
}

// timestamp checks Python's isoformat() shape (microseconds only when not
// zero; DRF's Z in REST answers) and that a message or a conversation keeps
// one created_at, then hides the value. null stays null (a conversation
// not yet accepted).
func (ids *idents) timestamp(key string, v any, obj *object, msg, conv bool) any {
	if v == nil {
		return nil
	}
	s, ok := v.(string)
	if !ok {
		return fmt.Sprintf("<bad-ts:%v>", v)
	}
	re := tsRe
	if ids.rest {
		re = tsRESTRe
	}
	m := re.FindStringSubmatch(s)
	if m == nil {
		return "<bad-ts:" + s + ">"
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return "<bad-ts:" + s + ">"
	}
	if m[1] == ".000000" {
		return "<bad-ts:" + s + " (zero microseconds printed)>"
	}
	if key == "created_at" && (msg || conv) {
		kind := "message"
		if conv {
			kind = "conversation"
		}
		k := fmt.Sprintf("%d/%s/%v", ids.tsEpoc, kind, obj.vals["id"])
		if prev, ok := ids.ts[k]; ok && !prev.Equal(t) {
			return "<ts changed:" + prev.Format(time.RFC3339Nano) + "→" + s + ">"
		}
		ids.ts[k] = t
	}
	if m[1] == "" {
		return "<ts>"
	}
	return "<ts.us>"
}

func fileURL(v any) any {
	s, ok := v.(string)
	if !ok {
		return v
	}
	today := time.Now().UTC()
	s = fileURLRe.ReplaceAllStringFunc(s, func(m string) string {
		d := fileURLRe.FindStringSubmatch(m)[1]
		if d == today.Format("2006/01/02") || d == today.Add(-time.Minute).Format("2006/01/02") {
			return "/chat_files/<today>/"
		}
		return m
	})
	return suffixRe.ReplaceAllString(s, "_<rand>$1")
}

// normFrame is the normalised text of a frame, with a note when the raw
// text is not what Python's json.dumps would print for it.
func (ids *idents) normFrame(raw string) string {
	v, err := parseOrdered(raw)
	if err != nil {
		return "<not JSON> " + strconv.Quote(raw)
	}
	out := pyDumps(ids.normalize(v, ""))
	if pyDumps(v) != raw {
		out += "   <not json.dumps form: " + strconv.Quote(raw) + ">"
	}
	return out
}

// normBody is the normalised text of a REST answer (printed by DRF, so
// not held to json.dumps form).
func (ids *idents) normBody(raw string) string {
	v, err := parseOrdered(raw)
	if err != nil {
		return "<not JSON> " + strconv.Quote(raw)
	}
	ids.rest = true
	defer func() { ids.rest = false }()
	return pyDumps(ids.normalize(v, ""))
}

// normExpected canonicalises an expected frame written in a scenario.
func normExpected(text string) (string, error) {
	v, err := parseOrdered(strings.TrimSpace(text))
	if err != nil {
		return "", err
	}
	return pyDumps(v), nil
}
