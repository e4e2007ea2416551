#!/usr/bin/env bash
# A real Redis Cluster on loopback: 3 masters + 3 replicas, plain redis-server
# processes, created with `redis-cli --cluster create`.
#
#   scripts/redis-cluster.sh start [BASE_PORT]   # default 7101: ports BASE..BASE+5
#   scripts/redis-cluster.sh stop  [BASE_PORT]   # stops what `start` started, removes its files
#   scripts/redis-cluster.sh status [BASE_PORT]
#   scripts/redis-cluster.sh free [BASE_PORT]    # exit 0 when BASE..BASE+5 are all unused
#   scripts/redis-cluster.sh kill-node BASE_PORT PORT   # SIGKILL one node (fault tests)
#   scripts/redis-cluster.sh start-node BASE_PORT PORT  # starts a killed node again: it
#                                                      # rejoins from its nodes.conf
#
# `start` prints the cluster URL (redis+cluster://127.0.0.1:BASE,…, what
# RedisBackendConfig and REDIS_CLUSTER_URL take) on its last line and
# returns once every slot is served and the cluster says `cluster_state:ok`.
# The nodes keep their data under $CLUSTER_DIR (default /tmp/redis-cluster-BASE):
# appendonly, cluster-node-timeout 2000 ms (fast failovers for the fault tests),
# repl-diskless-sync-delay 0 (a replica syncs at once, not after Redis' 5 s
# wait for others to join the transfer).
# Only loopback ports; never touches the shared Redis on 6379.
#
# With CLUSTER_TLS_DIR naming a folder holding server.crt, server.key and ca.crt,
# the nodes speak only TLS (plain port off, TLS between nodes too) and the URL is
# rediss+cluster://.
set -euo pipefail

cmd="${1:-}"
base="${2:-7101}"
dir="${CLUSTER_DIR:-/tmp/redis-cluster-$base}"
timeout_ms="${CLUSTER_NODE_TIMEOUT_MS:-2000}"
ports=()
for i in 0 1 2 3 4 5; do ports+=("$((base + i))"); done
tls_dir="${CLUSTER_TLS_DIR:-}"
tls_cli=()
tls_server=()
scheme="redis+cluster"
if [ -n "$tls_dir" ]; then
    tls_cli=(--tls --cacert "$tls_dir/ca.crt")
    tls_server=(--tls-cluster yes --tls-replication yes --tls-auth-clients no
        --tls-cert-file "$tls_dir/server.crt" --tls-key-file "$tls_dir/server.key"
        --tls-ca-cert-file "$tls_dir/ca.crt")
    scheme="rediss+cluster"
fi
# redis-cli on the nodes, over TLS when they speak it.
cli() { redis-cli "${tls_cli[@]}" "$@"; }
# The port arguments of a node: plain, or TLS only.
port_args() {
    if [ -n "$tls_dir" ]; then
        echo "--port 0 --tls-port $1"
    else
        echo "--port $1"
    fi
}

# Whether something already listens on a loopback port.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# What a failed start leaves to read: the create log and each node's log tail.
explain_failure() {
    echo "redis-cluster.sh: the cluster on $base did not start; what its nodes said:" >&2
    [ -f "$dir/create.log" ] && sed 's/^/  create: /' "$dir/create.log" >&2
    for port in "${ports[@]}"; do
        [ -f "$dir/$port/redis.log" ] && tail -n 5 "$dir/$port/redis.log" | sed "s/^/  $port: /" >&2
    done
    return 0
}

# Starts the node of one port (a new one, or a killed one again: its
# nodes.conf and AOF are where it left them).
start_node() {
    local port="$1"
    mkdir -p "$dir/$port"
    # shellcheck disable=SC2046
    redis-server $(port_args "$port") "${tls_server[@]}" --bind 127.0.0.1 --protected-mode yes \
        --cluster-enabled yes --cluster-config-file "$dir/$port/nodes.conf" \
        --cluster-node-timeout "$timeout_ms" --appendonly yes \
        --maxmemory-policy noeviction --repl-diskless-sync-delay 0 --dir "$dir/$port" \
        --daemonize yes --pidfile "$dir/$port/redis.pid" --logfile "$dir/$port/redis.log"
}

