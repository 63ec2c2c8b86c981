// Per-thread state: slot claiming/release, classification of a thread as worker
// (API nesting or BLOCKWATCH_WORKERS rules), task / allow nesting. See
// thread_state.h for the contract of each function.
#include "interpose/core/thread_state.h"

#include <sched.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstring>

#include "interpose/core/capture.h"
#include "interpose/core/worker_rules.h"

namespace blockwatch::interpose {

__thread ThreadLocalState tls_thread __attribute__((tls_model("initial-exec"))) = {};
ThreadSlot g_thread_slots[kMaxThreadSlots];
void (*g_on_thread_became_worker)(int slot_index) = nullptr;

namespace {
pthread_key_t g_slot_key;
std::atomic<bool> g_ready{false};
std::atomic<int> g_claim_hint{0};
std::atomic<int> g_slot_high_water{0};  // see thread_slots_high_water()

void store_mode(uint8_t mode) { __atomic_store_n(&tls_thread.mode, mode, __ATOMIC_RELAXED); }

// The slot's mode_access flag: a few instructions are ever done under it (one
// store through `mode`, or clearing `mode`), so a waiter only yields. Not hook
// path: renames from outside and thread exit.
void lock_mode_access(ThreadSlot& slot) {
  uint8_t expected = 0;
  while (!slot.mode_access.compare_exchange_weak(expected, 1, std::memory_order_acquire)) {
    expected = 0;
    sched_yield();
  }
}
void unlock_mode_access(ThreadSlot& slot) { slot.mode_access.store(0, std::memory_order_release); }

// Clears a slot and frees it. The tid store comes last so a claimer never sees a
// half-cleared slot.
void reset_slot(ThreadSlot& slot) {
  slot.thread.store(pthread_t{}, std::memory_order_relaxed);
  lock_mode_access(slot);
  slot.mode = nullptr;
  unlock_mode_access(slot);
  std::memset(slot.name, 0, sizeof slot.name);
  slot.worker_depth.store(0, std::memory_order_relaxed);
  slot.worker_by_rule = false;
  slot.task_depth.store(0, std::memory_order_relaxed);
  for (auto& label : slot.task_labels) label.store(nullptr, std::memory_order_relaxed);
  slot.task_seq.store(0, std::memory_order_relaxed);
  slot.loop_turns.store(0, std::memory_order_relaxed);
  slot.idle.store(false, std::memory_order_relaxed);
  slot.allow_depth.store(0, std::memory_order_relaxed);
  slot.allow_reason.store(nullptr, std::memory_order_relaxed);
  slot.blocked_in.store(nullptr, std::memory_order_relaxed);
  slot.blocked_since_ticks.store(0, std::memory_order_relaxed);
  slot.pending_wait_key.store(0, std::memory_order_relaxed);
  slot.pending_wait_count.store(0, std::memory_order_relaxed);
  slot.tid.store(0, std::memory_order_release);
}

// pthread key destructor: the thread is exiting. Later destructors that call a
// hook find mode kModeNotWorker and no slot, and pass through.
void release_slot_at_thread_exit(void* value) {
  auto* slot = static_cast<ThreadSlot*>(value);
  store_mode(kModeNotWorker);
  tls_thread.slot = nullptr;
  if (slot) reset_slot(*slot);
}

bool is_main_thread() { return gettid() == getpid(); }

void announce_worker(const ThreadSlot& slot) {
  if (auto* hook = g_on_thread_became_worker) hook(static_cast<int>(&slot - g_thread_slots));
}

// Worker by rule? Reads the thread's own name (PR_GET_NAME: one syscall). Runs the
// rules (regexec allocates): only at classification, never per call. Guarded.
void classify_current_thread(ThreadSlot* slot) {
  RecursionGuard guard;
  char name[kThreadNameBytes] = {};
  prctl(PR_GET_NAME, name, 0, 0, 0);
  std::memcpy(slot->name, name, sizeof name);
  slot->worker_by_rule = worker_rules_match(name, is_main_thread());
  // No capture warm-up here: a thread's first unwind makes libunwind map and
  // fault in a 256 KiB trace cache (~3 ms on a VM), which short-lived threads
  // matched by name would pay for nothing. Threads that report pay it once, at
  // their first report (under the guard, so its mutex locks pass through).
  const bool worker = slot->worker_by_rule || slot->worker_depth.load() > 0;
  store_mode(worker ? kModeWorker : kModeNotWorker);
  if (worker) announce_worker(*slot);
}
}  // namespace

void thread_state_init() {
  // Created early, so its index is small and pthread_setspecific never allocates.
  pthread_key_create(&g_slot_key, release_slot_at_thread_exit);
  g_ready.store(true, std::memory_order_release);
}

ThreadSlot* current_slot() {
  if (tls_thread.slot) return tls_thread.slot;
  if (!g_ready.load(std::memory_order_acquire)) return nullptr;
  const int32_t tid = gettid();
  const int start = g_claim_hint.load(std::memory_order_relaxed);
  for (int i = 0; i < kMaxThreadSlots; ++i) {
    ThreadSlot& slot = g_thread_slots[(start + i) % kMaxThreadSlots];
    int32_t expected = 0;
    if (slot.tid.load(std::memory_order_relaxed) != 0 ||
        !slot.tid.compare_exchange_strong(expected, tid, std::memory_order_acquire)) {
      continue;
    }
    g_claim_hint.store((start + i + 1) % kMaxThreadSlots, std::memory_order_relaxed);
    const int claimed_end = (start + i) % kMaxThreadSlots + 1;
    int high_water = g_slot_high_water.load(std::memory_order_relaxed);
    while (high_water < claimed_end && !g_slot_high_water.compare_exchange_weak(
                                           high_water, claimed_end, std::memory_order_release)) {
    }
    slot.thread.store(pthread_self(), std::memory_order_relaxed);
    slot.mode = reinterpret_cast<std::atomic<uint8_t>*>(&tls_thread.mode);
    prctl(PR_GET_NAME, slot.name, 0, 0, 0);
    tls_thread.slot = &slot;
    pthread_setspecific(g_slot_key, &slot);
    return &slot;
  }
  return nullptr;  // more than kMaxThreadSlots live threads: this one is unwatched
}

bool hook_should_time_slow(uint8_t mode) {
  if (tls_thread.guard_depth != 0) return hook_is_nested_in_timed_call(mode);
  if (mode == kModeUnknown) {
    if (!g_ready.load(std::memory_order_acquire)) return false;
    ThreadSlot* slot;
    {
      RecursionGuard guard;
      slot = current_slot();
    }
    if (!slot) {
      store_mode(kModeNotWorker);
      return false;
    }
    classify_current_thread(slot);
    mode = current_mode();
  }
  return mode == kModeWorker && tls_thread.slot != nullptr;
}

void worker_begin() {
  RecursionGuard guard;
  ThreadSlot* slot = current_slot();
  if (!slot) return;
  if (slot->worker_depth.fetch_add(1, std::memory_order_relaxed) == 0) {
    capture_warm_up_thread();
    announce_worker(*slot);
  }
  if (current_mode() != kModeLibrary) store_mode(kModeWorker);
}

void worker_end() {
  ThreadSlot* slot = tls_thread.slot;
  if (!slot || slot->worker_depth.load(std::memory_order_relaxed) <= 0) return;
  if (slot->worker_depth.fetch_sub(1, std::memory_order_relaxed) == 1 && !slot->worker_by_rule &&
      current_mode() == kModeWorker) {
    store_mode(kModeNotWorker);
  }
}

void task_begin(const char* label) {
  RecursionGuard guard;
  ThreadSlot* slot = current_slot();
  if (!slot) return;
  const int32_t depth = slot->task_depth.load(std::memory_order_relaxed);
  if (depth < kMaxTaskNesting) slot->task_labels[depth].store(label, std::memory_order_relaxed);
  slot->task_depth.store(depth + 1, std::memory_order_relaxed);
  slot->task_seq.fetch_add(1, std::memory_order_release);
}

void task_end() {
  ThreadSlot* slot = tls_thread.slot;
  if (!slot) return;
  const int32_t depth = slot->task_depth.load(std::memory_order_relaxed);
  if (depth <= 0) return;
  if (depth <= kMaxTaskNesting) {
    slot->task_labels[depth - 1].store(nullptr, std::memory_order_relaxed);
  }
  slot->task_depth.store(depth - 1, std::memory_order_release);
}

void allow_begin(const char* reason) {
  RecursionGuard guard;
  ThreadSlot* slot = current_slot();
  if (!slot) return;
  // The outermost reason is kept: an inner scope does not narrow an outer one.
  if (slot->allow_depth.fetch_add(1, std::memory_order_relaxed) == 0) {
    slot->allow_reason.store(reason ? reason : "allowed", std::memory_order_relaxed);
  }
}

void allow_end() {
  ThreadSlot* slot = tls_thread.slot;
  if (!slot || slot->allow_depth.load(std::memory_order_relaxed) <= 0) return;
  if (slot->allow_depth.fetch_sub(1, std::memory_order_relaxed) == 1) {
    slot->allow_reason.store(nullptr, std::memory_order_relaxed);
  }
}

void mark_loop_turn(bool idle_now) {
  ThreadSlot* slot = tls_thread.slot;
  if (!slot) return;
  if (!idle_now) slot->loop_turns.fetch_add(1, std::memory_order_release);
  slot->idle.store(idle_now, std::memory_order_release);
}

int thread_slots_high_water() { return g_slot_high_water.load(std::memory_order_acquire); }

void mark_current_thread_internal() { store_mode(kModeLibrary); }

void thread_renamed(pthread_t thread, const char* name) {
  if (pthread_equal(thread, pthread_self())) {
    if (tls_thread.slot) {
      std::strncpy(tls_thread.slot->name, name, kThreadNameBytes - 1);
      classify_current_thread(tls_thread.slot);
    } else if (current_mode() != kModeLibrary) {
      store_mode(kModeUnknown);
    }
    return;
  }
  // Another thread: make it reclassify itself at its next hook. A thread that has
  // no slot yet is still kModeUnknown and will read its new name then anyway.
  // Its TLS is written under the slot's mode_access flag, which its exit path
  // also takes before the TLS can go away (reset_slot), and only while the slot
  // still belongs to `thread`.
  const int slot_end = thread_slots_high_water();
  for (int i = 0; i < slot_end; ++i) {
    ThreadSlot& slot = g_thread_slots[i];
    if (slot.tid.load(std::memory_order_acquire) == 0) continue;
    if (!pthread_equal(slot.thread.load(std::memory_order_relaxed), thread)) continue;
    lock_mode_access(slot);
    std::atomic<uint8_t>* mode = slot.mode;
    if (mode && slot.tid.load(std::memory_order_acquire) != 0 &&
        pthread_equal(slot.thread.load(std::memory_order_relaxed), thread) &&
        mode->load(std::memory_order_relaxed) != kModeLibrary) {
      mode->store(kModeUnknown, std::memory_order_relaxed);
    }
    unlock_mode_access(slot);
    return;
  }
}

void thread_state_after_fork_child() {
  ThreadSlot* own = tls_thread.slot;
  for (ThreadSlot& slot : g_thread_slots) {
    // A thread that held mode_access at fork does not exist here.
    slot.mode_access.store(0, std::memory_order_relaxed);
    if (&slot != own && slot.tid.load(std::memory_order_relaxed) != 0) reset_slot(slot);
  }
  if (own) own->tid.store(gettid(), std::memory_order_relaxed);
}

}  // namespace blockwatch::interpose
