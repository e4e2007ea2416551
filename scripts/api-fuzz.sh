#!/usr/bin/env bash
# Schema-driven fuzzing of `messaging serve` with schemathesis (PyPI): every
# operation of the OpenAPI the server serves, API_FUZZ_EXAMPLES generated
# requests each (default 25), as the operator on /v1/admin and as a user on
# /v1/me, and the webhooks without a token; fails on any 5xx (schemathesis's
# not_a_server_error check, and a 5xx in the server's log). Runs against the Redis and PostgreSQL of
# the environment in a key prefix and a schema of its own, removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
examples="${API_FUZZ_EXAMPLES:-25}"
command -v schemathesis >/dev/null 2>&1 || pip install -q "schemathesis>=4,<5"

id="$(date +%s)$$"
export MESSAGING_KEY_PREFIX="api-fuzz-$id"
export MESSAGING_DB_SCHEMA="api_fuzz_$id"
export MESSAGING_HTTP_USER_KEY="fuzz-user-key-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export MESSAGING_HTTP_ADMIN_TOKEN="fuzz-admin-token-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"

cargo build -q -p messaging-cli
bin="${CARGO_TARGET_DIR:-target}/debug/messaging"
log="$(mktemp)"
"$bin" serve --bind 127.0.0.1:0 2>"$log" &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  psql "$DATABASE_URL" -q -c "DROP SCHEMA IF EXISTS \"$MESSAGING_DB_SCHEMA\" CASCADE" >/dev/null 2>&1 || true
  redis-cli -u "$REDIS_URL" --scan --pattern "*$MESSAGING_KEY_PREFIX*" | xargs -r redis-cli -u "$REDIS_URL" DEL >/dev/null
  rm -f "$log"
}
trap cleanup EXIT

# The server prints `serve ready ADDR` once it listens.
for _ in $(seq 1 600); do
  grep -q "serve ready" "$log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "serve exited"; exit 1; }
  sleep 0.1
done
addr="$(sed -n 's/.*serve ready \([0-9.:]*\).*/\1/p' "$log" | head -1)"
[ -n "$addr" ] || { cat "$log"; echo "serve did not start"; exit 1; }
base="http://$addr"
admin=(-H "Authorization: Bearer $MESSAGING_HTTP_ADMIN_TOKEN")
user_token="$("$bin" token fuzz-user)"

# Something to find: a topic with a message, a notification for the user.
curl -fsS "${admin[@]}" -H 'Content-Type: application/json' -d '{"name":"fuzz.topic"}' "$base/v1/admin/topics" >/dev/null
"$bin" publish fuzz.topic --json '{"n": 1}' >/dev/null

run() {
  schemathesis run "$base/openapi.json" --checks not_a_server_error --max-examples "$examples" \
    --seed 20261204 --request-timeout 10 --suppress-health-check all --no-color "$@"
}
# The event stream never ends: it has API tests of its own.
run "${admin[@]}" --include-path-regex '^/v1/admin/'
run -H "Authorization: Bearer $user_token" --include-path-regex '^/v1/me/' --exclude-path /v1/me/events
run --include-path-regex '^/v1/webhooks/'
grep -E " 5[0-9][0-9] " "$log" && { echo "the server logged a 5xx"; exit 1; } || true
echo "api fuzz: no 5xx ($examples examples per operation)"
