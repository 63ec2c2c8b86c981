/* The C API compiles as C and, without libblockwatch.so, every wrapper is a no-op
 * that reports "not active". Built and run by ctest (label unit); exits non-zero
 * on the first broken expectation. */
#include <stdio.h>

#include "blockwatch/blockwatch.h"

int main(void) {
  blockwatch_worker_begin();
  blockwatch_task_begin("c task");
  blockwatch_allow_begin("c reason");
  blockwatch_allow_end();
  blockwatch_task_end();
  blockwatch_worker_end();
  if (blockwatch_active() != 0) {
    fprintf(stderr, "blockwatch_active() != 0 without the preload\n");
    return 1;
  }
  if (blockwatch_set_event_callback(NULL, NULL) != -1) {
    fprintf(stderr, "set_event_callback should fail without the preload\n");
    return 1;
  }
  if (blockwatch_flush(10) != 0) {
    fprintf(stderr, "flush should succeed trivially without the preload\n");
    return 1;
  }
  return 0;
}
