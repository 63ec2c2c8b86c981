// Shims for durability calls, all reported as kind `fsync`: fsync, fdatasync,
// sync_file_range, msync (only MS_SYNC waits), syncfs, sync. Hook path: one TLS
// read off-worker; on a worker the call is timed.
#include "interpose/shims/hook_path.h"

namespace bw = blockwatch::interpose;

namespace {
template <typename CallReal>
auto time_fsync(const char* function, int fd, uint64_t address, CallReal&& call_real) {
  const bw::BlockingCall call{.kind = bw::kinds::kKindFsync,
                              .function = function,
                              .address = address,
                              .fd = fd,
                              .holder_tid = 0};
  return bw::time_blocking_call(call, call_real);
}
}  // namespace

#define BW_FSYNC_HOOK(name, params, args, fd_expr)                        \
  namespace {                                                             \
  BW_SLOW_PATH int name##_slow params {                                   \
    auto real_call = BW_REAL(name);                                       \
    if (!real_call) return bw::missing_real_function();                   \
    if (!bw::hook_should_time()) return real_call args;                   \
    return time_fsync(#name, fd_expr, 0, [&] { return real_call args; }); \
  }                                                                       \
  }                                                                       \
  BW_EXPORT int name params {                                             \
    BW_PASS_THROUGH_IF_NOT_WORKER(name, args);                            \
    return name##_slow args;                                              \
  }

BW_FSYNC_HOOK(fsync, (int fd), (fd), fd)
BW_FSYNC_HOOK(fdatasync, (int fd), (fd), fd)
BW_FSYNC_HOOK(syncfs, (int fd) noexcept, (fd), fd)
BW_FSYNC_HOOK(sync_file_range, (int fd, off64_t offset, off64_t count, unsigned int flags),
              (fd, offset, count, flags), fd)

namespace {
BW_SLOW_PATH int msync_slow(void* address, size_t length, int flags) {
  auto real_call = BW_REAL(msync);
  if (!real_call) return bw::missing_real_function();
  // MS_ASYNC only schedules writeback: it never waits, so it is not timed.
  if (__builtin_expect(!bw::hook_should_time(), 1) || !(flags & MS_SYNC)) {
    return real_call(address, length, flags);
  }
  return time_fsync("msync", -1, reinterpret_cast<uint64_t>(address),
                    [&] { return real_call(address, length, flags); });
}
}  // namespace

BW_EXPORT int msync(void* address, size_t length, int flags) {
  BW_PASS_THROUGH_IF_NOT_WORKER(msync, (address, length, flags));
  return msync_slow(address, length, flags);
}

namespace {
BW_SLOW_PATH void sync_slow() {
  auto real_call = BW_REAL(sync);
  if (!real_call) return;
  if (__builtin_expect(!bw::hook_should_time(), 1)) return real_call();
  time_fsync("sync", -1, 0, [&] {
    real_call();
    return 0;
  });
}
}  // namespace

BW_EXPORT void sync() noexcept {
  BW_PASS_THROUGH_IF_NOT_WORKER(sync, ());
  return sync_slow();
}
