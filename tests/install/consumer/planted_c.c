/* The C API through pkg-config: the main thread marks itself a worker and sleeps
   50 ms in planted_c_blocking_call, which the installed `blockwatch run` reports. */
#include <stdio.h>
#include <time.h>

#include "blockwatch/blockwatch.h"

__attribute__((noinline)) void planted_c_blocking_call(void) {
  const struct timespec delay = {0, 50 * 1000 * 1000};
  nanosleep(&delay, NULL);
}

int main(void) {
  blockwatch_worker_begin();
  planted_c_blocking_call();
  blockwatch_worker_end();
  puts(blockwatch_active() ? "planted_c: preloaded" : "planted_c: not preloaded");
  return 0;
}
