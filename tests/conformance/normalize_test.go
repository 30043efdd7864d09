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
	conv   int64
	msgs   map[int64]string // message id → @m<rank>
	files  map[int64]string // attachment id → @f<rank>
	ts     map[string]string
	tsEpoc int // bumped by sql steps: timestamps may change legitimately
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

var (
	tsRe      = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$`)
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
		msg := isMessage(t)
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
			case k == "id" && parent == "sender", k == "user_id":
				o.vals[k] = ids.user(val)
			case k == "conversation" || k == "conversation_id":
				o.vals[k] = ids.convSym(val)
			case k == "created_at":
				o.vals[k] = ids.timestamp(val, t)
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
		if a, ok := ids.emails[t]; ok {
			return "@" + a + ".email"
		}
		return t
	default:
		return v
	}
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
		if id == ids.conv {
			return "@conv"
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
		if seg == strconv.FormatInt(ids.conv, 10) {
			return "/conversations/@conv/"
		}
		return m
	})
}

// timestamp checks Python's isoformat() shape (microseconds only when not
// zero) and that one message keeps one created_at, then hides the value.
func (ids *idents) timestamp(v any, msg *object) any {
	s, ok := v.(string)
	if !ok {
		return fmt.Sprintf("<bad-ts:%v>", v)
	}
	m := tsRe.FindStringSubmatch(s)
	if m == nil {
		return "<bad-ts:" + s + ">"
	}
	if _, err := time.Parse("2006-01-02T15:04:05.999999-07:00", s); err != nil {
		return "<bad-ts:" + s + ">"
	}
	if m[1] == ".000000" {
		return "<bad-ts:" + s + " (zero microseconds printed)>"
	}
	key := fmt.Sprintf("%d/%v", ids.tsEpoc, msg.vals["id"])
	if prev, ok := ids.ts[key]; ok && prev != s {
		return "<ts changed:" + prev + "→" + s + ">"
	}
	ids.ts[key] = s
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

// normExpected canonicalises an expected frame written in a scenario.
func normExpected(text string) (string, error) {
	v, err := parseOrdered(strings.TrimSpace(text))
	if err != nil {
		return "", err
	}
	return pyDumps(v), nil
}
