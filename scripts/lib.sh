# Shared by the measuring scripts (bench.sh, inbox-compare.sh): free ports,
# a private PostgreSQL server and redis-server in $WORK, and stopping them
# on exit. Source it after setting WORK, PY and log().

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_port() { # port what
	for _ in $(seq 600); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	log "$2 did not listen on port $1"
	return 1
}

# val FILE PREFIX KEY: the value of KEY=... on FILE's first line starting
# with PREFIX (chatload's outputs).
val() { grep -m1 "^$2" "$1" 2>/dev/null | grep -o "\b$3=[^ ]*" | head -1 | cut -d= -f2- || true; }

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

pgbin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

PGPORT=$(free_port)
RPORT=$(free_port)
GO_PORT=$(free_port)
ADMIN_PORT=$(free_port)
PY_PORT=$(free_port)
PGDATA=$WORK/pg
ADMIN_URL=postgres://postgres@127.0.0.1:$PGPORT

# Processes to stop on exit; the private PostgreSQL server is stopped too,
# and then cleanup_more runs (a script may define it).
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ -f "$PGDATA/postmaster.pid" ]; then
		as_postgres "$pgbin/pg_ctl" -D "$PGDATA" -m immediate stop >/dev/null 2>&1 || true
	fi
	if declare -F cleanup_more >/dev/null; then cleanup_more; fi
}
trap cleanup EXIT INT TERM

start_postgres() { # extra initdb flags..., then -- and the server's options
	local init=()
	while [ "$#" -gt 0 ] && [ "$1" != -- ]; do init+=("$1"); shift; done
	shift
	mkdir -p "$PGDATA"
	[ "$(id -u)" = 0 ] && chown postgres: "$WORK" "$PGDATA"
	as_postgres "$pgbin/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C "${init[@]}" >/dev/null
	as_postgres "$pgbin/pg_ctl" -D "$PGDATA" -l "$WORK/pg.log" -w -o "-p $PGPORT -c listen_addresses=127.0.0.1 -c unix_socket_directories= $*" start >/dev/null
}

start_redis() { # sets REDIS_PID
	redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
	REDIS_PID=$!
	pids+=("$REDIS_PID")
	wait_port "$RPORT" redis-server
}
