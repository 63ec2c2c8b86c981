// The agent entry points of agent.h that are not on the hook path: start from the
// library constructor, fork child, exit, dlopen. They translate the library's
// Config into SenderOptions and drive the sender (sender.h). agent_submit() lives
// with the queue in record_queue.cc.
#include "interpose/transport/agent.h"

#include "interpose/base/phdr_cache.h"
#include "interpose/base/timebase.h"
#include "interpose/core/config.h"
#include "interpose/transport/sender.h"

namespace blockwatch::interpose {
namespace {

// At exit the whole flush (drain, write, Goodbye) gets at most this long; a
// collector that does not read makes it shorter (sender.cc gives up after 200 ms
// without progress).
constexpr int64_t kShutdownTimeoutNs = 1'000'000'000;
// Before exec the program waits for us: a quarter of that, and the sender gives
// up after 50 ms without progress (sender.cc kExecStallNs).
constexpr int64_t kExecFlushTimeoutNs = 250'000'000;

}  // namespace

void agent_start() {
  const Config& cfg = config();
  if (!cfg.enabled) return;
  SenderOptions options;
  if (cfg.collector) options.collector = cfg.collector;
  if (cfg.output) options.output = cfg.output;
  options.threshold_ns = cfg.threshold_ns;
  options.stall_threshold_ns = cfg.stall_threshold_ns;
  if (cfg.workers) options.workers = cfg.workers;
  // A fork() child runs the same program (pre-fork servers: its workers are the
  // point), so it is always watched; BLOCKWATCH_FOLLOW_CHILDREN is about exec.
  options.follow_forks = true;
  sender_start(options);
}

void agent_after_fork_child() {
  timebase_after_fork_child();
  phdr_cache_after_fork_child();
  sender_after_fork_child();
}

void agent_shutdown(const char* reason, int exit_status) {
  sender_shutdown(reason, exit_status, kShutdownTimeoutNs);
}

bool agent_before_exec() { return sender_before_exec(kExecFlushTimeoutNs); }

void agent_after_failed_exec() { sender_after_failed_exec(); }

void agent_forget_in_unwatched_child() { sender_forget_in_unwatched_child(); }

void agent_modules_changed() { sender_modules_changed(); }

}  // namespace blockwatch::interpose
