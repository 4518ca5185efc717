#!/usr/bin/env bash
# Install libfaketime (Debian's faketime package) for the chaos suite's clock-step
# scenario, which runs an agent whose wall clock jumps. Prints LIBFAKETIME=<path>.
set -euo pipefail
LOG_PREFIX=faketime
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

find_lib() {
  # the multi-threaded build: the agent runs threads
  ls /usr/lib/*/faketime/libfaketimeMT.so.1 2>/dev/null | head -n 1
}

if [ -z "$(find_lib)" ]; then
  apt_install faketime || die "installing faketime failed"
fi
lib=$(find_lib)
[ -n "$lib" ] || die "libfaketimeMT.so.1 not found after installing faketime"
echo "LIBFAKETIME=$lib"
