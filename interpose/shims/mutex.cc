// Shims for mutex acquisition: pthread_mutex_{lock,timedlock,clocklock} and C11
// mtx_{lock,timedlock}. Hook path: a non-worker pays one TLS read; a worker tries
// the lock first and starts timing only when it is busy (the uncontended case
// costs one trylock). The holder's tid comes from glibc's __data.__owner, read
// just before blocking (racy by nature: it names who held it a moment ago).
#include <sched.h>

#include "interpose/shims/hook_path.h"

namespace bw = blockwatch::interpose;

namespace {

int32_t mutex_owner_tid(const pthread_mutex_t* mutex) {
  return __atomic_load_n(&mutex->__data.__owner, __ATOMIC_RELAXED);
}

// Fallback while this thread is inside dlsym: the real lock is not known yet,
// trylock (not interposed) is. Spinning is acceptable for that one moment.
int lock_by_trylock(pthread_mutex_t* mutex) {
  for (;;) {
    const int rc = pthread_mutex_trylock(mutex);
    if (rc != EBUSY) return rc;
    sched_yield();
  }
}

// Shared body: trylock, then time `lock_real` only if the mutex was busy.
// trylock's result equals lock's for every outcome but EBUSY (including
// EOWNERDEAD on robust mutexes, which acquires the lock).
template <typename LockReal>
int lock_on_worker(pthread_mutex_t* mutex, const char* function, LockReal&& lock_real) {
  const bw::BlockingCall call{.kind = bw::kinds::kKindMutex,
                              .function = function,
                              .address = reinterpret_cast<uint64_t>(mutex),
                              .fd = -1,
                              .holder_tid = 0};
  const int rc = pthread_mutex_trylock(mutex);
  if (rc != EBUSY) {
    if (rc == 0) bw::report_if_strict(call);
    return rc;
  }
  bw::BlockingCall contended = call;
  contended.holder_tid = mutex_owner_tid(mutex);
  return bw::time_blocking_call(contended, lock_real);
}

}  // namespace

namespace {
BW_SLOW_PATH int pthread_mutex_lock_slow(pthread_mutex_t* mutex) {
  auto real_lock = BW_REAL(pthread_mutex_lock);
  if (__builtin_expect(!bw::hook_should_time(), 1)) {
    return real_lock ? real_lock(mutex) : lock_by_trylock(mutex);
  }
  if (!real_lock) return lock_by_trylock(mutex);
  return lock_on_worker(mutex, "pthread_mutex_lock", [&] { return real_lock(mutex); });
}
}  // namespace

BW_EXPORT int pthread_mutex_lock(pthread_mutex_t* mutex) noexcept {
  BW_PASS_THROUGH_IF_NOT_WORKER(pthread_mutex_lock, (mutex));
  // Uncontended on a worker (outside strict mode): the trylock is the lock, and
  // nothing is timed or reported, so skip the out-of-line path. Whatever the
  // thread's mode, trylock's result equals lock's except EBUSY.
  if (__builtin_expect(bw::g_threshold_ns != 0, 1)) {
    const int rc = pthread_mutex_trylock(mutex);
    if (__builtin_expect(rc != EBUSY, 1)) return rc;
  }
  return pthread_mutex_lock_slow(mutex);
}

namespace {
BW_SLOW_PATH int pthread_mutex_timedlock_slow(pthread_mutex_t* mutex, const timespec* abstime) {
  auto real_lock = BW_REAL(pthread_mutex_timedlock);
  if (!real_lock) return ENOSYS;
  if (__builtin_expect(!bw::hook_should_time(), 1)) return real_lock(mutex, abstime);
  return lock_on_worker(mutex, "pthread_mutex_timedlock",
                        [&] { return real_lock(mutex, abstime); });
}
}  // namespace

BW_EXPORT int pthread_mutex_timedlock(pthread_mutex_t* mutex, const timespec* abstime) noexcept {
  BW_PASS_THROUGH_IF_NOT_WORKER(pthread_mutex_timedlock, (mutex, abstime));
  return pthread_mutex_timedlock_slow(mutex, abstime);
}

namespace {
BW_SLOW_PATH int pthread_mutex_clocklock_slow(pthread_mutex_t* mutex, clockid_t clock,
                                              const timespec* abstime) {
  auto real_lock = BW_REAL(pthread_mutex_clocklock);
  if (!real_lock) return ENOSYS;
  if (__builtin_expect(!bw::hook_should_time(), 1)) return real_lock(mutex, clock, abstime);
  return lock_on_worker(mutex, "pthread_mutex_clocklock",
                        [&] { return real_lock(mutex, clock, abstime); });
}
}  // namespace

BW_EXPORT int pthread_mutex_clocklock(pthread_mutex_t* mutex, clockid_t clock,
                                      const timespec* abstime) noexcept {
  BW_PASS_THROUGH_IF_NOT_WORKER(pthread_mutex_clocklock, (mutex, clock, abstime));
  return pthread_mutex_clocklock_slow(mutex, clock, abstime);
}

// C11 mutexes are glibc pthread mutexes underneath (same layout, same owner
// field); only the return codes differ (thrd_success / thrd_busy / thrd_error).
namespace {
template <typename LockReal>
int mtx_lock_on_worker(mtx_t* mutex, const char* function, LockReal&& lock_real) {
  auto* as_pthread = reinterpret_cast<pthread_mutex_t*>(mutex);
  const bw::BlockingCall call{.kind = bw::kinds::kKindMutex,
                              .function = function,
                              .address = reinterpret_cast<uint64_t>(mutex),
                              .fd = -1,
                              .holder_tid = 0};
  const int rc = mtx_trylock(mutex);
  if (rc != thrd_busy) {
    if (rc == thrd_success) bw::report_if_strict(call);
    return rc;
  }
  bw::BlockingCall contended = call;
  contended.holder_tid = mutex_owner_tid(as_pthread);
  return bw::time_blocking_call(contended, lock_real);
}
}  // namespace

namespace {
BW_SLOW_PATH int mtx_lock_slow(mtx_t* mutex) {
  auto real_lock = BW_REAL(mtx_lock);
  if (!real_lock) return thrd_error;
  if (__builtin_expect(!bw::hook_should_time(), 1)) return real_lock(mutex);
  return mtx_lock_on_worker(mutex, "mtx_lock", [&] { return real_lock(mutex); });
}
}  // namespace

BW_EXPORT int mtx_lock(mtx_t* mutex) noexcept {
  BW_PASS_THROUGH_IF_NOT_WORKER(mtx_lock, (mutex));
  return mtx_lock_slow(mutex);
}

namespace {
BW_SLOW_PATH int mtx_timedlock_slow(mtx_t* __restrict mutex, const timespec* __restrict abstime) {
  auto real_lock = BW_REAL(mtx_timedlock);
  if (!real_lock) return thrd_error;
  if (__builtin_expect(!bw::hook_should_time(), 1)) return real_lock(mutex, abstime);
  return mtx_lock_on_worker(mutex, "mtx_timedlock", [&] { return real_lock(mutex, abstime); });
}
}  // namespace

BW_EXPORT int mtx_timedlock(mtx_t* __restrict mutex, const timespec* __restrict abstime) noexcept {
  BW_PASS_THROUGH_IF_NOT_WORKER(mtx_timedlock, (mutex, abstime));
  return mtx_timedlock_slow(mutex, abstime);
}
