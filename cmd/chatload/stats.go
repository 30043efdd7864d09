package main

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// statsTimeout bounds one read of the metrics or of pg_stat_statements.
const statsTimeout = 10 * time.Second

// stats are the server-side counters read before and after a run.
type stats struct {
	prom promSnapshot          // nil without -metrics-url
	pgss map[string]roleCounts // nil without -pgss
}

func snapshot(db *sql.DB, o options) (stats, error) {
	var s stats
	var err error
	if o.metricsURL != "" {
		if s.prom, err = scrape(o.metricsURL); err != nil {
			return s, err
		}
	}
	if o.pgss {
		if s.pgss, err = statements(db); err != nil {
			return s, err
		}
	}
	return s, nil
}

// promSnapshot maps a series, written as in the text exposition
// (name{label="value",...}), to its value.
type promSnapshot map[string]float64

// scrape reads a Prometheus text exposition.
func scrape(url string) (promSnapshot, error) {
	ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("-metrics-url: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read metrics: %s", resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the samples of a text exposition (no timestamps, as
// client_golang writes it).
func parseMetrics(r io.Reader) (promSnapshot, error) {
	out := promSnapshot{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return out, nil
}

// sum adds the series of name that carry every label given as `k="v"`.
func (p promSnapshot) sum(name string, labels ...string) float64 {
	total := 0.0
	for series, v := range p {
		n, ls, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		all := true
		for _, l := range labels {
			if !strings.Contains(ls, l) {
				all = false
				break
			}
		}
		if all {
			total += v
		}
	}
	return total
}

// has reports whether the exposition has a series of name.
func (p promSnapshot) has(name string) bool {
	for series := range p {
		if n, _, _ := strings.Cut(series, "{"); n == name {
			return true
		}
	}
	return false
}

// roleCounts are one database role's statements in pg_stat_statements.
type roleCounts struct {
	calls   int64                 // every statement
	selects int64                 // statements that begin with SELECT
	byQuery map[string]queryStats // per normalized statement text
}

// queryStats are one statement's counters.
type queryStats struct {
	calls          int64
	execMS, planMS float64 // total_exec_time, total_plan_time (0 unless pg_stat_statements.track_planning)
}

// topQueries is how many of a role's statements are printed one by one.
const topQueries = 4

// statements reads pg_stat_statements for the current database, per role.
func statements(db *sql.DB) (map[string]roleCounts, error) {
	ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
	defer cancel()
	rows, err := db.QueryContext(ctx, `SELECT r.rolname, s.query, sum(s.calls)::bigint,
		sum(s.total_exec_time)::float8, sum(s.total_plan_time)::float8
		FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid
		WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		GROUP BY r.rolname, s.query`)
	if err != nil {
		return nil, fmt.Errorf("-pgss: read pg_stat_statements (the server needs shared_preload_libraries=pg_stat_statements and the database CREATE EXTENSION pg_stat_statements): %w", err)
	}
	defer rows.Close()
	out := map[string]roleCounts{}
	for rows.Next() {
		var role, query string
		var q queryStats
		if err := rows.Scan(&role, &query, &q.calls, &q.execMS, &q.planMS); err != nil {
			return nil, fmt.Errorf("-pgss: %w", err)
		}
		c := out[role]
		if c.byQuery == nil {
			c.byQuery = map[string]queryStats{}
		}
		c.calls += q.calls
		if selectRE.MatchString(query) {
			c.selects += q.calls
		}
		prev := c.byQuery[query]
		c.byQuery[query] = queryStats{prev.calls + q.calls, prev.execMS + q.execMS, prev.planMS + q.planMS}
		out[role] = c
	}
	return out, rows.Err()
}

var (
	selectRE = regexp.MustCompile(`(?i)^\s*select`)
	spaceRE  = regexp.MustCompile(`\s+`)
)

// queryDelta is one statement's counters in the run.
type queryDelta struct {
	query string
	queryStats
}

// topDeltas are the statements of a role called most between before and
// after, most first, at most n.
func topDeltas(before, after roleCounts, n int) []queryDelta {
	var out []queryDelta
	for q, c := range after.byQuery {
		b := before.byQuery[q]
		if d := c.calls - b.calls; d > 0 {
			out = append(out, queryDelta{q, queryStats{d, c.execMS - b.execMS, c.planMS - b.planMS}})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].calls != out[j].calls {
			return out[i].calls > out[j].calls
		}
		return out[i].query < out[j].query
	})
	return out[:min(n, len(out))]
}

// shortQuery is a statement's text on one line, cut to 100 bytes.
func shortQuery(q string) string {
	q = strings.TrimSpace(spaceRE.ReplaceAllString(q, " "))
	if len(q) > 100 {
		q = q[:100] + "..."
	}
	return q
}

// printDeltas prints what the servers did between before and after.
func printDeltas(before, after stats, messages int) {
	per := func(n float64) float64 {
		if messages == 0 {
			return 0
		}
		return n / float64(messages)
	}
	if after.prom != nil {
		d := func(name string, labels ...string) float64 {
			return after.prom.sum(name, labels...) - before.prom.sum(name, labels...)
		}
		computed := d("sidecar_inbox_updates_total", `kind="computed"`)
		merged := d("sidecar_inbox_updates_total", `kind="merged"`)
		updates := d("sidecar_group_events_total", `route="conversations"`, `type="conversation_update"`)
		// A batch is the updates one computation answers: every update
		// received but those merged into another's computation.
		// The Redis layer's receive loop: one message per pop.
		receives := d("sidecar_redis_seconds_count", `op="receive"`)
		receiveMean := time.Duration(0)
		if receives > 0 {
			receiveMean = time.Duration(d("sidecar_redis_seconds_sum", `op="receive"`) / receives * float64(time.Second))
		}
		fmt.Printf("sidecar list_computations=%.0f per_message=%.2f updates_received=%.0f merged=%.0f batches=%.0f updates_sent=%.0f updates_coalesced=%.0f events_dropped=%.0f redis_over_capacity=%.0f redis_receives=%.0f receive_mean=%s\n",
			computed, per(computed), updates, merged, updates-merged,
			d("sidecar_conversation_update_sends_total", `outcome="sent"`), d("sidecar_conversation_update_sends_total", `outcome="coalesced"`),
			d("sidecar_group_events_dropped_total"), d("sidecar_redis_over_capacity_total"),
			receives, receiveMean.Round(time.Microsecond))
		if after.prom.has("sidecar_history_cache_hits_total") {
			hits := d("sidecar_history_cache_hits_total")
			fmt.Printf("feed up=%.0f cache_hits=%.0f hits_per_message=%.2f loads=%.0f not_exact=%.0f evictions=%.0f\n",
				after.prom.sum("sidecar_feed_up"), hits, per(hits), d("sidecar_history_cache_loads_total"),
				d("sidecar_history_cache_not_exact_total"), d("sidecar_history_cache_evictions_total"))
		}
	}
	if after.pgss != nil {
		roles := make([]string, 0, len(after.pgss))
		for r := range after.pgss {
			roles = append(roles, r)
		}
		sort.Strings(roles)
		for _, r := range roles {
			calls := after.pgss[r].calls - before.pgss[r].calls
			selects := after.pgss[r].selects - before.pgss[r].selects
			fmt.Printf("db role=%s statements=%d selects=%d statements_per_message=%.2f selects_per_message=%.2f\n",
				r, calls, selects, per(float64(calls)), per(float64(selects)))
			for _, q := range topDeltas(before.pgss[r], after.pgss[r], topQueries) {
				fmt.Printf("  %.2f/message exec_ms=%.3f plan_ms=%.3f %s\n", per(float64(q.calls)),
					q.execMS/float64(q.calls), q.planMS/float64(q.calls), shortQuery(q.query))
			}
		}
	}
}
