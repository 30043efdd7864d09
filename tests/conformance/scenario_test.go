package conformance

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// File is one scenario file: its scenarios share one Daphne, one sidecar and
// one database per side, and run one after the other.
type File struct {
	Name      string
	Env       []string // both sides
	PyEnv     []string // Daphne (Python run) only
	GoEnv     []string // sidecar only
	Scenarios []*Scenario
}

// Scenario is a named sequence of steps over its own users and conversations.
type Scenario struct {
	Name   string
	Line   int
	Actors []*Actor
	// Convs are the conversations made before the steps run; the first is
	// the scenario's own ({conv}, block, set_status, db_count...).
	Convs       []*ConvSpec
	Steps       []*Step
	Divergences []*Divergence
	// DivFields are frame keys whose values are a declared divergence
	// (key → label): both runs show a placeholder, the values are listed.
	DivFields map[string]string
}

// ConvSpec is a conversation line.
type ConvSpec struct {
	// Name is the symbol of its id (@<name>, {conv:<name>}); "conv" for
	// the unnamed form.
	Name             string
	Line             int
	Listener, Talker string // actor names
	Status           string
	ID               int64 // 0: next id of the sequence
	Initial          string
	CreatedAt        time.Time // zero: now
	LastMessageAt    time.Time // zero: NULL
}

// primary is the scenario's first conversation, nil when it declares none.
func (sc *Scenario) primary() *ConvSpec {
	if len(sc.Convs) == 0 {
		return nil
	}
	return sc.Convs[0]
}

// defaultConvName names the conversation of the unnamed form, and one made
// by a REST create step without name=.
const defaultConvName = "conv"

var statuses = map[string]bool{"pending": true, "active": true, "rejected": true, "closed": true}

// Actor is a user of a scenario.
type Actor struct {
	Name     string
	Type     string // talker, listener, superadmin
	FullName string
	Inactive bool
}

// Step is one line of a scenario.
type Step struct {
	Line int
	Text string // the line as written
	Side string // "" (both runs), "py" or "go"
	// Backend is "" (every backend) or the testenv.Backend name the step
	// runs on alone ("postgres", "sqlite").
	Backend string
	Div     *Divergence
	Op      string
	Conn    string   // connection name (actor[#n]) for connection steps
	Args    []string // tokens after Op (and Conn)
	Rest    string   // raw text after Op and Conn (send, expect)
}

// Divergence is a block of side-specific steps declaring an expected
// difference listed in PROTOCOL.md.
type Divergence struct {
	Label   string
	Line    int
	Backend string // "" (every backend) or the one backend it is declared for
	Steps   []*Step
}

// on reports whether st runs on backend be.
func (s *Step) on(be string) bool { return s.Backend == "" || s.Backend == be }

// on reports whether dv is declared for backend be.
func (dv *Divergence) on(be string) bool { return dv.Backend == "" || dv.Backend == be }

// backendNames are the backends a step or divergence may be restricted to.
var backendNames = map[string]bool{"postgres": true, "sqlite": true}

func (s *Step) where() string {
	return fmt.Sprintf("line %d `%s`", s.Line, strings.TrimSpace(s.Text))
}

// actorOf returns the actor name of a connection name ("talker#2" → "talker").
func actorOf(conn string) string {
	if i := strings.IndexByte(conn, '#'); i >= 0 {
		return conn[:i]
	}
	return conn
}

