// The sender thread (see sender.h): drain, intern, observe, encode, write.
// What target threads ask of it (start, exit, fork, exec, flush) is
// sender_lifecycle.cc; they touch only the atomics of a Sender (wake, done,
// stop, exec). Everything else belongs to the sender thread.
#include "interpose/transport/sender.h"

#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <vector>

#include "interpose/base/clock.h"
#include "interpose/base/futex.h"
#include "interpose/base/internal_thread.h"
#include "interpose/base/loader_gate.h"
#include "interpose/base/phdr_cache.h"
#include "interpose/base/proc_file.h"
#include "interpose/base/timebase.h"
#include "interpose/core/thread_state.h"
#include "interpose/probes/task_probes.h"
#include "interpose/transport/agent.h"
#include "interpose/transport/event_observer.h"
#include "interpose/transport/output_channel.h"
#include "interpose/transport/record_queue.h"
#include "interpose/transport/sender_internal.h"
#include "interpose/transport/stream_interner.h"
#include "interpose/transport/symbols.h"

namespace blockwatch::interpose {

__thread bool agent_own_thread_flag = false;
constinit std::atomic<uint32_t> g_modules_requests{0};

namespace {

constexpr char kLibraryVersion[] = "0.1.0";
constexpr int64_t kCountersIntervalNs = 50'000'000;
constexpr int64_t kFinalStallNs = 200'000'000;  // give up the final flush after no progress
// Before exec the program is waiting: give up much sooner (a stopped collector).
constexpr int64_t kExecStallNs = 50'000'000;
// A fork() child opens its stream at its first record, or this long after the
// fork: a child that execs (or exits) at once costs no connection at all.
constexpr int64_t kLazyConnectNs = 100'000'000;
constexpr size_t kMaxDoneMarkers = 1024;  // bw_flush positions waiting for bytes

template <size_t N>
std::string_view bounded(const char (&text)[N]) {
  return std::string_view(text, strnlen(text, N));
}

}  // namespace

constinit std::atomic<Sender*> g_sender{nullptr};
constinit std::atomic<Sender*> g_retired_senders{nullptr};

void retire(Sender* sender) {
  if (!sender) return;
  sender->retired_next = g_retired_senders.load(std::memory_order_relaxed);
  while (!g_retired_senders.compare_exchange_weak(sender->retired_next, sender)) {
  }
}

CountersInfo sender_counters() {
  const AgentCounters& counters = global_agent_counters();
  CountersInfo info;
  info.events_recorded = counters.recorded_before_reset.load(std::memory_order_relaxed) +
                         global_record_queue().claimed_count();
  info.dropped_queue_full = counters.dropped_queue_full.load(std::memory_order_relaxed);
  info.dropped_too_deep = counters.dropped_too_deep.load(std::memory_order_relaxed);
  info.dropped_no_collector = counters.dropped_after_shutdown.load(std::memory_order_relaxed);
  info.stalls_suppressed = counters.stalls_suppressed.load(std::memory_order_relaxed);
  info.threads_unwatched = threads_without_slot();
  if (Sender* sender = g_sender.load(std::memory_order_acquire)) {
    info.dropped_no_collector += sender->dropped_no_collector.load(std::memory_order_relaxed);
    info.threads_seen = sender->threads_seen.load(std::memory_order_relaxed);
  }
  return info;
}

SenderMemoryStats sender_memory_stats() {
  SenderMemoryStats stats;
  if (Sender* sender = g_sender.load(std::memory_order_acquire)) {
    stats.pending_buffer_bytes = sender->held_pending_bytes.load(std::memory_order_relaxed);
    stats.done_markers = sender->held_done_markers.load(std::memory_order_relaxed);
    stats.strings = sender->held_strings.load(std::memory_order_relaxed);
    stats.stacks = sender->held_stacks.load(std::memory_order_relaxed);
    stats.symbols = sender->held_symbols.load(std::memory_order_relaxed);
    stats.threads = sender->held_threads.load(std::memory_order_relaxed);
  }
  return stats;
}

HelloInfo Sender::build_hello() const {
  HelloInfo hello;
  hello.library_version = kLibraryVersion;
  hello.pid = getpid();
  hello.ppid = getppid();
  char path[4096];
  read_exe_path(path, sizeof path);
  hello.exe = path;
  if (FILE* cmdline = fopen("/proc/self/cmdline", "re")) {
    std::string arg;
    for (int c; (c = fgetc(cmdline)) != EOF;) {
      if (c == '\0') {
        hello.argv.push_back(std::move(arg));
        arg.clear();
      } else {
        arg.push_back(static_cast<char>(c));
      }
    }
    fclose(cmdline);
  }
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) == 0) hello.hostname = host;
  hello.start_unix_ns = start_unix_ns_;
  hello.monotonic_to_unix_ns = monotonic_to_unix_ns_;
  hello.threshold_ns = options_.threshold_ns;
  hello.stall_threshold_ns = options_.stall_threshold_ns;
  hello.workers = options_.workers;
  hello.forked_child = options_.forked_child;
  for (const TaskProbeStatus& status : task_probe_statuses()) {
    hello.task_probes.push_back(
        {status.rule, status.function, status.module, status.refused, status.installed});
  }
  hello.task_probes_note = task_probes_note();
  return hello;
}