# The port argument of kill-node and start-node, which must be one of the cluster's.
node_port() {
    local port="${1:-}"
    for known in "${ports[@]}"; do
        [ "$known" = "$port" ] && return 0
    done
    echo "redis-cluster.sh: $port is not a port of the cluster on $base (${ports[*]})" >&2
    exit 2
}

wait_ok() {
    for _ in $(seq 1 100); do
        if cli -p "$base" cluster info 2>/dev/null | grep -q "cluster_state:ok" \
            && cli -p "$base" cluster info | grep -q "cluster_slots_ok:16384"; then
            return 0
        fi
        sleep 0.1
    done
    echo "cluster on $base did not reach cluster_state:ok" >&2
    return 1
}

case "$cmd" in
start)
    # A port someone else holds (a cluster another run left, any server) would
    # make this start talk to that server instead: refuse, naming the port.
    for port in "${ports[@]}"; do
        if listening "$port" && ! [ -f "$dir/$port/redis.pid" ]; then
            echo "redis-cluster.sh: 127.0.0.1:$port is already in use (not by a cluster started here from $dir); choose another base port" >&2
            exit 1
        fi
    done
    mkdir -p "$dir"
    trap 'explain_failure' ERR
    for port in "${ports[@]}"; do
        start_node "$port"
    done
    for port in "${ports[@]}"; do
        for _ in $(seq 1 50); do
            cli -p "$port" ping >/dev/null 2>&1 && break
            sleep 0.1
        done
    done
    if ! cli -p "$base" cluster info | grep -q "cluster_state:ok"; then
        hosts=()
        for port in "${ports[@]}"; do hosts+=("127.0.0.1:$port"); done
        cli --cluster create "${hosts[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1
    fi
    wait_ok
    # every replica attached before anyone relies on failover
    for _ in $(seq 1 100); do
        replicas=$(cli -p "$base" cluster nodes | grep -c slave || true)
        [ "$replicas" -ge 3 ] && break
        sleep 0.1
    done
    # ... and in sync: a master counts its replica, a replica's link is up
    # (a publish waiting for a replica, WAIT, would time out before).
    for port in "${ports[@]}"; do
        for _ in $(seq 1 100); do
            info=$(cli -p "$port" info replication 2>/dev/null | tr -d '\r')
            if grep -q "^master_link_status:up" <<<"$info" \
                || grep -q "^connected_slaves:[1-9]" <<<"$info"; then
                break
            fi
            sleep 0.1
        done
    done
    hosts=()
    for port in "${ports[@]:0:3}"; do hosts+=("127.0.0.1:$port"); done
    trap - ERR
    (IFS=,; echo "$scheme://${hosts[*]}")
    ;;
free)
    # Exit 0 when none of the six ports is in use.
    for port in "${ports[@]}"; do
        if listening "$port"; then exit 1; fi
    done
    ;;
stop)
    for port in "${ports[@]}"; do
        if [ -f "$dir/$port/redis.pid" ]; then
            kill "$(cat "$dir/$port/redis.pid")" 2>/dev/null || true
        fi
    done
    for port in "${ports[@]}"; do
        for _ in $(seq 1 50); do
            cli -p "$port" ping >/dev/null 2>&1 || break
            sleep 0.1
        done
    done
    rm -rf "$dir"
    ;;
kill-node)
    port="${3:-}"
    node_port "$port"
    if [ -f "$dir/$port/redis.pid" ]; then
        kill -9 "$(cat "$dir/$port/redis.pid")" 2>/dev/null || true
        rm -f "$dir/$port/redis.pid"
    fi
    for _ in $(seq 1 50); do
        listening "$port" || break
        sleep 0.1
    done
    ;;
start-node)
    port="${3:-}"
    node_port "$port"
    if listening "$port"; then
        echo "redis-cluster.sh: 127.0.0.1:$port is in use already" >&2
        exit 1
    fi
    start_node "$port"
    for _ in $(seq 1 50); do
        cli -p "$port" ping >/dev/null 2>&1 && exit 0
        sleep 0.1
    done
    echo "redis-cluster.sh: the node on $port did not answer after its start" >&2
    tail -n 5 "$dir/$port/redis.log" >&2 || true
    exit 1
    ;;
status)
    cli -p "$base" cluster info | head -7
    cli -p "$base" cluster nodes
    ;;
*)
    echo "usage: $0 start|stop|status|free [BASE_PORT] | kill-node|start-node BASE_PORT PORT" >&2
    exit 2
    ;;
esac
