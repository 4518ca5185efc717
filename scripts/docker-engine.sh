#!/usr/bin/env bash
# Start the platform's own Docker engine on this host and make the test image.
#
# Idempotent: run it again and it reuses the packages, the btrfs volume, the running
# engine and the image that are already there. Needs root; needs no systemd.
#
# The engine is separate from any Docker engine the user runs: its own socket, data root,
# exec root, pid file and bridge, so starting or stopping it never touches theirs.
#
#   socket       unix:///run/titus/docker.sock
#   data root    /var/lib/titus-docker (btrfs on a loop-mounted sparse file
#                /var/lib/titus-docker.img, quotas on: `storage_opt size=` is enforced)
#   exec root    /run/titus/docker-exec
#   pid file     /run/titus/docker.pid
#   log          /var/log/titus-dockerd.log
#   bridge       its own bridge "titus0" carrying 172.31.254.1/24 (dockerd takes the
#                bridge's address as its bip): a private range at the top of 172.16/12,
#                unlikely to collide with a default Docker engine (172.17/16) or with VPC
#                subnets. Containers reach each other and the host; --iptables=false and
#                --ip-masq=false: this engine never edits the host's firewall (which another
#                engine may own) and containers get no NAT route to outside addresses.
#   containerd   its own namespaces (titus, titus-plugins), even when it shares a system
#                containerd with another engine.
#   user ns      --userns-remap=default: container root is an unprivileged host uid.
#
# When btrfs on a loop device is impossible (no loop devices, no btrfs in the kernel), the
# engine runs overlay2 on a plain directory and disk quotas are measured, not enforced.
#
# Environment overrides (all optional):
#   TITUS_DOCKER_IMG_SIZE   size of the sparse btrfs file (default 20G)
#   TITUS_DOCKER_BIP        bridge address/prefix (default 172.31.254.1/24)
#   TITUS_DOCKER_TIMEOUT    seconds to wait for the engine to answer (default 60)
set -euo pipefail

SOCK_PATH=/run/titus/docker.sock
DOCKER_HOST_URL="unix://${SOCK_PATH}"
DATA_ROOT=/var/lib/titus-docker
IMG_FILE=/var/lib/titus-docker.img
IMG_SIZE=${TITUS_DOCKER_IMG_SIZE:-20G}
EXEC_ROOT=/run/titus/docker-exec
PID_FILE=/run/titus/docker.pid
LOG_FILE=/var/log/titus-dockerd.log
BRIDGE=titus0
BIP=${TITUS_DOCKER_BIP:-172.31.254.1/24}
TIMEOUT=${TITUS_DOCKER_TIMEOUT:-60}
IMAGE=titus/busybox:latest
APPLETS="sh sleep echo cat ls true false env id dd head tail yes wc tr seq printf test kill
  ps grep sed awk mkdir rm touch date hostname ip nc wget ping uname df du mount"

LOG_PREFIX=docker-engine
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ "$(id -u)" -eq 0 ] || die "must run as root"

# 1. packages, only when something is missing
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v mkfs.btrfs >/dev/null 2>&1 || missing+=(btrfs-progs)
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
fi
command -v docker >/dev/null 2>&1 || die "no docker CLI after installing docker.io"

dk() { docker -H "$DOCKER_HOST_URL" "$@"; }

engine_answers() { dk info >/dev/null 2>&1; }

# 2. storage: btrfs on a loop-mounted sparse file, else overlay2
setup_btrfs() {
  grep -qw btrfs /proc/filesystems || modprobe btrfs 2>/dev/null || true
  grep -qw btrfs /proc/filesystems || { log "kernel has no btrfs"; return 1; }
  mkdir -p "$DATA_ROOT"
  if mountpoint -q "$DATA_ROOT"; then
    [ "$(findmnt -n -o FSTYPE "$DATA_ROOT")" = btrfs ] || {
      log "$DATA_ROOT is mounted but not btrfs"; return 1; }
  else
    if [ ! -f "$IMG_FILE" ]; then
      truncate -s "$IMG_SIZE" "$IMG_FILE"
      mkfs.btrfs -q "$IMG_FILE" >/dev/null || { rm -f "$IMG_FILE"; return 1; }
    fi
    mount -o loop "$IMG_FILE" "$DATA_ROOT" 2>/dev/null || {
      log "cannot loop-mount $IMG_FILE"; return 1; }
  fi
  btrfs quota enable "$DATA_ROOT" >/dev/null 2>&1 || {
    log "cannot enable btrfs quotas on $DATA_ROOT"; return 1; }
  return 0
}

start_engine() {
  local driver
  if setup_btrfs; then
    driver=btrfs
  else
    driver=overlay2
    mkdir -p "$DATA_ROOT"
    log "WARNING: btrfs unavailable; using overlay2 on $DATA_ROOT:" \
      "disk quotas will be measured, not enforced"
  fi
  mkdir -p "$(dirname "$SOCK_PATH")" "$EXEC_ROOT"
  # the engine's own bridge, so the default docker0 of another engine is never touched
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  # dockerd refuses --bip together with --bridge: the bridge carries the address itself
  if ! ip -4 addr show dev "$BRIDGE" | grep -qF "inet $BIP"; then
    ip addr add "$BIP" dev "$BRIDGE"
  fi
  ip link set "$BRIDGE" up
  # a stale pid file from a dead engine would stop dockerd from starting
  drop_stale_pid_file "$PID_FILE"
  rm -f "$SOCK_PATH"
  # containers inherit the engine's file limit as their ceiling (a user namespace cannot
  # raise it): give the engine a high one, as a systemd unit with LimitNOFILE would
  ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
  log "starting dockerd (storage driver $driver) on $DOCKER_HOST_URL; log $LOG_FILE"
  setsid dockerd \
    -H "$DOCKER_HOST_URL" \
    --data-root "$DATA_ROOT" \
    --exec-root "$EXEC_ROOT" \
    --pidfile "$PID_FILE" \
    --storage-driver "$driver" \
    --userns-remap=default \
    --bridge "$BRIDGE" \
    --iptables=false \
    --ip-masq=false \
    --containerd-namespace titus \
    --containerd-plugins-namespace titus-plugins \
    >>"$LOG_FILE" 2>&1 </dev/null &
  local status=0
  wait_until_up engine_answers "$PID_FILE" "$TIMEOUT" || status=$?
  [ "$status" -ne 2 ] || die "dockerd exited; see $LOG_FILE: $(tail -n 5 "$LOG_FILE")"
  [ "$status" -eq 0 ] ||
    die "dockerd did not answer on $DOCKER_HOST_URL within ${TIMEOUT}s; see $LOG_FILE"
}

# 3. the engine: reuse a running one
if engine_answers; then
  log "engine already running on $DOCKER_HOST_URL"
else
  start_engine
fi
log "storage driver: $(dk info --format '{{.Driver}}')"

# 4. the test image, made from busybox-static (no registry needed)
if ! dk image inspect "$IMAGE" >/dev/null 2>&1; then
  log "making $IMAGE"
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  mkdir -p "$rootfs"/{bin,tmp,etc,proc,sys,dev,root}
  chmod 1777 "$rootfs/tmp"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in $APPLETS; do
    ln -sf busybox "$rootfs/bin/$applet"
  done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
  echo 'nobody:x:65534:65534:nobody:/:/bin/false' >>"$rootfs/etc/passwd"
  echo 'root:x:0:' >"$rootfs/etc/group"
  tar -C "$rootfs" -c . | dk import --change 'ENV PATH=/bin' - "$IMAGE" >/dev/null
fi

echo "DOCKER_HOST=$DOCKER_HOST_URL"
