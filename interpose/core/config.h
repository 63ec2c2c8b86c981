// The injected library's configuration, read once from the environment
// (BLOCKWATCH_*) by the library constructor. Read-only afterwards, so hook-path
// code may read it freely.
#pragma once

#include <cstdint>

namespace blockwatch::interpose {

struct Config {
  int64_t threshold_ns = 1'000'000;            // BLOCKWATCH_THRESHOLD, 0 = strict
  int64_t stall_threshold_ns = 0;              // BLOCKWATCH_STALL_THRESHOLD, 0 = off
  int64_t hang_threshold_ns = 10'000'000'000;  // BLOCKWATCH_HANG_THRESHOLD
  const char* workers = "";                    // BLOCKWATCH_WORKERS rule text
  const char* collector = nullptr;             // BLOCKWATCH_COLLECTOR, "unix:PATH"
  const char* output = nullptr;                // BLOCKWATCH_OUTPUT, a file path
  const char* pool_wait = nullptr;             // BLOCKWATCH_POOL_WAIT: the config's pool_wait
                                               // regex (idle-wait rules, stack_rule.h)
  bool follow_children = true;                 // BLOCKWATCH_FOLLOW_CHILDREN
  bool abort_on_blocking = false;              // BLOCKWATCH_ON_BLOCKING=abort
  bool enabled = true;                         // BLOCKWATCH_DISABLE=1 turns it off
  uint32_t task_timing_every = 0;              // BLOCKWATCH_TASK_TIMING_EVERY: time 1 in N
                                               // probe-entered tasks; 0 = the default
                                               // (task_stats.h kTaskTimingEveryDefault)
  bool tsc_allowed = true;                     // BLOCKWATCH_TIMEBASE=clock: hooks read
                                               // clock_gettime, not the TSC (timebase.h)
};

const Config& config();

// Environment variable `name` as a whole number in [low, high]: true with
// `*value` set; false when unset; when malformed, false after one line on
// stderr ("... is not <what>; using <fallback>"). Constructor-time only.
bool read_env_count(const char* name, long low, long high, const char* what,
                    const char* fallback, long* value);

}  // namespace blockwatch::interpose
