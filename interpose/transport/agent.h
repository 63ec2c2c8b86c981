// The agent: takes records from hooks and gets them out of the process (queue,
// sender thread, wire encoder, collector connection, symbolization, modules).
// Implemented in transport/: agent.cc, record_queue.cc, sender.cc, output_channel.cc,
// symbols.cc, wire_encoder.cc; the hook side calls only what is declared here.
#pragma once

#include "interpose/core/record.h"

namespace blockwatch::interpose {

// Hand a record to the sender. Hook path: async-signal-safe, allocates nothing,
// takes no lock, never blocks. Returns false and counts a drop when full.
bool agent_submit(const Record& record);

// Count a record that was not taken (reentrancy, signal context, ...).
// Async-signal-safe.
void agent_count_not_captured();

// Start the sender (once, from the library constructor, after config is read).
void agent_start();

// In the child after fork(): the parent's sender thread does not exist here.
// Restarts or disables the agent as documented in interpose/README.md.
void agent_after_fork_child();

// Flush what is queued, bounded in time, and say goodbye. Called at exit.
void agent_shutdown(const char* reason, int exit_status);

// exec() is next: flush and close the stream (bounded: 250 ms, 50 ms without
// progress), without stopping the agent. False when there was nothing to do.
bool agent_before_exec();

// The exec returned (failed): the process is still watched, on a new stream.
void agent_after_failed_exec();

// In a _Fork() child (no atfork handler ran): it stays unwatched; close the
// collector connection it inherited. Async-signal-safe.
void agent_forget_in_unwatched_child();

// A dlopen/dlclose happened: re-announce modules (cheap; the sender does the work).
void agent_modules_changed();

}  // namespace blockwatch::interpose
