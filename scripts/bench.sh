#!/usr/bin/env bash
# The benchmark: what the sidecar delivers against what the database can
# take. On one fresh database of a private PostgreSQL server (wal_level =
# logical for the change feed, pg_stat_statements, and the durability
# settings of the shared server at $REF_DSN), with a private redis-server,
# it measures and prints one markdown table:
#
#   ceiling  pgbench: what one message costs the database (INSERT into
#            chat_message with every NOT NULL column + UPDATE
#            chat_conversation SET last_message_at, one transaction,
#            -M prepared), $PGBENCH_CLIENTS clients on as many conversations;
#            its TPS is "the ceiling". It runs for $PGBENCH_TIME s before and
#            after everything else, and for $PGBENCH_EACH s before each chat
#            run (before its server starts): each run's share is of the
#            ceiling just before it, since the machine's other work (CPU,
#            and other databases' fsyncs on the same disk) moves it
#   1        $W1_CONVS conversations, history 0 -> $W1_MESSAGES, closed loop
#            (every talker sends, waits for its own new_message, sends again);
#            also on Daphne serving tests/django's ChatConsumer (the Python
#            reference)
#   2        $W2_CONVS conversations, history 0 -> $W2_MESSAGES, closed loop;
#            once more on CHANNEL_LAYER=redis (REDIS_FEEDS)
#   3        $W3_CONVS conversations prefilled with $W3_PREFILL messages each,
#            then $W3_MESSAGES more, closed loop
#   4        open loop: workload 2's conversations, each talker paced
#            (chatload -rate) at half workload 2's closed-loop rate with the
#            same FEED, for $W4_DURATION
#   5        $W5_CONNS idle chat connections (cmd/connload, FEED=on)
#
# Workloads 1-4 run with FEED=off and FEED=on (FEEDS), each on a freshly
# started sidecar with RATE_LIMIT=0, MAX_USER_CONNECTIONS=0 and
# CHANNEL_LAYER=memory unless the row says redis. Before each run: CHECKPOINT
# and VACUUM ANALYZE of the chat tables.
#
# CPU: utime+stime from /proc/PID/stat, from the first send to the last
# talker's stop (chatload -cpu): the sidecar's (or Daphne's) process; Redis's
# process; PostgreSQL's whole cluster: the postmaster and every process it
# forked (backends, the feed's WAL sender, checkpointer, WAL writer,
# autovacuum, ...), including those that exited in the window (the
# postmaster's cutime+cstime). The load tool's CPU (chatload's, shown in
# the notes; pgbench's) is not in the totals. Every number is a lower bound on a machine whose cores the
# load tool, the servers and whatever else runs share: the 1-minute load
# average is printed at each run's start.
#
#   ./scripts/bench.sh
#   QUICK=1 ./scripts/bench.sh                         # fewer, shorter runs
#   RUNS="ceiling w2" FEEDS=on ./scripts/bench.sh      # some of the runs
#   W2_CONVS=100 SIDECAR_ENV="DB_MAX_CONNS=40" ./scripts/bench.sh
#
# RUNS (in this order): ceiling python w1 w2 w3 w4 redis w5. Outputs and
# logs stay in $WORK (the database too with KEEP_PG=1). PGSS_PLANNING=on
# adds each statement's planning time to chatload's outputs; PROFILE=8 keeps
# a CPU profile of each sidecar run's first 8 seconds (go tool pprof). Each
# sidecar run's final /metrics stay in $WORK/ID.metrics.
#
# Needs root or the postgres OS user's rights (initdb runs as postgres),
# PostgreSQL 15+ server programs, pgbench, redis-server and the Python
# pieces of tests/django (/usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
	d() { echo "$2"; }
else
	d() { echo "$1"; }
