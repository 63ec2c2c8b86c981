// Starts blockwatch's own threads (see internal_thread.h).
#include "interpose/base/internal_thread.h"

#include <pthread.h>
#include <signal.h>

namespace blockwatch::interpose {
namespace {

constexpr size_t kInternalThreadStackBytes = 1024 * 1024;

}  // namespace

bool start_internal_thread(void* (*main)(void*), void* arg) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  // Our own size, not the process default a program may have shrunk
  // (pthread_setattr_default_np): demangling a long name takes ~130 KiB.
  pthread_attr_setstacksize(&attr, kInternalThreadStackBytes);
  sigset_t all_signals;
  sigfillset(&all_signals);
  pthread_attr_setsigmask_np(&attr, &all_signals);
  pthread_t thread;
  const int error = pthread_create(&thread, &attr, main, arg);
  pthread_attr_destroy(&attr);
  return error == 0;
}

}  // namespace blockwatch::interpose
