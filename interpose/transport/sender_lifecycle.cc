// What target threads ask of the sender thread (see sender.h): start it, stop it
// at exit, follow a fork, pause across exec, wait for a flush, register the
// observer. The thread's own work is sender.cc.
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#include "interpose/base/clock.h"
#include "interpose/base/futex.h"
#include "interpose/base/internal_thread.h"
#include "interpose/base/loader_gate.h"
#include "interpose/core/thread_state.h"
#include "interpose/transport/agent.h"
#include "interpose/transport/event_observer.h"
#include "interpose/transport/record_queue.h"
#include "interpose/transport/sender.h"
#include "interpose/transport/sender_internal.h"

namespace blockwatch::interpose {

namespace {

void* sender_thread_main(void* arg) {
  agent_own_thread_flag = true;
  // Marked before naming, so the rename hook never classifies this thread as a
  // worker (a `name:.*` rule), and again after it in case the rename reset it.
  mark_current_thread_internal();
  pthread_setname_np(pthread_self(), "blockwatch");
  mark_current_thread_internal();
  static_cast<Sender*>(arg)->run();
  return nullptr;
}

}  // namespace

bool sender_start(const SenderOptions& options) {
  Sender* current = g_sender.load(std::memory_order_acquire);
  if (current && !current->finished.load(std::memory_order_acquire)) return false;
  // A finished sender's memory is kept (leaked): a late bw_flush may still read it.
  retire(current);
  loader_gate_install();  // before our first dl_iterate_phdr (loader_gate.h)
  // A fork child inherited the grown table.
  if (!options.forked_child && (!options.collector.empty() || !options.output.empty())) {
    prepare_high_fd_range();
  }
  auto* sender = new Sender(options);
  set_agent_shut_down(false);
  g_sender.store(sender, std::memory_order_release);
  const int error = start_internal_thread(sender_thread_main, sender) ? 0 : 1;
  if (error != 0) {
    sender->finished.store(1, std::memory_order_release);
    set_agent_shut_down(true);
    return false;
  }
  return true;
}

void sender_shutdown(const char* reason, int exit_status, int64_t timeout_ns) {
  set_agent_shut_down(true);
  Sender* sender = g_sender.load(std::memory_order_acquire);
  if (!sender || sender->stop_requested.load(std::memory_order_acquire)) return;
  const int64_t deadline = monotonic_ns() + timeout_ns;
  snprintf(sender->goodbye_reason, sizeof sender->goodbye_reason, "%s", reason ? reason : "");
  sender->goodbye_status = exit_status;
  // A 10% margin lets the sender finish its Goodbye before we stop waiting.
  sender->stop_deadline_mono_ns.store(deadline - timeout_ns / 10, std::memory_order_release);
  if (sender->stop_requested.exchange(true, std::memory_order_acq_rel)) return;
  sender->wake();
  if (agent_own_thread_flag) return;  // exit() called from the callback: cannot wait for ourselves
  for (int64_t now = monotonic_ns(); now < deadline; now = monotonic_ns()) {
    if (sender->finished.load(std::memory_order_acquire)) return;
    futex_wait_ns(sender->finished, 0, deadline - now);
  }
}

void sender_after_fork_child() {
  // Only this thread exists. Records half-pushed by other threads of the parent
  // can never complete: start the queue afresh; the parent sends its own records.
  RecordQueue& queue = global_record_queue();
  queue.discard_pending();
  AgentCounters& counters = global_agent_counters();
  // The positions go on from the parent's; the child counts from zero
  // (events_recorded = recorded_before_reset + claimed_count, modulo 2^64).
  counters.recorded_before_reset.store(uint64_t{0} - queue.claimed_count(),
                                       std::memory_order_relaxed);
  counters.dropped_queue_full.store(0, std::memory_order_relaxed);
  counters.dropped_too_deep.store(0, std::memory_order_relaxed);
  counters.dropped_after_shutdown.store(0, std::memory_order_relaxed);
  counters.stalls_suppressed.store(0, std::memory_order_relaxed);
  event_observer_after_fork_child();
  Sender* parent = g_sender.load(std::memory_order_acquire);
  if (!parent) return;
  // The parent's sender may have been anywhere in its loop at fork(): its maps and
  // buffers may be mid-update, so the child leaks them and only reads what never
  // changes after start (options) or is plain integers (the fd identity).
  parent->channel().abandon_inherited_fd();
  const bool parent_stopping = parent->stop_requested.load(std::memory_order_acquire);
  SenderOptions options = parent->options();
  g_sender.store(nullptr, std::memory_order_release);
  retire(parent);
  if (parent_stopping || !options.follow_forks) {
    set_agent_shut_down(true);
    return;
  }
  options.forked_child = true;
  options.lazy_connect = true;
  sender_start(options);
}

bool sender_before_exec(int64_t timeout_ns) {
  Sender* sender = g_sender.load(std::memory_order_acquire);
  if (!sender || sender->finished.load(std::memory_order_acquire) ||
      sender->stop_requested.load(std::memory_order_acquire) || agent_own_thread_flag) {
    return false;
  }
  const int64_t deadline = monotonic_ns() + timeout_ns;
  sender->exec_deadline_mono_ns.store(deadline - timeout_ns / 10, std::memory_order_release);
  const uint32_t request = sender->exec_request.fetch_add(1, std::memory_order_seq_cst) + 1;
  const bool something_queued =
      global_record_queue().claimed_count() != global_record_queue().popped_count();
  // A stream never begun, nothing queued: the sender will not begin one now
  // (may_open_stream sees the request), so there is nothing to wait for.
  if (!sender->stream_begun.load(std::memory_order_seq_cst) && !something_queued) return true;
  sender->wake();
  for (int64_t now = monotonic_ns(); now < deadline; now = monotonic_ns()) {
    const uint32_t done = sender->exec_done.load(std::memory_order_acquire);
    if (static_cast<int32_t>(done - request) >= 0) break;
    if (sender->finished.load(std::memory_order_acquire)) break;
    futex_wait_ns(sender->exec_done, done, std::min<int64_t>(deadline - now, 10'000'000));
  }
  return true;
}

void sender_after_failed_exec() {
  Sender* sender = g_sender.load(std::memory_order_acquire);
  if (!sender) return;
  // The sender may still be serving the request: wait for it (bounded by the
  // deadline it was given), so it does not pause again after we unpaused.
  const uint32_t request = sender->exec_request.load(std::memory_order_acquire);
  const int64_t deadline = sender->exec_deadline_mono_ns.load(std::memory_order_acquire) +
                           100'000'000;
  for (int64_t now = monotonic_ns(); now < deadline; now = monotonic_ns()) {
    const uint32_t done = sender->exec_done.load(std::memory_order_acquire);
    if (done == request || sender->finished.load(std::memory_order_acquire)) break;
    sender->wake();
    futex_wait_ns(sender->exec_done, done, std::min<int64_t>(deadline - now, 10'000'000));
  }
  sender->paused.store(false, std::memory_order_release);
  sender->wake();  // a new stream (Hello again) at its next turn
}

void sender_forget_in_unwatched_child() {
  if (Sender* sender = g_sender.load(std::memory_order_acquire)) {
    sender->channel().abandon_inherited_fd();
  }
}

void sender_modules_changed() { g_modules_requests.fetch_add(1, std::memory_order_release); }

int sender_flush(int timeout_ms) {
  if (agent_own_thread_flag) return -1;
  Sender* sender = g_sender.load(std::memory_order_acquire);
  const uint64_t target = global_record_queue().claimed_count();
  if (!sender) return global_record_queue().popped_count() >= target ? 0 : -1;
  if (sender->done_pos.load(std::memory_order_acquire) >= target) return 0;
  sender->wake();
  const int64_t deadline = monotonic_ns() + int64_t{timeout_ms < 0 ? 0 : timeout_ms} * 1'000'000;
  for (;;) {
    const uint32_t seen = sender->done_word.load(std::memory_order_acquire);
    if (sender->done_pos.load(std::memory_order_acquire) >= target) return 0;
    const int64_t now = monotonic_ns();
    if (now >= deadline || sender->finished.load(std::memory_order_acquire)) return -1;
    futex_wait_ns(sender->done_word, seen, std::min<int64_t>(deadline - now, 10'000'000));
  }
}

int sender_set_event_callback(bw_event_callback callback, void* arg) {
  return event_observer_set(callback, arg, agent_own_thread_flag);
}

}  // namespace blockwatch::interpose
