// The one way blockwatch waits: raw futex syscalls on a 32-bit word. Not libc's
// syscall(), which is blockwatch's own hook, and errno is never touched (bw_flush
// waits on target threads). No allocation, no lock, async-signal-safe.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>

#include "interpose/base/raw_syscall.h"

namespace blockwatch::interpose {

inline long raw_futex(std::atomic<uint32_t>* word, int op, uint32_t value,
                      const timespec* timeout) {
#if defined(__x86_64__)
  return raw_syscall6(SYS_futex, reinterpret_cast<long>(word), op, static_cast<long>(value),
                      reinterpret_cast<long>(timeout), 0, 0);
#else
  const int saved_errno = errno;
  const long result = ::syscall(SYS_futex, word, op, value, timeout, nullptr, 0);
  errno = saved_errno;
  return result;
#endif
}

// Sleeps while `word` holds `expected`, at most `timeout_ns` (nothing when <= 0).
inline void futex_wait_ns(std::atomic<uint32_t>& word, uint32_t expected, int64_t timeout_ns) {
  if (timeout_ns <= 0) return;
  const timespec timeout{static_cast<time_t>(timeout_ns / 1'000'000'000),
                         static_cast<long>(timeout_ns % 1'000'000'000)};
  raw_futex(&word, FUTEX_WAIT_PRIVATE, expected, &timeout);
}

inline void futex_wake(std::atomic<uint32_t>& word, int waiters) {
  raw_futex(&word, FUTEX_WAKE_PRIVATE, static_cast<uint32_t>(waiters), nullptr);
}

inline void futex_wake_all(std::atomic<uint32_t>& word) { futex_wake(word, INT32_MAX); }

}  // namespace blockwatch::interpose
