#!/usr/bin/env bash
# A multi-zone titus cluster on this machine, as separate processes: one API, two masters
# (one leads, one waits), and agents in three zones, each with its own share of the
# machine. They share ZooKeeper (started by scripts/zookeeper.sh) and one SQLite store.
#
#   deploy/local-cluster.sh start     start everything (idempotent), print where it listens
#   deploy/local-cluster.sh status    which processes run, who leads
#   deploy/local-cluster.sh stop      stop everything (containers keep running; agents
#                                     adopt them when started again)
#
# Environment (defaults in brackets):
#   TITUS_HOME        state directory: store, logs, pid files      [/var/lib/titus-cluster]
#   TITUS_BIN         the titus command                            [.venv/bin/titus]
#   ZK                ZooKeeper connect string                     [from scripts/zookeeper.sh]
#   ZK_ROOT           root znode of this cluster                   [/titus]
#   SESSION_TIMEOUT   ZooKeeper session timeout, seconds: how long
#                     a dead leader holds on before the other leads [10]
#   API_PORT          REST API port                                [7001]
#   AGENT_PORT_BASE   agents listen on the ports after this one    [7101]
#   METRICS_PORT_BASE masters' metrics on this port and the next   [7201]
#   AGENTS            agents per zone                              [1]
#   ZONES             zones                                        [zone-a zone-b zone-c]
#   AGENT_CPU         cpus per agent                               [2]
#   AGENT_MEMORY_MB   memory per agent                             [4096]
#   DOCKER_HOST       the engine agents run containers on          [unix:///run/titus/docker.sock]
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
TITUS_HOME="${TITUS_HOME:-/var/lib/titus-cluster}"
TITUS_BIN="${TITUS_BIN:-$here/.venv/bin/titus}"
ZK_ROOT="${ZK_ROOT:-/titus}"
SESSION_TIMEOUT="${SESSION_TIMEOUT:-10}"
API_PORT="${API_PORT:-7001}"
AGENT_PORT_BASE="${AGENT_PORT_BASE:-7101}"
METRICS_PORT_BASE="${METRICS_PORT_BASE:-7201}"
AGENTS="${AGENTS:-1}"
ZONES="${ZONES:-zone-a zone-b zone-c}"
AGENT_CPU="${AGENT_CPU:-2}"
AGENT_MEMORY_MB="${AGENT_MEMORY_MB:-4096}"
export DOCKER_HOST="${DOCKER_HOST:-unix:///run/titus/docker.sock}"
export TITUS_DATA_DIR="$TITUS_HOME/data"
run="$TITUS_HOME/run"

zk() {
    if [ -z "${ZK:-}" ]; then
        ZK="$(bash "$here/scripts/zookeeper.sh" | sed -n 's/^ZOOKEEPER=//p')"
    fi
    echo "zk://$ZK$ZK_ROOT?session_timeout=$SESSION_TIMEOUT"
}

# Secrets shared by every process of this cluster, made once and kept (0600) with its
# state: the ZooKeeper credentials close the cluster's nodes to every other client of the
# ensemble; the cluster secret signs the master's and the API's calls to agents.
secrets() {
    local file
    file="$TITUS_HOME/coord-auth"
    [ -s "$file" ] || (umask 077; echo "titus:$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')" >"$file")
    export TITUS_COORD_AUTH="${TITUS_COORD_AUTH:-$(cat "$file")}"
    file="$TITUS_HOME/cluster-secret"
    [ -s "$file" ] || (umask 077; head -c 24 /dev/urandom | base64 | tr '+/' '-_' >"$file")
    if [ -z "${TITUS_CLUSTER_SECRET:-}" ]; then
        export TITUS_CLUSTER_SECRET_FILE="${TITUS_CLUSTER_SECRET_FILE:-$file}"
    fi
}

# One agent host's own credentials, derived from the cluster secret (titus agent-credentials).
credentials() {
    local file="$TITUS_HOME/credentials/$1.json"
    mkdir -p "$TITUS_HOME/credentials"
    [ -s "$file" ] || (umask 077; "$TITUS_BIN" agent-credentials "$1" >"$file")
}

alive() { [ -f "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

launch_env=()  # what `env` changes for the next launch
launch() {  # name, then the titus arguments
    local name="$1"; shift
    if alive "$name"; then echo "$name: already running"; return; fi
    nohup env "${launch_env[@]}" "$TITUS_BIN" "$@" >>"$TITUS_HOME/logs/$name.log" 2>&1 &
    echo $! >"$run/$name.pid"
    echo "$name: started (pid $!, log $TITUS_HOME/logs/$name.log)"
}

start() {
    mkdir -p "$TITUS_DATA_DIR" "$TITUS_HOME/logs" "$run"
    bash "$here/scripts/docker-engine.sh" >/dev/null
    local coord port="$AGENT_PORT_BASE"
    coord="$(zk)"
    secrets
    launch api api --coord "$coord" --port "$API_PORT"
    TITUS_MASTER_METRICS_PORT="$METRICS_PORT_BASE" \
        launch master-1 master --coord "$coord" --id master-1
    TITUS_MASTER_METRICS_PORT="$((METRICS_PORT_BASE + 1))" \
        launch master-2 master --coord "$coord" --id master-2
    for zone in $ZONES; do
        for i in $(seq 1 "$AGENTS"); do
            local name="agent-$zone-$i"
            port=$((port + 1))
            credentials "$name"
            # an agent host holds its own credentials only, as in production
            launch_env=(-u TITUS_COORD_AUTH -u TITUS_CLUSTER_SECRET -u TITUS_CLUSTER_SECRET_FILE
                "TITUS_AGENT_CREDENTIALS_FILE=$TITUS_HOME/credentials/$name.json"
                "TITUS_LOG_DIR=$TITUS_HOME/logs/$name")
            launch "$name" agent --coord "$coord" \
                --id "$name" --zone "$zone" --instance-type local.small \
                --cpu "$AGENT_CPU" --memory-mb "$AGENT_MEMORY_MB" --agent-port "$port"
            launch_env=()
        done
    done
    echo "API: http://127.0.0.1:$API_PORT   coordination: $coord"
}

status() {
    for pid in "$run"/*.pid; do
        [ -e "$pid" ] || continue
        local name; name="$(basename "$pid" .pid)"
        if alive "$name"; then echo "$name: running"; else echo "$name: stopped"; fi
    done
    curl -fsS "http://127.0.0.1:$API_PORT/health" && echo
}

stop() {
    for pid in "$run"/*.pid; do
        [ -e "$pid" ] || continue
        local name; name="$(basename "$pid" .pid)"
        if alive "$name"; then kill "$(cat "$pid")"; echo "$name: stopping"; fi
        rm -f "$pid"
    done
}

case "${1:-start}" in
    start) start ;;
    status) status ;;
    stop) stop ;;
    *) echo "usage: $0 start|status|stop" >&2; exit 2 ;;
esac
