// Starts blockwatch's own threads (see internal_thread.h).
#include "interpose/base/internal_thread.h"

#include <pthread.h>
#include <signal.h>

namespace blockwatch::interpose {

bool start_internal_thread(void* (*main)(void*), void* arg) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  sigset_t all_signals;
  sigfillset(&all_signals);
  pthread_attr_setsigmask_np(&attr, &all_signals);
  pthread_t thread;
  const int error = pthread_create(&thread, &attr, main, arg);
  pthread_attr_destroy(&attr);
  return error == 0;
}

}  // namespace blockwatch::interpose
