#!/usr/bin/env bash
# Measures what the conversation-list sockets (ws/conversations/) cost the
# chat, on the sidecar and on the Python reference, and whether their lists
# end current. One fresh database on a private PostgreSQL server of its own
# (with pg_stat_statements, to count every statement per database role; the
# shared server is not touched), one private redis-server, three runs of
# cmd/chatload against it, each with freshly started servers:
#
#   sidecar  inboxes on the sidecar
#   daphne   inboxes on Daphne (Python's ConversationListConsumer)
#   none     no inboxes: the baseline chat throughput
#
# In every run the chat (talkers and listeners) is on the sidecar, closed
# loop at its full rate (RATE_LIMIT=0), both servers on CHANNEL_LAYER=redis
# with one prefix, so Python's list consumers get the sidecar's
# conversation_update events. Every participant has an inbox socket; each
# listener's list has INBOX_SIZE other conversations besides the load's.
# The sidecar connects to the database as role "sidecar", Daphne as role
# "django", chatload and the tables' owner are "postgres", so
# pg_stat_statements tells their statements apart.
#
#   ./scripts/inbox-compare.sh
#   CONVS=50 INBOX_SIZE=20 DURATION=15s RUNS="sidecar daphne none" ROUNDS=2 ./scripts/inbox-compare.sh
#   SIDECAR_ENV="CHANNEL_LAYER_CAPACITY=1000" ./scripts/inbox-compare.sh   # extra sidecar settings
#
# ROUNDS repeats the RUNS, interleaved, to see the noise of a shared
# machine; each row shows the 1-minute load average when its run started.
#
# Needs root or the postgres OS user's rights (initdb runs as postgres), the
# postgresql server programs (/usr/lib/postgresql/<v>/bin), redis-server and
# the Python pieces of tests/django. Logs and outputs stay in $WORK.
set -euo pipefail
cd "$(dirname "$0")/.."

CONVS=${CONVS:-50}
INBOX_SIZE=${INBOX_SIZE:-20}
DURATION=${DURATION:-15s}
RUNS=${RUNS:-sidecar daphne none}
ROUNDS=${ROUNDS:-1}
SIDECAR_ENV=${SIDECAR_ENV:-}
PY=/usr/bin/python3
GO=$(command -v go || echo /usr/local/go/bin/go)
WORK=${WORK:-$(mktemp -d /tmp/inbox-compare.XXXXXX)}
export SECRET_KEY=inbox-compare-secret-key
PREFIX=inboxcmp

log() { printf 'inbox-compare: %s\n' "$*" >&2; }
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
DB=chatload

# The private PostgreSQL server: the shared server's durability settings
# (fsync, synchronous_commit: the defaults), plus pg_stat_statements.
start_postgres --no-sync -- -c max_connections=200 -c shared_preload_libraries=pg_stat_statements \
	-c pg_stat_statements.max=10000
psql "$ADMIN_URL/postgres" -qX -v ON_ERROR_STOP=1 \
	-c "CREATE ROLE sidecar LOGIN SUPERUSER" -c "CREATE ROLE django LOGIN SUPERUSER" -c "CREATE DATABASE $DB"
psql "$ADMIN_URL/$DB" -qX -v ON_ERROR_STOP=1 -c "CREATE EXTENSION pg_stat_statements"
DJANGO_DB=postgres://django@127.0.0.1:$PGPORT/$DB?sslmode=disable
SIDECAR_DB=postgres://sidecar@127.0.0.1:$PGPORT/$DB?sslmode=disable
LOAD_DB=$ADMIN_URL/$DB?sslmode=disable
# Tables owned by postgres: the foreign-key checks of every INSERT run as
# the owner, and must not be counted as Daphne's statements.
DATABASE_URL=$LOAD_DB "$PY" tests/django/manage.py migrate -v0

start_redis

"$GO" build -o "$WORK/sidecar" .
"$GO" build -o "$WORK/chatload" ./cmd/chatload

