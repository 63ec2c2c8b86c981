// Shims for thread naming and process lifecycle.
//  - pthread_setname_np, prctl(PR_SET_NAME): a renamed thread is reclassified
//    against BLOCKWATCH_WORKERS.
//  - pthread_create: a thread created by a worker busy with a task or a loop
//    turn starts through a trampoline that notes the name it inherited, which
//    name rules then ignore (thread_state.h). Everyone else: a tail call.
//  - exec*: the image is about to be replaced without running exit handlers, so
//    the agent flushes and says Goodbye("exec") first, bounded and short,
//    without stopping: when the exec fails, the process goes on watched, on a
//    new stream. Not in a vfork child, which shares the parent's memory.
//  - quick_exit: notes the status for the at_quick_exit handler (library.cc).
//  - _exit / _Exit: run no exit handlers, so they flush themselves.
//  - _Fork (glibc 2.34+): runs no atfork handler; its child is left unwatched
//    (see below).
// fork needs no shim (pthread_atfork in library.cc); vfork, posix_spawn and
// system run no atfork handlers and exec straight away in the child: the new
// image loads the preload again from the environment (unless
// BLOCKWATCH_FOLLOW_CHILDREN=0 removed it). exit() needs none: its status
// reaches the on_exit handler.
//
// Not timing shims: none of these is reported. Naming allocates (regexec);
// the exec/exit paths may block for the bounded flush.
#include <cstdarg>
#include <cstdlib>

#include "interpose/shims/hook_path.h"
#include "interpose/shims/lifecycle.h"
#include "interpose/transport/agent.h"

namespace bw = blockwatch::interpose;

BW_EXPORT int pthread_setname_np(pthread_t thread, const char* name) noexcept {
  auto real_call = BW_REAL(pthread_setname_np);
  if (!real_call) return ENOSYS;
  const int rc = real_call(thread, name);
  if (rc == 0 && bw::tls_thread.guard_depth == 0) {
    const int saved_errno = errno;
    bw::thread_renamed(thread, name);
    errno = saved_errno;
  }
  return rc;
}

BW_EXPORT int prctl(int option, ...) noexcept {
  va_list args;
  va_start(args, option);
  const unsigned long a2 = va_arg(args, unsigned long);
  const unsigned long a3 = va_arg(args, unsigned long);
  const unsigned long a4 = va_arg(args, unsigned long);
  const unsigned long a5 = va_arg(args, unsigned long);
  va_end(args);
  auto real_call = BW_REAL(prctl);
  if (!real_call) return bw::missing_real_function();
  const int rc = real_call(option, a2, a3, a4, a5);
  if (rc == 0 && option == PR_SET_NAME && bw::tls_thread.guard_depth == 0) {
    const int saved_errno = errno;
    bw::thread_renamed(pthread_self(), reinterpret_cast<const char*>(a2));
    errno = saved_errno;
  }
  return rc;
}

namespace {
struct SpawnedInWork {
  void* (*start)(void*);
  void* arg;
};

void* start_spawned_in_work(void* raw) {
  const SpawnedInWork spawned = *static_cast<SpawnedInWork*>(raw);
  free(raw);
  bw::mark_spawned_in_work();
  return spawned.start(spawned.arg);
}
}  // namespace

// Not the hook path (pthread_create allocates itself): one malloc for a helper.
BW_EXPORT int pthread_create(pthread_t* thread, const pthread_attr_t* attr,
                             void* (*start)(void*), void* arg) noexcept {
  auto real_call = BW_REAL(pthread_create);
  if (!real_call) return ENOSYS;
  if (__builtin_expect(!bw::creating_thread_in_work(), 1)) {
    return real_call(thread, attr, start, arg);
  }
  auto* spawned = static_cast<SpawnedInWork*>(malloc(sizeof(SpawnedInWork)));
  if (!spawned) return real_call(thread, attr, start, arg);
  *spawned = {start, arg};
  const int rc = real_call(thread, attr, start_spawned_in_work, spawned);
  if (rc != 0) free(spawned);
  return rc;
}

