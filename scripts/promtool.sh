#!/usr/bin/env bash
# Install promtool (Debian's prometheus package) for the alert-rule tests, without starting
# the Prometheus server the package brings. Prints PROMTOOL=<path>.
set -euo pipefail
LOG_PREFIX=promtool
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! command -v promtool >/dev/null 2>&1; then
  # a policy that forbids starting services while the package installs
  policy=/usr/sbin/policy-rc.d
  made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    made_policy=1
  fi
  status=0
  apt_install prometheus || status=$?
  if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi
  [ "$status" = 0 ] || die "installing prometheus failed"
fi
echo "PROMTOOL=$(command -v promtool)"
