#!/usr/bin/env bash
# One-command set-up of a bare machine (no ROS install): a virtual environment with ROS 2 Kilted
# from its PyPI wheels, torch (CPU), transformers and the rest, this project in editable mode,
# and the ssr_msgs interface package (plus fallback tf2_msgs / vision_msgs where the real ones are absent)
# built into that environment. Idempotent: each step keeps a stamp of its inputs and is skipped
# when nothing changed, so a second run takes a second or two.
#
#   bash scripts/setup.sh            # creates/updates $SSR_VENV (default: <repo>/.venv)
#   source .venv/bin/activate        # then use `ssr`, `ssr_demo`, pytest, ...
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${SSR_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
STAMPS=$VENV/.ssr-stamps

log() { printf '[setup] %s\n' "$*"; }

# Hash of the given files/directories' contents (paths sorted, so the order is stable).
inputs_hash() {
    (cd "$ROOT" && find "$@" -type f -not -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum) \
        | sha256sum | cut -d' ' -f1
}
is_current() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
mark_current() { mkdir -p "$STAMPS"; printf '%s' "$2" > "$STAMPS/$1"; }

# 1. System tools for building interface packages and for headless MuJoCo rendering (EGL/Mesa).
missing=()
for tool in cmake g++ make; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[ -e /usr/lib/x86_64-linux-gnu/libEGL_mesa.so.0 ] || [ -e /usr/lib/aarch64-linux-gnu/libEGL_mesa.so.0 ] \
    || missing+=(libegl1 libegl-mesa0 libgl1-mesa-dri)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing system packages: ${missing[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        log "missing system packages: ${missing[*]} (install them, e.g. with apt-get)"; exit 1
    fi
fi

# 2. Virtual environment and Python packages.
[ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
# shellcheck disable=SC1091
source "$VENV/bin/activate"
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"

hash=$(inputs_hash requirements setup.py setup.cfg)
if ! is_current pip "$hash"; then
    log "installing Python packages (first run: a few minutes)"
    python -m pip install -q --upgrade pip wheel
    python -m pip install -q -r requirements/core.txt -r requirements/ros-pypi.txt -r requirements/dev.txt
    python -m pip install -q --no-deps --no-build-isolation -e "$ROOT"
    mark_current pip "$hash"
fi

# 3. Interface packages, built with ament_cmake + rosidl into the venv itself.
build_interfaces() {  # name, source dir
    local name=$1 src=$2 build=$VENV/build/$1
    local h; h=$(inputs_hash "${src#"$ROOT"/}" msg/cmake)
    is_current "$name" "$h" && return 0
    log "building interface package $name"
    rm -rf "$build" && mkdir -p "$build"
    (cd "$build" \
        && cmake "$src" -DCMAKE_INSTALL_PREFIX="$VENV" -DBUILD_TESTING=OFF \
            -DPython3_EXECUTABLE="$VENV/bin/python" >cmake.log 2>&1 \
        && make -j"$(nproc)" install >make.log 2>&1) \
        || { log "building $name failed; see $build/cmake.log and $build/make.log"; exit 1; }
    mark_current "$name" "$h"
}
build_interfaces ssr_msgs "$ROOT/msg"
# Only where the real tf2_msgs is absent (ROS from PyPI has none); a robot keeps its own.
if [ -f "$STAMPS/tf2_msgs" ] || ! python -c "import tf2_msgs.msg" 2>/dev/null; then
    build_interfaces tf2_msgs "$ROOT/fallback/tf2_msgs"
fi
# Likewise vision_msgs (Detection3DArray output for standard RViz plugins and tools).
if [ -f "$STAMPS/vision_msgs" ] || ! python -c "import vision_msgs.msg" 2>/dev/null; then
    build_interfaces vision_msgs "$ROOT/fallback/vision_msgs"
fi

log "ready: source $VENV/bin/activate"
