// The real-function table: one X-macro list declares every function blockwatch
// interposes, as a typed pointer to the next definition (normally glibc's),
// resolved with dlsym(RTLD_NEXT) or, where glibc exports several versions,
// dlvsym. Hooks read it through BW_REAL(field) / BW_PASS_THROUGH_IF_NOT_WORKER
// (shims/hook_path.h); nothing else in the library names a real symbol by hand.
//
// Hook-path code. Reading a pointer is a plain load. Resolution runs once in the
// library constructor, and lazily when a hook runs before it: first straight from
// libc's symbol table, then dlsym (real_symbols.cc), so a hook that arrives
// *during* dlsym on the same thread (dlsym may call back into hooked functions)
// already finds libc's function. A pointer is null only where libc lacks the
// symbol; hooks then fail with ENOSYS.
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <threads.h>
#include <time.h>
#include <unistd.h>

namespace blockwatch::interpose {

// X(field, symbol, version): version nullptr = the default version (what a program
// linked today binds to). pthread_cond_{wait,timedwait} also exist as the
// pre-NPTL GLIBC_2.2.5 ABI; old binaries bind to those, so they get their own
// entries (and their own exported versioned shims in shims/cond.cc).
#define BW_FOR_EACH_REAL_SYMBOL(X)                                       \
  X(pthread_mutex_lock, pthread_mutex_lock, nullptr)                     \
  X(pthread_mutex_timedlock, pthread_mutex_timedlock, nullptr)           \
  X(pthread_mutex_clocklock, pthread_mutex_clocklock, nullptr)           \
  X(mtx_lock, mtx_lock, nullptr)                                         \
  X(mtx_timedlock, mtx_timedlock, nullptr)                               \
  X(pthread_rwlock_rdlock, pthread_rwlock_rdlock, nullptr)               \
  X(pthread_rwlock_wrlock, pthread_rwlock_wrlock, nullptr)               \
  X(pthread_rwlock_timedrdlock, pthread_rwlock_timedrdlock, nullptr)     \
  X(pthread_rwlock_timedwrlock, pthread_rwlock_timedwrlock, nullptr)     \
  X(pthread_rwlock_clockrdlock, pthread_rwlock_clockrdlock, nullptr)     \
  X(pthread_rwlock_clockwrlock, pthread_rwlock_clockwrlock, nullptr)     \
  X(pthread_cond_wait, pthread_cond_wait, "GLIBC_2.3.2")                 \
  X(pthread_cond_timedwait, pthread_cond_timedwait, "GLIBC_2.3.2")       \
  X(pthread_cond_wait_2_2_5, pthread_cond_wait, "GLIBC_2.2.5")           \
  X(pthread_cond_timedwait_2_2_5, pthread_cond_timedwait, "GLIBC_2.2.5") \
  X(pthread_cond_clockwait, pthread_cond_clockwait, nullptr)             \
  X(sem_wait, sem_wait, nullptr)                                         \
  X(sem_timedwait, sem_timedwait, nullptr)                               \
  X(sem_clockwait, sem_clockwait, nullptr)                               \
  X(syscall, syscall, nullptr)                                           \
  X(read, read, nullptr)                                                 \
  X(write, write, nullptr)                                               \
  X(pread, pread, nullptr)                                               \
  X(pwrite, pwrite, nullptr)                                             \
  X(pread64, pread64, nullptr)                                           \
  X(pwrite64, pwrite64, nullptr)                                         \
  X(readv, readv, nullptr)                                               \
  X(writev, writev, nullptr)                                             \
  X(preadv, preadv, nullptr)                                             \
  X(pwritev, pwritev, nullptr)                                           \
  X(preadv64, preadv64, nullptr)                                         \
  X(pwritev64, pwritev64, nullptr)                                       \
  X(recv, recv, nullptr)                                                 \
  X(recvfrom, recvfrom, nullptr)                                         \
  X(recvmsg, recvmsg, nullptr)                                           \
  X(send, send, nullptr)                                                 \
  X(sendto, sendto, nullptr)                                             \
  X(sendmsg, sendmsg, nullptr)                                           \
  X(accept, accept, nullptr)                                             \
  X(accept4, accept4, nullptr)                                           \
  X(connect, connect, nullptr)                                           \
  X(fsync, fsync, nullptr)                                               \
  X(fdatasync, fdatasync, nullptr)                                       \
  X(sync_file_range, sync_file_range, nullptr)                           \
  X(msync, msync, nullptr)                                               \
  X(syncfs, syncfs, nullptr)                                             \
  X(sync, sync, nullptr)                                                 \
  X(nanosleep, nanosleep, nullptr)                                       \
  X(clock_nanosleep, clock_nanosleep, nullptr)                           \
  X(usleep, usleep, nullptr)                                             \
  X(sleep, sleep, nullptr)                                               \
  X(poll, poll, nullptr)                                                 \
  X(ppoll, ppoll, nullptr)                                               \
  X(select, select, nullptr)                                             \
  X(pselect, pselect, nullptr)                                           \
  X(epoll_wait, epoll_wait, nullptr)                                     \
  X(epoll_pwait, epoll_pwait, nullptr)                                   \
  X(epoll_pwait2, epoll_pwait2, nullptr)                                 \
  X(pthread_create, pthread_create, nullptr)                             \
  X(pthread_setname_np, pthread_setname_np, nullptr)                     \
  X(prctl, prctl, nullptr)                                               \
  X(execve, execve, nullptr)                                             \
  X(execv, execv, nullptr)                                               \
  X(execvp, execvp, nullptr)                                             \
  X(execvpe, execvpe, nullptr)                                           \
  X(fexecve, fexecve, nullptr)                                           \
  X(execveat, execveat, nullptr)                                         \
  X(quick_exit, quick_exit, nullptr)                                     \
  X(_Fork, _Fork, nullptr)                                               \
  X(_Exit, _Exit, nullptr)                                               \
  X(_exit, _exit, nullptr)                                               \
  X(dl_iterate_phdr, dl_iterate_phdr, nullptr)

struct RealSymbols {
#define BW_DECLARE_REAL(field, symbol, version) decltype(&::symbol) field = nullptr;
  BW_FOR_EACH_REAL_SYMBOL(BW_DECLARE_REAL)
#undef BW_DECLARE_REAL
};

// Written only by resolve_real_symbols(); a pointer goes from null to its final
// value once, so a racing reader sees null (and resolves itself) or the value.
extern RealSymbols g_real_symbols;

// Resolve every entry not yet resolved. Returns false (doing nothing) when this
// thread is already inside a resolution: the caller must use its fallback.
// Not async-signal-safe (dlsym); locks nothing of ours.
bool resolve_real_symbols();

}  // namespace blockwatch::interpose
