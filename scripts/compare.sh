#!/usr/bin/env bash
# Starts the Python reference stack (Daphne: the Python ChatConsumer and the
# REST API of tests/django) and the sidecar side by side on one fresh
# PostgreSQL database, seeds a listener, a talker and a conversation, and
# prints what to connect to. Ctrl-C stops both.
#
#   ./scripts/compare.sh            # Python on :8000, sidecar on :8001
#   PY_PORT=9000 GO_PORT=9001 PG=postgres://postgres@127.0.0.1:5432 ./scripts/compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PG=${PG:-postgres://postgres@127.0.0.1:5432}
DB=${DB:-sidecar_compare}
PY_PORT=${PY_PORT:-8000}
GO_PORT=${GO_PORT:-8001}
PY=/usr/bin/python3
export SECRET_KEY=${SECRET_KEY:-compare-secret-key}
export DATABASE_URL="$PG/$DB?sslmode=disable"
export MEDIA_ROOT=${MEDIA_ROOT:-$(mktemp -d)}
export PUBLIC_BASE_URL=http://127.0.0.1:$PY_PORT
export ALLOWED_HOSTS='*'

PGOPTIONS=--client-min-messages=warning psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
"$PY" tests/django/manage.py migrate -v0
ids=$("$PY" tests/django/manage.py shell -c "
from django.contrib.auth import get_user_model
from chat.models import Conversation
U = get_user_model()
l = U.objects.create_user(email='listener@example.com', password='listener-pw', user_type='listener', full_name='Lena Listener')
t = U.objects.create_user(email='talker@example.com', password='talker-pw', user_type='talker')
c = Conversation.objects.create(listener=l, talker=t, status='active')
print(l.id, t.id, c.id)")
read -r LISTENER TALKER CONV <<<"$ids"
tokens=$("$PY" tests/django/manage.py mint_tokens "$LISTENER" "$TALKER")
tok() { "$PY" -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]]['access'])" "$tokens" "$1"; }
LTOK=$(tok "$LISTENER")
TTOK=$(tok "$TALKER")

go build -o "${TMPDIR:-/tmp}/sidecar-compare" .
(cd tests/django && PYTHONPATH=. exec "$PY" -m daphne -b 127.0.0.1 -p "$PY_PORT" project.asgi:application) &
py_pid=$!
LISTEN_ADDR=127.0.0.1:$GO_PORT "${TMPDIR:-/tmp}/sidecar-compare" &
go_pid=$!
trap 'kill $py_pid $go_pid 2>/dev/null; wait' EXIT INT TERM

cat <<MSG

Python reference (Daphne) and the sidecar share database $DB and MEDIA_ROOT=$MEDIA_ROOT.
Conversation $CONV: listener $LISTENER (listener@example.com), talker $TALKER (talker@example.com).

  Python  listener: ws://127.0.0.1:$PY_PORT/ws/chat/$CONV/?token=$LTOK
  Python  talker:   ws://127.0.0.1:$PY_PORT/ws/chat/$CONV/?token=$TTOK
  sidecar listener: ws://127.0.0.1:$GO_PORT/ws/chat/$CONV/?token=$LTOK
  sidecar talker:   ws://127.0.0.1:$GO_PORT/ws/chat/$CONV/?token=$TTOK

  e.g. /usr/bin/python3 -m websockets 'ws://127.0.0.1:$GO_PORT/ws/chat/$CONV/?token=$TTOK'
  then type {"type": "chat_message", "message": "hello"}

Block and unblock through the Python REST API (T1/T5 of the timeline):
  curl -X POST -H 'Authorization: Bearer $LTOK' -H 'Content-Type: application/json' \\
       -d '{"talker_id": $TALKER}' http://127.0.0.1:$PY_PORT/api/listener/profiles/block_talker/
  curl -X POST -H 'Authorization: Bearer $LTOK' -H 'Content-Type: application/json' \\
       -d '{"talker_id": $TALKER}' http://127.0.0.1:$PY_PORT/api/listener/profiles/unblock_talker/

Ctrl-C stops both servers.
MSG
wait
