// The exported bw_* functions of blockwatch.h that belong to the agent:
// bw_set_event_callback, bw_flush and bw_kind_name. Like every exported symbol
// they live in shims/, which is built into the MODULE itself: symbols of the
// static core are hidden by --exclude-libs, and these must be exported. Not
// hook-path code: the first two may wait (bounded) and none is called from a hook.
#define BW_WEAK
// With BW_WEAK empty, the header's inline "is the library there?" checks compare
// strong declarations against null; they are for the program side, not for us.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Waddress"
#include "blockwatch/blockwatch.h"
#pragma GCC diagnostic pop
#include "common/kinds.h"
#include "interpose/core/process_scope.h"
#include "interpose/transport/sender.h"

// The public header's BW_KIND_* must be the numbers of common/kinds.h.
#define BLOCKWATCH_PUBLIC_KIND_MATCHES(name, number, text, wire_suffix)               \
  static_assert(BW_KIND_##wire_suffix == number && blockwatch::kinds::name == number, \
                "blockwatch.h and common/kinds.h disagree on " text);
BLOCKWATCH_KIND_LIST(BLOCKWATCH_PUBLIC_KIND_MATCHES)
#undef BLOCKWATCH_PUBLIC_KIND_MATCHES

extern "C" __attribute__((visibility("default"))) int bw_set_event_callback(
    bw_event_callback callback, void* arg) {
  return blockwatch::interpose::sender_set_event_callback(callback, arg);
}

// Preserves errno (the wait uses a raw futex syscall). -1 at once where nothing
// is sent: a dormant process, a vfork or _Fork child (the sender it would wait
// for is its parent's, or does not exist).
extern "C" __attribute__((visibility("default"))) int bw_flush(int timeout_ms) {
  if (!blockwatch::interpose::is_original_process()) return -1;
  return blockwatch::interpose::sender_flush(timeout_ms);
}

// Async-signal-safe, no allocation: a pointer to a static string.
extern "C" __attribute__((visibility("default"))) const char* bw_kind_name(int kind) {
  return blockwatch::kinds::kind_name(kind);
}
