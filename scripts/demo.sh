#!/usr/bin/env bash
# The README's first command (after scripts/setup.sh): build what the demo needs,
# run the demo service (examples/demo_service.cc) under `blockwatch run` with
# examples/demo.bwconfig, write the reports to $build_dir/demo/; `blockwatch run`
# prints the text report to the terminal. Then the same service without any blockwatch code, watched through
# `--workers name:pool-.*` only.
#
# Until the `blockwatch` CLI is built, it falls back to preloading the library
# directly (LD_PRELOAD + BLOCKWATCH_OUTPUT) and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BLOCKWATCH_BUILD_DIR:-build}
out_dir=$build_dir/demo

if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S . -B "$build_dir" -G Ninja >/dev/null
fi
# Only what the demo needs (all of it is there already after scripts/setup.sh).
echo "demo: building the demo, libblockwatch.so and the blockwatch CLI in $build_dir"
if ! cmake --build "$build_dir" -j"$(nproc)" --target demo_service demo_service_plain blockwatch \
    blockwatch_cli >"$build_dir/demo-build.log" 2>&1; then
  echo "demo: the CLI did not build (see $build_dir/demo-build.log); building the demo only"
  cmake --build "$build_dir" -j"$(nproc)" --target demo_service demo_service_plain blockwatch
fi

library=$build_dir/interpose/libblockwatch.so
cli=$build_dir/collector/blockwatch
mkdir -p "$out_dir"
rm -f "$out_dir"/report.* "$out_dir"/plain.* "$out_dir"/demo.bwrec

if [ -x "$cli" ]; then
  echo "demo: $cli run --config examples/demo.bwconfig -- demo_service"
  status=0
  "$cli" run --config examples/demo.bwconfig \
    --report "$out_dir/report.txt" --report "$out_dir/report.json" \
    --report "$out_dir/report.html" --report "$out_dir/report.pb.gz" \
    --report "$out_dir/report.folded" \
    -- "$build_dir/examples/demo_service" || status=$?
  echo
  echo "demo: the same service without blockwatch code, workers chosen by name"
  "$cli" run --config examples/demo.bwconfig --workers 'name:pool-.*' \
    --report "$out_dir/plain.txt" -- "$build_dir/examples/demo_service_plain" || true
  echo
  echo "demo: reports in $out_dir/ (report.txt, .json, .html, .pb.gz, .folded; plain.txt)"
  echo "      go tool pprof -top $out_dir/report.pb.gz"
  exit "$status"
fi

echo "demo: the blockwatch CLI is not built yet; preloading $library directly"
echo "      (raw stream in $out_dir/demo.bwrec; 'blockwatch report' renders it once it exists)"
LD_PRELOAD=$library BLOCKWATCH_OUTPUT=$out_dir/demo.bwrec \
  BLOCKWATCH_THRESHOLD=1ms BLOCKWATCH_STALL_THRESHOLD=20ms \
  "$build_dir/examples/demo_service"
ls -l "$out_dir/demo.bwrec"
