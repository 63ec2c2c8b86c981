#!/usr/bin/env bash
# `cmake --install` of the whole build into a temporary prefix, which is then moved
# (the install must be relocatable), then, as a user would:
#  - check the layout: bin/blockwatch, bin/blockwatchd, the injected library where
#    the CLI looks, headers, CMake package, pkg-config file;
#  - build consumer/ with find_package(blockwatch) (hooks, asio, gtest targets) and
#    a C program with pkg-config blockwatch-hooks;
#  - run them under the installed `blockwatch run` (BLOCKWATCH_LIBRARY unset, so it
#    must find its own library) and check the planted blocking calls are reported
#    with their function on the stack, and that the GoogleTest listener fails
#    exactly the test that blocked.
# Usage: install_tree_test.sh BUILD_DIR CONSUMER_SOURCE_DIR CC CXX
set -euo pipefail
build_dir=$1 consumer_dir=$2 cc=$3 cxx=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "install test: $*" >&2; exit 1; }

cmake --install "$build_dir" --prefix "$work/staged" >/dev/null
mv "$work/staged" "$work/prefix"
prefix=$work/prefix
for file in bin/blockwatch bin/blockwatchd lib/blockwatch/libblockwatch.so \
    include/blockwatch/blockwatch.h include/blockwatch/blockwatch.hpp \
    include/blockwatch/asio_tracking.hpp include/blockwatch/gtest.hpp \
    lib/cmake/blockwatch/blockwatchConfig.cmake share/pkgconfig/blockwatch-hooks.pc; do
  [ -f "$prefix/$file" ] || fail "missing $file in the installed tree"
done

cmake -S "$consumer_dir" -B "$work/build" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_CXX_COMPILER="$cxx" >/dev/null  # no build type, as users often leave it
cmake --build "$work/build" >/dev/null
pc_flags=$(PKG_CONFIG_PATH="$prefix/share/pkgconfig" pkg-config --cflags --libs blockwatch-hooks)
case "$pc_flags" in *"$prefix"*) ;; *) fail "pkg-config points elsewhere: $pc_flags" ;; esac
# shellcheck disable=SC2086  # pc_flags is a list of flags
"$cc" -std=c99 -g -O1 "$consumer_dir/planted_c.c" $pc_flags -o "$work/planted_c"

blockwatch=(env -u BLOCKWATCH_LIBRARY -u LD_PRELOAD -u BLOCKWATCH_WORKERS "$prefix/bin/blockwatch")

check_report() { python3 "$(dirname "$0")/check_report.py" "$@"; }

out=$("${blockwatch[@]}" run --report "$work/planted.json" -- "$work/build/planted" 2>&1) ||
  fail "blockwatch run planted failed: $out"
grep -q "planted: preloaded" <<<"$out" || fail "the library was not preloaded: $out"
check_report "$work/planted.json" planted_blocking_call io_context.execute || fail "planted"

out=$("${blockwatch[@]}" run --report "$work/planted_c.json" -- "$work/planted_c" 2>&1) ||
  fail "blockwatch run planted_c failed: $out"
check_report "$work/planted_c.json" planted_c_blocking_call || fail "planted_c"

# The listener fails the test that blocked a worker, so the run exits 1.
set +e
out=$("${blockwatch[@]}" run -- "$work/build/planted_gtest" 2>&1)
status=$?
set -e
[ "$status" -eq 1 ] || fail "planted_gtest exited $status, expected 1: $out"
grep -q "\[  FAILED  \] Installed.WorkerBlocks (" <<<"$out" || fail "WorkerBlocks did not fail: $out"
grep -q "\[       OK \] Installed.QuietTestPasses" <<<"$out" || fail "QuietTestPasses: $out"
grep -q "planted_gtest_blocking_call" <<<"$out" || fail "listener named no stack: $out"
echo "install test: installed tree relocatable; find_package, pkg-config, blockwatch run ok"
