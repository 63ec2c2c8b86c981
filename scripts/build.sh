#!/usr/bin/env bash
# Configure and build into build/ (or $BLOCKWATCH_BUILD_DIR). Extra arguments go to
# cmake's configure step, e.g. -DBLOCKWATCH_SANITIZE=address,undefined.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BLOCKWATCH_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja "$@" >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
