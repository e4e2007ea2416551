#!/usr/bin/env bash
# Runs a command with REDIS_CLUSTER_URL naming a real Redis Cluster on loopback:
# the one the environment already names, or one started here with
# scripts/redis-cluster.sh (base port REDIS_CLUSTER_PORT, default 7101) and
# stopped, its files removed, when the command ends (whatever its outcome).
#
#   scripts/with-redis-cluster.sh cargo test -p messaging-redis --test cluster
set -euo pipefail
if [ -n "${REDIS_CLUSTER_URL:-}" ]; then
    exec "$@"
fi
here="$(cd "$(dirname "$0")" && pwd)"
base="${REDIS_CLUSTER_PORT:-7101}"
trap 'bash "$here/redis-cluster.sh" stop "$base" >/dev/null 2>&1 || true' EXIT
url="$(bash "$here/redis-cluster.sh" start "$base" | tail -n 1)"
export REDIS_CLUSTER_URL="$url"
echo "with-redis-cluster: REDIS_CLUSTER_URL=$url" >&2
"$@"
