// Per-thread state: what a hook must know about the calling thread (worker? in a
// task? inside blockwatch already?) and what a watchdog thread must be able to
// read about *other* threads (task sequence, what call it is blocked in).
//
// Two layers:
//  - `tls_thread`, a __thread struct (initial-exec, trivially destructible,
//    constant-initialised). Its `mode` byte is the ONE thread-local read a hook
//    makes on a non-worker thread.
//  - a fixed global array of ThreadSlot (kMaxThreadSlots), claimed by a thread the
//    first time a hook classifies it and released by a pthread key destructor at
//    thread exit. Fields another thread reads are atomics.
//
// Hook-path code: nothing here allocates or locks after init, except where a
// function says otherwise.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>

#include "interpose/base/timebase.h"
#include "interpose/core/record.h"

namespace blockwatch::interpose {

inline constexpr int kMaxThreadSlots = 4096;
inline constexpr int kMaxTaskNesting = 8;      // deeper tasks keep the 8th label
inline constexpr int kPendingWaitFrames = 16;  // wait_classifier.h kWaitStackFrames

// tls_thread.mode. Other threads may store kModeUnknown into it (a thread renamed
// from outside is reclassified at its next hook), so it is accessed atomically,
// and only under the slot's mode_access flag (the owner's exit takes it too).
inline constexpr uint8_t kModeUnknown = 0;    // not classified yet
inline constexpr uint8_t kModeNotWorker = 1;  // hooks pass straight through
inline constexpr uint8_t kModeWorker = 2;     // hooks time blocking calls
inline constexpr uint8_t kModeLibrary = 3;    // blockwatch's own thread: never

struct ThreadSlot {
  std::atomic<int32_t> tid{0};  // 0: free
  std::atomic<pthread_t> thread{};
  std::atomic<uint8_t>* mode = nullptr;  // the owner's tls_thread.mode
  char name[kThreadNameBytes] = {};      // written by the owner only
  std::atomic<int32_t> worker_depth{0};  // bw_worker_begin nesting
  bool worker_by_rule = false;           // BLOCKWATCH_WORKERS made it a worker
  std::atomic<int32_t> task_depth{0};
  std::atomic<const char*> task_labels[kMaxTaskNesting] = {};
  std::atomic<uint64_t> task_seq{0};    // +1 at every task begin
  std::atomic<uint64_t> loop_turns{0};  // +1 at every idle wait (epoll_wait)
  std::atomic<bool> idle{false};        // inside the executor's idle wait
  std::atomic<int32_t> allow_depth{0};
  std::atomic<const char*> allow_reason{nullptr};
  std::atomic<const char*> blocked_in{nullptr};  // interposed call in progress
  std::atomic<int64_t> blocked_since_ticks{0};   // hook clock: ticks_to_mono_ns() (timebase.h)
  // A condvar/futex wait whose call site is not classified yet (wait_classifier.h):
  // the owner writes the pcs and kind, then the key (release); 0: nothing parked.
  std::atomic<uint64_t> pending_wait_key{0};
  std::atomic<uint8_t> pending_wait_kind{0};
  std::atomic<uint8_t> pending_wait_count{0};
  std::atomic<uintptr_t> pending_wait_pcs[kPendingWaitFrames] = {};
  // Held (1) while another thread writes `*mode` (a rename from outside) and
  // while the owner drops `mode` at exit, so no write lands in freed TLS.
  std::atomic<uint8_t> mode_access{0};
};

struct ThreadLocalState {
  uint8_t mode;         // kMode*, atomic access only (see above)
  uint8_t guard_depth;  // >0: inside blockwatch, hooks pass through
  bool capture_warm;    // this thread's first unwind already happened
  ThreadSlot* slot;     // null until claimed, and again after release
};

extern __thread ThreadLocalState tls_thread __attribute__((tls_model("initial-exec")));

extern ThreadSlot g_thread_slots[kMaxThreadSlots];

// One past the highest slot index ever claimed: slots at and above it are free,
// so the stall watchdog scans only below it. Only grows. Async-signal-safe.
int thread_slots_high_water();

// The one recursion guard: while it lives, every hook on this thread passes
// straight through (blockwatch's own locks, libunwind's first-use locks, a signal
// handler interrupting a hook). Async-signal-safe, no allocation.
class RecursionGuard {
 public:
  RecursionGuard() { ++tls_thread.guard_depth; }
  ~RecursionGuard() { --tls_thread.guard_depth; }
  RecursionGuard(const RecursionGuard&) = delete;
  RecursionGuard& operator=(const RecursionGuard&) = delete;
};

inline uint8_t current_mode() { return __atomic_load_n(&tls_thread.mode, __ATOMIC_RELAXED); }

// Set up the thread-exit key and remember the main thread. Library constructor.
void thread_state_init();

// Is the calling thread a worker whose blocking calls a hook should time now?
// The fast path (mode == kModeNotWorker) is one TLS read; everything else goes
// to the slow path, which classifies unknown threads once (may read
// /proc/self/task/TID/comm and run the worker rules: allocates; guarded).
bool hook_should_time_slow(uint8_t mode);
inline bool hook_should_time() {
  const uint8_t mode = current_mode();
  if (__builtin_expect(mode == kModeNotWorker, 1)) return false;
  if (mode == kModeWorker && tls_thread.guard_depth == 0 && tls_thread.slot) return true;
  return hook_should_time_slow(mode);
}

// The calling thread's slot, claiming one if needed. Null when all are taken.
// No allocation after thread_state_init (pthread_setspecific on an early key).
ThreadSlot* current_slot();

// The bw_* API (nesting counters; see blockwatch.h). No allocation, no lock.
void worker_begin();
void worker_end();
void task_begin(const char* label);
void task_end();
void allow_begin(const char* reason);
void allow_end();
void mark_loop_turn(bool idle_now);

// Called on a thread when it becomes a worker (classified by rule, or its first
// bw_worker_begin), with its slot index; null: nothing. Set once, by the
// watchdog at start-up (the fallback stack sampler prepares the thread's
// alternate signal stack here). Runs on the classification path, never per call.
extern void (*g_on_thread_became_worker)(int slot_index);

// Mark the calling thread as blockwatch's own: never reported.
void mark_current_thread_internal();

// The thread `thread` (maybe the caller) was renamed to `name`: re-run the worker
// rules for it (now if it is the caller, at its next hook otherwise).
void thread_renamed(pthread_t thread, const char* name);

// In the child after fork(): only the calling thread survives; free every other
// slot. Single-threaded context.
void thread_state_after_fork_child();

}  // namespace blockwatch::interpose
