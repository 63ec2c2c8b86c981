// The program preload_test runs under LD_PRELOAD=libblockwatch.so, one scenario
// per run: `preload_target SCENARIO`. Each scenario blocks in a known way in a
// function with a known name (so the test can find it in the recorded stack) and
// checks, itself, that every return value and errno is what the real call gives:
// it exits non-zero (with a message) when one differs. Runs correctly without the
// preload too, which is how the test compares. The scenarios live in one file
// per family (target_locks.cc, target_io.cc, target_workers.cc,
// target_lifecycle.cc); this file only dispatches.
#include <cstdio>
#include <string>

#include "tests/preload/target_support.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: preload_target SCENARIO\n");
    return 2;
  }
  preload_target::ScenarioTable scenarios;
  preload_target::add_lock_scenarios(scenarios);
  preload_target::add_io_scenarios(scenarios);
  preload_target::add_worker_scenarios(scenarios);
  preload_target::add_lifecycle_scenarios(scenarios);
  const auto found = scenarios.find(argv[1]);
  if (found == scenarios.end()) {
    fprintf(stderr, "preload_target: unknown scenario '%s'\n", argv[1]);
    return 2;
  }
  found->second(argv[0]);
  return 0;
}
