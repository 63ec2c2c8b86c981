// Shims for sleeps and readiness waits: nanosleep, clock_nanosleep, usleep,
// sleep (kind `sleep`); poll, ppoll, select, pselect with a non-zero timeout
// (kind `poll`; a zero timeout is a non-blocking check). epoll_wait and
// epoll_pwait(2) are the executor's idle wait: not reported, but each marks a
// loop-turn boundary in the thread's slot (the stall watchdog counts turns),
// except in a nested loop (see idle_wait).
//
// Hook path: one TLS read off-worker; on a worker the call is timed.
#include "interpose/shims/hook_path.h"

namespace bw = blockwatch::interpose;

namespace {

const bw::BlockingCall sleep_call(const char* function, uint8_t kind) {
  return bw::BlockingCall{
      .kind = kind, .function = function, .address = 0, .fd = -1, .holder_tid = 0};
}

bool is_zero(const timespec* timeout) {
  return timeout && timeout->tv_sec == 0 && timeout->tv_nsec == 0;
}
bool is_zero(const timeval* timeout) {
  return timeout && timeout->tv_sec == 0 && timeout->tv_usec == 0;
}

// An epoll wait on a worker: the executor's idle wait (the slot says "idle"
// while inside, and a turn ends when it returns), unless its call site is a
// nested loop (builtin_rules.h kNestedLoopFrames: Node's execSync waiting for
// its child on a private libuv loop), which blocks the thread's own loop: then
// it is timed and reported as a `poll` like any blocking call. The call site is
// classified as a condvar park is (wait_classifier.h): until the watchdog has
// looked at a call site (its next tick, up to 100 ms with stall detection off),
// its waits are idle; a wait the verdict arrived during is reported when it ends. Hook path: no allocation, no lock of ours (one unwind of
// kWaitStackFrames per wait with a timeout); errno and result are the call's.
// An epoll wait's call site for classification: its innermost frames, deep
// enough for node's uv__io_poll <- uv_run <- SyncProcessRunner::* <- Spawn and
// short of the JavaScript frames above (their addresses change as V8 re-compiles,
// and every new key waits for the watchdog again).
constexpr int kEpollSiteFrames = 8;

template <typename WaitReal>
int idle_wait(const char* function, WaitReal&& wait_real) {
  // A signal handler's wait inside a timed call is not the executor's loop.
  if (bw::tls_thread.guard_depth != 0) return wait_real();
  const bw::WaitTicket ticket = bw::wait_classify_begin(bw::kinds::kKindPoll, kEpollSiteFrames);
  if (ticket.verdict == bw::WaitVerdict::kOther) {
    return bw::time_blocking_call(sleep_call(function, bw::kinds::kKindPoll), wait_real);
  }
  if (ticket.verdict != bw::WaitVerdict::kIdle) bw::mark_loop_turn(true);
  const int64_t start_ticks = bw::hook_clock_ticks();
  const int result = wait_real();
  const int saved_errno = errno;
  const int64_t elapsed_ticks = bw::hook_clock_ticks() - start_ticks;
  if (!bw::wait_classify_end(ticket)) {  // true: idle, and the turn ended there
    bw::mark_loop_turn(false);
    if (ticket.key != 0 && elapsed_ticks >= bw::g_threshold_ticks.load(std::memory_order_relaxed) &&
        bw::wait_verdict_cache().lookup(ticket.key) == bw::WaitVerdict::kOther) {
      bw::RecursionGuard guard;
      bw::report_timed_call(sleep_call(function, bw::kinds::kKindPoll), start_ticks,
                            elapsed_ticks);
    }
  }
  errno = saved_errno;
  return result;
}

}  // namespace

namespace {
BW_SLOW_PATH int nanosleep_slow(const timespec* duration, timespec* remaining) {
  auto real_call = BW_REAL(nanosleep);
  if (!real_call) return bw::missing_real_function();
  if (__builtin_expect(!bw::hook_should_time(), 1)) return real_call(duration, remaining);
  return bw::time_blocking_call(sleep_call("nanosleep", bw::kinds::kKindSleep),
                                [&] { return real_call(duration, remaining); });
}
}  // namespace

BW_EXPORT int nanosleep(const timespec* duration, timespec* remaining) {
  BW_PASS_THROUGH_IF_NOT_WORKER(nanosleep, (duration, remaining));
  return nanosleep_slow(duration, remaining);
}

