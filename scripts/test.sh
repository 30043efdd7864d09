#!/usr/bin/env bash
# The test command of README.md: makes sure PostgreSQL, Redis, Go, Chromium, Prometheus and the
# Debian Python packages of the Django fixture are there (installing or
# starting what is missing, as root on Debian), then runs every test.
# Extra arguments go to `go test` (e.g. -run TestBlockingTimeline ./tests/e2e/).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

log() { printf 'test.sh: %s\n' "$*" >&2; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
		log "need root to run: $*"; return 1
	fi
}

apt_updated=
apt_install() {
	if [ -z "$apt_updated" ]; then
		as_root apt-get update -qq
		apt_updated=1
	fi
	log "installing $*"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Go.
if ! command -v go >/dev/null; then
	if [ -x /usr/local/go/bin/go ]; then
		export PATH=/usr/local/go/bin:$PATH
	else
		apt_install golang-go
	fi
fi

# Python pieces of the Django fixture, from Debian's packages.
PY=/usr/bin/python3
if ! "$PY" -c 'import django, rest_framework, rest_framework_simplejwt, channels, channels_redis, daphne, psycopg2, websockets' 2>/dev/null; then
	apt_install python3 python3-django python3-djangorestframework python3-djangorestframework-simplejwt \
		python3-django-channels python3-daphne python3-channels-redis python3-psycopg2 python3-websockets
fi

# Debian's Chromium, which the demo page's browser test drives (demo/browser_test.go).
command -v chromium >/dev/null || apt_install chromium

# Debian's podman, runc and static busybox, with which tests/container builds
# the Dockerfile offline (on a base image of busybox and the host's Go) and
# runs it.
command -v podman >/dev/null || apt_install podman
[ -x /usr/sbin/runc ] || command -v runc >/dev/null || apt_install runc
dpkg -s busybox-static >/dev/null 2>&1 || apt_install busybox-static

# Debian's Prometheus, which tests run as their own process on a free port
# (tests/testenv/prometheus.go); its recommended node exporter is not needed.
command -v prometheus >/dev/null || apt_install --no-install-recommends prometheus

# PostgreSQL on 127.0.0.1:5432 with trust auth for postgres.
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ! pg_up; then
	command -v pg_ctlcluster >/dev/null || apt_install postgresql postgresql-client
	ver=$(ls /etc/postgresql | sort -n | tail -1)
	if [ -z "$ver" ]; then log "no PostgreSQL cluster in /etc/postgresql"; exit 1; fi
	hba=/etc/postgresql/$ver/main/pg_hba.conf
	if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
		as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
	fi
	log "starting PostgreSQL $ver"
	as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start || as_root pg_ctlcluster "$ver" main start
	for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
pg_up || { log "PostgreSQL does not answer on 127.0.0.1:5432"; exit 1; }

# Redis on 127.0.0.1:6379.
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ]; }
if ! redis_up; then
	command -v redis-server >/dev/null || apt_install redis-server
	log "starting Redis"
	as_root mkdir -p /var/lib/redis /var/log/redis
	as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
		--dir /var/lib/redis --logfile /var/log/redis/ci.log
	for _ in $(seq 1 30); do redis_up && break; sleep 1; done
fi
redis_up || { log "Redis does not answer on 127.0.0.1:6379"; exit 1; }

# Under the test command a missing service fails a test instead of skipping it.
export SIDECAR_TEST_STRICT=1

go version >&2
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then log "gofmt would change: $unformatted"; exit 1; fi
go vet ./...
status=0
if [ $# -gt 0 ]; then
	go test -race -count=1 "$@" || status=$?
else
	go test -race -count=1 -timeout 20m ./... || status=$?
fi
log "total time $(( $(date +%s) - started )) s (exit $status)"
exit $status
