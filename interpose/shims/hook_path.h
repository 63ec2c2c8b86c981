// What every interposed function (shims/*.cc) is built from: the export macro,
// lazy real-symbol lookup, and the one timed-call template. Keeping the shims to
// "fast path, then time_blocking_call(...)" means no hook body is hand-copied.
//
// Hook-path code. Contract of everything here: no allocation, no lock of ours,
// errno and return value of the real call reach the caller unchanged.
#pragma once

#include <cerrno>

#include "common/kinds.h"
#include "interpose/base/real_symbols.h"
#include "interpose/core/capture.h"
#include "interpose/core/config.h"
#include "interpose/core/thread_state.h"
#include "interpose/core/wait_classifier.h"
#include "interpose/transport/agent.h"

#define BW_EXPORT extern "C" __attribute__((visibility("default")))

namespace blockwatch::interpose {

// Kinds: the one list in common/kinds.h (the proto header is not included on the
// hook side).
namespace kinds = ::blockwatch::kinds;

// The real function for `field`, resolving the table on first use. Null only
// while this thread is itself inside dlsym, or if libc lacks the symbol.
#define BW_REAL(field)                                                           \
  (__builtin_expect(::blockwatch::interpose::g_real_symbols.field != nullptr, 1) \
       ? ::blockwatch::interpose::g_real_symbols.field                           \
       : (::blockwatch::interpose::resolve_real_symbols(),                       \
          ::blockwatch::interpose::g_real_symbols.field))

// Every shim's first line: a non-worker thread (and a worker inside blockwatch
// itself is not "non-worker": it takes the slow path) goes straight to the real
// function: one global load, one TLS load, a tail call. The rest of the shim
// lives in a separate noinline function so this path saves no registers.
#define BW_PASS_THROUGH_IF_NOT_WORKER(field, args)                                              \
  do {                                                                                          \
    const auto bw_fast_real = ::blockwatch::interpose::g_real_symbols.field;                    \
    if (__builtin_expect(bw_fast_real != nullptr, 1) &&                                         \
        __builtin_expect(                                                                       \
            ::blockwatch::interpose::current_mode() == ::blockwatch::interpose::kModeNotWorker, \
            1)) {                                                                               \
      return bw_fast_real args;                                                                 \
    }                                                                                           \
  } while (0)

#define BW_SLOW_PATH __attribute__((noinline))

// Runs `call_real` (the real function, arguments bound) on a worker thread: marks
// the slot "blocked in" for the watchdog, times the call in hook-clock ticks
// (timebase.h), and reports it when it lasted at least the threshold (always in
// strict mode, threshold 0). The guard is held throughout, so a signal handler
// that interrupts the call and calls a hooked function does not time it as this
// thread's call.
//
// The not-reported path makes no library call: two TSC reads (or clock_gettime
// where there is no invariant TSC, which leaves errno alone too), three stores
// to the slot, the guard byte. errno therefore needs no saving here;
// report_timed_call saves it for the rare call it reports.
// `is_idle`, asked only for a call over the threshold, may veto the report: an
// idle wait (wait_classifier.h) is never unwound or shipped.
struct NeverIdle {
  bool operator()() const { return false; }
};
template <typename CallReal, typename IsIdle = NeverIdle>
inline auto time_blocking_call(const BlockingCall& call, CallReal&& call_real,
                               IsIdle&& is_idle = {}) {
  if (__builtin_expect(tls_thread.guard_depth != 0, 0)) {
    // Nested in the real function of a timed call (hook_is_nested_in_timed_call:
    // a signal handler's call, say): the slot and the stack belong to the outer
    // call, so this one is only timed and counted. No new guard: the outer one
    // already makes any deeper hook pass through. Inline, so the lambda is not
    // materialised for an out-of-line call on the common path.
    const int64_t nested_start_ticks = hook_clock_ticks();
    auto result = call_real();
    count_nested_call(hook_clock_ticks() - nested_start_ticks);
    return result;
  }
  RecursionGuard guard;
  ThreadSlot* slot = tls_thread.slot;
  const int64_t start_ticks = hook_clock_ticks();
  slot->blocked_since_ticks.store(start_ticks, std::memory_order_relaxed);
  slot->blocked_in.store(call.function, std::memory_order_release);
  auto result = call_real();
  const int64_t elapsed_ticks = hook_clock_ticks() - start_ticks;
  slot->blocked_in.store(nullptr, std::memory_order_relaxed);
  if (__builtin_expect(elapsed_ticks >= g_threshold_ticks.load(std::memory_order_relaxed), 0) &&
      !is_idle()) {
    report_timed_call(call, start_ticks, elapsed_ticks);
  }
  return result;
}

// A condvar or futex wait on a worker (shims/cond.cc, shims/futex.cc): classified
// as the executor's idle park or not (wait_classifier.h) around the timed call.
// An idle park ends the loop turn and is never reported, however long; the
// verdict is the one the watchdog reached while the wait lasted (or an earlier
// park of the same call site). errno and the result are the real call's.
template <typename CallReal>
inline auto time_wait_call(const BlockingCall& call, const WaitTicket& ticket,
                           CallReal&& call_real) {
  bool idle = false;
  return time_blocking_call(
      call,
      [&] {
        auto result = call_real();
        const int saved_errno = errno;
        idle = wait_classify_end(ticket);
        errno = saved_errno;
        return result;
      },
      [&] { return idle; });
}

// Strict mode (threshold 0) reports calls that did not block at all, e.g. a
// mutex taken by trylock: "could have blocked" is what strict mode is about.
// Nested in a timed call (see time_blocking_call) it can only be counted.
inline void report_if_strict(const BlockingCall& call) {
  if (g_threshold_ns != 0) return;
  if (tls_thread.guard_depth != 0) {
    agent_count_not_captured();
    return;
  }
  RecursionGuard guard;
  const int saved_errno = errno;
  report_blocking_call(call, monotonic_ns(), 0);
  errno = saved_errno;
}

// A hook whose real function is missing (only possible while this thread is
// inside dlsym, or when libc lacks it): fail like an unimplemented call.
inline int missing_real_function() {
  errno = ENOSYS;
  return -1;
}

}  // namespace blockwatch::interpose
