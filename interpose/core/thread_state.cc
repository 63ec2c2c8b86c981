// Per-thread state: slot claiming/release, classification of a thread as worker
// (API nesting or BLOCKWATCH_WORKERS rules), task / allow nesting. See
// thread_state.h for the contract of each function.
#include "interpose/core/thread_state.h"

#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "interpose/core/capture.h"
#include "interpose/core/process_scope.h"
#include "interpose/core/worker_rules.h"

namespace blockwatch::interpose {

__thread ThreadLocalState tls_thread __attribute__((tls_model("initial-exec"))) = {};
ThreadSlot g_thread_slots[kMaxThreadSlots];
void (*g_on_thread_became_worker)(int slot_index) = nullptr;

namespace {
pthread_key_t g_slot_key;
std::atomic<bool> g_ready{false};
std::atomic<bool> g_dormant{false};  // process_scope.h: no thread is ever classified
std::atomic<int> g_claim_hint{0};
std::atomic<int> g_slot_high_water{0};  // see thread_slots_high_water()
std::atomic<int> g_classify_pending{0};  // slots with classify_pending set
std::atomic<uint64_t> g_threads_without_slot{0};

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
  slot.probed.store(false, std::memory_order_relaxed);
  // task_timer's counts stay (cumulative, summed by the sender); a task being
  // timed ends unmeasured with its thread.
  slot.task_timer.timing_probe = -1;
  slot.allow_depth.store(0, std::memory_order_relaxed);
  slot.allow_reason.store(nullptr, std::memory_order_relaxed);
  slot.blocked_in.store(nullptr, std::memory_order_relaxed);
  slot.blocked_since_ticks.store(0, std::memory_order_relaxed);
  slot.pending_wait_key.store(0, std::memory_order_relaxed);
  slot.pending_wait_count.store(0, std::memory_order_relaxed);
  // side_stack.low stays mapped for the slot's next owner; busy is 0 unless
  // the slot's thread was on it when another thread fork()ed.
  slot.side_stack.busy.store(0, std::memory_order_relaxed);
  if (slot.classify_pending.exchange(0, std::memory_order_relaxed) != 0) {
    g_classify_pending.fetch_sub(1, std::memory_order_relaxed);
  }
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

struct LearnJob {
  const char* name;
  bool is_main_thread;
  bool worker;
};

void learn_job(void* arg) {
  auto* job = static_cast<LearnJob*>(arg);
  job->worker = worker_rules_learn(job->name, job->is_main_thread);
}

// The rules' verdict for the calling thread is known: set its mode.
void apply_rule_verdict(ThreadSlot* slot, bool worker_by_rule) {
  if (slot->classify_pending.exchange(0, std::memory_order_relaxed) != 0) {
    g_classify_pending.fetch_sub(1, std::memory_order_relaxed);
  }
  // No capture warm-up here: a thread's first unwind makes libunwind map and
  // fault in a 256 KiB trace cache (~3 ms on a VM), which short-lived threads
  // matched by name would pay for nothing. Threads that report pay it once, at
  // their first report (under the guard, so its mutex locks pass through).
  slot->worker_by_rule = worker_by_rule;
  const bool worker = worker_by_rule || slot->worker_depth.load() > 0;
  store_mode(worker ? kModeWorker : kModeNotWorker);
  if (worker) {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // watchdog_wake.h
    note_worker_busy();
    announce_worker(*slot);
  }
}

// Worker by rule? Reads the thread's own name (PR_GET_NAME: one syscall) unless
// it is waiting for the sender to learn the name it already read, and looks the
// verdict up: no regex here. An unknown verdict leaves the thread kModeUnknown
// (this call passes through) and asks the sender. Async-signal-safe.
void classify_current_thread(ThreadSlot* slot) {
  RecursionGuard guard;
  if (slot->classify_pending.load(std::memory_order_relaxed) == 0) {
    char name[kThreadNameBytes] = {};
    prctl(PR_GET_NAME, name, 0, 0, 0);
    std::memcpy(slot->name, name, sizeof name);
  }
  // A helper's inherited name is its creator's, not a name it was given: only
  // `main` can make it a worker then.
  const bool name_inherited_in_work =
      tls_thread.spawned_in_work &&
      std::strncmp(slot->name, tls_thread.inherited_name, kThreadNameBytes) == 0;
  const NameVerdict verdict = worker_rules_cached_verdict(
      name_inherited_in_work ? nullptr : slot->name, is_main_thread());
  if (verdict == NameVerdict::kUnknown && slot->worker_depth.load() == 0) {
    if (slot->classify_pending.exchange(1, std::memory_order_relaxed) == 0) {
      g_classify_pending.fetch_add(1, std::memory_order_release);
    }
    return;
  }
  apply_rule_verdict(slot, verdict == NameVerdict::kWorker);
}
}  // namespace

void thread_state_init() {
  // Created early, so its index is small and pthread_setspecific never allocates.
  pthread_key_create(&g_slot_key, release_slot_at_thread_exit);
  // The process's name now: the name the main thread and the threads it starts
  // carry, so their first hooks find its verdict learnt.
  char name[kThreadNameBytes] = {};
  prctl(PR_GET_NAME, name, 0, 0, 0);
  worker_rules_learn(name, /*is_main_thread=*/false);
  g_ready.store(true, std::memory_order_release);
}

namespace {

// One pass over the slots from the claim hint: the first free slot becomes the
// calling thread's. Null when none is free.
ThreadSlot* claim_free_slot(int32_t tid) {
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
    return &slot;
  }
  return nullptr;
}

// Frees the slots of threads that no longer exist: a thread that ended through a
// raw SYS_exit never ran its pthread key destructor. Only when every slot is taken. The dead
// thread's TLS is never touched (reset_slot only drops the pointer). A tid the
// kernel already gave to a new thread keeps its stale slot: rare, and bounded.
int reclaim_slots_of_dead_threads() {
  const int saved_errno = errno;
  const pid_t pid = getpid();
  int reclaimed = 0;
  for (ThreadSlot& slot : g_thread_slots) {
    const int32_t tid = slot.tid.load(std::memory_order_acquire);
    if (tid == 0 || tgkill(pid, tid, 0) == 0 || errno != ESRCH) continue;
    reset_slot(slot);
    ++reclaimed;
  }
  errno = saved_errno;
  return reclaimed;
}

}  // namespace

