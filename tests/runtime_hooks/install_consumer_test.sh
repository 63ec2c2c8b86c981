#!/usr/bin/env bash
# Installs the runtime hooks (component blockwatch_hooks) from a configured build
# tree into a temporary prefix, then builds and runs a consumer twice: through
# find_package(blockwatch) and through pkg-config blockwatch-hooks.
# Usage: install_consumer_test.sh BUILD_DIR CONSUMER_SOURCE_DIR CXX
set -euo pipefail
build_dir=$1 consumer_dir=$2 cxx=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

cmake --install "$build_dir" --component blockwatch_hooks --prefix "$prefix" >/dev/null
test -f "$prefix/include/blockwatch/blockwatch.hpp"
test -f "$prefix/include/blockwatch/asio_tracking.hpp"

cmake -S "$consumer_dir" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
cmake --build "$work/cmake-build" >/dev/null
out=$("$work/cmake-build/consumer")
[ "$out" = "consumer ok" ] || { echo "find_package consumer printed: $out"; exit 1; }

cflags=$(PKG_CONFIG_PATH="$prefix/share/pkgconfig" pkg-config --cflags --libs blockwatch-hooks)
case "$cflags" in *"$prefix"*) ;; *) echo "pkg-config points elsewhere: $cflags"; exit 1 ;; esac
# shellcheck disable=SC2086  # cflags is a list of flags
"$cxx" -std=c++17 "$consumer_dir/consumer.cc" $cflags -o "$work/consumer-pc"
out=$("$work/consumer-pc")
[ "$out" = "consumer ok" ] || { echo "pkg-config consumer printed: $out"; exit 1; }
echo "install consumer: find_package and pkg-config ok"
