// Which waits are the executor's idle wait. Unmodified executors park their
// workers on a condvar (Boost.Asio's scheduler, condvar thread pools) or a futex
// (tokio, Rust std Condvar) as often as in epoll_wait, and only a stack tells
// such a park from a handler that blocks. The rules are the collector's built-in
// ones (common/builtin_rules.h), applied here to the call site of a condvar or
// futex wait on a worker that is not inside an explicit task:
//
//  - hook side (wait_classify_begin/end, shims/cond.cc, shims/futex.cc): takes
//    the innermost kWaitStackFrames return addresses (libunwind, ~300 ns: the
//    wait is about to sleep anyway), hashes them and looks the hash up in a
//    fixed-size lock-free VerdictCache. "idle": the slot is idle during the wait
//    and a loop turn ends when it returns, as for epoll_wait. Unknown: the
//    addresses are parked in the thread's slot for the watchdog, and the cache is
//    asked again when the wait returns, so even the first park of a call site
//    ends its turn. A wait a "not_worker" rule matches (tokio's blocking pool
//    waiting for a job) is idle too; the thread stays a worker (see .cc).
//  - watchdog side (wait_classify_pending): the watchdog thread symbolizes a
//    parked stack (its own ElfSymbolizer), runs the rules (regexec) and stores the
//    verdict, before it decides whether that slot is busy.
//
// epoll waits go through the same machinery with the opposite default: idle,
// unless the stack is a nested loop (builtin_rules.h kNestedLoopFrames, e.g.
// Node's execSync), which is then reported as a blocking `poll`.
//
// The VerdictCache is declared here for unit tests (wait_classifier_test.cc).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "interpose/core/thread_state.h"

namespace blockwatch::interpose {

inline constexpr int kWaitStackFrames = kPendingWaitFrames;

enum class WaitVerdict : uint8_t { kUnknown = 0, kIdle = 1, kOther = 3 };

// Stack hash -> verdict, open addressing over a fixed array of atomics. Any
// thread may look up (lock-free, no allocation, async-signal-safe); one thread
// at a time inserts (the watchdog). Full: new verdicts are not stored (those
// call sites are parked and classified again; correct, just slower).
class VerdictCache {
 public:
  static constexpr int kEntries = 4096;
  static constexpr int kProbes = 8;
  WaitVerdict lookup(uint64_t key) const;
  bool insert(uint64_t key, WaitVerdict verdict);
  void clear();

 private:
  static uint64_t tag_of(uint64_t key) { return (key & ~uint64_t{3}) ? key & ~uint64_t{3} : 4; }
  std::atomic<uint64_t> entries_[kEntries] = {};
};

// Hash of return addresses (never 0: 0 means "nothing parked").
uint64_t wait_stack_hash(const uintptr_t* pcs, int count);

// The process's cache (hooks and watchdog).
VerdictCache& wait_verdict_cache();

// --- hook side ---------------------------------------------------------------

// What wait_classify_begin found out, for wait_classify_end.
struct WaitTicket {
  uint64_t key = 0;  // 0: the wait was not classified (in a task, no slot)
  WaitVerdict verdict = WaitVerdict::kUnknown;
};

// On a worker thread, just before a condvar/futex wait of `kind` (kinds.h), or
// an epoll wait (kKindPoll: idle unless a nested loop, see classify_wait_stack).
// Hook path: no allocation, no lock of ours (libunwind's first use on a thread
// takes its own mutexes, under the guard); not async-signal-safe. errno unchanged.
// `max_frames` (at most kWaitStackFrames) keys the call site on fewer frames:
// an epoll wait's key stops before the JIT frames of a Node caller, whose
// addresses change as code is re-compiled.
WaitTicket wait_classify_begin(uint8_t kind, int max_frames = kWaitStackFrames);

// Just after the wait returned: true when it was the executor's idle wait
// (then the loop turn ends, and the caller does not report it). No allocation,
// no lock; errno unchanged.
bool wait_classify_end(const WaitTicket& ticket);

// --- watchdog side -------------------------------------------------------------

// Classify the wait `slot`'s owner parked (if any): returns its verdict and sets
// *still_waiting when the owner is still inside that very wait. kUnknown when
// nothing is parked or the copy raced with the owner. Watchdog thread only:
// allocates, symbolizes (mmaps objects), regexec; takes no lock a worker holds
// except malloc's and the loader's.
WaitVerdict wait_classify_pending(ThreadSlot& slot, bool* still_waiting);

// --- the rules, for unit tests ---------------------------------------------------

struct NamedFrame {
  std::string function;  // demangled
  std::string module;    // path of the object
};

// The built-in rules on one stack (innermost first) for a wait of `kind`.
// Allocates (regcomp on first use); one thread at a time.
WaitVerdict classify_wait_stack(const char* kind, const std::vector<NamedFrame>& stack);

}  // namespace blockwatch::interpose
