#!/usr/bin/env bash
# Start a single ZooKeeper server on loopback for the platform's coordination.
#
# Idempotent: run it again and it reuses the package and the server that already answer.
# Needs root; needs no systemd (Debian's zkServer.sh starts the JVM directly).
#
# The server gets its own configuration and data directory, so Debian's /etc/zookeeper
# and /var/lib/zookeeper stay as the package left them:
#
#   listens      127.0.0.1:2181 (clientPortAddress: never on an outside interface)
#   config       /var/lib/titus-zookeeper/zoo.cfg
#   data dir     /var/lib/titus-zookeeper/data
#   pid file     /run/titus/zookeeper-2181.pid
#   log          /var/log/zookeeper/zookeeper.log (Debian's zkEnv.sh fixes the directory)
#
# The tick is short (500 ms) and the minimum session timeout is 1 s, so tests can use short
# sessions and an expired session is noticed quickly; clients still choose their own
# timeout between 1 s and 60 s. The AdminServer (HTTP on 8080) is off: nothing here needs
# it and it would take a port other services use. The four-letter words `ruok`, `srvr`,
# `stat`, `mntr` and `conf` are allowed (ZooKeeper 3.5+ allows only `srvr` by default).
#
# Environment overrides (all optional):
#   TITUS_ZK_PORT      client port (default 2181)
#   TITUS_ZK_HOME      config and data directory (default /var/lib/titus-zookeeper)
#   TITUS_ZK_TIMEOUT   seconds to wait for the server to serve (default 60)
#   TITUS_ZK_HEAP      JVM maximum heap (default 256m)
#   TITUS_ZK_LOG_DIR   the server's log directory (default /var/log/zookeeper), so that a
#                      second server (the chaos suite's own) does not share the first's log
set -euo pipefail

HOST=127.0.0.1
PORT=${TITUS_ZK_PORT:-2181}
ZK_HOME=${TITUS_ZK_HOME:-/var/lib/titus-zookeeper}
CONF_FILE="$ZK_HOME/zoo.cfg"
DATA_DIR="$ZK_HOME/data"
PID_FILE=/run/titus/zookeeper-$PORT.pid
TIMEOUT=${TITUS_ZK_TIMEOUT:-60}
HEAP=${TITUS_ZK_HEAP:-256m}
ZK_SERVER=/usr/share/zookeeper/bin/zkServer.sh
LOG_DIR=${TITUS_ZK_LOG_DIR:-/var/log/zookeeper}

LOG_PREFIX=zookeeper
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ "$(id -u)" -eq 0 ] || die "must run as root"

# Ask the server for its status with the `srvr` four-letter word: it is allowed by default
# on every ZooKeeper version, and unlike a bare TCP connect it tells a server that serves
# ("Mode: standalone") from one that is still loading its data ("not currently serving").
serving() {
  local reply
  reply=$(timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$PORT && printf srvr >&3 && cat <&3" \
    2>/dev/null) || return 1
  grep -q '^Mode:' <<<"$reply"
}

# 1. the package, only when it is missing
installed_now=0
if [ ! -x "$ZK_SERVER" ] || ! dpkg -s zookeeperd >/dev/null 2>&1; then
  apt_install zookeeperd
  installed_now=1
fi
[ -x "$ZK_SERVER" ] || die "no $ZK_SERVER after installing zookeeperd"
command -v java >/dev/null 2>&1 || die "no java after installing zookeeperd"

# Debian's init script may have started its own server (all interfaces, its own data dir)
# during the install; ours replaces it so the port is served from loopback only.
if [ "$installed_now" -eq 1 ] && [ -x /etc/init.d/zookeeper ]; then
  /etc/init.d/zookeeper stop >/dev/null 2>&1 || true
fi

write_config() {
  mkdir -p "$ZK_HOME" "$DATA_DIR" "$(dirname "$PID_FILE")" "$LOG_DIR"
  cat >"$CONF_FILE.tmp" <<EOF
# written by scripts/zookeeper.sh; a standalone server for the platform
tickTime=500
initLimit=10
syncLimit=5
minSessionTimeout=1000
maxSessionTimeout=60000
dataDir=$DATA_DIR
clientPort=$PORT
clientPortAddress=$HOST
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat,mntr,conf
autopurge.snapRetainCount=3
autopurge.purgeInterval=1
EOF
  mv "$CONF_FILE.tmp" "$CONF_FILE"
}

start_server() {
  write_config
  # a pid file left by a dead server would make zkServer.sh refuse to start
  drop_stale_pid_file "$PID_FILE"
  # Debian's zkEnv.sh puts no SLF4J binding on the class path, so the server would log
  # nothing; with the log4j binding it writes $LOG_DIR/zookeeper.log. A -cp in the JVM
  # flags comes after zkServer.sh's own and wins.
  # zkServer.sh passes Debian's fixed log directory first; this later -D wins
  local jvmflags="-Xmx$HEAP -Dzookeeper.root.logger=INFO,ROLLINGFILE -Dzookeeper.log.dir=$LOG_DIR"
  local binding=/usr/share/java/slf4j-log4j12.jar log4j=/usr/share/java/log4j-1.2.jar
  if [ -r "$binding" ] && [ -r "$log4j" ]; then
    jvmflags="$jvmflags -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar:$binding:$log4j"
  fi
  log "starting ZooKeeper on $HOST:$PORT (config $CONF_FILE, logs $LOG_DIR)"
  # zkServer.sh takes a config path outside /etc/zookeeper/conf as given; setsid keeps the
  # server alive when the caller's session (a test run, a CI step) ends.
  ZOOPIDFILE="$PID_FILE" JMXDISABLE=true \
    SERVER_JVMFLAGS="$jvmflags" \
    setsid "$ZK_SERVER" start "$CONF_FILE" >>"$LOG_DIR/titus-zkServer.out" 2>&1 </dev/null ||
    die "zkServer.sh start failed; see $LOG_DIR/titus-zkServer.out and $LOG_DIR/zookeeper.log"
  local status=0
  wait_until_up serving "$PID_FILE" "$TIMEOUT" || status=$?
  [ "$status" -ne 2 ] ||
    die "ZooKeeper exited; see $LOG_DIR: $(tail -n 5 "$LOG_DIR"/zookeeper*.out 2>/dev/null)"
  [ "$status" -eq 0 ] || die "ZooKeeper did not serve on $HOST:$PORT within ${TIMEOUT}s; see $LOG_DIR"
}

# 2. the server: reuse one that serves
if serving; then
  log "already serving on $HOST:$PORT"
else
  start_server
fi

echo "ZOOKEEPER=$HOST:$PORT"