namespace {
BW_SLOW_PATH int clock_nanosleep_slow(clockid_t clock, int flags, const timespec* duration,
                                      timespec* remaining) {
  auto real_call = BW_REAL(clock_nanosleep);
  if (!real_call) return ENOSYS;  // returns the error, errno untouched
  if (__builtin_expect(!bw::hook_should_time(), 1)) {
    return real_call(clock, flags, duration, remaining);
  }
  return bw::time_blocking_call(sleep_call("clock_nanosleep", bw::kinds::kKindSleep),
                                [&] { return real_call(clock, flags, duration, remaining); });
}
}  // namespace

BW_EXPORT int clock_nanosleep(clockid_t clock, int flags, const timespec* duration,
                              timespec* remaining) {
  BW_PASS_THROUGH_IF_NOT_WORKER(clock_nanosleep, (clock, flags, duration, remaining));
  return clock_nanosleep_slow(clock, flags, duration, remaining);
}

namespace {
BW_SLOW_PATH int usleep_slow(useconds_t usec) {
  auto real_call = BW_REAL(usleep);
  if (!real_call) return bw::missing_real_function();
  if (__builtin_expect(!bw::hook_should_time(), 1)) return real_call(usec);
  return bw::time_blocking_call(sleep_call("usleep", bw::kinds::kKindSleep),
                                [&] { return real_call(usec); });
}
}  // namespace

BW_EXPORT int usleep(useconds_t usec) {
  BW_PASS_THROUGH_IF_NOT_WORKER(usleep, (usec));
  return usleep_slow(usec);
}

namespace {
BW_SLOW_PATH unsigned int sleep_slow(unsigned int seconds) {
  auto real_call = BW_REAL(sleep);
  if (!real_call) return seconds;
  if (__builtin_expect(!bw::hook_should_time(), 1)) return real_call(seconds);
  return bw::time_blocking_call(sleep_call("sleep", bw::kinds::kKindSleep),
                                [&] { return real_call(seconds); });
}
}  // namespace

BW_EXPORT unsigned int sleep(unsigned int seconds) {
  BW_PASS_THROUGH_IF_NOT_WORKER(sleep, (seconds));
  return sleep_slow(seconds);
}

namespace {
BW_SLOW_PATH int poll_slow(pollfd* fds, nfds_t nfds, int timeout_ms) {
  auto real_call = BW_REAL(poll);
  if (!real_call) return bw::missing_real_function();
  if (__builtin_expect(!bw::hook_should_time(), 1) || timeout_ms == 0) {
    return real_call(fds, nfds, timeout_ms);
  }
  return bw::time_blocking_call(sleep_call("poll", bw::kinds::kKindPoll),
                                [&] { return real_call(fds, nfds, timeout_ms); });
}
}  // namespace

BW_EXPORT int poll(pollfd* fds, nfds_t nfds, int timeout_ms) {
  BW_PASS_THROUGH_IF_NOT_WORKER(poll, (fds, nfds, timeout_ms));
  return poll_slow(fds, nfds, timeout_ms);
}

namespace {
BW_SLOW_PATH int ppoll_slow(pollfd* fds, nfds_t nfds, const timespec* timeout,
                            const sigset_t* sigmask) {
  auto real_call = BW_REAL(ppoll);
  if (!real_call) return bw::missing_real_function();
  if (__builtin_expect(!bw::hook_should_time(), 1) || is_zero(timeout)) {
    return real_call(fds, nfds, timeout, sigmask);
  }
  return bw::time_blocking_call(sleep_call("ppoll", bw::kinds::kKindPoll),
                                [&] { return real_call(fds, nfds, timeout, sigmask); });
}
}  // namespace

BW_EXPORT int ppoll(pollfd* fds, nfds_t nfds, const timespec* timeout, const sigset_t* sigmask) {
  BW_PASS_THROUGH_IF_NOT_WORKER(ppoll, (fds, nfds, timeout, sigmask));
  return ppoll_slow(fds, nfds, timeout, sigmask);
}

namespace {
BW_SLOW_PATH int select_slow(int nfds, fd_set* __restrict readfds, fd_set* __restrict writefds,
                             fd_set* __restrict exceptfds, timeval* __restrict timeout) {
  auto real_call = BW_REAL(select);
  if (!real_call) return bw::missing_real_function();
  if (__builtin_expect(!bw::hook_should_time(), 1) || is_zero(timeout)) {
    return real_call(nfds, readfds, writefds, exceptfds, timeout);
  }
  return bw::time_blocking_call(sleep_call("select", bw::kinds::kKindPoll), [&] {
    return real_call(nfds, readfds, writefds, exceptfds, timeout);
  });
}
}  // namespace