fi
RUNS=${RUNS:-ceiling python w1 w2 w3 w4 redis w5}
FEEDS=${FEEDS:-off on}
REDIS_FEEDS=${REDIS_FEEDS:-on}
PGBENCH_CLIENTS=${PGBENCH_CLIENTS:-8}
PGBENCH_TIME=${PGBENCH_TIME:-$(d 10 3)}
PGBENCH_MODE=${PGBENCH_MODE:-prepared} # pgbench -M: prepared plans each statement once per client
PGBENCH_EACH=${PGBENCH_EACH:-$(d 5 2)}  # seconds of pgbench just before each chat run (0: none)
PY_CONVS=${PY_CONVS:-$(d 5 5)}
PY_MESSAGES=${PY_MESSAGES:-$(d 50 10)}
W1_CONVS=${W1_CONVS:-$(d 5 5)}
W1_MESSAGES=${W1_MESSAGES:-$(d 50 20)}
W2_CONVS=${W2_CONVS:-$(d 50 20)}
W2_MESSAGES=${W2_MESSAGES:-$(d 200 30)}
W3_CONVS=${W3_CONVS:-$(d 20 10)}
W3_PREFILL=${W3_PREFILL:-$(d 200 200)}
W3_MESSAGES=${W3_MESSAGES:-$(d 100 20)}
W4_DURATION=${W4_DURATION:-$(d 15s 4s)}
W4_RATE=${W4_RATE:-} # total msgs/s offered; default: half workload 2's closed-loop rate
W5_CONNS=${W5_CONNS:-$(d 10000 1000)}
SIDECAR_ENV=${SIDECAR_ENV:-}
PGSS_PLANNING=${PGSS_PLANNING:-off} # on: chatload's outputs show each statement's planning time
PROFILE=${PROFILE:-0} # N > 0: a CPU profile of each sidecar run's first N seconds, in $WORK/ID.cpu.pprof
REF_DSN=${REF_DSN:-postgres://postgres@127.0.0.1:5432/postgres}
PY=/usr/bin/python3
GO=$(command -v go || echo /usr/local/go/bin/go)
WORK=${WORK:-$(mktemp -d /tmp/bench.XXXXXX)}
export SECRET_KEY=bench-secret-key
CLK_TCK=$(getconf CLK_TCK)

log() { printf 'bench: %s\n' "$*" >&2; }
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
DB=bench
cleanup_more() {
	if [ "${KEEP_PG:-0}" != 1 ]; then rm -rf "$PGDATA" "$WORK/sidecar" "$WORK/chatload" "$WORK/connload"; fi
}

# Connections: 10,000 idle sockets need as many descriptors in the sidecar
# and in connload.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((W5_CONNS + 1000)) ]; then
	log "ulimit -n is $(ulimit -n): workload 5 may run out of file descriptors"
fi

# The shared server's durability settings, so that the ceiling is
# comparable; PostgreSQL's defaults when it does not answer.
durability=(synchronous_commit fsync full_page_writes wal_sync_method)
declare -A dur=([synchronous_commit]=on [fsync]=on [full_page_writes]=on [wal_sync_method]=fdatasync)
dur_from="PostgreSQL's defaults ($REF_DSN did not answer)"
if ref=$(psql "$REF_DSN" -XAt -c "SELECT string_agg(name || '=' || setting, ' ') FROM pg_settings
	WHERE name IN ('synchronous_commit', 'fsync', 'full_page_writes', 'wal_sync_method')" 2>/dev/null); then
	for kv in $ref; do dur[${kv%%=*}]=${kv#*=}; done
	dur_from="the shared server ($REF_DSN)"
fi
pgopts="-c max_connections=300"
pgopts+=" -c wal_level=logical -c max_wal_senders=10 -c max_replication_slots=10"
pgopts+=" -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.max=10000"
pgopts+=" -c pg_stat_statements.track_planning=$PGSS_PLANNING"
for k in "${durability[@]}"; do pgopts+=" -c $k=${dur[$k]}"; done

start_postgres -- "$pgopts"
POSTMASTER=$(head -1 "$PGDATA/postmaster.pid")
LOAD_DB=$ADMIN_URL/$DB?sslmode=disable
psql "$ADMIN_URL/postgres" -qX -v ON_ERROR_STOP=1 -c "CREATE DATABASE $DB"
psql "$LOAD_DB" -qX -v ON_ERROR_STOP=1 -c "CREATE EXTENSION pg_stat_statements"
# Django's migrations, the feed's publication among them (chat 0002).
DATABASE_URL=$LOAD_DB "$PY" tests/django/manage.py migrate -v0
# The sidecar's role as docs/deployment.md sets it up: it may replicate
# and use the tables, nothing more.
psql "$LOAD_DB" -qX -v ON_ERROR_STOP=1 -c "CREATE ROLE sidecar LOGIN REPLICATION" \
	-c "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO sidecar" \
	-c "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO sidecar"
[ "$(psql "$LOAD_DB" -XAtc "SELECT count(*) FROM pg_publication WHERE pubname = 'sidecar_feed'")" = 1 ] ||
	{ log "the migrations did not create the publication sidecar_feed"; exit 1; }
SIDECAR_DB=postgres://sidecar@127.0.0.1:$PGPORT/$DB?sslmode=disable

start_redis

"$GO" build -o "$WORK/sidecar" .
"$GO" build -o "$WORK/chatload" ./cmd/chatload
"$GO" build -o "$WORK/connload" ./cmd/connload

# ticks PID [tree]: CPU clock ticks so far of PID (utime+stime), or of PID
# and every child (each one's utime+stime+cutime+cstime).
ticks() {
	{
		cat "/proc/$1/stat"
		if [ -n "${2:-}" ]; then
			for c in $(ps -o pid= --ppid "$1"); do cat "/proc/$c/stat" 2>/dev/null || true; done
		fi
	} | sed 's/.*) //' | awk -v tree="${2:-}" '{ s += $12 + $13; if (tree != "") s += $14 + $15 } END { print s }'
}
children() { ps -o pid= --ppid "$1" | wc -l; }

# settle: every run starts from a checkpointed, vacuumed database.
settle() {
	psql "$LOAD_DB" -qX -c CHECKPOINT -c "VACUUM ANALYZE chat_message, chat_conversation" >/dev/null
}

SIDECAR_PID=
# start_sidecar NAME FEED LAYER: a fresh sidecar, its log in $WORK/NAME.log.
start_sidecar() {
	local name=$1 feed=$2 layer=$3
	DATABASE_URL=$SIDECAR_DB LISTEN_ADDR=127.0.0.1:$GO_PORT ADMIN_ADDR=127.0.0.1:$ADMIN_PORT \
		FEED=$feed CHANNEL_LAYER=$layer REDIS_URL=redis://127.0.0.1:$RPORT RATE_LIMIT=0 MAX_USER_CONNECTIONS=0 \
		LOG_LEVEL=info env $SIDECAR_ENV "$WORK/sidecar" >"$WORK/$name.log" 2>&1 &
	SIDECAR_PID=$!
	pids+=("$SIDECAR_PID")
	wait_port "$GO_PORT" sidecar
	if [ "$feed" = on ] && ! grep -q 'feed on' "$WORK/$name.log"; then
		log "$name: FEED=on but the sidecar's log does not say \"feed on\""
		exit 1
	fi
	if [ "$feed" = off ] && grep -q 'feed on' "$WORK/$name.log"; then
		log "$name: FEED=off but the sidecar's log says \"feed on\""
		exit 1
	fi
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# The results, by run id.
declare -A R_WL R_SERVER R_FEED R_LAYER R_RATE R_P50 R_P99 R_SRV R_PG R_REDIS R_LOAD R_NOTE
order=()
record() { # id description server feed layer
	order+=("$1")
	R_WL[$1]=$2 R_SERVER[$1]=$3 R_FEED[$1]=$4 R_LAYER[$1]=$5
}

# val FILE LINE-PREFIX KEY: KEY= on the first line of FILE that begins
# with LINE-PREFIX.
# dur_ms: a Go duration (850µs, 12.34ms, 1.2s) in milliseconds.
dur_ms() {
	awk -v d="$1" 'BEGIN {
		if (d ~ /µs$/) { sub(/µs$/, "", d); printf "%.2f", d / 1000 }
		else if (d ~ /ms$/) { sub(/ms$/, "", d); printf "%.1f", d }
		else if (d ~ /[0-9]s$/) { sub(/s$/, "", d); printf "%.0f", d * 1000 }
		else if (d == "0s") print "0"
		else print "-" }'
}

# chatload_run ID URL SERVER-PROCESS-NAME SERVER-PID ARGS...: one chatload
# run with CPU, metrics and statements; output in $WORK/ID.out.
chatload_run() {
	local id=$1 url=$2 sname=$3 spid=$4
	shift 4
	settle
	R_LOAD[$id]=$(loadavg)
	log "$id: load average ${R_LOAD[$id]}; chatload $*"
	local failed=
	"$WORK/chatload" -dsn "$LOAD_DB" -url "$url" -pgss -clk-tck "$CLK_TCK" \
		-cpu "$sname=$spid" -cpu redis="$REDIS_PID" -cpu-tree postgres="$POSTMASTER" "$@" >"$WORK/$id.out" 2>&1 ||
		failed=$(tail -1 "$WORK/$id.out" | sed 's/|/\\|/g')
	if [ -n "$failed" ]; then log "$id: chatload failed (see $WORK/$id.out)"; fi
	cat "$WORK/$id.out" >&2
	local f=$WORK/$id.out
	R_RATE[$id]=$(val "$f" conversations= rate | tr -d /s)
	R_P50[$id]=$(dur_ms "$(val "$f" conversations= p50)")
	R_P99[$id]=$(dur_ms "$(val "$f" conversations= p99)")
	R_SRV[$id]=$(val "$f" "cpu name=$sname" per_message_ms)
	R_PG[$id]=$(val "$f" "cpu name=postgres" per_message_ms)
	R_REDIS[$id]=$(val "$f" "cpu name=redis" per_message_ms)
	local notes=() lost errors stmts hits parts ended tool
	if [ -n "$failed" ]; then notes+=("**chatload failed**: $failed"); fi
	lost=$(val "$f" conversations= lost) errors=$(val "$f" conversations= errors)
	if [ "${lost:-0}" != 0 ]; then notes+=("$lost lost"); fi
	if [ "${errors:-0}" != 0 ]; then notes+=("$errors error frames"); fi
	ended=$(val "$f" conversations= ended)
	if [ "${ended:-0}" != 0 ]; then
		notes+=("**$ended talkers ended early** ($(grep -m1 '^  ended early: ' "$f" | sed 's/^  ended early: //; s/|/\\|/g'))")
	fi
	stmts=$(val "$f" "db role=$sname" statements_per_message)
	if [ -n "$stmts" ]; then notes+=("$stmts statements/msg"); fi
	parts=$(val "$f" "cpu_parts name=postgres" per_message_ms | tr ',' '\n' |
		awk -F: '$2 >= 0.01 { sub(/^backend_/, "", $1); printf "%s%s %s", n++ ? ", " : "", $1, $2 }')
	if [ -n "$parts" ]; then notes+=("PostgreSQL ms/msg: $parts"); fi
	tool=$(val "$f" "cpu name=chatload" per_message_ms)
	if [ -n "$tool" ]; then notes+=("load tool $tool ms/msg"); fi
	hits=$(val "$f" feed hits_per_message)
	if [ -n "$hits" ]; then
		notes+=("feed cache hits/msg $hits")
		if [ "$(val "$f" feed not_exact)" != 0 ]; then notes+=("$(val "$f" feed not_exact) not exact"); fi
	fi
	R_NOTE[$id]=$(
		IFS=';'
		echo "${notes[*]}" | sed 's/;/; /g'
	)
}

# sidecar_run ID WORKLOAD FEED LAYER ARGS...: chatload against a fresh
# sidecar.
sidecar_run() {
	local id=$1 wl=$2 feed=$3 layer=$4
	shift 4
	record "$id" "$(desc "$wl")" sidecar "$feed" "$layer"
	ceiling_now "$id"
	start_sidecar "$id" "$feed" "$layer"
	local prof=
	if [ "$PROFILE" -gt 0 ]; then
		curl -fsS -o "$WORK/$id.cpu.pprof" "http://127.0.0.1:$ADMIN_PORT/debug/pprof/profile?seconds=$PROFILE" &
		prof=$!
	fi
	chatload_run "$id" "ws://127.0.0.1:$GO_PORT" sidecar "$SIDECAR_PID" \
		-metrics-url "http://127.0.0.1:$ADMIN_PORT/metrics" "$@"
	if [ -n "$prof" ]; then wait "$prof" || log "$id: no CPU profile"; fi
	curl -fsS -o "$WORK/$id.metrics" "http://127.0.0.1:$ADMIN_PORT/metrics" || log "$id: no metrics"
	stop "$SIDECAR_PID"
	if [ "$feed" = on ] && [ -z "$(val "$WORK/$id.out" feed cache_hits)" ]; then
		log "$id: FEED=on but no sidecar_history_cache_hits_total in the metrics"
	fi
}

desc() {
	case $1 in
	1) echo "1: $W1_CONVS convs, history 0→$W1_MESSAGES, closed" ;;
	2) echo "2: $W2_CONVS convs, history 0→$W2_MESSAGES, closed" ;;
	3) echo "3: $W3_CONVS convs, history $W3_PREFILL→$((W3_PREFILL + W3_MESSAGES)), closed" ;;
	4) echo "4: $W2_CONVS convs, open loop at ½ of 2" ;;
	5) echo "5: $W5_CONNS idle connections" ;;
	esac
}