// loadFiles parses every scenarios/*.txt.
func loadFiles(dir string) ([]*File, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil {
		return nil, err
	}
	var files []*File
	for _, p := range paths {
		f, err := parseFile(p)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

var connOps = map[string]bool{
	"connect": true, "send": true, "send_binary": true, "expect": true, "recv": true,
	"expect_close": true, "expect_none": true, "close": true,
}

var otherOps = map[string]bool{
	"block": true, "unblock": true, "set_status": true, "delete_conversation": true,
	"db_count": true, "sql": true, "message": true, "group_send": true,
	"create": true, "accept": true, "reject": true,
}

// rawOps keep their text after the op as written (Rest), not split in tokens.
var rawOps = map[string]bool{"sql": true, "message": true, "group_send": true,
	"create": true, "accept": true, "reject": true}

func parseFile(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	f := &File{Name: strings.TrimSuffix(filepath.Base(path), ".txt")}
	var sc *Scenario
	var div *Divergence
	errf := func(line int, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", path, line, fmt.Sprintf(format, args...))
	}
	s := bufio.NewScanner(fh)
	s.Buffer(make([]byte, 1<<20), 1<<24)
	n := 0
	for s.Scan() {
		n++
		raw := s.Text()
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		word, rest := cut(line)
		switch word {
		case "env", "py_env", "go_env":
			if sc != nil {
				return nil, errf(n, "%s must come before the first scenario", word)
			}
			if !strings.Contains(rest, "=") {
				return nil, errf(n, "want %s KEY=VALUE", word)
			}
			switch word {
			case "env":
				f.Env = append(f.Env, rest)
			case "py_env":
				f.PyEnv = append(f.PyEnv, rest)
			default:
				f.GoEnv = append(f.GoEnv, rest)
			}
			continue
		case "scenario":
			if div != nil {
				return nil, errf(n, "divergence of line %d has no end", div.Line)
			}
			if err := checkScenario(sc); err != nil {
				return nil, errf(sc.Line, "%v", err)
			}
			sc = &Scenario{Name: rest, Line: n}
			f.Scenarios = append(f.Scenarios, sc)
			continue
		}
		if sc == nil {
			return nil, errf(n, "%q outside a scenario", word)
		}
		switch word {
		case "actor":
			toks, err := tokens(rest)
			if err != nil || len(toks) < 2 {
				return nil, errf(n, "want actor <name> <user_type> [name=\"Full Name\"] [inactive]")
			}
			a := &Actor{Name: toks[0], Type: toks[1]}
			for _, t := range toks[2:] {
				switch {
				case strings.HasPrefix(t, "name="):
					a.FullName = strings.TrimPrefix(t, "name=")
				case t == "inactive":
					a.Inactive = true
				default:
					return nil, errf(n, "unknown actor option %q", t)
				}
			}
			sc.Actors = append(sc.Actors, a)
		case "conversation":
			cv, err := parseConversation(rest)
			if err != nil {
				return nil, errf(n, "%v", err)
			}
			cv.Line = n
			sc.Convs = append(sc.Convs, cv)
		case "divergent_field":
			toks, err := tokens(rest)
			if err != nil || len(toks) != 2 {
				return nil, errf(n, `want divergent_field <key> "<label>"`)
			}
			if sc.DivFields == nil {
				sc.DivFields = map[string]string{}
			}
			sc.DivFields[toks[0]] = toks[1]
		case "divergence":
			if div != nil {
				return nil, errf(n, "nested divergence")
			}
			toks, err := tokens(rest)
			if err != nil || len(toks) < 1 || len(toks) > 2 {
				return nil, errf(n, `want divergence "<label>" [on=<backend>]`)
			}
			div = &Divergence{Label: toks[0], Line: n}
			if len(toks) == 2 {
				be, ok := strings.CutPrefix(toks[1], "on=")
				if !ok || !backendNames[be] {
					return nil, errf(n, "unknown divergence option %q (want on=postgres or on=sqlite)", toks[1])
				}
				div.Backend = be
			}
			sc.Divergences = append(sc.Divergences, div)
		case "end":
			if div == nil {
				return nil, errf(n, "end without divergence")
			}
			if len(div.Steps) == 0 {
				return nil, errf(n, "empty divergence")
			}
			div = nil
		default:
			st := &Step{Line: n, Text: line}
			if word == "on" {
				be, r := cut(rest)
				if !backendNames[be] {
					return nil, errf(n, "want on <postgres|sqlite> <step>")
				}
				if div != nil {
					return nil, errf(n, "a divergence block is restricted to a backend with on=<backend>, not its steps")
				}
				st.Backend = be
				word, rest = cut(r)
			}
			if div != nil {
				st.Backend = div.Backend
			}
			if word == "py" || word == "go" {
				if div == nil {
					return nil, errf(n, "a %s-only step must sit in a divergence block", word)
				}
				st.Side = word
				word, rest = cut(rest)
			} else if div != nil {
				return nil, errf(n, "inside a divergence block every step is prefixed py or go")
			}
			st.Div = div
			st.Op = word
			switch {
			case connOps[word]:
				st.Conn, st.Rest = cut(rest)
				if st.Conn == "" {
					return nil, errf(n, "%s needs a connection name", word)
				}
				if word != "send" && word != "expect" {
					if st.Args, err = tokens(st.Rest); err != nil {
						return nil, errf(n, "%v", err)
					}
				}
			case otherOps[word]:
				st.Rest = rest
				if !rawOps[word] {
					if st.Args, err = tokens(rest); err != nil {
						return nil, errf(n, "%v", err)
					}
				}
			default:
				return nil, errf(n, "unknown step %q", word)
			}
			sc.Steps = append(sc.Steps, st)
			if div != nil {
				div.Steps = append(div.Steps, st)
			}
		}
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	if div != nil {
		return nil, errf(div.Line, "divergence has no end")
	}
	if err := checkScenario(sc); err != nil {
		return nil, errf(sc.Line, "%v", err)
	}
	return f, nil
}

func checkScenario(sc *Scenario) error {
	if sc == nil {
		return nil
	}
	names := map[string]bool{}
	for _, a := range sc.Actors {
		names[a.Name] = true
	}
	convs := map[string]bool{}
	for _, cv := range sc.Convs {
		if !names[cv.Listener] || !names[cv.Talker] {
			return fmt.Errorf("scenario %s line %d: a conversation must name two actors", sc.Name, cv.Line)
		}
		if convs[cv.Name] {
			return fmt.Errorf("scenario %s line %d: two conversations named %s", sc.Name, cv.Line, cv.Name)
		}
		convs[cv.Name] = true
	}
	for _, st := range sc.Steps {
		if st.Conn != "" && !names[actorOf(st.Conn)] {
			return fmt.Errorf("scenario %s line %d: no actor %q", sc.Name, st.Line, actorOf(st.Conn))
		}
		if err := checkStep(st, names); err != nil {
			return fmt.Errorf("scenario %s line %d: %v", sc.Name, st.Line, err)
		}
	}
	return nil
}

// parseConversation reads the text after `conversation`:
// [<name>] <listener> <talker> <status> [id=N] [initial="..."] [created_at=T] [last_message_at=T|null].
func parseConversation(rest string) (*ConvSpec, error) {
	const usage = `want conversation [<name>] <listener> <talker> <status> [id=N] [initial="..."] [created_at=<time>] [last_message_at=<time>|null]`
	toks, err := tokens(rest)
	if err != nil {
		return nil, err
	}
	var pos []string
	cv := &ConvSpec{Name: defaultConvName}
	for _, t := range toks {
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			pos = append(pos, t)
			continue
		}
		switch k {
		case "id":
			if cv.ID, err = strconv.ParseInt(v, 10, 64); err != nil || cv.ID <= 0 {
				return nil, fmt.Errorf("conversation id=%s: want a positive number", v)
			}
		case "initial":
			cv.Initial = v
		case "created_at":
			if cv.CreatedAt, err = parseTime(v); err != nil {
				return nil, err
			}
		case "last_message_at":
			if v != "null" {
				if cv.LastMessageAt, err = parseTime(v); err != nil {
					return nil, err
				}
			}
		default:
			return nil, fmt.Errorf("unknown conversation option %q; %s", t, usage)
		}
	}
	switch len(pos) {
	case 3:
		cv.Listener, cv.Talker, cv.Status = pos[0], pos[1], pos[2]
	case 4:
		cv.Name, cv.Listener, cv.Talker, cv.Status = pos[0], pos[1], pos[2], pos[3]
	default:
		return nil, errors.New(usage)
	}
	if !statuses[cv.Status] {
		return nil, fmt.Errorf("conversation status %q: want pending, active, rejected or closed", cv.Status)
	}
	return cv, nil
}

// parseTime reads a scenario time: RFC 3339 with an optional fraction
// (2026-01-14T10:00:00.5Z, ...+00:00), kept at microsecond precision.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: want RFC 3339, e.g. 2026-01-14T10:00:00.5Z", s)
	}
	if t.Nanosecond()%1000 != 0 {
		return time.Time{}, fmt.Errorf("time %q: more than microsecond precision", s)
	}
	return t.UTC(), nil
}