ThreadSlot* current_slot() {
  if (tls_thread.slot) return tls_thread.slot;
  if (!g_ready.load(std::memory_order_acquire)) return nullptr;
  const int32_t tid = gettid();
  ThreadSlot* claimed = claim_free_slot(tid);
  if (!claimed && reclaim_slots_of_dead_threads() > 0) claimed = claim_free_slot(tid);
  if (!claimed) {
    // More than kMaxThreadSlots live threads: this one is unwatched. Said once.
    if (!tls_thread.slot_denied) {
      tls_thread.slot_denied = true;
      g_threads_without_slot.fetch_add(1, std::memory_order_relaxed);
    }
    return nullptr;
  }
  ThreadSlot& slot = *claimed;
  slot.thread.store(pthread_self(), std::memory_order_relaxed);
  slot.mode = reinterpret_cast<std::atomic<uint8_t>*>(&tls_thread.mode);
  prctl(PR_GET_NAME, slot.name, 0, 0, 0);
  tls_thread.slot = &slot;
  pthread_setspecific(g_slot_key, &slot);
  return &slot;
}

uint64_t threads_without_slot() { return g_threads_without_slot.load(std::memory_order_relaxed); }

bool hook_should_time_slow(uint8_t mode) {
  if (tls_thread.guard_depth != 0) return hook_is_nested_in_timed_call(mode);
  if (mode == kModeUnknown) {
    if (!g_ready.load(std::memory_order_acquire)) {
      if (g_dormant.load(std::memory_order_relaxed)) store_mode(kModeNotWorker);
      return false;
    }
    // A vfork child runs on its parent's thread and TLS, a _Fork child on a copy
    // of them: neither may claim a slot in its parent's name.
    if (!is_original_process()) return false;
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
  if (slot->worker_depth.fetch_add(1, std::memory_order_seq_cst) == 0) {
    note_worker_busy();
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
  // A thread whose first contact with blockwatch is a task (no hooked call
  // yet) is classified now; otherwise the watchdog would never see it as a
  // worker and its stalls would go unreported.
  if (current_mode() == kModeUnknown) classify_current_thread(slot);
  const int32_t depth = slot->task_depth.load(std::memory_order_relaxed);
  if (depth < kMaxTaskNesting) slot->task_labels[depth].store(label, std::memory_order_relaxed);
  slot->task_depth.store(depth + 1, std::memory_order_relaxed);
  slot->task_seq.fetch_add(1, std::memory_order_seq_cst);
  note_worker_busy();  // after the seq_cst change (watchdog_wake.h)
  task_stats_api_begin(slot->task_timer, depth);
}

void task_end() {
  ThreadSlot* slot = tls_thread.slot;
  if (!slot) return;
  const int32_t depth = slot->task_depth.load(std::memory_order_relaxed);
  if (depth <= 0) return;
  // The label is still the task's (its owner frees it only after this call).
  const char* label = depth <= kMaxTaskNesting
                          ? slot->task_labels[depth - 1].load(std::memory_order_relaxed)
                          : slot->task_labels[kMaxTaskNesting - 1].load(std::memory_order_relaxed);
  task_stats_api_end(slot->task_timer, static_cast<int>(slot - g_thread_slots), depth - 1, label);
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
  // A timed probe task's clock stops during idle waits (task_stats.h).
  task_timer_idle(slot->task_timer, idle_now);
  if (idle_now) {
    slot->idle.store(true, std::memory_order_release);
    return;
  }
  slot->loop_turns.fetch_add(1, std::memory_order_release);
  slot->idle.store(false, std::memory_order_seq_cst);
  note_worker_busy();  // a turn begins (watchdog_wake.h)
}

bool classify_for_probe() {
  if (!g_ready.load(std::memory_order_acquire) || tls_thread.guard_depth != 0) return false;
  if (current_mode() == kModeLibrary) return false;
  ThreadSlot* slot;
  {
    RecursionGuard guard;
    slot = current_slot();
  }
  if (!slot) {
    store_mode(kModeNotWorker);
    return false;
  }
  if (current_mode() == kModeUnknown) classify_current_thread(slot);
  return current_mode() == kModeWorker;
}

void thread_state_set_dormant() { g_dormant.store(true, std::memory_order_relaxed); }

void thread_state_thread_exiting() {
  if (tls_thread.slot) release_slot_at_thread_exit(tls_thread.slot);
}

int thread_slots_high_water() { return g_slot_high_water.load(std::memory_order_acquire); }

void mark_current_thread_internal() { store_mode(kModeLibrary); }

bool creating_thread_in_work() {
  if (!hook_should_time()) return false;  // classifies a thread not classified yet
  const ThreadSlot* slot = tls_thread.slot;
  return slot->task_depth.load(std::memory_order_relaxed) > 0 ||
         (slot->loop_turns.load(std::memory_order_relaxed) > 0 &&
          !slot->idle.load(std::memory_order_relaxed));
}

void mark_spawned_in_work() {
  tls_thread.spawned_in_work = true;
  prctl(PR_GET_NAME, tls_thread.inherited_name, 0, 0, 0);
}

void thread_renamed(pthread_t thread, const char* name) {
  const bool self = pthread_equal(thread, pthread_self());
  ThreadSlot* slot = tls_thread.slot;
  if (self && !slot && current_mode() != kModeLibrary && g_ready.load(std::memory_order_acquire)) {
    RecursionGuard guard;
    slot = current_slot();
  }
  LearnJob job{name, self && is_main_thread(), false};
  {
    RecursionGuard guard;  // regexec's own calls pass through
    // regexec takes ~1 KB of stack: on the slot's side stack when there is one.
    if (!slot || !run_on_side_stack(slot->side_stack, learn_job, &job)) learn_job(&job);
  }
  const bool worker_by_rule = job.worker;
  if (self) {
    tls_thread.spawned_in_work = false;  // a name it gave itself counts
    if (current_mode() == kModeLibrary) return;
    // Classified here, with the verdict just computed: the table may have
    // evicted the name already when thousands of threads name themselves.
    if (!slot) {
      store_mode(kModeUnknown);
      return;
    }
    RecursionGuard guard;
    prctl(PR_GET_NAME, slot->name, 0, 0, 0);  // what the kernel kept of `name`
    apply_rule_verdict(slot, worker_by_rule);
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
      // A thread still waiting for its old name's verdict must read its new
      // name, not look up the old one.
      if (slot.classify_pending.exchange(0, std::memory_order_relaxed) != 0) {
        g_classify_pending.fetch_sub(1, std::memory_order_relaxed);
      }
      mode->store(kModeUnknown, std::memory_order_release);
    }
    unlock_mode_access(slot);
    return;
  }
}

void thread_state_classify_pending() {
  if (g_classify_pending.load(std::memory_order_acquire) == 0) return;
  RecursionGuard guard;
  const int slot_end = thread_slots_high_water();
  for (int i = 0; i < slot_end; ++i) {
    ThreadSlot& slot = g_thread_slots[i];
    if (slot.classify_pending.load(std::memory_order_acquire) == 0) continue;
    // The owner wrote the name before raising the flag and does not change it
    // while the flag is up; a slot freed and reused meanwhile gives a name that
    // is learnt for nothing, never a wrong verdict (verdicts are by name).
    char name[kThreadNameBytes];
    for (int b = 0; b < kThreadNameBytes; ++b) {
      name[b] = __atomic_load_n(&slot.name[b], __ATOMIC_RELAXED);
    }
    name[kThreadNameBytes - 1] = '\0';
    worker_rules_learn(name, /*is_main_thread=*/false);
    // The owner reads its name again at its next hook and finds the verdict.
    if (slot.classify_pending.exchange(0, std::memory_order_release) != 0) {
      g_classify_pending.fetch_sub(1, std::memory_order_relaxed);
    }
  }
}

void thread_state_after_fork_child() {
  ThreadSlot* own = tls_thread.slot;
  // Only slots below the high-water mark were ever used, and only what is set is
  // written: every page written here is a copy-on-write fault in the child.
  const int slot_end = thread_slots_high_water();
  for (int i = 0; i < slot_end; ++i) {
    ThreadSlot& slot = g_thread_slots[i];
    // A thread that held mode_access at fork does not exist here.
    if (slot.mode_access.load(std::memory_order_relaxed) != 0) {
      slot.mode_access.store(0, std::memory_order_relaxed);
    }
    if (&slot != own && slot.tid.load(std::memory_order_relaxed) != 0) reset_slot(slot);
  }
  if (own) own->tid.store(gettid(), std::memory_order_relaxed);
  g_threads_without_slot.store(0, std::memory_order_relaxed);  // the child's own count
  task_stats_after_fork_child();
}

}  // namespace blockwatch::interpose
