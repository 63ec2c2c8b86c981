// The exported bw_* functions of blockwatch.h that belong to the agent:
// bw_set_event_callback and bw_flush. This file is named hooks_* only so the build
// puts it in the MODULE itself: symbols of the static core are hidden by
// --exclude-libs, and these must be exported. Not hook-path code: both may wait
// (bounded) and neither is called from a hook.
#define BW_WEAK
// With BW_WEAK empty, the header's inline "is the library there?" checks compare
// strong declarations against null; they are for the program side, not for us.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Waddress"
#include "blockwatch/blockwatch.h"
#pragma GCC diagnostic pop
#include "interpose/sender.h"

extern "C" __attribute__((visibility("default"))) int bw_set_event_callback(
    bw_event_callback callback, void* arg) {
  return blockwatch::interpose::sender_set_event_callback(callback, arg);
}

// Preserves errno (the wait uses a raw futex syscall).
extern "C" __attribute__((visibility("default"))) int bw_flush(int timeout_ms) {
  return blockwatch::interpose::sender_flush(timeout_ms);
}
