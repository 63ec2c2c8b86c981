// The stall and hang watchdog (see watchdog.h): its thread, the tick over the
// thread slots, the pure state machine and budget, and the records it submits.
//
// Not hook-path code: everything here runs on the watchdog thread (or the
// constructor / exit / fork paths). It still avoids malloc after start (it reads
// /proc with open/read/getdents64 into stack buffers): a hung worker may be stuck
// holding malloc's lock, and the hang dump must still get out. The one exception
// is classifying a newly seen condvar/futex call site (wait_classifier.h:
// symbolize, regexec), once per distinct site, early in a program's life.
#include "interpose/watchdog/watchdog.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "common/kinds.h"
#include "interpose/base/clock.h"
#include "interpose/base/futex.h"
#include "interpose/base/internal_thread.h"
#include "interpose/base/proc_file.h"
#include "interpose/core/config.h"
#include "interpose/core/record.h"
#include "interpose/core/thread_state.h"
#include "interpose/core/wait_classifier.h"
#include "interpose/transport/agent.h"
#include "interpose/transport/record_queue.h"
#include "interpose/transport/sender.h"
#include "interpose/watchdog/thread_sampler.h"

namespace blockwatch::interpose {
namespace {

// How long a running thread gets to produce a user-mode sample before it is
// recorded without a stack (the watchdog waits meanwhile: keep it short).
constexpr int64_t kSampleTimeoutNs = 100'000'000;
constexpr int64_t kHangSampleTimeoutNs = 200'000'000;
constexpr int kHangFlushTimeoutMs = 1000;
constexpr int64_t kStopWaitNs = 500'000'000;

// Every global here is constant-initialised (constinit): watchdog_start() runs
// from the library constructor (priority 101), before ordinary dynamic
// initialisers of this file would, and they would overwrite what it set.
constinit WatchdogSettings g_settings;
constinit bool g_was_started = false;  // this process (or its parent before fork) started it
constinit std::atomic<bool> g_stop_requested{false};
constinit std::atomic<bool> g_thread_running{false};
constinit int32_t g_watchdog_tid = 0;
constinit uint64_t g_next_stall_id = 0;
constinit StallBudget g_budget{60};
constinit StallTracker g_trackers[kMaxThreadSlots];  // watchdog thread only

ThreadSchedStat read_schedstat(int32_t tid) {
  char path[64], text[128];
  ThreadSchedStat stat;
  task_file_path(tid, "schedstat", path, sizeof path);
  if (read_small_file(path, text, sizeof text) > 0) parse_schedstat(text, &stat);
  return stat;
}

int64_t read_voluntary_switches(int32_t tid) {
  char path[64], text[2048];
  task_file_path(tid, "status", path, sizeof path);
  return read_small_file(path, text, sizeof text) > 0 ? parse_voluntary_switches(text) : -1;
}

ThreadFaults read_faults(int32_t tid) {
  char path[64], text[1024];
  ThreadFaults faults;
  task_file_path(tid, "stat", path, sizeof path);
  if (read_small_file(path, text, sizeof text) > 0) parse_stat_faults(text, &faults);
  return faults;
}

void copy_text(char* out, const char* text, size_t out_bytes) {
  if (!text) return;
  const size_t length = strnlen(text, out_bytes - 1);
  std::memcpy(out, text, length);
  out[length] = '\0';
}

// Copies another thread's label, which that thread may free the moment its task
// or allowed scope ends. process_vm_readv on our own pid reads it without
// faulting (a freed, unmapped page gives a short read); the caller then checks
// the scope is still the one the pointer belonged to. One syscall, no allocation.
void copy_foreign_text(char* out, const char* text, size_t out_bytes) {
  out[0] = '\0';
  if (!text) return;
  iovec local = {out, out_bytes - 1};
  iovec remote = {const_cast<char*>(text), out_bytes - 1};
  const ssize_t copied = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
  size_t length = 0;
  if (copied > 0) length = strnlen(out, static_cast<size_t>(copied));
  out[length] = '\0';
}

SlotView read_view(const ThreadSlot& slot, int32_t tid) {
  SlotView view;
  view.tid = tid;
  view.worker = __atomic_load_n(&slot.worker_by_rule, __ATOMIC_RELAXED) ||
                slot.worker_depth.load(std::memory_order_relaxed) > 0;
  if (!view.worker) return view;
  view.in_task = slot.task_depth.load(std::memory_order_acquire) > 0;
  view.probed = slot.probed.load(std::memory_order_acquire);
  view.idle = slot.idle.load(std::memory_order_acquire);
  view.key.task_seq = slot.task_seq.load(std::memory_order_acquire);
  view.key.loop_turns = slot.loop_turns.load(std::memory_order_acquire);
  return view;
}

// Thread name, task and blocking call of a slot's owner, as the hooks record them.
void fill_from_slot(Record& record, const ThreadSlot& slot, int64_t now_ns) {
  std::memcpy(record.thread_name, slot.name, sizeof record.thread_name);
  record.thread_name[kThreadNameBytes - 1] = '\0';
  const int32_t depth = slot.task_depth.load(std::memory_order_acquire);
  if (depth > 0) {
    record.in_task = 1;
    record.task_seq = slot.task_seq.load(std::memory_order_acquire);
    const int index = depth <= kMaxTaskNesting ? depth - 1 : kMaxTaskNesting - 1;
    copy_foreign_text(record.task, slot.task_labels[index].load(std::memory_order_acquire),
                      sizeof record.task);
    // The label is kept only if the same task still runs at the same depth: a
    // task that ended (and maybe freed its label) meanwhile leaves it empty.
    if (slot.task_seq.load(std::memory_order_acquire) != record.task_seq ||
        slot.task_depth.load(std::memory_order_acquire) != depth) {
      record.task[0] = '\0';
    }
  }
  if (slot.allow_depth.load(std::memory_order_acquire) > 0) {
    const char* reason = slot.allow_reason.load(std::memory_order_acquire);
    copy_foreign_text(record.allow_reason, reason, sizeof record.allow_reason);
    if (slot.allow_reason.load(std::memory_order_acquire) != reason) record.allow_reason[0] = '\0';
  }
  if (const char* blocked_in = slot.blocked_in.load(std::memory_order_acquire)) {
    record.blocked_in = blocked_in;
    const int64_t since_ns =
        ticks_to_mono_ns(slot.blocked_since_ticks.load(std::memory_order_relaxed));
    record.blocked_ns = since_ns > 0 && now_ns > since_ns ? now_ns - since_ns : 0;
  }
}

// The stack of `tid`, sampled without interrupting it (thread_sampler.h); a
// thread asleep in a system call gets that call's name in blocked_in instead.
void sample_stack_into(Record& record, int32_t tid, const ThreadSlot* slot, int64_t timeout_ns) {
  const int slot_index = slot ? static_cast<int>(slot - g_thread_slots) : -1;
  const char* syscall_name = nullptr;
  const int count = sample_thread_stack(tid, slot, slot_index, record.frames, kMaxFrames,
                                        timeout_ns, &syscall_name);
  record.frame_count = static_cast<uint16_t>(count > 0 ? count : 0);
  if (!record.blocked_in && syscall_name) record.blocked_in = syscall_name;
}

int64_t non_negative(int64_t value) { return value > 0 ? value : 0; }

void report_stall(ThreadSlot& slot, StallTracker& tracker, const TickDecision& decision,
                  int64_t now_ns) {
  if (tracker.stall_id == 0) {
    tracker.stall_id = ++g_next_stall_id;
    tracker.suppressed = !g_budget.admit(now_ns);
    if (tracker.suppressed) {
      global_agent_counters().stalls_suppressed.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (tracker.suppressed) return;
  Record record;
  record.kind = kinds::kKindStall;
  record.tid = tracker.tid;
  record.stall_sample = static_cast<uint8_t>(decision.sample);
  record.stall_id = tracker.stall_id;
  record.start_mono_ns = tracker.first_seen_mono_ns;
  fill_from_slot(record, slot, now_ns);
  record.stall_scope = stall_scope_of(read_view(slot, tracker.tid));
  // Duration, CPU and run-queue time read together, after the tick's other work.
  record.cpu_ns = non_negative(thread_cpu_ns(tracker.tid) - tracker.cpu_base_ns);
  const int64_t schedstat_runqueue_ns =
      non_negative(read_schedstat(tracker.tid).runqueue_ns - tracker.runqueue_base_ns) +
      tracker.first_window_offcpu_ns;
  record.duration_ns = non_negative(monotonic_ns() - tracker.first_seen_mono_ns);
  // The CPU baseline is read a moment apart from first_seen: one thread cannot
  // have run longer than the wall time, so never report more.
  if (record.cpu_ns > record.duration_ns) record.cpu_ns = record.duration_ns;
  bool never_blocked_and_runnable = false;
  if (tracker.late_baseline_taken) {
    const ThreadFaults faults = read_faults(tracker.tid);
    record.minor_faults = non_negative(faults.minor - tracker.minor_faults_base);
    record.major_faults = non_negative(faults.major - tracker.major_faults_base);
    // The switch count's baseline is read on the second tick, when the thread
    // may already sit in the blocking call it is now returning from: a call a
    // tick saw settles it.
    never_blocked_and_runnable =
        !tracker.blocked_seen && record.blocked_in == nullptr && faults.state == 'R' &&
        tracker.voluntary_switches_base >= 0 &&
        read_voluntary_switches(tracker.tid) == tracker.voluntary_switches_base;
  }
  record.runqueue_ns = stall_runqueue_ns(record.duration_ns, record.cpu_ns, schedstat_runqueue_ns,
                                         never_blocked_and_runnable);
  sample_stack_into(record, tracker.tid, &slot, kSampleTimeoutNs);
  // The task may have ended while we sampled: then the stack is the next one's.
  const SlotView after = read_view(slot, slot.tid.load(std::memory_order_acquire));
  if (after.tid != tracker.tid || !(after.key == tracker.key)) record.frame_count = 0;
  agent_submit(record);
}

// The slot of `tid`, or null (a thread that never met a hook has none).
const ThreadSlot* find_slot(int32_t tid) {
  for (const ThreadSlot& slot : g_thread_slots) {
    if (slot.tid.load(std::memory_order_acquire) == tid) return &slot;
  }
  return nullptr;
}

void report_hang_thread(int32_t tid, const StallTracker& hung, const TickDecision& decision,
                        int64_t now_ns) {
  char path[64], name[64];
  task_file_path(tid, "comm", path, sizeof path);
  if (read_small_file(path, name, sizeof name) < 0) return;  // exited meanwhile
  name[strcspn(name, "\n")] = '\0';
  if (tid == g_watchdog_tid || std::strcmp(name, "blockwatch") == 0) return;  // ours
  Record record;
  record.kind = kinds::kKindHang;
  record.tid = tid;
  record.stall_id = hung.stall_id;
  record.start_mono_ns = tid == hung.tid ? hung.first_seen_mono_ns : now_ns;
  record.duration_ns = tid == hung.tid ? decision.elapsed_ns : 0;
  copy_text(record.thread_name, name, sizeof record.thread_name);
  const ThreadSlot* slot = find_slot(tid);
  if (slot) fill_from_slot(record, *slot, now_ns);
  sample_stack_into(record, tid, slot, kHangSampleTimeoutNs);
  agent_submit(record);
}

// One `hang` record per thread of the process, then a flush, so the answer is
// out even if the process never ends. Directory read with getdents64: no malloc.
void dump_hang(StallTracker& hung, const TickDecision& decision, int64_t now_ns) {
  if (hung.stall_id == 0) hung.stall_id = ++g_next_stall_id;
  const int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  alignas(8) char entries[4096];
  for (;;) {
    const long bytes = syscall(SYS_getdents64, fd, entries, sizeof entries);
    if (bytes <= 0) break;
    for (long offset = 0; offset < bytes;) {
      const auto* entry = reinterpret_cast<const dirent64*>(entries + offset);
      offset += entry->d_reclen;
      const int tid = std::atoi(entry->d_name);
      if (tid > 0) report_hang_thread(tid, hung, decision, now_ns);
    }
  }
  close(fd);
  sender_flush(kHangFlushTimeoutMs);
}

// A new task or turn: its CPU time now (one clock_gettime on its CPU clock, no
// /proc), and the start re-stamped after reading it, so a watchdog that was
// itself kept off the CPU does not turn its own delay into "off CPU" time.
// With short tasks back to back on many workers, nearly every tick sees new
// tasks that end before the next one: a /proc read here was most of a busy
// tick's cost (watchdog_cpu_bench busy), so the run-queue baseline waits for
// the second tick (take_late_baseline).
void take_start_baseline(StallTracker& tracker) {
  tracker.cpu_base_ns = thread_cpu_ns(tracker.tid);
  tracker.first_seen_mono_ns = monotonic_ns();
}

// From the second tick on: the run-queue baseline, page faults and voluntary
// switches, the dearest reads; most tasks end before. The first tick's time
// off CPU (wall minus CPU since first seen) is counted as run-queue time, as a
// thread seen running and not blocked in a hooked call most likely waited for
// a CPU; a block inside the first tick followed by pure CPU work is then
// counted as run queue (stall_runqueue_ns still caps it at the time off CPU).
void take_late_baseline(StallTracker& tracker) {
  const int64_t first_window_ns = monotonic_ns() - tracker.first_seen_mono_ns;
  const int64_t first_window_cpu_ns = thread_cpu_ns(tracker.tid) - tracker.cpu_base_ns;
  tracker.runqueue_base_ns = read_schedstat(tracker.tid).runqueue_ns;
  tracker.first_window_offcpu_ns =
      tracker.blocked_seen ? 0 : non_negative(first_window_ns - first_window_cpu_ns);
  const ThreadFaults faults = read_faults(tracker.tid);
  tracker.minor_faults_base = faults.minor;
  tracker.major_faults_base = faults.major;
  tracker.voluntary_switches_base = read_voluntary_switches(tracker.tid);
}

// One pass over the slots ever claimed. Free slots cost one load; non-workers two.
// Returns whether some worker is busy (in a task or loop turn).
bool tick(int64_t now_ns) {
  bool any_busy = false;
  const Thresholds thresholds{g_settings.stall_threshold_ns, g_settings.hang_threshold_ns};
  const int slot_end = thread_slots_high_water();
  for (int i = 0; i < slot_end; ++i) {
    ThreadSlot& slot = g_thread_slots[i];
    const int32_t tid = slot.tid.load(std::memory_order_acquire);
    if (tid == 0) continue;
    StallTracker& tracker = g_trackers[i];
    // A condvar/futex park whose call site the hook could not classify yet: the
    // verdict first, so that park is not taken for a busy turn.
    bool parked_idle = false;
    if (slot.pending_wait_key.load(std::memory_order_relaxed) != 0) {
      bool still_waiting = false;
      const WaitVerdict verdict = wait_classify_pending(slot, &still_waiting);
      parked_idle = verdict == WaitVerdict::kIdle && still_waiting;
    }
    SlotView view = read_view(slot, tid);
    view.idle = view.idle || parked_idle;
    const TickDecision decision = observe_slot(tracker, view, now_ns, thresholds);
    if (tracker.tracking && slot.blocked_in.load(std::memory_order_relaxed) != nullptr) {
      tracker.blocked_seen = true;
    }
    any_busy = any_busy || tracker.tracking;
    if (decision.started) take_start_baseline(tracker);
    if (decision.late_baseline) take_late_baseline(tracker);
    if (decision.sample) report_stall(slot, tracker, decision, now_ns);
    if (decision.hang) dump_hang(tracker, decision, now_ns);
  }
  return any_busy;
}

void wait_for_next_tick(uint32_t seen_word, int64_t wait_ns) {
  const timespec timeout = {static_cast<time_t>(wait_ns / 1'000'000'000),
                            static_cast<long>(wait_ns % 1'000'000'000)};
  raw_futex(&g_watchdog_wake_word, FUTEX_WAIT_PRIVATE, seen_word, &timeout);
}

// Parked only after this many ticks in a row found no worker busy: workers
// that go idle for a moment between short tasks would otherwise wake a parked
// watchdog at nearly every task (more wake-ups than ticking).
constexpr int kIdleTicksBeforePark = 4;

// No worker was busy for a while: sleep until one becomes busy
// (watchdog_wake.h). Parked first, then every slot looked at again: a thread
// that became busy in between either saw `parked` and wakes us, or is seen now.
void park_until_busy(uint32_t seen_word) {
  g_watchdog_parked.store(1, std::memory_order_seq_cst);
  if (!tick(monotonic_ns())) wait_for_next_tick(seen_word, kWatchdogParkNs);
  g_watchdog_parked.store(0, std::memory_order_relaxed);
}

void* watchdog_thread_main(void*) {
  // Marked before naming, so the rename hook never classifies this thread as a
  // worker (a `name:.*` rule), and again after it in case the rename reset it.
  mark_current_thread_internal();
  pthread_setname_np(pthread_self(), "bw-watchdog");
  mark_current_thread_internal();
  g_watchdog_tid = gettid();
  thread_sampler_watchdog_started(g_settings.stall_threshold_ns > 0);
  int idle_ticks = 0;  // ticks in a row that found no worker busy
  while (!g_stop_requested.load(std::memory_order_acquire)) {
    const uint32_t seen_word = g_watchdog_wake_word.load(std::memory_order_acquire);
    const bool any_busy = tick(monotonic_ns());
    if (g_stop_requested.load(std::memory_order_acquire)) break;
    idle_ticks = any_busy ? 0 : idle_ticks + 1;
    if (idle_ticks < kIdleTicksBeforePark) {
      wait_for_next_tick(seen_word, g_settings.tick_ns);
    } else {
      park_until_busy(seen_word);
      idle_ticks = 0;
    }
  }
  g_thread_running.store(false, std::memory_order_release);
  return nullptr;
}

bool start_thread() {
  if (g_thread_running.load(std::memory_order_acquire)) return false;
  g_stop_requested.store(false, std::memory_order_release);
  g_thread_running.store(true, std::memory_order_release);
  const bool started = start_internal_thread(watchdog_thread_main, nullptr);
  if (!started) g_thread_running.store(false, std::memory_order_release);
  return started;
}

// "34", "SIGRTMIN+7", "RTMIN+7", "SIGRTMAX-2". 0 when malformed or out of range.
int parse_signal(const char* text) {
  const char* rest = text;
  if (std::strncmp(rest, "SIG", 3) == 0) rest += 3;
  int base = 0;
  if (std::strncmp(rest, "RTMIN", 5) == 0) {
    base = SIGRTMIN;
    rest += 5;
  } else if (std::strncmp(rest, "RTMAX", 5) == 0) {
    base = SIGRTMAX;
    rest += 5;
  }
  char* end = nullptr;
  const long offset = *rest ? std::strtol(rest, &end, 10) : 0;
  if (*rest && (end == rest || *end != '\0')) return 0;
  const long number = base + offset;
  if (number <= 0 || number > SIGRTMAX || number == SIGKILL || number == SIGSTOP) return 0;
  return static_cast<int>(number);
}

}  // namespace

namespace {
int64_t clamp_ns(int64_t value, int64_t low, int64_t high) {
  return value < low ? low : value > high ? high : value;
}
}  // namespace

int64_t watchdog_tick_ns(int64_t stall_threshold_ns, int64_t hang_threshold_ns) {
  constexpr int64_t kMs = 1'000'000;
  if (stall_threshold_ns <= 0) return clamp_ns(hang_threshold_ns / 40, 10 * kMs, 100 * kMs);
  int64_t smallest = stall_threshold_ns;
  if (hang_threshold_ns > 0 && hang_threshold_ns < smallest) smallest = hang_threshold_ns;
  return clamp_ns(smallest / 4, 1 * kMs, 10 * kMs);
}

WatchdogSettings watchdog_settings_from_environment() {
  const Config& cfg = config();
  WatchdogSettings settings;
  settings.stall_threshold_ns = cfg.stall_threshold_ns;
  settings.hang_threshold_ns = cfg.hang_threshold_ns;
  settings.stall_signal = SIGRTMIN + 7;
  if (const char* text = getenv("BLOCKWATCH_STALL_SIGNAL")) {
    const int signal = parse_signal(text);
    if (signal) {
      settings.stall_signal = signal;
    } else {
      fprintf(stderr,
              "blockwatch: BLOCKWATCH_STALL_SIGNAL='%s' is not a signal "
              "(examples: SIGRTMIN+7, 40); using SIGRTMIN+7\n",
              text);
    }
  }
  if (long budget = 0; read_env_count("BLOCKWATCH_STALL_BUDGET", 0, 1'000'000,
                                       "a count of stalls per minute", "60", &budget)) {
    settings.stall_budget_per_minute = static_cast<int>(budget);
  }
  settings.tick_ns = watchdog_tick_ns(settings.stall_threshold_ns, settings.hang_threshold_ns);
  return settings;
}

void watchdog_start() {
  g_settings = watchdog_settings_from_environment();
  if (g_settings.stall_threshold_ns <= 0 && g_settings.hang_threshold_ns <= 0) return;
  g_budget = StallBudget(g_settings.stall_budget_per_minute);
  // Chooses perf or the signal fallback; a signal handler is installed only at
  // the first fallback sample, not now (stall_sampler.h).
  thread_sampler_init(g_settings.stall_signal);
  g_was_started = start_thread();
}

void watchdog_stop() {
  if (!g_thread_running.load(std::memory_order_acquire)) return;
  g_stop_requested.store(true, std::memory_order_release);
  g_watchdog_wake_word.fetch_add(1, std::memory_order_release);
  futex_wake(g_watchdog_wake_word, 1);
  if (gettid() == g_watchdog_tid) return;  // cannot wait for ourselves
  const int64_t deadline_ns = monotonic_ns() + kStopWaitNs;
  while (g_thread_running.load(std::memory_order_acquire) && monotonic_ns() < deadline_ns) {
    const timespec pause = {0, 1'000'000};
    nanosleep(&pause, nullptr);
  }
}

void watchdog_after_fork_child() {
  // Only the forking thread exists here: our thread is gone, whatever it was doing.
  const bool was_running = g_thread_running.load(std::memory_order_relaxed) &&
                           !g_stop_requested.load(std::memory_order_relaxed);
  g_thread_running.store(false, std::memory_order_relaxed);
  thread_sampler_after_fork_child();
  // Only trackers of slots ever used, and only those that hold something: every
  // page written here is a copy-on-write fault in the child.
  for (int i = 0; i < thread_slots_high_water(); ++i) {
    if (g_trackers[i].tid != 0 || g_trackers[i].stall_id != 0) g_trackers[i] = StallTracker{};
  }
  g_budget = StallBudget(g_settings.stall_budget_per_minute);
  g_next_stall_id = 0;
  // Like the agent: fork children are watched (pre-fork servers' workers are
  // forked) unless the agent disabled itself there (the parent was exiting).
  if (g_was_started && was_running && !agent_is_shut_down()) {
    start_thread();
  }
}

// --- pure logic ---------------------------------------------------------------------

bool slot_is_busy(const SlotView& view) {
  return view.worker && (view.in_task || ((view.key.loop_turns > 0 || view.probed) && !view.idle));
}

uint8_t stall_scope_of(const SlotView& view) {
  return view.in_task || view.probed ? kinds::kStallScopeTask : kinds::kStallScopeTurn;
}

TickDecision observe_slot(StallTracker& tracker, const SlotView& view, int64_t now_mono_ns,
                          const Thresholds& thresholds) {
  TickDecision decision;
  if (view.tid != tracker.tid) {
    tracker = StallTracker{};
    tracker.tid = view.tid;
  }
  if (!slot_is_busy(view)) {
    tracker.tracking = false;
    return decision;
  }
  if (!tracker.tracking || !(tracker.key == view.key)) {
    const int32_t tid = tracker.tid;
    tracker = StallTracker{};
    tracker.tid = tid;
    tracker.tracking = true;
    tracker.key = view.key;
    tracker.first_seen_mono_ns = now_mono_ns;
    decision.started = true;
    return decision;
  }
  decision.elapsed_ns = now_mono_ns - tracker.first_seen_mono_ns;
  if (!tracker.late_baseline_taken) {
    tracker.late_baseline_taken = true;
    decision.late_baseline = true;
  }
  if (thresholds.stall_ns > 0) {
    uint8_t due = 0;
    for (uint8_t multiple : {uint8_t{4}, uint8_t{2}, uint8_t{1}}) {
      if (decision.elapsed_ns >= thresholds.stall_ns * multiple) {
        due = multiple;
        break;
      }
    }
    if (due != 0 && !(tracker.samples_sent & due)) {
      decision.sample = due;
      tracker.samples_sent |= static_cast<uint8_t>(due * 2 - 1);  // and the smaller ones
    }
  }
  if (thresholds.hang_ns > 0 && decision.elapsed_ns >= thresholds.hang_ns && !tracker.hang_dumped) {
    tracker.hang_dumped = true;
    decision.hang = true;
  }
  return decision;
}

bool StallBudget::admit(int64_t now_mono_ns) {
  if (per_minute_ <= 0) return true;
  constexpr int64_t kMinuteNs = 60'000'000'000;
  if (!window_open_ || now_mono_ns - window_start_ns_ >= kMinuteNs) {
    window_open_ = true;
    window_start_ns_ = now_mono_ns;
    used_ = 0;
  }
  if (used_ < per_minute_) {
    ++used_;
    return true;
  }
  ++suppressed_;
  return false;
}

bool parse_schedstat(const char* text, ThreadSchedStat* out) {
  long long cpu_ns = 0, runqueue_ns = 0;
  if (std::sscanf(text, "%lld %lld", &cpu_ns, &runqueue_ns) != 2) return false;
  out->cpu_ns = cpu_ns;
  out->runqueue_ns = runqueue_ns;
  return true;
}

bool parse_stat_faults(const char* text, ThreadFaults* out) {
  const char* after_name = std::strrchr(text, ')');
  if (!after_name) return false;
  // After ")": state(3) ppid pgrp session tty_nr tpgid flags minflt(10) cminflt majflt(12).
  char state = 0;
  long long skip = 0, minor = 0, major = 0;
  const int fields =
      std::sscanf(after_name + 1, " %c %lld %lld %lld %lld %lld %lld %lld %lld %lld", &state, &skip,
                  &skip, &skip, &skip, &skip, &skip, &minor, &skip, &major);
  if (fields != 10) return false;
  out->minor = minor;
  out->major = major;
  out->state = state;
  return true;
}

int64_t parse_voluntary_switches(const char* text) {
  static constexpr char kKey[] = "\nvoluntary_ctxt_switches:";
  const char* line = std::strstr(text, kKey);
  if (!line) return -1;
  char* end = nullptr;
  const long long count = std::strtoll(line + sizeof kKey - 1, &end, 10);
  return end == line + sizeof kKey - 1 ? -1 : count;
}

int64_t stall_runqueue_ns(int64_t duration_ns, int64_t cpu_ns, int64_t schedstat_runqueue_ns,
                          bool never_blocked_and_runnable) {
  // A wait that began before the baseline counts whole when it ends: clamp.
  const int64_t not_on_cpu_ns = duration_ns > cpu_ns ? duration_ns - cpu_ns : 0;
  if (never_blocked_and_runnable || schedstat_runqueue_ns > not_on_cpu_ns) return not_on_cpu_ns;
  return schedstat_runqueue_ns > 0 ? schedstat_runqueue_ns : 0;
}

}  // namespace blockwatch::interpose
