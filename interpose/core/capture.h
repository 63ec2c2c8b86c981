// Turns a blocking call a hook timed into a Record (record.h): stack via
// libunwind with blockwatch's own frames removed, the thread's name, task and
// allowed scope from its slot, the fd's type; then hands it to agent_submit().
//
// Hook-path code, slow path only (the call already blocked past the threshold or
// strict mode is on). Callers hold a RecursionGuard: libunwind's first use on a
// thread takes pthread mutexes, which must pass through.
#pragma once

#include <cstdint>

#include "interpose/base/timebase.h"

namespace blockwatch::interpose {

// What the hook knows about the call it timed.
struct BlockingCall {
  uint8_t kind = 0;                // kinds::kKind* (common/kinds.h)
  const char* function = nullptr;  // static storage: "pthread_mutex_lock", ...
  uint64_t address = 0;            // lock / condvar / semaphore / futex
  int32_t fd = -1;                 // I/O kinds
  int32_t holder_tid = 0;          // mutex owner seen before blocking, 0 unknown
};

// config().threshold_ns, copied by capture_init() into a plain global so the
// hook path reads it with one load (config() is a function with a static guard).
extern int64_t g_threshold_ns;

// Find blockwatch's own code range and take the process's first unwind (which
// locks pthread mutexes ~17 times). Library constructor.
void capture_init();

// The calling thread's first unwind, done early (it locks ~9 mutexes and maps a
// 256 KiB per-thread trace cache). Called when a thread becomes a worker through
// the API (executor threads: long-lived); threads matched by name warm up at
// their first report instead. Guards itself; no allocation of ours.
void capture_warm_up_thread();

// Return addresses of the caller's stack, innermost first, blockwatch's frames
// removed; at most `max_frames`. The unwind runs on a side stack
// (side_stack.h) of the thread's slot: a few hundred bytes of the caller's
// stack; 0 frames without a slot or when the side stack cannot be mapped. Does
// not allocate (libunwind's local unwinder caches per-thread); not
// async-signal-safe on a thread's first use.
int capture_stack(uintptr_t* frames, int max_frames);

// Build and submit the record for a call on the calling (worker) thread that
// started at `start_mono_ns` and lasted `duration_ns`. The work runs on the
// slot's side stack (under 1 KiB of the caller's; counted as not captured if it
// cannot be mapped). No allocation, no lock of ours; may abort the process when
// BLOCKWATCH_ON_BLOCKING=abort.
void report_blocking_call(const BlockingCall& call, int64_t start_mono_ns, int64_t duration_ns);

// A timed call lasted `elapsed_ticks` (at least g_threshold_ticks) from
// `start_ticks` (timebase.h): converts both to ns and reports the call if it
// lasted the threshold in ns. Preserves errno. Same contract as
// report_blocking_call; out of line so the timed path stays small.
void report_timed_call(const BlockingCall& call, int64_t start_ticks, int64_t elapsed_ticks);

// A hook found this thread inside blockwatch (its RecursionGuard held). Should
// the call still be timed, as a call we cannot record (counted by
// agent_count_not_captured() if it lasted the threshold)? Yes exactly when the
// thread is a worker inside the real function of a timed call (one guard, slot
// blocked_in set): a signal handler's blocking call, or a real function that
// calls another hooked one. Never for blockwatch's own calls (libunwind's locks,
// thread classification: no blocked_in, or a second guard). Async-signal-safe.
bool hook_is_nested_in_timed_call(uint8_t mode);

// A nested call (see hook_is_nested_in_timed_call) lasted `elapsed_ticks`:
// counted by agent_count_not_captured() if that is at least the threshold.
// Async-signal-safe, no allocation, no lock.
void count_nested_call(int64_t elapsed_ticks);

}  // namespace blockwatch::interpose
