# Shared by the setup scripts in this directory. Set LOG_PREFIX, then source it:
#   LOG_PREFIX=zookeeper
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

log() { echo "$LOG_PREFIX: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# apt_install PACKAGE...: install Debian packages, without prompts or recommended extras.
apt_install() {
  log "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "$@"
}

# drop_stale_pid_file FILE: remove a pid file whose process is gone (a daemon refuses to
# start over one).
drop_stale_pid_file() {
  if [ -f "$1" ] && ! kill -0 "$(cat "$1")" 2>/dev/null; then
    rm -f "$1"
  fi
}

# wait_until_up CHECK PID_FILE TIMEOUT: run CHECK every 0.1 s until it succeeds (status 0).
# Status 2 as soon as the process named in PID_FILE has exited, 1 after TIMEOUT seconds.
wait_until_up() {
  local check=$1 pid_file=$2 timeout=$3 waited=0
  until "$check"; do
    if [ -f "$pid_file" ] && ! kill -0 "$(cat "$pid_file")" 2>/dev/null; then
      return 2
    fi
    if [ "$waited" -ge $((timeout * 10)) ]; then
      return 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}
