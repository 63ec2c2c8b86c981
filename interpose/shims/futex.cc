// Shim for the libc syscall() function, to catch futex waits made through it:
// Rust's std::sync and parking_lot, absl::Mutex, libstdc++'s std::future and
// atomic::wait all block with syscall(SYS_futex, ...) (never through a pthread
// function). FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_LOCK_PI(2) and
// FUTEX_WAIT_REQUEUE_PI, private or not, and futex_waitv are timed; every other
// syscall goes straight through.
//
// FUTEX_LOCK_PI(2) records the holder's tid from the futex word. A worker's
// FUTEX_WAIT outside a task is classified first (wait_classifier.h), so a
// runtime's idle park ends a loop turn.
//
// syscall(SYS_exit_group) ends the process past every exit handler: the agent
// flushes first, as for _exit. syscall(SYS_exit) ends the calling thread past
// its pthread key destructors: its slot is released first.
//
// Hook path: one TLS read off-worker, and one compare of the number for the
// exit calls ahead of it (predicted not taken). All six arguments are
// forwarded exactly as longs: syscall() itself reads six registers whatever the
// caller passed.
#include <linux/futex.h>
#include <sys/syscall.h>

#include <cstdarg>

#include "interpose/base/raw_syscall.h"
#include "interpose/core/wait_classifier.h"
#include "interpose/shims/hook_path.h"
#include "interpose/shims/lifecycle.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef FUTEX_LOCK_PI2
#define FUTEX_LOCK_PI2 13
#endif

namespace bw = blockwatch::interpose;

namespace {

bool is_futex_wait(long number, long op) {
  if (number == SYS_futex_waitv) return true;
  if (number != SYS_futex) return false;
  switch (op & FUTEX_CMD_MASK) {
    case FUTEX_WAIT:
    case FUTEX_WAIT_BITSET:
    case FUTEX_LOCK_PI:
    case FUTEX_LOCK_PI2:
    case FUTEX_WAIT_REQUEUE_PI:
      return true;
    default:
      return false;
  }
}

// Only while this thread is inside dlsym: the raw syscall instruction, with
// libc's return convention (-1 and errno).
long syscall_while_in_dlsym(long number, long a1, long a2, long a3, long a4, long a5, long a6) {
#if defined(__x86_64__)
  const long result = bw::raw_syscall6(number, a1, a2, a3, a4, a5, a6);
  if (result < 0 && result > -4096) {
    errno = static_cast<int>(-result);
    return -1;
  }
  return result;
#else
  (void)number, (void)a1, (void)a2, (void)a3, (void)a4, (void)a5, (void)a6;
  return bw::missing_real_function();
#endif
}

bool is_lock_pi(long number, long op) {
  const long command = op & FUTEX_CMD_MASK;
  return number == SYS_futex && (command == FUTEX_LOCK_PI || command == FUTEX_LOCK_PI2);
}

// A PI futex word holds its owner's tid: read once, before waiting. Only the
// alignment is checked: the kernel reads the same word right after.
int32_t pi_futex_holder(long uaddr) {
  if (uaddr == 0 || (uaddr & 3) != 0) return 0;
  const uint32_t word = __atomic_load_n(reinterpret_cast<const uint32_t*>(uaddr), __ATOMIC_RELAXED);
  return static_cast<int32_t>(word & FUTEX_TID_MASK);
}

// Times a futex wait on a worker. A plain wait between tasks may be the
// runtime's idle park (tokio, Rust std Condvar: wait_classifier.h); a PI lock is
// a lock, never a park, and names its holder.
BW_SLOW_PATH long futex_wait_on_worker(long (*real_syscall)(long, ...), long number, long a1,
                                       long a2, long a3, long a4, long a5, long a6) {
  const bool lock_pi = is_lock_pi(number, a2);
  const bw::BlockingCall call{.kind = bw::kinds::kKindFutex,
                              .function = number == SYS_futex ? "futex" : "futex_waitv",
                              .address = static_cast<uint64_t>(a1),
                              .fd = -1,
                              .holder_tid = lock_pi ? pi_futex_holder(a1) : 0};
  const bw::WaitTicket ticket =
      lock_pi ? bw::WaitTicket{} : bw::wait_classify_begin(bw::kinds::kKindFutex);
  return bw::time_wait_call(call, ticket,
                            [&] { return real_syscall(number, a1, a2, a3, a4, a5, a6); });
}

// The process or thread ends right after this, past the exit handlers or the
// thread's key destructors.
BW_SLOW_PATH void before_raw_exit(long number, long status) {
  const int saved_errno = errno;
  if (number == SYS_exit_group) {
    if (bw::is_original_process()) bw::shutdown_agent_once("exit", static_cast<int>(status));
  } else {
    bw::thread_state_thread_exiting();
  }
  errno = saved_errno;
}

}  // namespace

BW_EXPORT long syscall(long number, ...) noexcept {
  va_list args;
  va_start(args, number);
  const long a1 = va_arg(args, long);
  const long a2 = va_arg(args, long);
  const long a3 = va_arg(args, long);
  const long a4 = va_arg(args, long);
  const long a5 = va_arg(args, long);
  const long a6 = va_arg(args, long);
  va_end(args);
  auto real_syscall = BW_REAL(syscall);
  if (!real_syscall) return syscall_while_in_dlsym(number, a1, a2, a3, a4, a5, a6);
  if (__builtin_expect(number == SYS_exit || number == SYS_exit_group, 0)) {
    before_raw_exit(number, a1);
  }
  if (__builtin_expect(!bw::hook_should_time(), 1) || !is_futex_wait(number, a2)) {
    return real_syscall(number, a1, a2, a3, a4, a5, a6);
  }
  return futex_wait_on_worker(real_syscall, number, a1, a2, a3, a4, a5, a6);
}
