// The sender thread's object, shared by sender.cc (what the thread does) and
// sender_lifecycle.cc (start, shutdown, fork, exec, flush: what target threads
// ask of it). Not for other files: sender.h is the interface.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "interpose/base/futex.h"
#include "interpose/transport/output_channel.h"
#include "interpose/transport/sender.h"
#include "interpose/transport/stream_interner.h"
#include "interpose/transport/symbols.h"
#include "interpose/transport/wire_encoder.h"

namespace blockwatch::interpose {

class Sender {
 public:
  explicit Sender(const SenderOptions& options) : options_(options) {}

  // Shared with target threads.
  std::atomic<uint32_t> wake_word{0};
  std::atomic<uint32_t> done_word{0};
  std::atomic<uint64_t> done_pos{0};
  std::atomic<uint32_t> finished{0};
  std::atomic<bool> stop_requested{false};
  std::atomic<int64_t> stop_deadline_mono_ns{0};
  std::atomic<uint64_t> dropped_no_collector{0};
  std::atomic<uint64_t> threads_seen{0};
  // exec (sender_before_exec): a target thread bumps exec_request; the sender
  // flushes, says Goodbye("exec"), closes the stream, pauses (opens none) and
  // sets exec_done to the request it served. A failed exec unpauses.
  std::atomic<uint32_t> exec_request{0};
  std::atomic<uint32_t> exec_done{0};
  std::atomic<bool> paused{false};
  std::atomic<int64_t> exec_deadline_mono_ns{0};
  // Set (for good) once the sender decided to open streams; a lazy sender (fork
  // child) decides at its first record or kLazyConnectNs after start. Paired with
  // exec_request (both seq_cst): an exec that sees it unset with nothing queued
  // need not wait, and the sender then never begins a stream.
  std::atomic<bool> stream_begun{false};
  // What the sender holds, published at the end of every loop turn
  // (sender_memory_stats: tests and diagnostics).
  std::atomic<size_t> held_pending_bytes{0};
  std::atomic<size_t> held_done_markers{0};
  std::atomic<size_t> held_strings{0};
  std::atomic<size_t> held_stacks{0};
  std::atomic<size_t> held_symbols{0};
  std::atomic<size_t> held_threads{0};
  char goodbye_reason[16] = {};
  int goodbye_status = 0;
  // A replaced sender (restart, fork child) is kept, never freed: a late bw_flush
  // may still read it. Listed so it stays reachable.
  Sender* retired_next = nullptr;

  void wake() {
    wake_word.fetch_add(1, std::memory_order_release);
    futex_wake(wake_word, 1);
  }
  const SenderOptions& options() const { return options_; }
  OutputChannel& channel() { return channel_; }

  void run();

 private:
  void begin_stream();
  void drain_queue();
  void process_record(const Record& record);
  void notify_observer(const Record& record, size_t frame_count);
  uint64_t define_string(std::string_view text) {
    return interner_.define_string(text, encoder_, pending_);
  }
  // `change_count`: module_change_count() (symbols.h), when the caller has it.
  void maybe_send_modules(bool force, uint64_t change_count = module_change_count());
  void refresh_phdr_copy(uint64_t change_count);
  void maybe_send_counters(int64_t now, bool force);
  void write_pending(int64_t now);
  void lose_stream(int64_t now);
  void publish_done(uint64_t pos);
  bool may_open_stream(int64_t now);
  void serve_exec_request();
  void goodbye_and_close(const char* reason, int status, int64_t deadline, int64_t stall_ns);
  void publish_memory_stats();
  void add_done_marker(uint64_t bytes_end, uint64_t pos);
  bool over_pending_limit() const { return pending_.size() > options_.max_pending_bytes; }
  void final_flush();
  HelloInfo build_hello() const;

  SenderOptions options_;
  OutputChannel channel_;
  WireEncoder encoder_;
  std::string pending_;
  uint64_t bytes_written_total_ = 0;
  uint64_t events_in_pending_ = 0;
  std::deque<std::pair<uint64_t, uint64_t>> done_markers_;  // (bytes end, queue pos)
  int64_t start_unix_ns_ = 0;
  int64_t started_mono_ns_ = 0;
  int64_t stuck_since_ns_ = 0;  // bytes waiting and none taken since then; 0: not stuck
  int64_t monotonic_to_unix_ns_ = 0;
  // Interning: ids persist for the sender's life; "defined" is per stream.
  StreamInterner interner_;  // strings, stacks, symbols, tid -> name: bounded
  std::vector<ModuleInfo> modules_;
  uint32_t modules_generation_ = 0;
  uint64_t module_change_count_ = 0;
  uint64_t phdr_copy_change_count_ = 0;  // module_change_count() at the last phdr_cache_refresh
  uint32_t modules_requests_seen_ = 0;
  bool modules_unsent_ = false;  // Modules due on this stream, waiting for room
  CountersInfo counters_sent_;
  std::vector<TaskStatsLine> tasks_sent_;  // Counters.tasks as last sent
  uint64_t task_labels_dropped_sent_ = 0;
  int64_t counters_sent_at_ns_ = 0;
  std::vector<const char*> observer_frames_;
};

// The running sender (null before start); replaced ones are retired, never freed.
extern std::atomic<Sender*> g_sender;
// Keeps a replaced sender reachable. Not for the hook path.
void retire(Sender* sender);
// This thread is the sender (bw_flush and exit() from the callback must not wait
// for themselves). The hooks' own notion is thread_state's kModeLibrary.
extern __thread bool agent_own_thread_flag;
// Bumped when the loaded modules changed (sender_modules_changed).
extern std::atomic<uint32_t> g_modules_requests;

}  // namespace blockwatch::interpose
