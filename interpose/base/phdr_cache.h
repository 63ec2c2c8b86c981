// A copy of the loaded modules as dl_iterate_phdr reports them, for our own
// stack captures: libunwind looks up unwind tables through dl_iterate_phdr,
// which takes the loader's lock, and a capture must never wait for that lock.
// A reported call made in a signal handler may have interrupted its own thread
// inside pthread_mutex_lock/unlock of that very lock, in the few instructions
// where the lock word is taken but the owner not yet written (or cleared but
// the word not yet released): glibc's recursive lock then waits for itself
// forever (seen: 3 of 15 runs of tests/preload's reported_in_handler under
// load). A signal handler that interrupted malloc while another thread, inside
// dl_iterate_phdr, waits for malloc deadlocks the same way (libunwind issue 16,
// gperftools 1188, DataDog's profiler: the same fix).
//
// So the library exports dl_iterate_phdr (shims/loader.cc): on a thread inside
// a capture (a PhdrCacheScope) it walks this copy, elsewhere it is glibc's. The copy holds each
// module's program headers and name in our own memory, so a module unloaded since costs a frame,
// never a fault: libunwind reads a module's tables only when a pc falls inside its PT_LOAD
// segments. It is rebuilt by the library constructor and by the sender when the set of modules
// changed (at most one idle wait, 50 ms, late): a frame in a library loaded after the last rebuild
// ends that stack early.
//
// Two buffers: the writer fills the one no reader holds and publishes it; a
// reader pins the current one with a count. No lock, no allocation.
#pragma once

#include <link.h>

namespace blockwatch::interpose {

// Rebuilds the copy from glibc's dl_iterate_phdr. Our own threads and the
// library constructor only: takes the loader's lock, inside a LoaderSection
// (loader_gate.h). Allocates nothing; does nothing if a rebuild is already
// running or the buffer it would fill is pinned by a reader: returns whether
// it rebuilt.
bool phdr_cache_refresh();

// dl_iterate_phdr over the copy: calls `callback` for each module until it
// returns non-zero, and stores that value in `result` (0 after the last).
// False, calling nothing, when no copy was ever built. Async-signal-safe: no
// lock, no allocation, no syscall.
bool phdr_cache_iterate(int (*callback)(dl_phdr_info*, size_t, void*), void* data, int* result);

// In a fork child (atfork child handler): forgets the pins and the rebuild of
// threads that do not exist there.
void phdr_cache_after_fork_child();

// True on a thread between PhdrCacheScope's construction and destruction: its
// dl_iterate_phdr calls are served from the copy.
bool phdr_cache_in_scope();

// RAII, around an unwind: dl_iterate_phdr on this thread walks the copy.
// Nests. Async-signal-safe (a TLS counter).
class PhdrCacheScope {
 public:
  PhdrCacheScope();
  ~PhdrCacheScope();
  PhdrCacheScope(const PhdrCacheScope&) = delete;
  PhdrCacheScope& operator=(const PhdrCacheScope&) = delete;
};

}  // namespace blockwatch::interpose
