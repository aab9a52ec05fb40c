#!/usr/bin/env bash
# Make a Docker engine usable for the sandbox tests: install docker.io and debootstrap when
# missing, start the daemon when it does not answer, wait until it does. Idempotent and quiet;
# about 0.1 s when everything is already set up.
#
# The daemon is started the way DESIGN.md section 8 says: sandbox containers run with network
# none, so no bridge, no iptables and no masquerading are needed (or wanted).
set -euo pipefail
log() { echo "ci_docker: $*" >&2; }

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { log "need root to install ${need[*]}"; exit 1; }
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
  exit 0
fi
[ "$(id -u)" = 0 ] || { log "the Docker daemon does not answer and only root can start it here"; exit 1; }
LOG=${DOCKERD_LOG:-/var/log/sd-grader-dockerd.log}
log "starting dockerd (log: $LOG)"
# A stale pid file from a daemon killed with its session blocks a new one.
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
  rm -f /var/run/docker.pid
fi
nohup dockerd --bridge=none --iptables=false --ip-masq=false >"$LOG" 2>&1 </dev/null &
for _ in $(seq 1 120); do
  if docker info >/dev/null 2>&1; then
    log "dockerd is up"
    exit 0
  fi
  sleep 0.5
done
log "dockerd did not answer within 60 s; last lines of $LOG:"
tail -n 30 "$LOG" >&2
exit 1
