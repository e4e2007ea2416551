#!/usr/bin/env bash
# Runs a command with REDIS_CLUSTER_URL naming a real Redis Cluster on loopback:
# the one the environment already names, or one started here with
# scripts/redis-cluster.sh and stopped, its files removed, when the command ends
# (whatever its outcome). The base port is REDIS_CLUSTER_PORT when set, else the
# first of 7101, 7401, 7501, 7601 whose six ports are all unused (a cluster
# someone left running on 7101 is never mistaken for ours).
#
#   scripts/with-redis-cluster.sh cargo test -p messaging-redis --test cluster
set -euo pipefail
if [ -n "${REDIS_CLUSTER_URL:-}" ]; then
    exec "$@"
fi
here="$(cd "$(dirname "$0")" && pwd)"
base="${REDIS_CLUSTER_PORT:-}"
if [ -z "$base" ]; then
    for candidate in 7101 7401 7501 7601; do
        if bash "$here/redis-cluster.sh" free "$candidate"; then
            base="$candidate"
            break
        fi
    done
    if [ -z "$base" ]; then
        echo "with-redis-cluster: no free base port among 7101 7401 7501 7601" >&2
        exit 1
    fi
fi
trap 'bash "$here/redis-cluster.sh" stop "$base" >/dev/null 2>&1 || true' EXIT
url="$(bash "$here/redis-cluster.sh" start "$base" | tail -n 1)"
export REDIS_CLUSTER_URL="$url"
echo "with-redis-cluster: REDIS_CLUSTER_URL=$url" >&2
"$@"