has() { case " $RUNS " in *" $1 "*) return 0 ;; esac; return 1; }

# The ceiling: pgbench on conversations of its own, one per client.
CEILING=
cbase= tdelta=
if has ceiling; then
	n=$PGBENCH_CLIENTS
	psql "$LOAD_DB" -qX -v ON_ERROR_STOP=1 <<SQL
INSERT INTO users_user (password, last_login, is_superuser, email, full_name, user_type, phone_number,
	birthday, language, is_active, is_staff, is_verified, created_at, updated_at)
SELECT '!pgbench', NULL, false, 'pgbench-' || r || '-' || g || '@example.com', '', r, '', NULL, 'en',
	true, false, false, now(), now()
FROM (VALUES ('listener'), ('talker')) v(r) CROSS JOIN generate_series(0, $n - 1) g ORDER BY r, g;
INSERT INTO chat_conversation (listener_id, talker_id, status, created_at, updated_at, accepted_at,
	rejected_at, last_message_at, initial_message)
SELECT l.id, t.id, 'active', now(), now(), now(), NULL, NULL, ''
FROM generate_series(0, $n - 1) g
JOIN users_user l ON l.email = 'pgbench-listener-' || g || '@example.com'
JOIN users_user t ON t.email = 'pgbench-talker-' || g || '@example.com'
ORDER BY g;
SQL
	# Client i writes to the i-th conversation, as its talker.
	read -r cbase tdelta ok < <(psql "$LOAD_DB" -XAt -F' ' -c "SELECT min(c.id), min(c.talker_id - c.id),
		count(DISTINCT c.talker_id - c.id) = 1 AND max(c.id) - min(c.id) = count(*) - 1
		FROM chat_conversation c JOIN users_user t ON t.id = c.talker_id WHERE t.email LIKE 'pgbench-talker-%'")
	[ "$ok" = t ] || { log "pgbench conversations: ids not contiguous"; exit 1; }
	cat >"$WORK/message.sql" <<'SQL'
\set conv :cbase + :client_id
\set sender :conv + :tdelta
BEGIN;
INSERT INTO chat_message (conversation_id, sender_id, content, message_type, is_read, created_at)
	VALUES (:conv, :sender, '1714000000000000000 c1-1 xxxxxxx', 'text', false, now());
UPDATE chat_conversation SET last_message_at = now() WHERE id = :conv;
END;
SQL
fi
# pgbench_tps SECONDS OUT: pgbench's message transactions for SECONDS,
# its output in OUT; prints the TPS.
pgbench_tps() {
	pgbench -n -M "$PGBENCH_MODE" -c "$PGBENCH_CLIENTS" -j 2 -T "$1" -D cbase="$cbase" -D tdelta="$tdelta" \
		-f "$WORK/message.sql" "$LOAD_DB" >"$2" 2>&1
	grep -m1 '^tps = ' "$2" | awk '{ printf "%.0f", $3 }'
}

# ceiling_now ID: the ceiling just before run ID (before its server
# starts), in R_CEIL[ID]: the machine's other work (CPU, and other
# databases' fsyncs on the same disk) moves it during the benchmark.
declare -A R_CEIL
ceiling_now() {
	if [ -z "$cbase" ] || [ "$PGBENCH_EACH" = 0 ]; then return 0; fi
	settle
	R_CEIL[$1]=$(pgbench_tps "$PGBENCH_EACH" "$WORK/$1.pgbench")
	log "$1: the ceiling just before: ${R_CEIL[$1]} TPS"
}

# ceiling_run ID WHEN: one pgbench run; its TPS in R_RATE[ID].
ceiling_run() {
	local id=$1 n=$PGBENCH_CLIENTS t0 t1 txns kids
	record "$id" "pgbench ($2): INSERT message + UPDATE last_message_at" pgbench - -
	settle
	R_LOAD[$id]=$(loadavg)
	log "$id: load average ${R_LOAD[$id]}; pgbench -c $n -T $PGBENCH_TIME"
	kids=$(children "$POSTMASTER")
	t0=$(ticks "$POSTMASTER" tree)
	R_RATE[$id]=$(pgbench_tps "$PGBENCH_TIME" "$WORK/$id.out")
	# pgbench's backends exit as it does; until the postmaster has reaped
	# them, their time is neither theirs nor its.
	for _ in $(seq 100); do
		[ "$(children "$POSTMASTER")" -le "$kids" ] && break
		sleep 0.05
	done
	t1=$(ticks "$POSTMASTER" tree)
	cat "$WORK/$id.out" >&2
	txns=$(grep -m1 'number of transactions actually processed' "$WORK/$id.out" | awk -F': ' '{ split($2, a, "/"); print a[1] }')
	R_P50[$id]=- R_P99[$id]=- R_SRV[$id]=- R_REDIS[$id]=-
	R_PG[$id]=$(awk -v t="$((t1 - t0))" -v n="$txns" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", t * 1000 / hz / n }')
	R_NOTE[$id]="$n clients, ${PGBENCH_TIME}s, -M $PGBENCH_MODE, $txns transactions, latency avg $(grep -m1 '^latency average' "$WORK/$id.out" | awk '{ print $4 " " $5 }')"
}
if has ceiling; then ceiling_run ceiling-start "before the runs"; fi

if has python; then
	record python "1: $PY_CONVS convs, history 0→$PY_MESSAGES, closed" "Daphne (Python)" - memory
	ceiling_now python
	(cd tests/django && DATABASE_URL=$LOAD_DB CHANNEL_LAYER=memory ALLOWED_HOSTS='*' PYTHONPATH=. \
		PYTHONDONTWRITEBYTECODE=1 exec "$PY" -m daphne -b 127.0.0.1 -p "$PY_PORT" project.asgi:application) \
		>"$WORK/python.log" 2>&1 &
	py=$!
	pids+=("$py")
	wait_port "$PY_PORT" Daphne
	chatload_run python "ws://127.0.0.1:$PY_PORT" daphne "$py" -conversations "$PY_CONVS" -messages "$PY_MESSAGES"
	# Daphne's role is the load tool's (postgres), which runs no statement
	# in the window: every statement counted is Daphne's.
	stmts=$(val "$WORK/python.out" "db role=postgres" statements_per_message)
	R_NOTE[python]="ChatConsumer, history 0→$PY_MESSAGES${stmts:+; $stmts statements/msg}${R_NOTE[python]:+; ${R_NOTE[python]}}"
	stop "$py"
fi

# Workloads 1-4, FEED off and on interleaved.
declare -A W2_RATE
if has w1; then for feed in $FEEDS; do
	sidecar_run "w1-$feed" 1 "$feed" memory -conversations "$W1_CONVS" -messages "$W1_MESSAGES"
done; fi
if has w2; then for feed in $FEEDS; do
	sidecar_run "w2-$feed" 2 "$feed" memory -conversations "$W2_CONVS" -messages "$W2_MESSAGES"
	W2_RATE[$feed]=${R_RATE[w2-$feed]}
done; fi
if has w3; then for feed in $FEEDS; do
	sidecar_run "w3-$feed" 3 "$feed" memory -conversations "$W3_CONVS" -prefill "$W3_PREFILL" -messages "$W3_MESSAGES"
done; fi
if has w4; then for feed in $FEEDS; do
	total=${W4_RATE:-$(awk -v r="${W2_RATE[$feed]:-}" 'BEGIN { if (r > 0) printf "%.1f", r / 2 }')}
	if [ -z "$total" ]; then
		log "w4-$feed: no workload 2 rate for FEED=$feed (run w2, or set W4_RATE)"
		continue
	fi
	per=$(awk -v t="$total" -v n="$W2_CONVS" 'BEGIN { printf "%.3f", t / n }')
	sidecar_run "w4-$feed" 4 "$feed" memory -conversations "$W2_CONVS" -duration "$W4_DURATION" -rate "$per"
	R_NOTE[w4-$feed]="offered $total msgs/s ($per per talker, $W4_DURATION); ${R_NOTE[w4-$feed]}"
done; fi
if has redis; then for feed in $REDIS_FEEDS; do
	redis-cli -p "$RPORT" flushall >/dev/null
	sidecar_run "w2-$feed-redis" 2 "$feed" redis -conversations "$W2_CONVS" -messages "$W2_MESSAGES"
done; fi

if has w5; then
	record w5 "$(desc 5)" sidecar on memory
	start_sidecar w5 on memory
	settle
	R_LOAD[w5]=$(loadavg)
	log "w5: load average ${R_LOAD[w5]}; connload -n $W5_CONNS"
	s0=$(ticks "$SIDECAR_PID")
	p0=$(ticks "$POSTMASTER" tree)
	# connload seeds its conversations before it connects; the sidecar is
	# idle meanwhile, so its ticks over the whole command are the connects'.
	prof=
	if [ "$PROFILE" -gt 0 ]; then
		curl -fsS -o "$WORK/w5.cpu.pprof" "http://127.0.0.1:$ADMIN_PORT/debug/pprof/profile?seconds=$PROFILE" &
		prof=$!
	fi
	"$WORK/connload" -dsn "$LOAD_DB" -url "ws://127.0.0.1:$GO_PORT" -pid "$SIDECAR_PID" -n "$W5_CONNS" \
		>"$WORK/w5.out" 2>&1 || log "w5: connload failed (see $WORK/w5.out)"
	if [ -n "$prof" ]; then wait "$prof" || log "w5: no CPU profile"; fi
	s1=$(ticks "$SIDECAR_PID")
	p1=$(ticks "$POSTMASTER" tree)
	stop "$SIDECAR_PID"
	cat "$WORK/w5.out" >&2
	f=$WORK/w5.out
	opened=$(awk '/^connections/ { print $2 }' "$f")
	failed=$(awk '/^connections/ { print $4 }' "$f")
	cps=$(awk '/^connects\/s/ { print $2 }' "$f")
	kib=$(grep -o '[0-9.]* KiB per idle connection' "$f" | cut -d' ' -f1)
	hs=$(awk '/^handshake/ { print "p50 " $3 ", p99 " $5 }' "$f")
	W5_KIB=$kib W5_CPS=$cps
	R_RATE[w5]=- R_P50[w5]=- R_P99[w5]=- R_REDIS[w5]=-
	per_connect() { awk -v t="$1" -v n="${opened:-0}" -v hz="$CLK_TCK" 'BEGIN { if (n > 0) printf "%.3f/connect", t * 1000 / hz / n; else print "-" }'; }
	R_SRV[w5]=$(per_connect $((s1 - s0)))
	R_PG[w5]=$(per_connect $((p1 - p0)))
	R_NOTE[w5]="**${opened:-0} idle connections ($failed failed): ${kib:-?} KiB each, ${cps:-?} connects/s**, handshake $hs"
fi

# The ceiling again: the machine's other work varies during the runs.
# "The ceiling" is the mean of the two.
if has ceiling; then
	ceiling_run ceiling-end "after the runs"
	CEILING=$(awk -v a="${R_RATE[ceiling-start]}" -v b="${R_RATE[ceiling-end]}" 'BEGIN { printf "%.0f", (a + b) / 2 }')
fi

# The table.
pct() { # RATE [CEILING]
	awk -v r="$1" -v c="${2:-$CEILING}" 'BEGIN { if (!(c > 0 && r ~ /^[0-9.]+$/)) print "-"
		else if (100 * r / c < 10) printf "%.1f %%", 100 * r / c; else printf "%.0f %%", 100 * r / c }'
}
total() {
	awk -v a="$1" -v b="$2" -v c="$3" 'BEGIN { if (a !~ /^[0-9.]+$/ && b !~ /^[0-9.]+$/) { print "-"; exit }
		printf "%.3f", a + b + c }'
}
ver_pg=$("$pgbin/postgres" --version | awk '{ print $3 }')
echo
echo "## Benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo); shared by PostgreSQL, the server, Redis and the load tool (and any other work on the machine: see load)."
echo "$("$GO" version | awk '{ print $3 }'), PostgreSQL $ver_pg, $(redis-server --version | awk '{ print $1 " " $3 }' | sed 's/v=//'), Daphne $("$PY" -c 'import daphne; print(daphne.__version__)'), sidecar $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo '+changes')."
echo "PostgreSQL: private cluster, wal_level=logical, pg_stat_statements; $(for k in "${durability[@]}"; do printf '%s=%s ' "$k" "${dur[$k]}"; done)(as $dur_from)."
echo
echo "| workload | server | FEED | layer | msgs/s | ceiling just before | % of ceiling | p50 ms | p99 ms | server CPU ms/msg | PostgreSQL CPU ms/msg | Redis CPU ms/msg | total CPU ms/msg | load (1/5/15 min) | notes |"
echo "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|"
rows=()
for id in "${order[@]}"; do case $id in ceiling-*) rows+=("$id") ;; esac; done
for id in "${order[@]}"; do case $id in ceiling-*) ;; *) rows+=("$id") ;; esac; done
for id in "${rows[@]}"; do
	pc=$(pct "${R_RATE[$id]:-}" "${R_CEIL[$id]:-}")
	case $id in ceiling-*) pc=- ;; esac
	tot=-
	case $id in ceiling-* | w5) ;; *) tot=$(total "${R_SRV[$id]:-}" "${R_PG[$id]:-}" "${R_REDIS[$id]:-}") ;; esac
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
		"${R_WL[$id]}" "${R_SERVER[$id]}" "${R_FEED[$id]}" "${R_LAYER[$id]}" "${R_RATE[$id]:--}" "${R_CEIL[$id]:--}" "$pc" \
		"${R_P50[$id]:--}" "${R_P99[$id]:--}" "${R_SRV[$id]:--}" "${R_PG[$id]:--}" "${R_REDIS[$id]:--}" "$tot" \
		"${R_LOAD[$id]:--}" "${R_NOTE[$id]:-}"
