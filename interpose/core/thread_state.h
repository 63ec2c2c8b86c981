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

#include "interpose/base/side_stack.h"
#include "interpose/base/timebase.h"
#include "interpose/core/record.h"
#include "interpose/core/task_stats.h"
#include "interpose/core/watchdog_wake.h"

namespace blockwatch::interpose {

inline constexpr int kMaxThreadSlots = 4096;
inline constexpr int kMaxTaskNesting = 8;      // deeper tasks keep the 8th label
static_assert(kMaxTaskNesting == kTaskApiNesting);
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
  // A task-entry probe (probes/task_probes.h) ran on this thread: its task
  // boundaries are known (every entry and every idle wait ends a task), so a
  // stall here is one task's, not a loop turn's.
  std::atomic<bool> probed{false};
  // Per-task counts and the sampled-timing state (task_stats.h). Kept when the
  // slot is freed (counts are cumulative); owner-written.
  TaskTimer task_timer;
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
  // 1: the owner found its name's worker verdict not learnt yet (no regex on
  // the hook path); it passes through until the sender learns it
  // (thread_state_classify_pending). Set by the owner, cleared by the sender.
  std::atomic<uint8_t> classify_pending{0};
  // Where the owner's reports unwind (side_stack.h): mapped at the slot's first
  // report, kept for later owners.
  SideStack side_stack;
  // Held (1) while another thread writes `*mode` (a rename from outside) and
  // while the owner drops `mode` at exit, so no write lands in freed TLS.
  std::atomic<uint8_t> mode_access{0};
};

struct ThreadLocalState {
  uint8_t mode;         // kMode*, atomic access only (see above)
  uint8_t guard_depth;  // >0: inside blockwatch, hooks pass through
  bool capture_warm;    // this thread's first unwind already happened
  // Created by a worker while it ran a task or a loop turn (a helper, not a pool
  // thread): while its name is still `inherited_name`, name rules ignore it.
  bool spawned_in_work;
  char inherited_name[kThreadNameBytes];
  bool slot_denied;  // found every slot taken (counted once per thread)
  ThreadSlot* slot;  // null until claimed, and again after release
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

// Instead of thread_state_init in a dormant process (process_scope.h): every
// thread becomes a non-worker at its first hook, for good.
void thread_state_set_dormant();

// The calling thread ends without its pthread key destructors (a raw
// syscall(SYS_exit)): release its slot now. Async-signal-safe, no allocation.
void thread_state_thread_exiting();

// Is the calling thread a worker whose blocking calls a hook should time now?
// The fast path (mode == kModeNotWorker) is one TLS read; everything else goes
// to the slow path, which classifies unknown threads: claims a slot, reads the
// name (PR_GET_NAME) and looks its verdict up (worker_rules_cached_verdict). A
// name whose verdict is not learnt yet leaves the thread unknown and passing
// through until the sender learns it. Async-signal-safe, no allocation, no lock:
// a thread's first hook may run in a signal handler that interrupted malloc.
bool hook_should_time_slow(uint8_t mode);
inline bool hook_should_time() {
  const uint8_t mode = current_mode();
  if (__builtin_expect(mode == kModeNotWorker, 1)) return false;
  if (mode == kModeWorker && tls_thread.guard_depth == 0 && tls_thread.slot) return true;
  return hook_should_time_slow(mode);
}

// The calling thread's slot, claiming one if needed. When all are taken, slots
// of threads that ended without running their TLS destructors (a raw SYS_exit)
// are reclaimed first (tgkill(pid, tid, 0) says ESRCH); null when none is
// free even then: the thread is unwatched, counted once in
// threads_without_slot(). No allocation after thread_state_init
// (pthread_setspecific on an early key); async-signal-safe; errno preserved.
ThreadSlot* current_slot();

// Threads that found every slot taken since start (or the last fork). Wire
// Counters.threads_unwatched. Async-signal-safe.
uint64_t threads_without_slot();

// The bw_* API (nesting counters; see blockwatch.h). No allocation, no lock.
void worker_begin();
void worker_end();
void task_begin(const char* label);
void task_end();
void allow_begin(const char* reason);
void allow_end();
void mark_loop_turn(bool idle_now);

// A task-entry probe fired on the calling thread (probes/probe_hook.cc): the
// previous task (if any) ended, a new one starts. Counts the task for probe
// `probe_id`; true when the clock is needed (1 in N tasks, task_stats.h): then
// the caller runs task_timer_entry_clock, kept out of this fast path. Owner
// thread only; no allocation, no lock, async-signal-safe; touches no vector
// register (the probe runs at a function's entry, where xmm0-7 may hold its
// arguments): integer arithmetic only.
BW_PROBE_INLINE bool probe_task_entry(ThreadSlot& slot, uint32_t probe_id) {
  slot.task_seq.store(slot.task_seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  if (!slot.probed.load(std::memory_order_relaxed)) {
    slot.probed.store(true, std::memory_order_seq_cst);
    note_worker_busy();  // its first task: maybe busy now (watchdog_wake.h)
  }
  TaskTimer& timer = slot.task_timer;
  if (probe_id < static_cast<uint32_t>(kTaskProbeStats)) {
    std::atomic<uint64_t>& count = timer.probe_tasks[probe_id];
    count.store(count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  return __builtin_expect(task_timer_entry_needs_clock(timer), 0);
}

// The calling thread is not classified yet (or was renamed): classify it now,
// as a hook would (may allocate: regexec; guarded). True when it is a worker
// with a slot afterwards. Not async-signal-safe.
bool classify_for_probe();

// Thread names are inherited on Linux: a thread carries its creator's name
// until renamed. Name rules follow the names threads were given
// (pthread_setname_np, prctl(PR_SET_NAME), by themselves or by another thread),
// and an inherited name only when the creator was not busy with work: pool
// threads started at start-up by a named launcher are workers, a helper started
// inside a handler or task is not until it is given a worker's name. Tokio's
// threads name themselves.
//
// Is the calling thread a worker running a task or a loop turn now? Then a
// thread it creates is a helper (pthread_create shim). No allocation, no lock.
bool creating_thread_in_work();

// First thing on a thread created while its creator was in work: remember the
// name it inherited. No allocation, no lock.
void mark_spawned_in_work();

// Called on a thread when it becomes a worker (classified by rule, or its first
// bw_worker_begin), with its slot index; null: nothing. Set once, by the
// watchdog at start-up (the fallback stack sampler prepares the thread's
// alternate signal stack here). Runs on the classification path, never per call.
extern void (*g_on_thread_became_worker)(int slot_index);

// Mark the calling thread as blockwatch's own: never reported.
void mark_current_thread_internal();

// The thread `thread` (maybe the caller) was renamed to `name`: learn the rules'
// verdict for `name` (regexec: allocates; pthread_setname_np is not
// async-signal-safe either) and reclassify the thread (now if it is the
// caller, at its next hook otherwise).
void thread_renamed(pthread_t thread, const char* name);

// Learn the worker verdict of the names hooks could not classify (slots with
// classify_pending); those threads pick it up at their next hook. Runs the
// rules (allocates). The sender thread, every loop turn; cheap when nothing
// is pending (one atomic load).
void thread_state_classify_pending();

// In the child after fork(): only the calling thread survives; free every other
// slot. Single-threaded context.
void thread_state_after_fork_child();

}  // namespace blockwatch::interpose
