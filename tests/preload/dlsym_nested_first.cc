// The library side of the nested-dlsym scenario (see dlsym_nested.h): its
// constructor leaves a dlsym error pending, arms the program's free(), and makes
// the first hooked call of the process, during which blockwatch resolves its
// real symbols. The calls the program's free() makes meanwhile are recorded here.
#include "tests/preload/dlsym_nested.h"

#include <dlfcn.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

namespace {
DlsymNestedOutcome g_outcome = {};
bool g_armed = false;
bool g_in_nested_calls = false;
int g_pipe_fds[2] = {-1, -1};
pthread_mutex_t g_self_held = PTHREAD_MUTEX_INITIALIZER;

void make_nested_hooked_calls() {
  errno = 0;
  g_outcome.nested_write_rc = write(g_pipe_fds[1], "n", 1);
  g_outcome.nested_write_errno = errno;
  char byte = 0;
  g_outcome.nested_read_rc = read(g_pipe_fds[0], &byte, 1) == 1 && byte == 'n' ? 1 : -1;
  // Held by this very thread (error-checking type): the real call answers
  // EDEADLK at once; a stand-in that waited would hang, one that guessed would
  // say something else.
  const timespec past_deadline = {0, 0};
  g_outcome.nested_timedlock_rc = pthread_mutex_timedlock(&g_self_held, &past_deadline);
  errno = 0;
  g_outcome.nested_usleep_rc = usleep(1);
  g_outcome.nested_usleep_errno = errno;
  g_outcome.nested_getpid_rc = syscall(SYS_getpid);
}

__attribute__((constructor)) void resolve_with_a_dlerror_pending() {
  pthread_mutexattr_t attributes;
  pthread_mutexattr_init(&attributes);
  pthread_mutexattr_settype(&attributes, PTHREAD_MUTEX_ERRORCHECK);
  pthread_mutex_init(&g_self_held, &attributes);
  pthread_mutex_lock(&g_self_held);
  if (pipe(g_pipe_fds) != 0) return;
  // Fails, and dlerror() is not called: the error object stays allocated.
  if (dlsym(RTLD_DEFAULT, "bw_dlsym_nested_no_such_symbol") != nullptr) return;
  g_armed = true;
  g_outcome.outer_write_rc = write(g_pipe_fds[1], "o", 1);
  g_armed = false;
  char byte = 0;
  if (read(g_pipe_fds[0], &byte, 1) != 1 || byte != 'o') g_outcome.outer_write_rc = -2;
  pthread_mutex_unlock(&g_self_held);
}
}  // namespace

extern "C" DlsymNestedOutcome* dlsym_nested_outcome() { return &g_outcome; }

extern "C" void dlsym_nested_on_free() {
  if (!g_armed || g_in_nested_calls) return;
  g_in_nested_calls = true;
  ++g_outcome.nested_free_calls;
  make_nested_hooked_calls();
  g_in_nested_calls = false;
}