namespace {
// True when the agent flushed for this exec and must hear if it failed.
bool before_exec() {
  if (!bw::is_original_process()) return false;
  const int saved_errno = errno;
  const bool flushed = bw::agent_before_exec();
  errno = saved_errno;
  return flushed;
}

void after_failed_exec() {
  const int saved_errno = errno;
  bw::agent_after_failed_exec();
  errno = saved_errno;
}

// execl-style argument lists, copied to an argv on the stack (no malloc: this
// may run in a vfork child).
constexpr int kMaxExecArgs = 4096;
int collect_exec_args(const char* arg0, va_list args, const char** argv) {
  int argc = 0;
  argv[argc++] = arg0;
  while (argv[argc - 1] != nullptr && argc < kMaxExecArgs) argv[argc++] = va_arg(args, const char*);
  if (argv[argc - 1] != nullptr) return -1;
  return argc;
}
}  // namespace

#define BW_EXEC_HOOK(name, params, args)                \
  BW_EXPORT int name params noexcept {                  \
    auto real_call = BW_REAL(name);                     \
    if (!real_call) return bw::missing_real_function(); \
    const bool flushed = before_exec();                 \
    const int rc = real_call args;                      \
    if (flushed) after_failed_exec();                   \
    return rc;                                          \
  }

BW_EXEC_HOOK(execve, (const char* path, char* const argv[], char* const envp[]), (path, argv, envp))
BW_EXEC_HOOK(execv, (const char* path, char* const argv[]), (path, argv))
BW_EXEC_HOOK(execvp, (const char* file, char* const argv[]), (file, argv))
BW_EXEC_HOOK(execvpe, (const char* file, char* const argv[], char* const envp[]),
             (file, argv, envp))
BW_EXEC_HOOK(fexecve, (int fd, char* const argv[], char* const envp[]), (fd, argv, envp))
BW_EXEC_HOOK(execveat,
             (int dirfd, const char* path, char* const argv[], char* const envp[], int flags),
             (dirfd, path, argv, envp, flags))

BW_EXPORT int execl(const char* path, const char* arg0, ...) noexcept {
  const char* argv[kMaxExecArgs];
  va_list args;
  va_start(args, arg0);
  const int argc = collect_exec_args(arg0, args, argv);
  va_end(args);
  if (argc < 0) return errno = E2BIG, -1;
  return execv(path, const_cast<char* const*>(argv));
}

BW_EXPORT int execlp(const char* file, const char* arg0, ...) noexcept {
  const char* argv[kMaxExecArgs];
  va_list args;
  va_start(args, arg0);
  const int argc = collect_exec_args(arg0, args, argv);
  va_end(args);
  if (argc < 0) return errno = E2BIG, -1;
  return execvp(file, const_cast<char* const*>(argv));
}

BW_EXPORT int execle(const char* path, const char* arg0, ...) noexcept {
  const char* argv[kMaxExecArgs];
  va_list args;
  va_start(args, arg0);
  const int argc = collect_exec_args(arg0, args, argv);
  char* const* envp = argc < 0 ? nullptr : va_arg(args, char* const*);
  va_end(args);
  if (argc < 0) return errno = E2BIG, -1;
  return execve(path, const_cast<char* const*>(argv), envp);
}

BW_EXPORT void quick_exit(int status) noexcept {
  bw::note_quick_exit_status(status);
  auto real_call = BW_REAL(quick_exit);
  if (real_call) real_call(status);
  bw::g_real_symbols._exit(status);
  __builtin_unreachable();
}

// _Fork's child runs no atfork handler and may be made in a signal handler, so
// nothing here may start threads: the child is not the watched process
// (is_original_process() is false there), its hooks pass through and its
// records are dropped; only the collector connection it inherited is closed, so
// the parent's stream ends when the parent's does. Async-signal-safe.
BW_EXPORT pid_t _Fork(void) noexcept {
  auto real_call = BW_REAL(_Fork);
  if (!real_call) return bw::missing_real_function();
  const pid_t pid = real_call();
  if (pid == 0) {
    const int saved_errno = errno;
    bw::agent_forget_in_unwatched_child();
    errno = saved_errno;
  }
  return pid;
}

#define BW_EXIT_HOOK(name)                     \
  BW_EXPORT void name(int status) {            \
    if (bw::is_original_process()) {           \
      bw::shutdown_agent_once("exit", status); \
    }                                          \
    auto real_call = BW_REAL(name);            \
    if (real_call) real_call(status);          \
    bw::g_real_symbols._exit(status);          \
    __builtin_unreachable();                   \
  }

BW_EXIT_HOOK(_exit)
BW_EXIT_HOOK(_Exit)