// checkStep checks the arguments of the steps that take actors, so that a
// misspelt name fails at load time rather than as a difference.
func checkStep(st *Step, actors map[string]bool) error {
	switch st.Op {
	case "message":
		m, err := parseMessageStep(st.Rest)
		if err != nil {
			return err
		}
		if !actors[m.Sender] {
			return fmt.Errorf("message: no actor %q", m.Sender)
		}
	case "create", "accept", "reject":
		r, err := parseRESTStep(st.Op, st.Rest)
		if err != nil {
			return err
		}
		for _, a := range []string{r.As, r.Listener} {
			if a != "" && !actors[a] {
				return fmt.Errorf("%s: no actor %q", st.Op, a)
			}
		}
	case "group_send":
		if g, ev := cut(st.Rest); g == "" || ev == "" {
			return errors.New("want group_send <group> <json object>")
		}
	}
	return nil
}

// messageStep is `message <sender> "<json string>" [conv=<name>] [at=<time>]`.
type messageStep struct {
	Sender  string
	Content string
	Conv    string // "" is the scenario's first conversation
	At      time.Time
}

func parseMessageStep(rest string) (*messageStep, error) {
	const usage = `want message <sender> "<content, a JSON string>" [conv=<name>] [at=<time>]`
	sender, r := cut(rest)
	if sender == "" || !strings.HasPrefix(r, `"`) {
		return nil, errors.New(usage)
	}
	dec := json.NewDecoder(strings.NewReader(r))
	m := &messageStep{Sender: sender}
	if err := dec.Decode(&m.Content); err != nil {
		return nil, fmt.Errorf("message content: %v; %s", err, usage)
	}
	opts, err := tokens(r[dec.InputOffset():])
	if err != nil {
		return nil, err
	}
	for _, t := range opts {
		k, v, _ := strings.Cut(t, "=")
		switch k {
		case "conv":
			m.Conv = v
		case "at":
			if m.At, err = parseTime(v); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("unknown message option %q; %s", t, usage)
		}
	}
	return m, nil
}

