#!/usr/bin/env bash
# Build a sandbox image, only when its inputs changed.
#
#   scripts/build_image.sh cpu   # offline: debootstrap base + host-made wheelhouse (CI, CPU users)
#   scripts/build_image.sh gpu   # offline too: Dockerfile.gpu on a CUDA + PyTorch base (GPU hosts)
#   scripts/build_image.sh cpu-wheelhouse   # only the CPU wheelhouse (made when missing); prints its path
#
# Images are tagged  $REPO:<variant>-<hash>  (hash of the Dockerfile, the requirements and constraints.txt, sandbox/
# and the base) plus the stable alias  $REPO:<variant>  that the docker provider uses. When the
# hashed tag exists already the script only re-points the alias: a warm run takes well under a
# second. Caches (debootstrap rootfs tarball, wheelhouse, build context) live in build/docker/.
#
# Environment: GRADER_IMAGE_REPO (default sd-grader-sandbox), GRADER_BASE_REPO (sd-grader-base),
# GRADER_BUILD_DIR (build/docker),
# PYTHON (the interpreter that runs `pip download`; default .venv/bin/python, else python3),
# PIP_DOWNLOAD_ARGS (extra `pip download` arguments, e.g. an index for torch's +cpu build),
# DEBIAN_MIRROR (debootstrap mirror), BASE_IMAGE (gpu: the CUDA + PyTorch base),
# GRADER_WHEELHOUSE (gpu: a folder of wheels instead of downloading them), FORCE=1 (rebuild anyway).
set -euo pipefail
variant=${1:-}
case "$variant" in cpu|gpu|cpu-wheelhouse) ;; *) echo "usage: $0 cpu|gpu|cpu-wheelhouse" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."
t0=$(date +%s)

REPO=${GRADER_IMAGE_REPO:-sd-grader-sandbox}
BUILD_DIR=${GRADER_BUILD_DIR:-build/docker}
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export DOCKER_BUILDKIT=0   # the classic builder: no buildx plugin needed, RUN honours --network none

log() { echo "build_image[$variant] +$(( $(date +%s) - t0 ))s: $*" >&2; }
die() { log "error: $*"; exit 1; }

command -v docker >/dev/null || die "no docker client; install the engine (apt-get install docker.io) or run scripts/ci_docker.sh"
docker info >/dev/null 2>&1 || die "the Docker daemon does not answer; start it (scripts/ci_docker.sh does) and check your access to /var/run/docker.sock"
mkdir -p "$BUILD_DIR"
exec 9>"$BUILD_DIR/.lock-${variant%-wheelhouse}"
flock 9   # two builds of one variant at once would race on the caches

sbx_hash=$("$PYTHON" docker/inputs_hash.py sandbox)

# Run a command, showing its output only when it fails (the classic builder's deprecation
# notice is noise on success).
quiet() {
  local out
  if ! out=$("$@" 2>&1); then
    printf '%s\n' "$out" | grep -v -E 'DEPRECATED: The legacy builder|BuildKit is currently disabled|environment-variable\.' >&2
    die "failed: $*"
  fi
}

# Copy sandbox/ (sources only) into a build context.
copy_sandbox() {
  tar -C . --exclude=__pycache__ --exclude='*.pyc' -cf - sandbox | tar -C "$1" -xf -
}

# Keep only the newest hashed tag of this variant (old ones are unreferenced layers on disk).
prune_old() {
  local keep=$1 tag
  for tag in $(docker image ls "$REPO" --format '{{.Repository}}:{{.Tag}}' | grep -E ":$variant-[0-9a-f]+$" || true); do
    [ "$tag" = "$keep" ] || docker image rm "$tag" >/dev/null 2>&1 || true
  done
}

finish() {  # image tag
  docker tag "$1" "$REPO:$variant"
  local id
  id=$(docker image inspect --format '{{.Id}}' "$1")
  log "$REPO:$variant -> $1 ($id)"
}

# The CPU image's wheelhouse, made on the host (the build itself runs without network): sets WH.
make_cpu_wheelhouse() {
  req_key=$("$PYTHON" docker/inputs_hash.py inputs docker/requirements.txt docker/requirements-cpu.txt \
            constraints.txt --extra "$(uname -m)" | cut -c1-12)
  WH=$BUILD_DIR/wheelhouse-cpu-$req_key
  if [ ! -f "$WH/.complete" ]; then
    log "pip download -> $WH"
    rm -rf "$WH.tmp"; mkdir -p "$WH.tmp"
    # pip does not expand --platform to older manylinux tags: list every tag bookworm's glibc
    # (2.36) runs, so the wheelhouse fits the image whatever Python the host has.
    plat=()
    for m in $(seq 36 -1 5); do plat+=(--platform "manylinux_2_${m}_$(uname -m)"); done
    plat+=(--platform "manylinux2014_$(uname -m)" --platform "manylinux2010_$(uname -m)" --platform "manylinux1_$(uname -m)")
    # shellcheck disable=SC2086
    if ! "$PYTHON" -m pip download --disable-pip-version-check --only-binary=:all: \
        --python-version 3.11 --implementation cp --abi cp311 "${plat[@]}" \
        -d "$WH.tmp" -r docker/requirements-cpu.txt ${PIP_DOWNLOAD_ARGS:-} >"$BUILD_DIR/pip-download.log" 2>&1; then
      grep -v "is ignored: it is neither" "$BUILD_DIR/pip-download.log" | tail -n 30 >&2
      die "pip download failed (log: $BUILD_DIR/pip-download.log)"
    fi
    "$PYTHON" docker/check_pins.py "$WH.tmp" constraints.txt || die "add the packages above to constraints.txt"
    touch "$WH.tmp/.complete"
    rm -rf "$WH"; mv "$WH.tmp" "$WH"
  fi
}

