package main

import (
	"fmt"
	"os"
	"path/filepath"
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

// ticks is the CPU time t has used so far, in clock ticks.
func (t cpuTarget) ticks() (int64, error) {
	s, err := readStat(t.pid)
	if err != nil {
		return 0, fmt.Errorf("cpu of %s: %w", t.name, err)
	}
	if !t.tree {
		return s.utime + s.stime, nil
	}
	total := s.utime + s.stime + s.cutime + s.cstime
	dirs, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return 0, err
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
		total += c.utime + c.stime + c.cutime + c.cstime
	}
	return total, nil
}

// cpuSample is every target's ticks at one moment.
type cpuSample []int64

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

// printCPU prints each target's CPU milliseconds between before and after,
// and per message.
func printCPU(targets []cpuTarget, before, after cpuSample, clkTck int, messages int) {
	for i, t := range targets {
		ms := float64(after[i]-before[i]) * 1000 / float64(clkTck)
		per := 0.0
		if messages > 0 {
			per = ms / float64(messages)
		}
		fmt.Printf("cpu name=%s pid=%d tree=%t ms=%.0f per_message_ms=%.3f\n", t.name, t.pid, t.tree, ms, per)
	}
}