done
cat <<EOF

- msgs/s: messages saved and delivered (the sender's own \`new_message\` came back) over the
  send window, first send to the last talker's stop. Ceiling just before: pgbench's TPS over
  ${PGBENCH_EACH}s right before the run (the machine's other work moves it); % of ceiling: of
  that, or without it of the mean of the two long pgbench runs ($CEILING).
- p50/p99: send → the listener's \`new_message\`. Workload 4: each talker sends at -rate, the
  talkers' sends spread evenly over the interval, and waits for its reply (a late reply skips
  ticks: "offered" is the rate asked for).
- CPU ms/msg: utime+stime (/proc/PID/stat, ${CLK_TCK} ticks/s) over the send window, per message
  sent (lost ones included: no reply within 5 s, usually saved and delivered late).
  server: the sidecar's process (or Daphne's); PostgreSQL: the whole private cluster, postmaster
  and every process it forked (backends, the feed's WAL sender, checkpointer, WAL writer,
  autovacuum), those that exited in the window included; Redis: redis-server (idle on the
  memory layer). For the ceiling, PostgreSQL's CPU per pgbench transaction. The load tool's
  CPU (chatload's, in the notes; pgbench's) is not counted in the total.
- statements/msg: pg_stat_statements calls of the server's database role per message.
- PostgreSQL ms/msg in the notes: the cluster's CPU by process: the server role's backends
  (sidecar, or postgres for Daphne and the tables' owner), the feed's walsender, background
  (checkpointer, WAL writer, ...), autovacuum, exited (backends that ended in the window).
- Workload 5: CPU per connect over all of connload's connects (PostgreSQL's also holds
  connload's seeding of 100 conversations); KiB each: the sidecar's VmRSS growth over the idle
  connections.
- Outputs and logs: $WORK
EOF

# The issue's targets.
echo
echo "Targets:"
verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo "NOT met"; fi; }
num() { [[ ${1:-} =~ ^[0-9.]+$ ]]; }
# share ID: the run's throughput in % of its ceiling.
share() { awk -v r="${R_RATE[$1]}" -v c="${R_CEIL[$1]:-$CEILING}" 'BEGIN { printf "%.1f", 100 * r / c }'; }
if [ -n "$CEILING" ] && num "${R_RATE[w2-on]:-}"; then
	v=$(share w2-on)
	echo "- workload 2, FEED=on ≥ 40 % of the ceiling: $v % — $(verdict "$v >= 40")"
