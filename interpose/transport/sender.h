// The sender: the agent's one thread. It drains the record queue, interns thread
// names, task labels, allow reasons and stacks, symbolizes new PCs, tells the
// in-process observer (bw_set_event_callback), encodes frames and writes them to
// the collector socket or output file, never making a target thread wait.
//
// The sender thread is created with every signal blocked and marks itself as
// blockwatch's own (mark_current_thread_internal) so the hooks pass its calls through. It
// may allocate (it is our thread) but holds no lock a target thread could need:
// everything shared with target threads is an atomic.
#pragma once

#include <cstdint>
#include <string>

#include "blockwatch/blockwatch.h"
#include "interpose/transport/wire_encoder.h"

namespace blockwatch::interpose {

struct SenderOptions {
  std::string collector;  // "unix:PATH" or empty
  std::string output;     // file path (with optional %p) or empty
  int64_t threshold_ns = 0;
  int64_t stall_threshold_ns = 0;
  std::string workers;
  bool forked_child = false;
  bool follow_forks = true;  // restart in a fork() child, else disable there
  // Open the stream only at the first record, or 100 ms after start (fork
  // children: one that execs or exits at once costs no connection).
  bool lazy_connect = false;
  // How long the sender sleeps when there is nothing to do. At most 100 ms: the
  // stream is flushed at least that often.
  int64_t idle_wait_ns = 50'000'000;
  // Bytes the sender buffers while the collector does not read (stopped, slow).
  // Beyond that, events are dropped and counted as dropped_no_collector.
  size_t max_pending_bytes = 4 << 20;
};

// Start the sender thread (not from a hook path). Returns false when one is
// already running or the thread could not be created. Clears the shut-down state
// of agent_submit().
bool sender_start(const SenderOptions& options);

// Stop accepting records, let the sender drain and flush what was queued, write
// Goodbye, and wait for that at most `timeout_ns` (less when the collector does
// not read). Safe to call twice and from any thread, including at exit.
void sender_shutdown(const char* reason, int exit_status, int64_t timeout_ns);

// In the child after fork(): drop the parent's queued records and stream, and
// start a new sender (Hello with forked_child) or disable, per follow_forks.
void sender_after_fork_child();

// exec() is about to replace the image: flush what is queued, send
// Goodbye("exec") and close the stream, waiting at most `timeout_ns` (less when
// the collector does not read). The agent keeps running: records made meanwhile
// are dropped (counted). Returns false when there is no running sender. A
// sender whose stream never began (a fork child) and with nothing queued
// returns at once.
bool sender_before_exec(int64_t timeout_ns);

// The exec failed: the process goes on, watched; the sender opens a new stream.
void sender_after_failed_exec();

// In a child made without our atfork handler (_Fork): close the inherited
// connection if it is still ours; nothing else. Async-signal-safe.
void sender_forget_in_unwatched_child();

// A dlopen/dlclose happened: the sender re-sends Modules. Async-signal-safe.
void sender_modules_changed();

// bw_flush: wait until every record queued before the call was processed and
// written (or dropped). 0 when done, -1 on timeout. Never blocks the sender; from
// the sender thread (inside the callback) returns -1 at once. Preserves errno.
int sender_flush(int timeout_ms);

// bw_set_event_callback. When replacing or removing a callback from a thread
// other than the sender's, waits (at most 1 s) until a running call of the old
// one returned, so the caller may free what `arg` points to.
int sender_set_event_callback(bw_event_callback callback, void* arg);

// The counters as the sender would send them now (tests, diagnostics).
CountersInfo sender_counters();

// What the sender holds, as of its last loop turn (tests, diagnostics): the
// bounds of the README's "Memory" section.
struct SenderMemoryStats {
  size_t pending_buffer_bytes = 0;  // capacity of the unsent-bytes buffer
  size_t done_markers = 0;          // bw_flush positions waiting for bytes
  size_t strings = 0;               // interned labels, reasons, thread names
  size_t stacks = 0;
  size_t symbols = 0;
  size_t threads = 0;  // tid -> name remembered
};
SenderMemoryStats sender_memory_stats();

}  // namespace blockwatch::interpose
