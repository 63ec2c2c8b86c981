// Process lifecycle shared by library.cc (constructor, atfork, on_exit) and the
// process shims in shims/thread.cc (exec*, quick_exit, _exit, _Fork) and
// shims/futex.cc (syscall(SYS_exit_group / SYS_exit)). Module-only.
// is_original_process() is core/process_scope.h's.
#pragma once

#include "interpose/core/process_scope.h"

namespace blockwatch::interpose {

// Flush and say goodbye, once per process (later calls do nothing).
void shutdown_agent_once(const char* reason, int exit_status);

// quick_exit() was called with this status: the at_quick_exit handler reports it.
void note_quick_exit_status(int status);

}  // namespace blockwatch::interpose