BW_EXPORT int select(int nfds, fd_set* __restrict readfds, fd_set* __restrict writefds,
                     fd_set* __restrict exceptfds, timeval* __restrict timeout) {
  BW_PASS_THROUGH_IF_NOT_WORKER(select, (nfds, readfds, writefds, exceptfds, timeout));
  return select_slow(nfds, readfds, writefds, exceptfds, timeout);
}

namespace {
BW_SLOW_PATH int pselect_slow(int nfds, fd_set* __restrict readfds, fd_set* __restrict writefds,
                              fd_set* __restrict exceptfds, const timespec* __restrict timeout,
                              const sigset_t* __restrict sigmask) {
  auto real_call = BW_REAL(pselect);
  if (!real_call) return bw::missing_real_function();
  if (__builtin_expect(!bw::hook_should_time(), 1) || is_zero(timeout)) {
    return real_call(nfds, readfds, writefds, exceptfds, timeout, sigmask);
  }
  return bw::time_blocking_call(sleep_call("pselect", bw::kinds::kKindPoll), [&] {
    return real_call(nfds, readfds, writefds, exceptfds, timeout, sigmask);
  });
}
}  // namespace

BW_EXPORT int pselect(int nfds, fd_set* __restrict readfds, fd_set* __restrict writefds,
                      fd_set* __restrict exceptfds, const timespec* __restrict timeout,
                      const sigset_t* __restrict sigmask) {
  BW_PASS_THROUGH_IF_NOT_WORKER(pselect, (nfds, readfds, writefds, exceptfds, timeout, sigmask));
  return pselect_slow(nfds, readfds, writefds, exceptfds, timeout, sigmask);
}

namespace {
BW_SLOW_PATH int epoll_wait_slow(int epfd, epoll_event* events, int max_events, int timeout_ms) {
  auto real_call = BW_REAL(epoll_wait);
  if (!real_call) return bw::missing_real_function();
  if (__builtin_expect(!bw::hook_should_time(), 1) || timeout_ms == 0) {
    return real_call(epfd, events, max_events, timeout_ms);
  }
  return idle_wait("epoll_wait", [&] { return real_call(epfd, events, max_events, timeout_ms); });
}
}  // namespace

BW_EXPORT int epoll_wait(int epfd, epoll_event* events, int max_events, int timeout_ms) {
  BW_PASS_THROUGH_IF_NOT_WORKER(epoll_wait, (epfd, events, max_events, timeout_ms));
  return epoll_wait_slow(epfd, events, max_events, timeout_ms);
}

namespace {
BW_SLOW_PATH int epoll_pwait_slow(int epfd, epoll_event* events, int max_events, int timeout_ms,
                                  const sigset_t* sigmask) {
  auto real_call = BW_REAL(epoll_pwait);
  if (!real_call) return bw::missing_real_function();
  if (__builtin_expect(!bw::hook_should_time(), 1) || timeout_ms == 0) {
    return real_call(epfd, events, max_events, timeout_ms, sigmask);
  }
  return idle_wait("epoll_pwait",
                   [&] { return real_call(epfd, events, max_events, timeout_ms, sigmask); });
}
}  // namespace

BW_EXPORT int epoll_pwait(int epfd, epoll_event* events, int max_events, int timeout_ms,
                          const sigset_t* sigmask) {
  BW_PASS_THROUGH_IF_NOT_WORKER(epoll_pwait, (epfd, events, max_events, timeout_ms, sigmask));
  return epoll_pwait_slow(epfd, events, max_events, timeout_ms, sigmask);
}

namespace {
BW_SLOW_PATH int epoll_pwait2_slow(int epfd, epoll_event* events, int max_events,
                                   const timespec* timeout, const sigset_t* sigmask) {
  auto real_call = BW_REAL(epoll_pwait2);
  if (!real_call) return bw::missing_real_function();
  if (__builtin_expect(!bw::hook_should_time(), 1) || is_zero(timeout)) {
    return real_call(epfd, events, max_events, timeout, sigmask);
  }
  return idle_wait("epoll_pwait2",
                   [&] { return real_call(epfd, events, max_events, timeout, sigmask); });
}
}  // namespace

BW_EXPORT int epoll_pwait2(int epfd, epoll_event* events, int max_events, const timespec* timeout,
                           const sigset_t* sigmask) {
  BW_PASS_THROUGH_IF_NOT_WORKER(epoll_pwait2, (epfd, events, max_events, timeout, sigmask));
  return epoll_pwait2_slow(epfd, events, max_events, timeout, sigmask);
}
