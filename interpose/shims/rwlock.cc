// Shims for reader-writer locks: pthread_rwlock_{rd,wr}lock and their timed and
// clock variants. Hook path: one TLS read off-worker; on a worker, a free lock
// costs one trylock (inline, as for mutexes) and timing starts only when it is
// busy. The holder tid is glibc's __cur_writer (known only when a writer holds it).
#include "interpose/shims/hook_path.h"

namespace bw = blockwatch::interpose;

namespace {

template <typename TryLock, typename LockReal>
int rwlock_on_worker(pthread_rwlock_t* lock, uint8_t kind, const char* function, TryLock&& try_lock,
                     LockReal&& lock_real) {
  const bw::BlockingCall call{.kind = kind,
                              .function = function,
                              .address = reinterpret_cast<uint64_t>(lock),
                              .fd = -1,
                              .holder_tid = 0};
  const int rc = try_lock();
  if (rc != EBUSY) {
    if (rc == 0) bw::report_if_strict(call);
    // EAGAIN (too many readers) and EDEADLK are what the blocking call would
    // report too; anything else: let the real call decide.
    if (rc == 0 || rc == EDEADLK) return rc;
    return lock_real();
  }
  bw::BlockingCall contended = call;
  contended.holder_tid = __atomic_load_n(&lock->__data.__cur_writer, __ATOMIC_RELAXED);
  return bw::time_blocking_call(contended, lock_real);
}

}  // namespace

// One macro for the six variants: they differ only in arguments and kind.
// A worker takes a free lock by try_fn right in the exported function, as
// pthread_mutex_lock does (shims/mutex.cc): outside strict mode an uncontended
// acquisition is neither timed nor reported, so it needs no out-of-line path.
// rwlock_on_worker tries first too, so this gives the result the slow path would
// (abstime is not looked at when the lock is free). Only success returns here;
// any other result (EBUSY, EAGAIN) goes to the slow path, where the real call
// decides (on a worker after one more try, and timed when the lock is busy).
#define BW_RWLOCK_HOOK(name, kind, try_fn, params, args)                                          \
  namespace {                                                                                     \
  BW_SLOW_PATH int name##_slow params {                                                           \
    auto real_lock = BW_REAL(name);                                                               \
    if (!real_lock) return ENOSYS;                                                                \
    if (!bw::hook_should_time()) return real_lock args;                                           \
    return rwlock_on_worker(                                                                      \
        lock, kind, #name, [&] { return try_fn(lock); }, [&] { return real_lock args; });         \
  }                                                                                               \
  }                                                                                               \
  BW_EXPORT int name params noexcept {                                                            \
    BW_PASS_THROUGH_IF_NOT_WORKER(name, args);                                                    \
    if (__builtin_expect(bw::g_threshold_ns != 0, 1) && __builtin_expect(try_fn(lock) == 0, 1)) { \
      return 0;                                                                                   \
    }                                                                                             \
    return name##_slow args;                                                                      \
  }

BW_RWLOCK_HOOK(pthread_rwlock_rdlock, bw::kinds::kKindRwlockRead, pthread_rwlock_tryrdlock,
               (pthread_rwlock_t * lock), (lock))
BW_RWLOCK_HOOK(pthread_rwlock_wrlock, bw::kinds::kKindRwlockWrite, pthread_rwlock_trywrlock,
               (pthread_rwlock_t * lock), (lock))
BW_RWLOCK_HOOK(pthread_rwlock_timedrdlock, bw::kinds::kKindRwlockRead, pthread_rwlock_tryrdlock,
               (pthread_rwlock_t* __restrict lock, const timespec* __restrict abstime),
               (lock, abstime))
BW_RWLOCK_HOOK(pthread_rwlock_timedwrlock, bw::kinds::kKindRwlockWrite, pthread_rwlock_trywrlock,
               (pthread_rwlock_t* __restrict lock, const timespec* __restrict abstime),
               (lock, abstime))
BW_RWLOCK_HOOK(pthread_rwlock_clockrdlock, bw::kinds::kKindRwlockRead, pthread_rwlock_tryrdlock,
               (pthread_rwlock_t* __restrict lock, clockid_t clock,
                const timespec* __restrict abstime),
               (lock, clock, abstime))
BW_RWLOCK_HOOK(pthread_rwlock_clockwrlock, bw::kinds::kKindRwlockWrite, pthread_rwlock_trywrlock,
               (pthread_rwlock_t* __restrict lock, clockid_t clock,
                const timespec* __restrict abstime),
               (lock, clock, abstime))
