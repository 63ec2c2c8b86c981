#!/usr/bin/env bash
# Run every test: build and run the suite, then the unit and integration tiers
# again under AddressSanitizer + UndefinedBehaviorSanitizer, then the bounded fuzz
# runs. Prints one closing line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
passed=0
failed=0

run_ctest() {  # build_dir label...
  local dir=$1; shift
  local log
  log=$(mktemp)
  ctest --test-dir "$dir" --output-on-failure -j"$jobs" "$@" 2>&1 | tee "$log"
  local summary
  summary=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -1)
  if [ -n "$summary" ]; then
    local total fails
    total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$summary")
    fails=$(sed -E 's/.* ([0-9]+) tests failed.*/\1/' <<<"$summary")
    passed=$((passed + total - fails))
    failed=$((failed + fails))
  elif ! grep -q 'No tests were found' "$log"; then
    failed=$((failed + 1))
  fi
  rm -f "$log"
}

if ! scripts/build.sh; then
  echo "test: build failed"
  echo "0 passed, 1 failed"
  exit 1
fi
run_ctest build

if [ "${BLOCKWATCH_SKIP_SANITIZERS:-0}" != 1 ]; then
  if BLOCKWATCH_BUILD_DIR=build-asan scripts/build.sh -DBLOCKWATCH_SANITIZE=address,undefined; then
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      run_ctest build-asan -L 'unit|integration|sanitize'
  else
    echo "test: sanitizer build failed"
    failed=$((failed + 1))
  fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
