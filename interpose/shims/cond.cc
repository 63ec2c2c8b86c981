// Shims for condition-variable waits: pthread_cond_{wait,timedwait,clockwait}.
//
// glibc exports pthread_cond_wait/timedwait twice: the current ABI
// (GLIBC_2.3.2, the default a program links today) and the pre-NPTL one
// (GLIBC_2.2.5) that old binaries still bind to, with a different object layout.
// An unversioned shim would catch both and hand old-layout condvars to the new
// implementation, so each version gets its own shim, exported under the same
// version (.symver below; the version nodes are declared in blockwatch.map), and
// each calls the real function of its own version.
//
// Hook path: one TLS read off-worker. A condvar wait always waits, so a worker's
// wait is always timed; the mutex re-lock inside it is glibc-internal and never
// reaches the mutex shim. Outside a task, a worker's wait is first classified
// (wait_classifier.h: one shallow unwind and a cache lookup; no allocation, no
// lock of ours): the executor's idle park marks the slot idle and ends a loop
// turn, as epoll_wait does.
#include "interpose/core/wait_classifier.h"
#include "interpose/shims/hook_path.h"

namespace bw = blockwatch::interpose;

namespace {

template <typename WaitReal>
int cond_wait_on_worker(pthread_cond_t* cond, const char* function, WaitReal&& wait_real) {
  const bw::BlockingCall call{.kind = bw::kinds::kKindCondvar,
                              .function = function,
                              .address = reinterpret_cast<uint64_t>(cond),
                              .fd = -1,
                              .holder_tid = 0};
  // A worker parked here between tasks may be its executor's idle wait
  // (wait_classifier.h).
  const bw::WaitTicket ticket = bw::wait_classify_begin(bw::kinds::kKindCondvar);
  return bw::time_wait_call(call, ticket, wait_real);
}

}  // namespace

// field: the real-symbols entry; exported: the shim's own (versioned) name.
#define BW_COND_HOOK(exported, field, function, params, args)                   \
  namespace {                                                                   \
  BW_SLOW_PATH int exported##_slow params {                                     \
    auto real_wait = BW_REAL(field);                                            \
    if (!real_wait) return ENOSYS;                                              \
    if (!bw::hook_should_time()) return real_wait args;                         \
    return cond_wait_on_worker(cond, function, [&] { return real_wait args; }); \
  }                                                                             \
  }                                                                             \
  extern "C" __attribute__((visibility("default"))) int exported params {       \
    BW_PASS_THROUGH_IF_NOT_WORKER(field, args);                                 \
    return exported##_slow args;                                                \
  }

BW_COND_HOOK(blockwatch_cond_wait, pthread_cond_wait, "pthread_cond_wait",
             (pthread_cond_t * cond, pthread_mutex_t* mutex), (cond, mutex))
BW_COND_HOOK(blockwatch_cond_timedwait, pthread_cond_timedwait, "pthread_cond_timedwait",
             (pthread_cond_t * cond, pthread_mutex_t* mutex, const timespec* abstime),
             (cond, mutex, abstime))
BW_COND_HOOK(blockwatch_cond_wait_2_2_5, pthread_cond_wait_2_2_5, "pthread_cond_wait",
             (pthread_cond_t * cond, pthread_mutex_t* mutex), (cond, mutex))
BW_COND_HOOK(blockwatch_cond_timedwait_2_2_5, pthread_cond_timedwait_2_2_5,
             "pthread_cond_timedwait",
             (pthread_cond_t * cond, pthread_mutex_t* mutex, const timespec* abstime),
             (cond, mutex, abstime))

__asm__(".symver blockwatch_cond_wait, pthread_cond_wait@@GLIBC_2.3.2");
__asm__(".symver blockwatch_cond_timedwait, pthread_cond_timedwait@@GLIBC_2.3.2");
__asm__(".symver blockwatch_cond_wait_2_2_5, pthread_cond_wait@GLIBC_2.2.5");
__asm__(".symver blockwatch_cond_timedwait_2_2_5, pthread_cond_timedwait@GLIBC_2.2.5");

// Only one version exists: an ordinary shim.
namespace {
BW_SLOW_PATH int pthread_cond_clockwait_slow(pthread_cond_t* cond, pthread_mutex_t* mutex,
                                             clockid_t clock, const timespec* abstime) {
  auto real_wait = BW_REAL(pthread_cond_clockwait);
  if (!real_wait) return ENOSYS;
  if (__builtin_expect(!bw::hook_should_time(), 1)) return real_wait(cond, mutex, clock, abstime);
  return cond_wait_on_worker(cond, "pthread_cond_clockwait",
                             [&] { return real_wait(cond, mutex, clock, abstime); });
}
}  // namespace

BW_EXPORT int pthread_cond_clockwait(pthread_cond_t* cond, pthread_mutex_t* mutex, clockid_t clock,
                                     const timespec* abstime) noexcept {
  BW_PASS_THROUGH_IF_NOT_WORKER(pthread_cond_clockwait, (cond, mutex, clock, abstime));
  return pthread_cond_clockwait_slow(cond, mutex, clock, abstime);
}
