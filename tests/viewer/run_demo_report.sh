#!/usr/bin/env bash
# ctest fixture for the browser tests: runs the demo under `blockwatch run` and
# writes its JSON report, so the viewer is tested on a real report.
#   run_demo_report.sh BLOCKWATCH_CLI DEMO_CONFIG OUT.json DEMO_BINARY
# Exit status 3 (the demo's report broke a --fail-on rule) is still a report.
set -uo pipefail
cli=$1 config=$2 out=$3 demo=$4
rm -f "$out"
"$cli" run --config "$config" --report "$out" -- "$demo" >/dev/null
status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 3 ]; then
  echo "run_demo_report: blockwatch run exited $status" >&2
  exit 1
fi
if [ ! -s "$out" ]; then
  echo "run_demo_report: no report written to $out" >&2
  exit 1
fi
echo "run_demo_report: $(wc -c <"$out") bytes of JSON report in $out"
