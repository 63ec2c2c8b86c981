#!/usr/bin/env bash
# Refreshes docs/report-screenshot.png (the README's picture) from the demo people
# run: scripts/demo.sh writes $build_dir/demo/report.html, then
# scripts/report_screenshot.mjs photographs it in headless Chromium. The demo's
# own exit status (3 when its --fail-on rules break, which they are meant to) is
# not an error here.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BLOCKWATCH_BUILD_DIR:-build}
mkdir -p "$build_dir"
BLOCKWATCH_BUILD_DIR=$build_dir scripts/demo.sh >"$build_dir/demo-run.log" 2>&1 || true
report=$build_dir/demo/report.html
if [ ! -s "$report" ]; then
  echo "report_screenshot: the demo wrote no $report (see $build_dir/demo-run.log)" >&2
  exit 1
fi
chromium=$(command -v chromium || command -v chromium-browser)
node scripts/report_screenshot.mjs "$report" docs/report-screenshot.png "$chromium"
