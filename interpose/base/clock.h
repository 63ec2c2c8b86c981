// The clocks blockwatch's own code reads (the hook path's clock is timebase.h).
// All are vDSO or one syscall: no allocation, no lock, async-signal-safe.
#pragma once

#include <time.h>

#include <cstdint>

namespace blockwatch::interpose {

inline int64_t clock_ns(clockid_t clock) {
  timespec now{};
  clock_gettime(clock, &now);
  return static_cast<int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

// CLOCK_MONOTONIC in ns.
inline int64_t monotonic_ns() { return clock_ns(CLOCK_MONOTONIC); }

// The kernel's per-thread CPU clock id of `tid` (what pthread_getcpuclockid
// computes), so no pthread_t of a maybe-exited thread is touched.
inline clockid_t thread_cpu_clock_id(int32_t tid) {
  return static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | 6);
}

// Another thread's CPU time, by tid. 0 when the thread is gone.
inline int64_t thread_cpu_ns(int32_t tid) {
  timespec cpu{};
  if (clock_gettime(thread_cpu_clock_id(tid), &cpu) != 0) return 0;
  return static_cast<int64_t>(cpu.tv_sec) * 1'000'000'000 + cpu.tv_nsec;
}

}  // namespace blockwatch::interpose
