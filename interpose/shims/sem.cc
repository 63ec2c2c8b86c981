// Shims for semaphore waits: sem_{wait,timedwait,clockwait}. Hook path: one TLS
// read off-worker; on a worker, sem_trywait first (not interposed) and time only
// when the count was zero. trywait's EAGAIN is ours, not the caller's: errno is
// restored before the real call.
#include "interpose/shims/hook_path.h"

namespace bw = blockwatch::interpose;

namespace {

template <typename WaitReal>
int sem_wait_on_worker(sem_t* sem, const char* function, WaitReal&& wait_real) {
  const bw::BlockingCall call{.kind = bw::kinds::kKindSemaphore,
                              .function = function,
                              .address = reinterpret_cast<uint64_t>(sem),
                              .fd = -1,
                              .holder_tid = 0};
  const int saved_errno = errno;
  if (sem_trywait(sem) == 0) {
    bw::report_if_strict(call);
    return 0;
  }
  errno = saved_errno;
  return bw::time_blocking_call(call, wait_real);
}

}  // namespace

namespace {
BW_SLOW_PATH int sem_wait_slow(sem_t* sem) {
  auto real_wait = BW_REAL(sem_wait);
  if (!real_wait) return bw::missing_real_function();
  if (__builtin_expect(!bw::hook_should_time(), 1)) return real_wait(sem);
  return sem_wait_on_worker(sem, "sem_wait", [&] { return real_wait(sem); });
}
}  // namespace

BW_EXPORT int sem_wait(sem_t* sem) {
  BW_PASS_THROUGH_IF_NOT_WORKER(sem_wait, (sem));
  return sem_wait_slow(sem);
}

namespace {
BW_SLOW_PATH int sem_timedwait_slow(sem_t* __restrict sem, const timespec* __restrict abstime) {
  auto real_wait = BW_REAL(sem_timedwait);
  if (!real_wait) return bw::missing_real_function();
  if (__builtin_expect(!bw::hook_should_time(), 1)) return real_wait(sem, abstime);
  return sem_wait_on_worker(sem, "sem_timedwait", [&] { return real_wait(sem, abstime); });
}
}  // namespace

BW_EXPORT int sem_timedwait(sem_t* __restrict sem, const timespec* __restrict abstime) {
  BW_PASS_THROUGH_IF_NOT_WORKER(sem_timedwait, (sem, abstime));
  return sem_timedwait_slow(sem, abstime);
}

namespace {
BW_SLOW_PATH int sem_clockwait_slow(sem_t* __restrict sem, clockid_t clock,
                                    const timespec* __restrict abstime) {
  auto real_wait = BW_REAL(sem_clockwait);
  if (!real_wait) return bw::missing_real_function();
  if (__builtin_expect(!bw::hook_should_time(), 1)) return real_wait(sem, clock, abstime);
  return sem_wait_on_worker(sem, "sem_clockwait", [&] { return real_wait(sem, clock, abstime); });
}
}  // namespace

BW_EXPORT int sem_clockwait(sem_t* __restrict sem, clockid_t clock,
                            const timespec* __restrict abstime) {
  BW_PASS_THROUGH_IF_NOT_WORKER(sem_clockwait, (sem, clock, abstime));
  return sem_clockwait_slow(sem, clock, abstime);
}