// restStep is one of
//
//	create <talker> <listener> [initial="..."] [name=<conv>] [=> <code> [<json body>]]
//	accept <actor> [<conv>] [=> <code> [<json body>]]
//	reject <actor> [<conv>] [=> <code> [<json body>]]
type restStep struct {
	As       string
	Listener string // create
	Initial  *string
	Conv     string // accept/reject target, create's name= ("" when not given)
	Code     int    // 0: not asserted
	Body     string // expected body, "" when not asserted
}

func parseRESTStep(op, rest string) (*restStep, error) {
	usage := map[string]string{
		"create": `want create <talker> <listener> [initial="..."] [name=<conv>] [=> <code> [<json body>]]`,
		"accept": `want accept <actor> [<conv>] [=> <code> [<json body>]]`,
		"reject": `want reject <actor> [<conv>] [=> <code> [<json body>]]`,
	}[op]
	left, want, hasWant := cutArrow(rest)
	toks, err := tokens(left)
	if err != nil {
		return nil, err
	}
	r := &restStep{}
	var pos []string
	for _, t := range toks {
		k, v, ok := strings.Cut(t, "=")
		switch {
		case !ok:
			pos = append(pos, t)
		case op == "create" && k == "initial":
			r.Initial = &v
		case op == "create" && k == "name":
			r.Conv = v
		default:
			return nil, fmt.Errorf("unknown %s option %q; %s", op, t, usage)
		}
	}
	switch {
	case op == "create" && len(pos) == 2:
		r.As, r.Listener = pos[0], pos[1]
	case op != "create" && (len(pos) == 1 || len(pos) == 2):
		r.As = pos[0]
		if len(pos) == 2 {
			r.Conv = pos[1]
		}
	default:
		return nil, errors.New(usage)
	}
	if hasWant {
		code, body := cut(want)
		if r.Code, err = strconv.Atoi(code); err != nil {
			return nil, fmt.Errorf("%s: want => <HTTP status> [<json body>]", op)
		}
		if body != "" {
			if r.Body, err = normExpected(body); err != nil {
				return nil, fmt.Errorf("%s: expected body is not JSON: %v", op, err)
			}
		}
	}
	return r, nil
}

// cut splits off the first space-separated word.
func cut(s string) (string, string) {
	s = strings.TrimSpace(s)
	w, r, _ := strings.Cut(s, " ")
	return w, strings.TrimSpace(r)
}

// tokens splits on spaces, honouring double quotes ("a b" is one token;
// name="A B" gives name=A B).
func tokens(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	in, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			in = !in
			have = true
		case r == ' ' && !in:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if in {
		return nil, fmt.Errorf("unbalanced quote in %q", s)
	}
	if have {
		out = append(out, cur.String())
	}
	return out, nil
}

// cutArrow splits s at the first `=>` outside double quotes.
func cutArrow(s string) (before, after string, found bool) {
	in := false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '"':
			in = !in
		case !in && strings.HasPrefix(s[i:], "=>"):
			return s[:i], s[i+2:], true
		}
	}
	return s, "", false
}

// routeOf names the WebSocket route a connect path reaches, as
// chat/routing.py matches it: chat, conversations, notifications, or "".
func routeOf(path string) string {
	p := strings.TrimPrefix(path, "/")
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	switch {
	case strings.HasPrefix(p, "ws/chat/"):
		return "chat"
	case p == "ws/conversations" || p == "ws/conversations/":
		return "conversations"
	case p == "ws/notifications" || p == "ws/notifications/":
		return "notifications"
	}
	return ""
}

// connectPath is the path= of a connect step, or the chat default.
func connectPath(st *Step) string {
	for _, a := range st.Args {
		if p, ok := strings.CutPrefix(a, "path="); ok {
			return p
		}
	}
	return defaultPath
}

const defaultPath = "/ws/chat/{conv}/"

// needsSharedLayer reports whether a file's runs must share a channel layer
// between processes: REST endpoints and group_send produce events in
// another process than the server under test, and the barriers of the
// conversation-list and notification sockets are events sent the same way.
func (f *File) needsSharedLayer() bool {
	for _, sc := range f.Scenarios {
		for _, st := range sc.Steps {
			switch st.Op {
			case "create", "accept", "reject", "group_send":
				return true
			case "connect":
				if r := routeOf(connectPath(st)); r == "conversations" || r == "notifications" {
					return true
				}
			}
		}
	}
	return false
}