fi
if [ -n "$CEILING" ] && num "${R_RATE[w2-off]:-}"; then
	v=$(share w2-off)
	echo "- workload 2, FEED=off ≥ 20 % of the ceiling: $v % — $(verdict "$v >= 20")"
	echo "- workload 2, FEED=off, sidecar CPU ≤ 0.5 ms/msg: ${R_SRV[w2-off]} — $(verdict "${R_SRV[w2-off]} <= 0.5")"
fi
if [ -n "$CEILING" ] && num "${R_RATE[w3-on]:-}"; then
	v=$(share w3-on)
	echo "- workload 3, FEED=on ≥ 30 % of the ceiling: $v % — $(verdict "$v >= 30")"
fi
if num "${R_PG[w3-on]:-}"; then
	echo "- PostgreSQL CPU with the feed ≤ 0.8 ms/msg at history 200 (workload 3, FEED=on): ${R_PG[w3-on]} — $(verdict "${R_PG[w3-on]} <= 0.8")"
fi
for feed in $FEEDS; do
	if num "${R_P99[w4-$feed]:-}"; then
		echo "- open loop at half capacity, FEED=$feed, p99 < 50 ms: ${R_P99[w4-$feed]} ms — $(verdict "${R_P99[w4-$feed]} < 50")"
	fi
done
if num "${W5_KIB:-}"; then
	echo "- idle connection ≤ 20 KiB: $W5_KIB KiB — $(verdict "$W5_KIB <= 20")"
fi
if num "${W5_CPS:-}"; then
	echo "- ≥ 3,000 connects/s: $W5_CPS — $(verdict "$W5_CPS >= 3000")"
fi