// A new connection or file: Hello, Modules, counters; interned ids are defined
// again on first use.
void Sender::begin_stream() {
  pending_.clear();
  events_in_pending_ = 0;
  interner_.new_stream();  // every interned value is undefined on the new stream
  encoder_.hello(build_hello(), pending_);
  maybe_send_modules(/*force=*/true);
  maybe_send_counters(monotonic_ns(), /*force=*/true);
}

// The in-process observer gets symbolized frames (the library's own names: the
// GoogleTest listener prints them), so the symbol work is done only for it.
void Sender::notify_observer(const Record& record, size_t frame_count) {
  if (!event_observer_registered()) return;
  observer_frames_.clear();
  for (size_t i = 0; i < frame_count; ++i) {
    observer_frames_.push_back(interner_.symbol_name(record.frames[i], modules_).c_str());
  }
  const std::string thread_name(bounded(record.thread_name));
  const std::string task(bounded(record.task));
  const std::string allow_reason(bounded(record.allow_reason));
  bw_event_info info{};
  info.kind = record.kind;
  info.duration_ns = record.duration_ns;
  info.tid = record.tid;
  info.thread_name = thread_name.c_str();
  info.task = task.empty() ? nullptr : task.c_str();
  info.allow_reason = allow_reason.empty() ? nullptr : allow_reason.c_str();
  info.function = record.function ? record.function : "";
  info.frame_count = frame_count;
  info.frames = observer_frames_.data();
  event_observer_call(info);
}

