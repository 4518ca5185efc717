#!/usr/bin/env bash
# Install Debian's chromium for the dashboard's browser tests (Playwright drives it through
# its executable path; no browser is downloaded). Prints CHROMIUM=<path>.
set -euo pipefail
LOG_PREFIX=chromium
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium fonts-dejavu-core || die "installing chromium failed"
fi
echo "CHROMIUM=$(command -v chromium)"
