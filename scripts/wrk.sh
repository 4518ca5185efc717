#!/usr/bin/env bash
# Install wrk (Debian's package), the HTTP load generator of the API benchmarks: it runs
# in a process of its own, in C, so the generator is never what limits a measured rate.
# Prints WRK=<path>.
set -euo pipefail
LOG_PREFIX=wrk
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! command -v wrk >/dev/null 2>&1; then
  apt_install wrk || die "installing wrk failed"
fi
echo "WRK=$(command -v wrk)"
