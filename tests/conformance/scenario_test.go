package conformance

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// Scenario is a named sequence of steps over its own users and conversation.
type Scenario struct {
	Name   string
	Line   int
	Actors []*Actor
	// Listener and Talker name the actors of the conversation.
	Listener, Talker string
	Status           string
	ConvID           int64 // 0: next id of the sequence
	Steps            []*Step
	Divergences      []*Divergence
	// DivFields are frame keys whose values are a declared divergence
	// (key → label): both runs show a placeholder, the values are listed.
	DivFields map[string]string
}

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
	"db_count": true, "sql": true,
}

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
			toks, err := tokens(rest)
			if err != nil || len(toks) < 3 {
				return nil, errf(n, "want conversation <listener> <talker> <status> [id=N]")
			}
			sc.Listener, sc.Talker, sc.Status = toks[0], toks[1], toks[2]
			for _, t := range toks[3:] {
				if _, err := fmt.Sscanf(t, "id=%d", &sc.ConvID); err != nil {
					return nil, errf(n, "unknown conversation option %q", t)
				}
			}
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
				if word != "sql" {
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
	if !names[sc.Listener] || !names[sc.Talker] {
		return fmt.Errorf("scenario %s: conversation must name two actors", sc.Name)
	}
	for _, st := range sc.Steps {
		if st.Conn != "" && !names[actorOf(st.Conn)] {
			return fmt.Errorf("scenario %s line %d: no actor %q", sc.Name, st.Line, actorOf(st.Conn))
		}
	}
	return nil
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
