// Process lifecycle shared by library.cc (constructor, atfork, atexit) and the
// process shims in shims/thread.cc (exec*, exit, _exit). Module-only.
#pragma once

namespace blockwatch::interpose {

// False in a vfork() child (it shares the parent's memory: it must not touch the
// agent) and before the library is initialised. Async-signal-safe.
bool is_original_process();

// Flush and say goodbye, once per process (later calls do nothing).
void shutdown_agent_once(const char* reason, int exit_status);

// exit() was called with this status: the atexit handler reports it.
void note_exit_status(int status);

}  // namespace blockwatch::interpose