if [ "$variant" = cpu-wheelhouse ]; then
  make_cpu_wheelhouse
  echo "$WH"
  exit 0
fi

if [ "$variant" = cpu ]; then
  SUITE=bookworm
  INCLUDE=python3,python3-venv
  MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
  base_key=$(printf '%s\n' "$SUITE" minbase "$INCLUDE" "$(uname -m)" | sha256sum | cut -c1-12)
  BASE=${GRADER_BASE_REPO:-sd-grader-base}:$SUITE-$base_key
  key=$("$PYTHON" docker/inputs_hash.py inputs docker/Dockerfile.cpu docker/requirements.txt \
        docker/requirements-cpu.txt constraints.txt sandbox --extra "$BASE" | cut -c1-16)
  IMAGE=$REPO:cpu-$key
  if [ "${FORCE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    finish "$IMAGE"; log "up to date"; exit 0
  fi

  # 1. Base image: debootstrap minbase with python3 + venv, imported (no registry needed).
  if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    rootfs=$BUILD_DIR/rootfs-$SUITE-$base_key.tar
    if [ ! -s "$rootfs" ]; then
      command -v debootstrap >/dev/null || die "debootstrap missing: apt-get install debootstrap"
      [ "$(id -u)" = 0 ] || die "debootstrap needs root: run this once with sudo"
      log "debootstrap $SUITE minbase ($INCLUDE) from $MIRROR"
      tmp=$(mktemp -d "$BUILD_DIR/rootfs.XXXXXX")
      if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$tmp/root" "$MIRROR" >"$tmp/log" 2>&1; then
        tail -n 30 "$tmp/log" >&2; rm -rf "$tmp"; die "debootstrap failed"
      fi
      rm -rf "$tmp/root"/var/cache/apt/archives/*.deb "$tmp/root"/var/lib/apt/lists/* "$tmp/root"/var/log/*.log
      tar -C "$tmp/root" --numeric-owner -cf "$tmp/rootfs.tar" .
      mv "$tmp/rootfs.tar" "$rootfs"
      rm -rf "$tmp"
    fi
    log "importing $BASE"
    docker import --change 'CMD ["/bin/bash"]' "$rootfs" "$BASE" >/dev/null
  fi

  make_cpu_wheelhouse

  # 3. The image, built with --network none.
  ctx=$BUILD_DIR/ctx-cpu
  rm -rf "$ctx"; mkdir -p "$ctx/docker"
  cp docker/Dockerfile.cpu docker/requirements.txt docker/requirements-cpu.txt "$ctx/docker/"
  cp constraints.txt "$ctx/"
  copy_sandbox "$ctx"
  cp -al "$WH" "$ctx/wheelhouse" 2>/dev/null || cp -r "$WH" "$ctx/wheelhouse"
  log "docker build $IMAGE (--network none)"
  # The build stage (venv from the wheelhouse) gets its own tag so that it stays cached while
  # the previous one, once untagged, can be pruned.
  quiet docker build --quiet --network none --file "$ctx/docker/Dockerfile.cpu" --target build \
    --build-arg "BASE_IMAGE=$BASE" --tag "$REPO:cpu-buildstage" "$ctx"
  quiet docker build --quiet --network none --file "$ctx/docker/Dockerfile.cpu" \
    --build-arg "BASE_IMAGE=$BASE" \
    --label "sd-grader.inputs-hash=$key" --label "sd-grader.sandbox-hash=$sbx_hash" \
    --label "sd-grader.variant=cpu" --tag "$IMAGE" "$ctx"
  rm -rf "$ctx"
  finish "$IMAGE"
  prune_old "$IMAGE"
  docker image prune --force --filter label=sd-grader.stage=build >/dev/null 2>&1 || true
  exit 0
fi

# ---- gpu ----------------------------------------------------------------------------------
# Offline like the CPU image: the base is pulled once when it is not local (the only registry
# step), the wheels for docker/requirements.txt are downloaded on the host for the base's own
# Python and glibc (or taken from GRADER_WHEELHOUSE), and the build runs with --network none.
BASE=${BASE_IMAGE:-pytorch/pytorch:2.9.0-cuda12.8-cudnn9-runtime}
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  log "docker pull $BASE"
  docker pull --quiet "$BASE" >/dev/null || die "base image $BASE is not local and cannot be pulled (set BASE_IMAGE)"
fi
base_id=$(docker image inspect --format '{{.Id}}' "$BASE")
if [ -n "${GRADER_WHEELHOUSE:-}" ]; then
  WH=$GRADER_WHEELHOUSE
  [ -d "$WH" ] || die "GRADER_WHEELHOUSE=$WH is not a folder"
else
  # The base's interpreter and glibc decide which wheels fit: ask it (offline, as root, no entrypoint).
  target=$(docker run --rm --network none --user 0:0 --entrypoint python "$BASE" -c \
    'import platform, sys; print(f"{sys.version_info[0]}{sys.version_info[1]}", platform.libc_ver()[1] or "2.17", platform.machine())') \
    || die "cannot run python in $BASE"
  read -r pyver glibc arch <<<"$target"
  req_key=$("$PYTHON" docker/inputs_hash.py inputs docker/requirements.txt constraints.txt --extra "$pyver $glibc $arch" | cut -c1-12)
  WH=$BUILD_DIR/wheelhouse-gpu-$req_key
  if [ ! -f "$WH/.complete" ]; then
    log "pip download -> $WH (cp$pyver, glibc $glibc, $arch)"
    rm -rf "$WH.tmp"; mkdir -p "$WH.tmp"
    plat=()
    for m in $(seq "${glibc#*.}" -1 5); do plat+=(--platform "manylinux_2_${m}_$arch"); done
    plat+=(--platform "manylinux2014_$arch" --platform "manylinux2010_$arch" --platform "manylinux1_$arch")
    # --no-deps, of every pin in constraints.txt but torch (which the base has): resolving the
    # requirements would fetch a CUDA torch and its nvidia-* wheels (3 GB) that the image never
    # installs. The pins hold the requirements' whole closure (and the grader's, which the image
    # install leaves out: it installs docker/requirements.txt from this wheelhouse).
    grep -v -E '^[[:space:]]*(#|$)' constraints.txt | grep -v -i -E '^torch==' >"$BUILD_DIR/gpu-pins.txt"
    # shellcheck disable=SC2086
    if ! "$PYTHON" -m pip download --disable-pip-version-check --only-binary=:all: --no-deps \
        --python-version "$pyver" --implementation cp --abi "cp$pyver" "${plat[@]}" \
        -d "$WH.tmp" -r "$BUILD_DIR/gpu-pins.txt" ${PIP_DOWNLOAD_ARGS:-} >"$BUILD_DIR/pip-download-gpu.log" 2>&1; then
      grep -v "is ignored: it is neither" "$BUILD_DIR/pip-download-gpu.log" | tail -n 30 >&2
      die "pip download failed (log: $BUILD_DIR/pip-download-gpu.log)"
    fi
    touch "$WH.tmp/.complete"
    rm -rf "$WH"; mv "$WH.tmp" "$WH"
  fi
fi
compgen -G "$WH/*.whl" >/dev/null || die "no wheels in $WH"
# torch comes from the base: a torch wheel in the wheelhouse (the CPU one's, say) is left out.
wheel_list=$(cd "$WH" && ls -- *.whl | grep -v -E '^torch-' | sort | tr '\n' ' ')
key=$("$PYTHON" docker/inputs_hash.py inputs Dockerfile.gpu docker/requirements.txt constraints.txt sandbox \
      --extra "$base_id" --extra "$wheel_list" | cut -c1-16)
IMAGE=$REPO:gpu-$key
if [ "${FORCE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  finish "$IMAGE"; log "up to date"; exit 0
fi
ctx=$BUILD_DIR/ctx-gpu
rm -rf "$ctx"; mkdir -p "$ctx/docker/wheelhouse"
cp Dockerfile.gpu "$ctx/"
cp docker/requirements.txt "$ctx/docker/"
cp constraints.txt "$ctx/"
copy_sandbox "$ctx"
for wheel in $wheel_list; do
  ln "$WH/$wheel" "$ctx/docker/wheelhouse/" 2>/dev/null || cp "$WH/$wheel" "$ctx/docker/wheelhouse/"
done
log "docker build $IMAGE on $BASE (--network none)"
quiet docker build --network none --file "$ctx/Dockerfile.gpu" --build-arg "BASE_IMAGE=$BASE" \
  --label "sd-grader.inputs-hash=$key" --label "sd-grader.sandbox-hash=$sbx_hash" \
  --label "sd-grader.variant=gpu" --label "sd-grader.base=$BASE" --tag "$IMAGE" "$ctx"
rm -rf "$ctx"
finish "$IMAGE"
prune_old "$IMAGE"
