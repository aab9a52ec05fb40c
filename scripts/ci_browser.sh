#!/usr/bin/env bash
# Make Debian's chromium available for the report.html test (tests/test_report_html.py renders
# the page in headless chromium). Installs it when missing; idempotent, about 0.05 s when present.
# Nothing else: the test runs chromium itself, offline, with a throw-away profile.
set -euo pipefail
log() { echo "ci_browser: $*" >&2; }

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
[ "$(id -u)" = 0 ] || { log "chromium is missing and only root can install it (apt-get install chromium)"; exit 1; }
log "installing chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null 2>&1 || { log "chromium is still missing after apt-get install"; exit 1; }
log "$(chromium --version 2>/dev/null | head -n 1)"
