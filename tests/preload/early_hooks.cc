// Calls hooked functions from a constructor that runs before blockwatch's (see
// early_hooks.h). They must behave exactly like the real ones.
#include "tests/preload/early_hooks.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace {
int g_ran = 0;

__attribute__((constructor)) void call_hooks_before_blockwatch() {
  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  if (pthread_mutex_lock(&mutex) != 0 || pthread_mutex_unlock(&mutex) != 0) return;
  int word = 1;
  errno = 0;
  // Value mismatch: the kernel answers EAGAIN at once.
  if (syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0) != -1 ||
      errno != EAGAIN) {
    return;
  }
  if (usleep(100) != 0 || write(-1, "", 0) != -1 || errno != EBADF) return;
  g_ran = 1;
}
}  // namespace

extern "C" int early_hooks_ran() { return g_ran; }
