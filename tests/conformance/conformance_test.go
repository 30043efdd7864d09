package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatsidecar/sidecar/tests/testenv"
)

func TestMain(m *testing.M) {
	testenv.Run(m)
}

// transcripts of one scenario file, per side.
type transcripts map[*Scenario]*transcript

type transcript struct {
	entries []*Entry
	divSeen map[string]map[string]bool // divergent field → values seen
}

func TestConformance(t *testing.T) {
	files, err := loadFiles("scenarios")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenarios/*.txt")
	}
	testenv.SidecarBinary(t) // build before the parallel runs start
	// PostgreSQL is played twice: without and with the sidecar's change
	// feed (its sidecar must run it: FEED=on), the same scenarios.
	for _, be := range append(testenv.Backends, testenv.FeedBackend) {
		be := be
		t.Run(be.Name, func(t *testing.T) {
			t.Parallel()
			for _, f := range files {
				f := f
				if be.Name == testenv.FeedBackend.Name && !f.readsHistories() {
					continue // the feed changes only how histories are read
				}
				t.Run(f.Name, func(t *testing.T) {
					t.Parallel()
					testFile(t, be, f)
				})
			}
		})
	}
}

// pythonOnly reports CONFORMANCE_SIDES=python: play the Python reference
// alone and check the scenarios' expectations against it (to validate new
// scenarios before the sidecar serves their routes). The Go runs show as
// skipped, never as passed.
func pythonOnly(t *testing.T) bool {
	switch v := os.Getenv("CONFORMANCE_SIDES"); v {
	case "", "both":
		return false
	case "python":
		return true
	default:
		t.Fatalf("CONFORMANCE_SIDES=%q: want python or both (the default)", v)
		return false
	}
}

// testFile plays scenario file f on backend be, once per side (each with
// its own fresh database), and compares the transcripts.
func testFile(t *testing.T, be testenv.Backend, f *File) {
	var mu sync.Mutex
	res := map[string]transcripts{}
	pyOnly := pythonOnly(t)
	t.Run("run", func(t *testing.T) {
		for _, name := range []string{"python", "go"} {
			name := name
			t.Run(name, func(t *testing.T) {
				if name == "go" && pyOnly {
					t.Skip("CONFORMANCE_SIDES=python: the sidecar is not played; nothing is compared")
				}
				t.Parallel()
				tr := playSide(t, be, f, name)
				mu.Lock()
				res[name] = tr
				mu.Unlock()
			})
		}
	})
	if res["python"] == nil || (res["go"] == nil && !pyOnly) {
		t.Fatal("a run did not finish; see its log above")
	}
	for _, sc := range f.Scenarios {
		sc := sc
		t.Run(sc.Name, func(t *testing.T) {
			if pyOnly {
				checkPython(t, engine(be), sc, res["python"][sc])
				return
			}
			compare(t, engine(be), sc, res["python"][sc], res["go"][sc])
		})
	}
}

// playSide sets up one side for file f and plays its scenarios in order.
func playSide(t *testing.T, be testenv.Backend, f *File, name string) transcripts {
	db := be.New(t)
	media := t.TempDir()
	env := []string{
		"DATABASE_URL=" + db.DSN, "SECRET_KEY=" + secretKey, "MEDIA_ROOT=" + media,
		"PUBLIC_BASE_URL=" + publicBase, "ALLOWED_HOSTS=*",
	}
	env = append(env, f.Env...)
	shared := f.needsSharedLayer()
	if shared {
		for _, kv := range env {
			if strings.HasPrefix(kv, "CHANNEL_LAYER=") {
				t.Fatalf("%s sets %s, but its steps need the shared Redis layer the runner sets up", f.Name, kv)
			}
		}
		env = append(env, layerEnv(t, be.Name, f.Name, name)...)
	}
	s := &side{name: name, backend: engine(be), db: db, media: media}
	if name == "python" {
		s.short = "py"
		d := testenv.StartDaphne(t, append(env, f.PyEnv...))
		s.wsAddr, s.rest, s.logs = d.Addr, d.Addr, d.Log
	} else {
		s.short = "go"
		d := testenv.StartDaphne(t, env)
		goEnv := append(env, f.GoEnv...)
		if be.Name == testenv.FeedBackend.Name {
			goEnv = append(goEnv, "FEED=on")
		}
		sc := testenv.StartSidecar(t, goEnv)
		s.wsAddr, s.rest, s.logs = sc.Addr, d.Addr, sc.Log
	}
	if shared {
		s.layer = startInjector(t, env)
	}
	s.fixture = setupFixtures(t, db, f)
	out := transcripts{}
	for i, sc := range f.Scenarios {
		fx := s.fixture[sc]
		r := &runner{s: s, sc: sc, fx: fx}
		entries := r.play()
		ids := &idents{users: map[int64]string{}, emails: emailsOf(f, i, sc), convs: map[int64]string{},
			ts: map[string]time.Time{}, divFields: sc.DivFields, divSeen: map[string]map[string]bool{}}
		for a, id := range fx.users {
			ids.users[id] = a
		}
		for name, id := range fx.convs {
			ids.convs[id] = "@" + name
		}
		normalizeRun(entries, ids)
		out[sc] = &transcript{entries: entries, divSeen: ids.divSeen}
	}
	if dir := os.Getenv("CONFORMANCE_OUT"); dir != "" {
		writeTranscripts(t, dir, be.Name+"."+f.Name, f, name, out, s.logs())
	}
	return out
}

func writeTranscripts(t *testing.T, dir, base string, f *File, side string, tr transcripts, logs string) {
	var b strings.Builder
	for _, sc := range f.Scenarios {
		fmt.Fprintf(&b, "== scenario %s\n", sc.Name)
		for _, e := range tr[sc].entries {
			fmt.Fprintf(&b, "%4d %s\n", e.Step.Line, e.show())
		}
	}
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, base+"."+side+".txt"), []byte(b.String()), 0o644)
	os.WriteFile(filepath.Join(dir, base+"."+side+".log"), []byte(logs), 0o644)
}

// byStep groups entries by the line of their step (0: end of scenario).
func byStep(entries []*Entry) map[int][]*Entry {
	m := map[int][]*Entry{}
	for _, e := range entries {
		m[e.Step.Line] = append(m[e.Step.Line], e)
	}
	return m
}

// compare reports every difference between the Python and Go transcripts of
// one scenario that is not declared as a divergence, every expectation the
// Python reference does not meet, and lists the declared divergences.
func compare(t *testing.T, backend string, sc *Scenario, pyT, goT *transcript) {
	py, gov := pyT.entries, goT.entries
	for _, k := range sortedFields(sc.DivFields) {
		t.Logf("expected divergence %q (field %s): Python values %s, Go values %s",
			sc.DivFields[k], k, setString(pyT.divSeen[k]), setString(goT.divSeen[k]))
	}
	pyFails := failures(py)
	goFails := failures(gov)
	for _, f := range pyFails {
		t.Errorf("Python reference does not meet the scenario: %s", f)
	}
	pys, gos := byStep(py), byStep(gov)
	steps := append([]*Step{}, sc.Steps...)
	steps = append(steps, &Step{Line: 0, Text: "(end of scenario)"})
	var diffs []string
	nSteps, nDivs := 0, 0
	for _, st := range sc.Steps {
		if st.on(backend) {
			nSteps++
		}
	}
	for _, st := range steps {
		if st.Side != "" || !st.on(backend) {
			continue
		}
		a, b := pys[st.Line], gos[st.Line]
		n := len(a)
		if len(b) > n {
			n = len(b)
		}
		for i := 0; i < n; i++ {
			var pa, gb string
			if i < len(a) {
				pa = a[i].show()
			} else {
				pa = "(nothing)"
			}
			if i < len(b) {
				gb = b[i].show()
			} else {
				gb = "(nothing)"
			}
			if pa != gb {
				diffs = append(diffs, fmt.Sprintf("%s\n      Python: %s\n      Go:     %s", st.where(), pa, gb))
			}
		}
	}
	for _, d := range diffs {
		t.Errorf("difference not declared as a divergence: %s", d)
	}
	for _, f := range goFails {
		if strings.Contains(f, "`py ") {
			continue
		}
		if strings.Contains(f, "`go ") {
			t.Errorf("sidecar does not meet the declared divergence: %s", f)
		}
	}
	for _, dv := range sc.Divergences {
		if !dv.on(backend) {
			continue
		}
		nDivs++
		var b strings.Builder
		fmt.Fprintf(&b, "expected divergence %q (line %d):", dv.Label, dv.Line)
		for _, st := range dv.Steps {
			src := py
			if st.Side == "go" {
				src = gov
			}
			fmt.Fprintf(&b, "\n    %s", st.where())
			for _, e := range src {
				if e.Step.Line == st.Line {
					who := "Python"
					if st.Side == "go" {
						who = "Go"
					}
					fmt.Fprintf(&b, "\n      %s: %s", who, e.show())
				}
			}
		}
		t.Log(b.String())
	}
	t.Logf("%s: %d steps, %d divergences, %d undeclared differences", backend, nSteps, nDivs, len(diffs))
}

// checkPython reports every expectation the Python reference does not meet
// (CONFORMANCE_SIDES=python), and lists the declared divergences' Python steps.
func checkPython(t *testing.T, backend string, sc *Scenario, pyT *transcript) {
	for _, f := range failures(pyT.entries) {
		t.Errorf("Python reference does not meet the scenario: %s", f)
	}
	nSteps := 0
	for _, st := range sc.Steps {
		if st.on(backend) && st.Side != "go" {
			nSteps++
		}
	}
	t.Logf("%s: %d Python steps checked; the Go side was not played", backend, nSteps)
}

func failures(entries []*Entry) []string {
	// normalizeRun was called already; recompute from the entries.
	var fails []string
	for _, e := range entries {
		switch {
		case e.Kind == "leftover":
			fails = append(fails, fmt.Sprintf("%s: unexpected frame left on %s: %s", e.Step.where(), e.Conn, e.Norm))
		case e.Kind == "error":
			fails = append(fails, fmt.Sprintf("%s: %s: %s", e.Step.where(), e.Conn, e.Norm))
		case e.Want != "" && e.Want != e.Norm:
			fails = append(fails, fmt.Sprintf("%s: %s\n      want: %s\n      got:  %s", e.Step.where(), e.Conn, e.Want, e.Norm))
		}
	}
	return fails
}

func sortedFields(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func setString(m map[string]bool) string {
	var vs []string
	for v := range m {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	return "{" + strings.Join(vs, ", ") + "}"
}

// engine is the database engine of a backend, which scenario steps are
// restricted to ("on postgres"): the feed changes how the sidecar reads,
// not what the database is.
func engine(be testenv.Backend) string {
	if be.Name == testenv.FeedBackend.Name {
		return "postgres"
	}
	return be.Name
}

// readsHistories reports whether a file connects to the chat, whose
// connect frames and new_message carry histories: the files the change
// feed can change anything in.
func (f *File) readsHistories() bool {
	for _, sc := range f.Scenarios {
		for _, st := range sc.Steps {
			if st.Op == "connect" && !strings.Contains(st.Text, "path=") {
				return true
			}
			if st.Op == "connect" && strings.Contains(st.Text, "path=/ws/chat/") {
				return true
			}
		}
	}
	return false
}
