// Starting one of blockwatch's own threads (the sender, the watchdog): detached, on a
// 1 MiB stack of its own (not the process default, which a program may shrink),
// with every signal blocked from its first instruction. The caller's signal mask
// is never touched. Not hook-path code: pthread_create allocates.
#pragma once

namespace blockwatch::interpose {

// True when the thread started. `main` should mark itself internal
// (thread_state.h) before anything else.
bool start_internal_thread(void* (*main)(void*), void* arg);

}  // namespace blockwatch::interpose
