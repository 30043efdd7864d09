package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// cpuTarget is a process whose CPU time the run measures: -cpu NAME=PID
// counts the process alone (utime+stime of all its threads); -cpu-tree
// NAME=PID counts a server and every process it forked (a PostgreSQL
// postmaster and its backends, WAL senders and background workers),
// including the children that exited during the run, which the parent's
// cutime+cstime holds once it has reaped them.
type cpuTarget struct {
	name string
	pid  int
	tree bool
}

// cpuFlag collects -cpu or -cpu-tree values.
type cpuFlag struct {
	targets *[]cpuTarget
	tree    bool
}

func (f cpuFlag) String() string { return "" }

func (f cpuFlag) Set(s string) error {
	name, p, ok := strings.Cut(s, "=")
	pid, err := strconv.Atoi(p)
	if !ok || name == "" || err != nil || pid <= 0 {
		return fmt.Errorf("want NAME=PID, got %q", s)
	}
	*f.targets = append(*f.targets, cpuTarget{name: name, pid: pid, tree: f.tree})
	return nil
}

// procStat is what the run reads of /proc/PID/stat: the parent and the
// CPU times in clock ticks.
type procStat struct {
	ppid                         int
	utime, stime, cutime, cstime int64
}

// parseStat reads a /proc/PID/stat line. The command name (field 2) is in
// parentheses and may hold spaces and parentheses, so the fields are
// counted from the last ')'.
func parseStat(line string) (procStat, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("no command name in %q", line)
	}
	f := strings.Fields(line[i+1:])
	// f[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17.
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("short stat line %q", line)
	}
	var s procStat
	var err error
	if s.ppid, err = strconv.Atoi(f[1]); err != nil {
		return procStat{}, fmt.Errorf("ppid: %w", err)
	}
	for k, dst := range []*int64{&s.utime, &s.stime, &s.cutime, &s.cstime} {
		if *dst, err = strconv.ParseInt(f[11+k], 10, 64); err != nil {
			return procStat{}, fmt.Errorf("field %d: %w", 14+k, err)
		}
	}
	return s, nil
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(string(b))
}

// treeTicks is a target's CPU time at one moment, in clock ticks: total,
// and for a tree, each child's own (utime+stime+cutime+cstime) and the
// parent's, with the time of the children it reaped (cutime+cstime).
type treeTicks struct {
	total    int64
	self     int64          // the parent's utime+stime
	reaped   int64          // the parent's cutime+cstime
	children map[int]int64  // per child pid
	kinds    map[int]string // per child pid: what it is (procKind)
}

// ticks reads t's CPU time so far.
func (t cpuTarget) ticks() (treeTicks, error) {
	s, err := readStat(t.pid)
	if err != nil {
		return treeTicks{}, fmt.Errorf("cpu of %s: %w", t.name, err)
	}
	out := treeTicks{total: s.utime + s.stime, self: s.utime + s.stime}
	if !t.tree {
		return out, nil
	}
	out.reaped = s.cutime + s.cstime
	out.total += out.reaped
	out.children, out.kinds = map[int]int64{}, map[int]string{}
	dirs, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return treeTicks{}, err
	}
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue // exited meanwhile: its time is in the parent's cutime once reaped
		}
		c, err := parseStat(string(b))
		if err != nil || c.ppid != t.pid {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		n := c.utime + c.stime + c.cutime + c.cstime
		out.total += n
		out.children[pid] = n
		cmd, _ := os.ReadFile(filepath.Join(filepath.Dir(d), "cmdline"))
		out.kinds[pid] = procKind(string(cmd))
	}
	return out, nil
}

// procKind names what a PostgreSQL server process does from its title
// ("postgres: walsender sidecar 127.0.0.1(5432) idle"): walsender,
// autovacuum, background (checkpointer, WAL writer and the other
// auxiliary processes), or "backend ROLE" for a client's backend.
func procKind(cmdline string) string {
	title := strings.TrimSpace(strings.ReplaceAll(cmdline, "\x00", " "))
	rest, ok := strings.CutPrefix(title, "postgres: ")
	if !ok {
		return "other"
	}
	switch f := strings.Fields(rest); {
	case len(f) == 0:
		return "other"
	case f[0] == "walsender":
		return "walsender"
	case f[0] == "autovacuum":
		return "autovacuum"
	case strings.Contains(rest, "("): // "ROLE DATABASE HOST(PORT) STATE"
		return "backend " + f[0]
	default:
		return "background"
	}
}

// cpuSample is every target's ticks at one moment.
type cpuSample []treeTicks

func sampleCPU(targets []cpuTarget) (cpuSample, error) {
	out := make(cpuSample, len(targets))
	for i, t := range targets {
		n, err := t.ticks()
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

// parts splits a tree's CPU time between before and after by process
// kind: each child's growth (from 0 for a child started since), the
// parent's own as "postmaster", and what children that exited since
// used, reaped into the parent's cutime, as "exited".
func parts(before, after treeTicks) map[string]int64 {
	out := map[string]int64{"postmaster": after.self - before.self, "exited": after.reaped - before.reaped}
	for pid, n := range after.children {
		out[after.kinds[pid]] += n - before.children[pid]
	}
	// A child alive before and reaped since: its time before the run
	// is in the parent's cutime growth, not the run's.
	for pid, n := range before.children {
		if _, alive := after.children[pid]; !alive {
			out["exited"] -= n
		}
	}
	return out
}

// printCPU prints each target's CPU milliseconds between before and after,
// and per message; for a tree, also per process kind.
func printCPU(targets []cpuTarget, before, after cpuSample, clkTck int, messages int) {
	ms := func(ticks int64) float64 { return float64(ticks) * 1000 / float64(clkTck) }
	per := func(ms float64) float64 {
		if messages == 0 {
			return 0
		}
		return ms / float64(messages)
	}
	for i, t := range targets {
		total := ms(after[i].total - before[i].total)
		fmt.Printf("cpu name=%s pid=%d tree=%t ms=%.0f per_message_ms=%.3f\n", t.name, t.pid, t.tree, total, per(total))
		if !t.tree {
			continue
		}
		p := parts(before[i], after[i])
		kinds := make([]string, 0, len(p))
		for k := range p {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		var b strings.Builder
		for _, k := range kinds {
			if p[k] == 0 {
				continue
			}
			if b.Len() > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "%s:%.3f", strings.ReplaceAll(k, " ", "_"), per(ms(p[k])))
		}
		fmt.Printf("cpu_parts name=%s per_message_ms=%s\n", t.name, b.String())
	}
}
