#!/usr/bin/env bash
# Isolation without Docker (issue 15): on a machine whose Docker engine is gone, the README's
# first command must grade under bwrap, give every task of the bundled example the status it gets
# under docker, and the sandbox suites must pass with the bwrap provider required.
#
#   1. grade the bundled example under docker (or reuse --docker-report FILE) and keep its statuses;
#   2. make Docker unavailable: in CI (CI=true) stop the daemon that scripts/ci_docker.sh started
#      (its pid file, or the systemd/sysv service); with --simulate point DOCKER_HOST at a socket
#      that does not exist instead (local testing: a shared daemon must never be stopped);
#   3. check (a) the README's grader command with --sandbox auto picks bwrap and says so, (b) its
#      per-task statuses equal docker's (scripts/compare_statuses.py), (c) the escape probes (when
#      tests/isolation/test_sandbox_escape.py exists) and the conformance suite pass with
#      -m "not docker", CI=true and GRADER_REQUIRE_BWRAP=1 (a bwrap that does not work fails them).
#
# The last step of .ci/run: the daemon stays stopped. Prints a summary; exits 1 on any failure.
#   --simulate            leave the daemon alone (DOCKER_HOST=unix:///nonexistent...)
#   --docker-report FILE  the docker grading's report.json from an earlier step (skips step 1)
#   --only ID,...         grade only these tasks of the example (quick local tries; CI grades all)
#   env PY                the Python with the grader installed (default .venv/bin/python; CI: make setup)
#   env OUT               where the two run folders go (default runs/ci-without-docker)
set -uo pipefail
cd "$(dirname "$0")/.."
log() { echo "ci_without_docker: $*" >&2; }
die() { log "$*"; exit 1; }

simulate=0
docker_report=""
only=()
while [ $# -gt 0 ]; do
  case "$1" in
    --simulate) simulate=1 ;;
    --docker-report) docker_report=${2:?--docker-report needs a file}; shift ;;
    --only) only=(--only "${2:?--only needs ID,...}"); shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
ci=0
case "${CI:-}" in 1|true|TRUE|True|yes) ci=1 ;; esac
[ "$simulate" = 1 ] || [ "$ci" = 1 ] || die "this stops the Docker daemon: run it in CI (CI=true) only, or with --simulate"

PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/ci-without-docker}
MODELS=${MODELS:-examples/models}
SEED=${SEED:-20260101}
# The README's first command (`make grade SUBMISSION=examples/submission`) without make, which would
# reinstall: the same grader command, the same example timing, and a fixed seed so both gradings
# draw the same prompts.
EXAMPLE_TIMING=(--batch-size 2 --warmup-batches 1 --min-batches 6 --max-batches 12 --target-ci 0.05 --budget 20)
grade_example() {  # OUT_DIR SANDBOX -> the grader's stdout and stderr on ours
  "$PY" -m grader.cli grade examples/submission --tasks examples/tasks --model-dir "$MODELS" \
    --clip-model "$MODELS/clip" --out "$1" --sandbox "$2" "${EXAMPLE_TIMING[@]}" --seed "$SEED" --exit-zero "${only[@]}"
}

if [ "$ci" = 1 ] && [ "$simulate" = 0 ] && [ ! -x "$PY" ]; then
  make setup >/dev/null || die "make setup failed"
fi
[ -x "$PY" ] || die "no Python at $PY (set PY, or run make setup)"
if [ ! -f "$MODELS/model_index.json" ] && [ ! -d "$MODELS/SD1.5" ]; then
  log "building the example models in $MODELS"
  mkdir -p "$OUT"
  "$PY" examples/build_models.py --out "$MODELS" >"$OUT/models.log" 2>&1 || { tail -n 20 "$OUT/models.log" >&2; die "examples/build_models.py failed"; }
fi
mkdir -p "$OUT"

# ------------------------------------------------------------------ 1. the docker grading
if [ -z "$docker_report" ]; then
  log "grading the bundled example under docker ($OUT/docker)"
  rm -rf "$OUT/docker"
  grade_example "$OUT/docker" docker >"$OUT/docker.log" 2>&1 || { tail -n 40 "$OUT/docker.log" >&2; die "grading under docker failed"; }
  docker_report=$OUT/docker/report.json
fi
[ -f "$docker_report" ] || die "no docker report at $docker_report"

