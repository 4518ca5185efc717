#!/usr/bin/env bash
# Make the project's virtualenv (.venv) with titus, its `mesos` extra (pymesos) and what its
# tests need.
#
# pymesos's dependency http-parser does not build on Python 3.11 from its sdist, so
# scripts/pymesos.sh builds it (and installs pymesos) first; `pip install '.[test,mesos]'`
# then finds the `mesos` extra satisfied. A plain `pip install -e .` leaves pymesos out and the
# Mesos tests fail saying so.
#
# Idempotent: when .venv exists and pyproject.toml has not changed since the last install,
# it installs nothing. Works on a brand-new Debian 12 with Python 3.11 (installs python3-venv
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

VENV="$(cd "$VENV" && pwd)" bash scripts/pymesos.sh

want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
  log "installing titus with its mesos extra and its test tools into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -e '.[test,mesos]'
  echo "$want" > "$STAMP"
fi
log "ready: $VENV/bin/titus"
