#!/usr/bin/env bash
# Make the project's virtualenv (.venv) with titus, its `mesos` extra (pymesos) and what its
# tests need: every package at the version and with the file hashes requirements.lock pins
# (pip --require-hashes; scripts/lock.sh regenerates it from pyproject.toml).
#
# pymesos's dependency http-parser does not build on Python 3.11 from its sdist, so
# scripts/pymesos.sh builds it from a hash-checked source (and installs pymesos). A plain
# `pip install -e .` leaves pymesos out and the Mesos tests fail saying so.
#
# Idempotent: when .venv exists and neither pyproject.toml nor the lock changed since the
# last install, it installs nothing. Works on a brand-new Debian 12 with Python 3.11 (installs python3-venv
# when the interpreter cannot make a virtualenv).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.installed"

LOG_PREFIX=install
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  log "installing python3-venv"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

want=$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  log "installing the locked dependencies (hash-checked) and titus into $VENV"
  # exactly the files requirements.lock names, or nothing (scripts/lock.sh makes it)
  pip_log="$VENV/pip-install.log"
  if ! "$VENV/bin/python" -m pip install -q --require-hashes -r requirements.lock \
    >"$pip_log" 2>&1; then
    grep -v "is neither a file nor a directory" "$pip_log" | tail -n 30 >&2
    die "installing requirements.lock failed (whole log: $pip_log)"
  fi
  "$VENV/bin/python" -m pip install -q --no-deps -e .
  echo "$want" > "$STAMP"
fi
# after the lock: pymesos's dependencies kazoo and six come from it
VENV="$(cd "$VENV" && pwd)" bash scripts/pymesos.sh
log "ready: $VENV/bin/titus"