# ------------------------------------------------------------------ 2. no Docker
stop_daemon() {
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker 2>/dev/null; then
    systemctl stop docker.socket docker 2>/dev/null || systemctl stop docker
  elif [ -f /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    kill -TERM "$(cat /var/run/docker.pid)"   # the dockerd scripts/ci_docker.sh started (nohup, its pid file)
  elif command -v service >/dev/null 2>&1; then
    service docker stop >/dev/null 2>&1 || true
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 || return 0
    sleep 0.5
  done
  return 1
}
if [ "$simulate" = 1 ]; then
  export DOCKER_HOST="unix:///nonexistent/sd-grader-no-docker.sock"
  log "simulating a machine without Docker: DOCKER_HOST=$DOCKER_HOST (the daemon is left alone)"
else
  [ "$(id -u)" = 0 ] || die "only root can stop the Docker daemon"
  log "stopping the Docker daemon"
  stop_daemon || die "the Docker daemon still answers after 30 s"
fi
if docker info >/dev/null 2>&1 || "$PY" -c "from grader.isolation.docker import client; client()" >/dev/null 2>&1; then
  die "Docker still answers: nothing would be tested"
fi

failures=()
# ------------------------------------------------------------------ 3a. auto picks bwrap
log "grading the bundled example with --sandbox auto ($OUT/auto)"
rm -rf "$OUT/auto"
grade_example "$OUT/auto" auto >"$OUT/auto.log" 2>&1
auto_rc=$?
if [ "$auto_rc" != 0 ]; then
  tail -n 40 "$OUT/auto.log" >&2
  failures+=("the --sandbox auto grading exited $auto_rc")
fi
if grep -q "grading with --sandbox bwrap" "$OUT/auto.log"; then
  picked="bwrap (said so)"
else
  picked="NOT bwrap: $(grep -m1 'grading with --sandbox' "$OUT/auto.log" || echo 'nothing said')"
  failures+=("--sandbox auto did not say it picked bwrap")
fi

# ------------------------------------------------------------------ 3b. same statuses
if [ -f "$OUT/auto/report.json" ]; then
  PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} "$PY" scripts/compare_statuses.py "$docker_report" "$OUT/auto/report.json" \
    --expect docker,bwrap | tee "$OUT/statuses.txt"
  [ "${PIPESTATUS[0]}" = 0 ] || failures+=("the per-task statuses under bwrap differ from docker's (or a report is invalid)")
else
  failures+=("no report from the --sandbox auto grading")
fi

# ------------------------------------------------------------------ 3c. the sandbox suites, bwrap required
suites=(tests/isolation/test_sandbox_conformance.py)
if [ -f tests/isolation/test_sandbox_escape.py ]; then
  suites=(tests/isolation/test_sandbox_escape.py "${suites[@]}")
  escape="run"
else
  escape="not run: tests/isolation/test_sandbox_escape.py is not in this checkout"
fi
log "pytest ${suites[*]} -m 'not docker' (CI=true, GRADER_REQUIRE_BWRAP=1)"
CI=true GRADER_REQUIRE_BWRAP=1 "$PY" -m pytest -q -p no:cacheprovider "${suites[@]}" -m "not docker" >"$OUT/pytest.log" 2>&1
pytest_rc=$?
tail -n 15 "$OUT/pytest.log"
[ "$pytest_rc" = 0 ] || failures+=("the sandbox suites failed without Docker (pytest exit $pytest_rc; $OUT/pytest.log)")

# ------------------------------------------------------------------ summary
echo
echo "ci_without_docker summary ($([ "$simulate" = 1 ] && echo 'simulated: DOCKER_HOST points nowhere' || echo 'Docker daemon stopped'))"
echo "  docker grading:      $docker_report"
echo "  --sandbox auto:      picked $picked, exit $auto_rc"
echo "  statuses:            $(grep -m1 'task statuses match' "$OUT/statuses.txt" 2>/dev/null || echo 'not compared')"
echo "  escape probes:       $escape"
echo "  sandbox suites:      pytest exit $pytest_rc ($(grep -Eo '[0-9]+ (passed|failed|skipped|xfailed|xpassed|error)[^=]*' "$OUT/pytest.log" | tail -n 1))"
if [ ${#failures[@]} -gt 0 ]; then
  printf '  FAILED: %s\n' "${failures[@]}"
  exit 1
fi
echo "  all checks passed"
