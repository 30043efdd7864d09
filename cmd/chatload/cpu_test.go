package main

import (
	"flag"
	"os"
	"testing"
)

func TestParseStat(t *testing.T) {
	// A command name with a space and a parenthesis, as /proc writes it.
	line := "4242 (postgres: a) b) S 4000 4000 4000 0 -1 4194560 1234 0 0 0 150 37 9 4 20 0 1 0 12345 221184000 3000 18446744073709551615\n"
	s, err := parseStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if s.ppid != 4000 || s.utime != 150 || s.stime != 37 || s.cutime != 9 || s.cstime != 4 {
		t.Errorf("parseStat = %+v, want ppid 4000, utime 150, stime 37, cutime 9, cstime 4", s)
	}
	for _, bad := range []string{"", "4242 no parens", "4242 (x) S 1 2 3"} {
		if _, err := parseStat(bad); err == nil {
			t.Errorf("parseStat(%q): no error", bad)
		}
	}
}

func TestCPUFlag(t *testing.T) {
	var targets []cpuTarget
	fs := flag.NewFlagSet("chatload", flag.ContinueOnError)
	fs.Var(cpuFlag{&targets, false}, "cpu", "")
	fs.Var(cpuFlag{&targets, true}, "cpu-tree", "")
	if err := fs.Parse([]string{"-cpu", "sidecar=12", "-cpu-tree", "postgres=34"}); err != nil {
		t.Fatal(err)
	}
	want := []cpuTarget{{"sidecar", 12, false}, {"postgres", 34, true}}
	if len(targets) != 2 || targets[0] != want[0] || targets[1] != want[1] {
		t.Errorf("targets = %+v, want %+v", targets, want)
	}
	for _, bad := range []string{"sidecar", "=12", "x=0", "x=abc"} {
		if err := (cpuFlag{&targets, false}).Set(bad); err == nil {
			t.Errorf("Set(%q): no error", bad)
		}
	}
}

// The tree of this test's own process holds at least the process.
func TestTicksSelf(t *testing.T) {
	for _, tree := range []bool{false, true} {
		if _, err := (cpuTarget{"self", os.Getpid(), tree}).ticks(); err != nil {
			t.Fatalf("tree=%t: %v", tree, err)
		}
	}
}

func TestProcKind(t *testing.T) {
	for _, c := range []struct{ cmdline, want string }{
		{"postgres: sidecar bench 127.0.0.1(53422) idle\x00\x00\x00", "backend sidecar"},
		{"postgres: walsender sidecar 127.0.0.1(53430) START_REPLICATION\x00", "walsender"},
		{"postgres: checkpointer \x00", "background"},
		{"postgres: logical replication launcher \x00", "background"},
		{"postgres: autovacuum worker bench\x00", "autovacuum"},
		{"/usr/lib/postgresql/15/bin/postgres\x00-D\x00/tmp/pg\x00", "other"},
		{"", "other"},
	} {
		if got := procKind(c.cmdline); got != c.want {
			t.Errorf("procKind(%q) = %q, want %q", c.cmdline, got, c.want)
		}
	}
}

func TestParts(t *testing.T) {
	before := treeTicks{self: 5, reaped: 100,
		children: map[int]int64{10: 50, 11: 7, 12: 30}, kinds: map[int]string{10: "backend sidecar", 11: "walsender", 12: "backend sidecar"}}
	// 10 grew by 20, 11 by 3, 12 exited (40 in all, so 10 in the run), 13 started (4).
	after := treeTicks{self: 6, reaped: 140,
		children: map[int]int64{10: 70, 11: 10, 13: 4}, kinds: map[int]string{10: "backend sidecar", 11: "walsender", 13: "backend postgres"}}
	got := parts(before, after)
	want := map[string]int64{"postmaster": 1, "exited": 10, "backend sidecar": 20, "walsender": 3, "backend postgres": 4}
	if len(got) != len(want) {
		t.Fatalf("parts = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("parts[%q] = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}
