// The injected library's lifecycle and public API: the constructor (config,
// real symbols, process scope, worker rules, capture warm-up, agent start),
// fork/exit glue, and the exported bw_* functions of blockwatch.h.
// bw_set_event_callback and bw_flush belong to the agent and are defined in its
// files.
//
// The exit status: glibc reaches exit() from main's return through an internal
// alias, past any `exit` shim, so the status comes from an on_exit() handler,
// which glibc's __run_exit_handlers calls with exit's argument however exit was
// reached (main returning, exit() on any thread, a library's internal call).
// Wrapping __libc_start_main would see only main's return; _exit and
// exit_group are reached through internal aliases too. quick_exit runs
// at_quick_exit handlers only: its shim notes the status for ours.
#define BW_WEAK
// With BW_WEAK empty, the header's inline "is the library there?" checks compare
// strong definitions against null; they are for the program side, not for us.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Waddress"
#include "blockwatch/blockwatch.h"
#pragma GCC diagnostic pop

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "interpose/base/loader_gate.h"
#include "interpose/base/real_symbols.h"
#include "interpose/core/capture.h"
#include "interpose/core/config.h"
#include "interpose/core/process_scope.h"
#include "interpose/core/thread_state.h"
#include "interpose/core/worker_rules.h"
#include "interpose/probes/task_probes.h"
#include "interpose/shims/lifecycle.h"
#include "interpose/transport/agent.h"
#include "interpose/watchdog/watchdog.h"

#define BW_API extern "C" __attribute__((visibility("default")))

namespace blockwatch::interpose {
namespace {

std::atomic<bool> g_active{false};
std::atomic<bool> g_shut_down{false};
std::atomic<int> g_quick_exit_status{0};

// BLOCKWATCH_FOLLOW_CHILDREN=0: drop this library from LD_PRELOAD in our own
// environment, in place, so no child (exec, system, posix_spawn) loads it again.
void stop_following_children() {
  char* preload = getenv("LD_PRELOAD");
  if (!preload) return;
  char* out = preload;
  for (char* entry = preload; *entry;) {
    const size_t length = strcspn(entry, ": ");
    const bool ours = memmem(entry, length, "libblockwatch", 13) != nullptr;
    if (!ours) {
      if (out != preload) *out++ = ':';
      memmove(out, entry, length);
      out += length;
    }
    entry += length;
    while (*entry == ':' || *entry == ' ') ++entry;
  }
  *out = '\0';
}

void after_fork_child() {
  if (!g_active.load(std::memory_order_relaxed)) return;
  set_watched_process(getpid());
  g_shut_down.store(false, std::memory_order_relaxed);
  thread_state_after_fork_child();
  agent_after_fork_child();
  watchdog_after_fork_child();
}

// on_exit handler: `status` is exit's argument, also when main returned.
void at_exit(int status, void*) {
  if (is_original_process()) shutdown_agent_once("exit", status);
}

void at_quick_exit_handler() {
  if (is_original_process()) shutdown_agent_once("exit", g_quick_exit_status.load());
}

void report_rules_error(const std::string& error) {
  fprintf(stderr, "blockwatch: BLOCKWATCH_WORKERS: %s; that rule is ignored\n", error.c_str());
}

// Priority 101: before the library's other constructors, so they may block on a
// resolved real-symbol table.
__attribute__((constructor(101))) void initialise_library() {
  RecursionGuard guard;
  resolve_real_symbols();
  const Config& settings = config();
  if (!settings.enabled) return;  // every hook stays a pass-through
  if (!settings.follow_children) stop_following_children();
  const ScopeDecision scope = decide_own_scope(settings.workers);
  if (!scope.error.empty()) report_rules_error(scope.error);
  if (!scope.watched) {
    thread_state_set_dormant();  // every hook passes through; no thread, no socket
    return;
  }
  std::string error;
  if (!install_worker_rules(scope.thread_rules.c_str(), &error)) report_rules_error(error);
  set_watched_process(getpid());
  capture_init();
  task_stats_init(settings.task_timing_every);  // after capture_init's timebase_init
  // While the process still has only this thread (task_probes.h), and before
  // the sender starts (it reports what was probed in Hello).
  task_probes_install_at_start();
  // The loader gate's atfork handlers first: its child handler must run before
  // ours starts threads there (child handlers run in registration order).
  loader_gate_install();
  pthread_atfork(nullptr, nullptr, after_fork_child);
  on_exit(at_exit, nullptr);
  at_quick_exit(at_quick_exit_handler);
  agent_start();
  // Last: from here on, hooks classify threads and time workers.
  thread_state_init();
  watchdog_start();  // stall/hang watchdog: reads the slots, submits to the agent
  g_active.store(true, std::memory_order_release);
}

}  // namespace

void shutdown_agent_once(const char* reason, int exit_status) {
  if (!g_active.load(std::memory_order_acquire)) return;
  if (g_shut_down.exchange(true)) return;
  RecursionGuard guard;
  watchdog_stop();  // before the final flush: no record after it
  agent_shutdown(reason, exit_status);
}

void note_quick_exit_status(int status) {
  g_quick_exit_status.store(status, std::memory_order_relaxed);
}

}  // namespace blockwatch::interpose

namespace bw = blockwatch::interpose;

// The bw_* API. Each is cheap, never blocks, never allocates (see blockwatch.h).
BW_API void bw_worker_begin(void) { bw::worker_begin(); }
BW_API void bw_worker_end(void) { bw::worker_end(); }
BW_API void bw_task_begin(const char* label) { bw::task_begin(label); }
BW_API void bw_task_end(void) { bw::task_end(); }
BW_API void bw_allow_begin(const char* reason) { bw::allow_begin(reason); }
BW_API void bw_allow_end(void) { bw::allow_end(); }
BW_API int bw_active(void) { return bw::g_active.load(std::memory_order_relaxed) ? 1 : 0; }