# run NAME INBOX_URL: fresh servers (and an empty Redis), one chatload run,
# its output in $WORK/NAME.out.
run() {
	local name=$1 inbox=$2 py go
	redis-cli -p "$RPORT" flushall >/dev/null
	(cd tests/django && DATABASE_URL=$DJANGO_DB CHANNEL_LAYER=redis REDIS_URL=redis://127.0.0.1:$RPORT \
		CHANNEL_LAYER_PREFIX=$PREFIX ALLOWED_HOSTS='*' PYTHONPATH=. PYTHONDONTWRITEBYTECODE=1 \
		exec "$PY" -m daphne -b 127.0.0.1 -p "$PY_PORT" project.asgi:application) >"$WORK/daphne-$name.log" 2>&1 &
	py=$!
	DATABASE_URL=$SIDECAR_DB LISTEN_ADDR=127.0.0.1:$GO_PORT ADMIN_ADDR=127.0.0.1:$ADMIN_PORT \
		CHANNEL_LAYER=redis REDIS_URL=redis://127.0.0.1:$RPORT CHANNEL_LAYER_PREFIX=$PREFIX \
		RATE_LIMIT=0 LOG_LEVEL=warn env $SIDECAR_ENV "$WORK/sidecar" >"$WORK/sidecar-$name.log" 2>&1 &
	go=$!
	pids+=("$py" "$go")
	wait_port "$PY_PORT" Daphne
	wait_port "$GO_PORT" sidecar
	local args=(-dsn "$LOAD_DB" -url "ws://127.0.0.1:$GO_PORT" -conversations "$CONVS" -duration "$DURATION"
		-inbox-size "$INBOX_SIZE" -metrics-url "http://127.0.0.1:$ADMIN_PORT/metrics" -pgss)
	[ -n "$inbox" ] && args+=(-inbox-url "$inbox")
	log "run $name: chatload ${args[*]}"
	echo "loadavg=$(loadavg | cut -d' ' -f1)" >"$WORK/$name.out"
	"$WORK/chatload" "${args[@]}" | tee -a "$WORK/$name.out" || log "run $name: chatload failed"
	kill "$py" "$go" 2>/dev/null || true
	wait "$py" "$go" 2>/dev/null || true
}

names=()
for round in $(seq "$ROUNDS"); do
	for r in $RUNS; do
		case $r in
		sidecar) run "$r-$round" "ws://127.0.0.1:$GO_PORT" ;;
		daphne) run "$r-$round" "ws://127.0.0.1:$PY_PORT" ;;
		none) run "$r-$round" "" ;;
		*) log "unknown run $r (sidecar, daphne, none)"; exit 2 ;;
		esac
		names+=("$r-$round")
	done
done

# val FILE LINE-PREFIX KEY: the value of KEY= on the first line of FILE
# that begins with LINE-PREFIX.

row() { printf '%-10s %5s %7s %9s %9s %5s %7s %5s %5s %8s %5s %7s %6s %6s\n' "$@"; }
echo
echo "$CONVS conversations, closed loop for $DURATION, inboxes of $INBOX_SIZE other conversations${SIDECAR_ENV:+, sidecar $SIDECAR_ENV}; outputs in $WORK"
row run load 'msgs/s' p50 p99 lost frames f/msg stale 'max lag' lists queries ovrcap recv/m
for name in "${names[@]}"; do
	f=$WORK/$name.out
	frames=- fpm=- stale=- lag=- lists=- queries=-
	if grep -q '^inboxes=' "$f"; then
		frames=$(val "$f" inboxes= inbox_frames)
		fpm=$(val "$f" inboxes= frames_per_message)
		stale=$(val "$f" inboxes= stale)
		lag=$(val "$f" inboxes= lag_max)
	fi
	case $name in
	sidecar-*) # one statement per computation (djangodb.Inbox)
		lists=$(val "$f" sidecar per_message)
		queries=$lists ;;
	daphne-*) # one computation per frame it sent; every statement of role django is list work
		lists=$fpm
		queries=$(val "$f" 'db role=django' statements_per_message) ;;
	none-*) lists=0 queries=0 ;;
	esac
	msgs=$(val "$f" conversations= messages)
	recv=$(val "$f" sidecar redis_receives)
	row "$name" "$(val "$f" loadavg loadavg)" "$(val "$f" conversations= rate)" \
		"$(val "$f" conversations= p50)" "$(val "$f" conversations= p99)" "$(val "$f" conversations= lost)" \
		"$frames" "$fpm" "$stale" "$lag" "$lists" "$queries" "$(val "$f" sidecar redis_over_capacity)" \
		"$(awk -v r="$recv" -v m="$msgs" 'BEGIN { if (m > 0) printf "%.2f", r / m; else print "-" }')"
done
echo
echo "load: 1-minute load average at the run's start ($(nproc) cores; other work on the machine counts)."
cat <<'EOF'
lost: messages whose sender got no new_message within 5 s (-reply-timeout).
frames: conversation_list_updated frames on all inbox sockets; f/msg: per chat message.
stale: inboxes whose last list frame does not show their load conversation's final
  total_messages and last_message_preview (the database's), once the inboxes were quiet
  for 3 s (at most 30 s after the talkers stopped).
max lag: over the current inboxes, the final message's send -> that inbox's last list frame.
lists / queries: list computations / list statements per chat message. Sidecar: its
  sidecar_inbox_updates_total{kind="computed"}, one statement each. Python: one computation
  per frame it sent; statements: every statement pg_stat_statements counted for role
  django (Daphne serves nothing but the inboxes).
ovrcap: sidecar_redis_over_capacity_total: events the sidecar's group sends dropped
  because the target process queue held CHANNEL_LAYER_CAPACITY messages.
recv/m: messages the sidecar's Redis layer received per chat message.
EOF