void Sender::process_record(const Record& record) {
  const size_t frame_count = std::min<size_t>(record.frame_count, kMaxFrames);
  const std::string_view thread_name = bounded(record.thread_name);
  if (interner_.remember_thread(record.tid, thread_name)) {
    threads_seen.fetch_add(1, std::memory_order_relaxed);
  }
  notify_observer(record, frame_count);
  if (!channel_.is_open() || over_pending_limit()) {
    dropped_no_collector.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  EventIds ids;
  ids.thread_name = define_string(thread_name);
  ids.task = define_string(bounded(record.task));
  ids.allow_reason = define_string(bounded(record.allow_reason));
  if (record.holder_tid != 0) {
    if (const std::string* holder = interner_.thread_name(record.holder_tid)) {
      ids.holder_name = define_string(*holder);
    }
  }
  ids.stack = interner_.define_stack(record, frame_count, modules_, encoder_, pending_);
  encoder_.event(record, ids, monotonic_to_unix_ns_, pending_);
  ++events_in_pending_;
}

void Sender::drain_queue() {
  RecordQueue& queue = global_record_queue();
  Record record;
  while (queue.try_pop(record)) process_record(record);
}

void Sender::maybe_send_modules(bool force, uint64_t change_count) {
  const uint32_t requests = g_modules_requests.load(std::memory_order_acquire);
  const bool changed = requests != modules_requests_seen_ || change_count != module_change_count_;
  if (changed || modules_.empty()) {
    modules_requests_seen_ = requests;
    module_change_count_ = change_count;
    modules_ = enumerate_modules();
    ++modules_generation_;
    force = true;
  }
  if (force) modules_unsent_ = true;
  // Over the buffer limit: sent when there is room again (a program that
  // dlopens in a loop while the collector is stopped must not grow the buffer).
  if (modules_unsent_ && channel_.is_open() && !over_pending_limit()) {
    encoder_.modules(modules_generation_, modules_, pending_);
    modules_unsent_ = false;
  }
}

// The module copy stack captures unwind with (phdr_cache.h), rebuilt when a
// module was loaded or unloaded: the count the Modules frame follows too.
void Sender::refresh_phdr_copy(uint64_t change_count) {
  if (change_count != phdr_copy_change_count_ && phdr_cache_refresh()) {
    phdr_copy_change_count_ = change_count;
  }
}

void Sender::maybe_send_counters(int64_t now, bool force) {
  if (!channel_.is_open()) return;
  if (!force && now - counters_sent_at_ns_ < kCountersIntervalNs) return;
  const CountersInfo counters = sender_counters();
  uint64_t task_labels_dropped = 0;
  std::vector<TaskStatsLine> tasks = task_stats_snapshot(&task_labels_dropped);
  const std::vector<std::string>& rules = task_probe_rules();
  for (TaskStatsLine& line : tasks) {
    if (line.probe_id < 0) continue;
    line.rule = static_cast<size_t>(line.probe_id) < rules.size()
                    ? rules[line.probe_id]
                    : "task-entry rule #" + std::to_string(line.probe_id);
  }
  const bool changed = memcmp(&counters, &counters_sent_, sizeof counters) != 0 ||
                       tasks != tasks_sent_ || task_labels_dropped != task_labels_dropped_sent_;
  if (!force && !changed) return;
  // Over the buffer limit (a stopped collector): the counters are totals, so the
  // next frame carries these too; appending one every 50 ms grew the buffer
  // past its limit without end.
  if (!force && over_pending_limit()) return;
  encoder_.counters(counters, tasks, task_labels_dropped, pending_);
  counters_sent_ = counters;
  tasks_sent_ = std::move(tasks);
  task_labels_dropped_sent_ = task_labels_dropped;
  counters_sent_at_ns_ = now;
}

// bw_flush's bookkeeping: records up to `pos` are done once `bytes_end` bytes
// are written. A marker that adds nothing (same position: the collector is
// stopped and nothing new came) is not added, and beyond kMaxDoneMarkers the
// newest is merged into the last (its records are then reported done a little
// later, never earlier): one marker per loop turn used to pile up at ~200 per
// second while the collector was stopped.
void Sender::add_done_marker(uint64_t bytes_end, uint64_t pos) {
  if (!done_markers_.empty()) {
    auto& last = done_markers_.back();
    if (last.second >= pos) return;
    if (last.first >= bytes_end || done_markers_.size() >= kMaxDoneMarkers) {
      last = {std::max(last.first, bytes_end), pos};
      return;
    }
  }
  done_markers_.emplace_back(bytes_end, pos);
}

void Sender::publish_memory_stats() {
  held_pending_bytes.store(pending_.capacity(), std::memory_order_relaxed);
  held_done_markers.store(done_markers_.size(), std::memory_order_relaxed);
  held_strings.store(interner_.strings(), std::memory_order_relaxed);
  held_stacks.store(interner_.stacks(), std::memory_order_relaxed);
  held_symbols.store(interner_.symbols(), std::memory_order_relaxed);
  held_threads.store(interner_.threads(), std::memory_order_relaxed);
}

void Sender::publish_done(uint64_t pos) {
  if (pos <= done_pos.load(std::memory_order_relaxed)) return;
  done_pos.store(pos, std::memory_order_release);
  done_word.fetch_add(1, std::memory_order_release);
  futex_wake_all(done_word);
}

void Sender::lose_stream(int64_t now) {
  stuck_since_ns_ = 0;
  dropped_no_collector.fetch_add(events_in_pending_, std::memory_order_relaxed);
  events_in_pending_ = 0;
  bytes_written_total_ += pending_.size();  // discarded counts as done for bw_flush
  pending_.clear();
  channel_.close_stream(now);
}

void Sender::write_pending(int64_t now) {
  if (channel_.is_open() && !pending_.empty()) {
    const size_t before = pending_.size();
    const OutputChannel::WriteResult result = channel_.write_some(pending_);
    bytes_written_total_ += before - pending_.size();
    if (pending_.size() != before || pending_.empty()) {
      stuck_since_ns_ = 0;
    } else if (stuck_since_ns_ == 0) {
      stuck_since_ns_ = now;  // the collector takes nothing (stopped, or far behind)
    }
    if (result == OutputChannel::WriteResult::kStreamLost) lose_stream(now);
    if (pending_.empty()) events_in_pending_ = 0;
  }
  while (!done_markers_.empty() && done_markers_.front().first <= bytes_written_total_) {
    publish_done(done_markers_.front().second);
    done_markers_.pop_front();
  }
}

// Whether the sender may open a stream now: not while an exec is pending or
// after one (paused), and for a lazy sender not before its first record or
// kLazyConnectNs.
bool Sender::may_open_stream(int64_t now) {
  if (paused.load(std::memory_order_acquire)) return false;
  if (stream_begun.load(std::memory_order_relaxed)) return true;
  const bool something_queued =
      global_record_queue().claimed_count() != global_record_queue().popped_count();
  if (options_.lazy_connect && !something_queued && now - started_mono_ns_ < kLazyConnectNs) {
    return false;
  }
  stream_begun.store(true, std::memory_order_seq_cst);
  if (exec_request.load(std::memory_order_seq_cst) != exec_done.load(std::memory_order_acquire)) {
    return false;  // serve the exec first (serve_exec_request)
  }
  return true;
}

// An exec is about to replace the image: flush, Goodbye("exec"), close, pause.
void Sender::serve_exec_request() {
  const uint32_t request = exec_request.load(std::memory_order_seq_cst);
  if (request == exec_done.load(std::memory_order_relaxed)) return;
  paused.store(true, std::memory_order_release);
  const bool something_queued =
      global_record_queue().claimed_count() != global_record_queue().popped_count();
  if (stream_begun.load(std::memory_order_relaxed) || something_queued) {
    stream_begun.store(true, std::memory_order_relaxed);
    goodbye_and_close("exec", 0, exec_deadline_mono_ns.load(std::memory_order_acquire),
                      kExecStallNs);
  }
  exec_done.store(request, std::memory_order_release);
  futex_wake_all(exec_done);
}

void Sender::run() {
  start_unix_ns_ = clock_ns(CLOCK_REALTIME);
  started_mono_ns_ = monotonic_ns();
  monotonic_to_unix_ns_ = start_unix_ns_ - started_mono_ns_;
  channel_.configure(options_.collector, options_.output, options_.forked_child);
  // The module list before the file or socket is opened, so Hello and Modules
  // follow the open at once (a process may abort a few ms after start). Not for
  // a lazy sender, which may never open a stream.
  if (!options_.lazy_connect) maybe_send_modules(false);
  for (;;) {
    const uint32_t wake_seen = wake_word.load(std::memory_order_acquire);
    const bool stopping = stop_requested.load(std::memory_order_acquire);
    serve_exec_request();
    const int64_t now = monotonic_ns();
    if (channel_.is_open() && !channel_.still_ours()) lose_stream(now);
    if (!channel_.is_open() && may_open_stream(now) && channel_.try_open(now)) begin_stream();
    const uint64_t module_changes = module_change_count();  // one loader walk a turn
    refresh_phdr_copy(module_changes);
    if (stream_begun.load(std::memory_order_relaxed)) maybe_send_modules(false, module_changes);
    const uint64_t popped_before = global_record_queue().popped_count();
    drain_queue();
    const uint64_t popped = global_record_queue().popped_count();
    if (popped != popped_before || !pending_.empty()) {
      add_done_marker(bytes_written_total_ + pending_.size(), popped);
    } else {
      publish_done(popped);
    }
    maybe_send_counters(now, false);
    write_pending(now);
    publish_memory_stats();
    timebase_refine();                // the hooks' TSC rate and anchor (timebase.h)
    thread_state_classify_pending();  // names hooks could not classify without regexec
    if (stopping) break;
    int64_t wait_ns = pending_.empty() ? options_.idle_wait_ns : 5'000'000;
    if (!stream_begun.load(std::memory_order_relaxed) && options_.lazy_connect) {
      wait_ns = std::min(wait_ns, std::max<int64_t>(started_mono_ns_ + kLazyConnectNs - now, 1));
    }
    futex_wait_ns(wake_word, wake_seen, wait_ns);
  }
  final_flush();
  finished.store(1, std::memory_order_release);
  futex_wake_all(finished);
}

// Goodbye, then write until done, the deadline, or `stall_ns` without progress
// (a stopped or dead collector does not hold up the exit or exec), and close.
void Sender::goodbye_and_close(const char* reason, int status, int64_t deadline, int64_t stall_ns) {
  // Open first (one last try, ignoring backoff), so what is drained goes out.
  if (!channel_.is_open() && channel_.configured()) {
    if (channel_.try_open(INT64_MAX)) begin_stream();
  }
  drain_queue();
  // The final counters, unless the last frame already carries these values.
  maybe_send_counters(INT64_MAX / 2, /*force=*/false);
  if (channel_.is_open()) encoder_.goodbye(reason, status, pending_);
  add_done_marker(bytes_written_total_ + pending_.size(), global_record_queue().popped_count());
  // A collector that has taken nothing for a while already is not waited for
  // again: the no-progress time counts from when it stopped reading.
  int64_t last_progress = stuck_since_ns_ != 0 ? stuck_since_ns_ : monotonic_ns();
  for (;;) {
    const size_t before = pending_.size();
    write_pending(monotonic_ns());
    const int64_t now = monotonic_ns();
    if (pending_.empty() || !channel_.is_open() || now >= deadline) break;
    if (pending_.size() != before) last_progress = now;
    if (now - last_progress > stall_ns) break;
    futex_wait_ns(wake_word, wake_word.load(), 2'000'000);
  }
  if (!pending_.empty()) {
    dropped_no_collector.fetch_add(events_in_pending_, std::memory_order_relaxed);
    events_in_pending_ = 0;
    bytes_written_total_ += pending_.size();  // discarded counts as done for bw_flush
    pending_.clear();
  }
  channel_.close_without_backoff();
}

// At exit. A lazy sender that never began a stream and has nothing queued says
// nothing (a fork child that exits at once).
void Sender::final_flush() {
  const bool something_queued =
      global_record_queue().claimed_count() != global_record_queue().popped_count();
  if (!stream_begun.load(std::memory_order_relaxed) && !something_queued) return;
  if (paused.load(std::memory_order_acquire)) {
    drain_queue();  // after an exec's Goodbye: nothing more goes out
    return;
  }
  stream_begun.store(true, std::memory_order_relaxed);
  goodbye_and_close(goodbye_reason, goodbye_status,
                    stop_deadline_mono_ns.load(std::memory_order_acquire), kFinalStallNs);
}

}  // namespace blockwatch::interpose
