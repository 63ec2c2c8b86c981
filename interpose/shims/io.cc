// Shims for I/O that can block a worker: read/write and their positioned and
// vectored forms, socket receive/send, accept/connect. Reported kinds: `read`
// (data or a connection coming in) and `write` (data or a connection going out),
// with the fd; its type (file, socket, pipe, tty) is looked up only when a
// record is made.
//
// Hook path: one TLS read off-worker; on a worker the call is timed (there is no
// "try first" for I/O).
#include "interpose/shims/hook_path.h"

namespace bw = blockwatch::interpose;

// name, return type, kind, (params), (args): the only things that differ
// between the shims. `fd` must be the name of the descriptor parameter.
#define BW_IO_HOOK(ret, name, io_kind, params, args)                                  \
  namespace {                                                                         \
  BW_SLOW_PATH ret name##_slow params {                                               \
    auto real_call = BW_REAL(name);                                                   \
    if (!real_call) return bw::missing_real_function();                               \
    if (!bw::hook_should_time()) return real_call args;                               \
    const bw::BlockingCall call{                                                      \
        .kind = io_kind, .function = #name, .address = 0, .fd = fd, .holder_tid = 0}; \
    return bw::time_blocking_call(call, [&] { return real_call args; });              \
  }                                                                                   \
  }                                                                                   \
  BW_EXPORT ret name params {                                                         \
    BW_PASS_THROUGH_IF_NOT_WORKER(name, args);                                        \
    return name##_slow args;                                                          \
  }

BW_IO_HOOK(ssize_t, read, bw::kinds::kKindRead, (int fd, void* buf, size_t count), (fd, buf, count))
BW_IO_HOOK(ssize_t, write, bw::kinds::kKindWrite, (int fd, const void* buf, size_t count),
           (fd, buf, count))
BW_IO_HOOK(ssize_t, pread, bw::kinds::kKindRead, (int fd, void* buf, size_t count, off_t offset),
           (fd, buf, count, offset))
BW_IO_HOOK(ssize_t, pwrite, bw::kinds::kKindWrite,
           (int fd, const void* buf, size_t count, off_t offset), (fd, buf, count, offset))
BW_IO_HOOK(ssize_t, pread64, bw::kinds::kKindRead,
           (int fd, void* buf, size_t count, off64_t offset), (fd, buf, count, offset))
BW_IO_HOOK(ssize_t, pwrite64, bw::kinds::kKindWrite,
           (int fd, const void* buf, size_t count, off64_t offset), (fd, buf, count, offset))
BW_IO_HOOK(ssize_t, readv, bw::kinds::kKindRead, (int fd, const iovec* iov, int iovcnt),
           (fd, iov, iovcnt))
BW_IO_HOOK(ssize_t, writev, bw::kinds::kKindWrite, (int fd, const iovec* iov, int iovcnt),
           (fd, iov, iovcnt))
BW_IO_HOOK(ssize_t, preadv, bw::kinds::kKindRead,
           (int fd, const iovec* iov, int iovcnt, off_t offset), (fd, iov, iovcnt, offset))
BW_IO_HOOK(ssize_t, pwritev, bw::kinds::kKindWrite,
           (int fd, const iovec* iov, int iovcnt, off_t offset), (fd, iov, iovcnt, offset))
BW_IO_HOOK(ssize_t, preadv64, bw::kinds::kKindRead,
           (int fd, const iovec* iov, int iovcnt, off64_t offset), (fd, iov, iovcnt, offset))
BW_IO_HOOK(ssize_t, pwritev64, bw::kinds::kKindWrite,
           (int fd, const iovec* iov, int iovcnt, off64_t offset), (fd, iov, iovcnt, offset))
BW_IO_HOOK(ssize_t, recv, bw::kinds::kKindRead, (int fd, void* buf, size_t len, int flags),
           (fd, buf, len, flags))
BW_IO_HOOK(ssize_t, recvfrom, bw::kinds::kKindRead,
           (int fd, void* __restrict buf, size_t len, int flags, sockaddr* __restrict from,
            socklen_t* __restrict from_len),
           (fd, buf, len, flags, from, from_len))
BW_IO_HOOK(ssize_t, recvmsg, bw::kinds::kKindRead, (int fd, msghdr* message, int flags),
           (fd, message, flags))
BW_IO_HOOK(ssize_t, send, bw::kinds::kKindWrite, (int fd, const void* buf, size_t len, int flags),
           (fd, buf, len, flags))
BW_IO_HOOK(ssize_t, sendto, bw::kinds::kKindWrite,
           (int fd, const void* buf, size_t len, int flags, const sockaddr* to, socklen_t to_len),
           (fd, buf, len, flags, to, to_len))
BW_IO_HOOK(ssize_t, sendmsg, bw::kinds::kKindWrite, (int fd, const msghdr* message, int flags),
           (fd, message, flags))
BW_IO_HOOK(int, accept, bw::kinds::kKindRead,
           (int fd, sockaddr* __restrict address, socklen_t* __restrict address_len),
           (fd, address, address_len))
BW_IO_HOOK(int, accept4, bw::kinds::kKindRead,
           (int fd, sockaddr* __restrict address, socklen_t* __restrict address_len, int flags),
           (fd, address, address_len, flags))
BW_IO_HOOK(int, connect, bw::kinds::kKindWrite,
           (int fd, const sockaddr* address, socklen_t address_len), (fd, address, address_len))
