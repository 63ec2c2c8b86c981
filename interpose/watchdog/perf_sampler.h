// Stack samples without any signal: perf_event_open on one thread of this
// process (software task-clock event, user registers and the top of the user
// stack in each sample, excluding kernel mode), a small mmap ring the watchdog
// reads itself. The kernel takes the sample from its timer interrupt while the
// thread runs in user space; a thread blocked or working inside a system call
// produces no sample, and nothing is ever delivered to it: the program cannot
// see the difference (no EINTR, no short transfer, no stack use).
//
// Opened lazily, only for a thread the watchdog wants a stack of (a stall
// sample, a hang dump), and closed right after: a program that never stalls
// never has an event open. Kernels that refuse (perf_event_paranoid 3, a
// seccomp profile) make perf_sampler_available() false; the watchdog then uses
// the signal fallback (stall_sampler.h).
//
// Watchdog thread only. No allocation (mmap for the ring), no lock.
#pragma once

#include <cstdint>

#include "interpose/watchdog/stack_copy.h"

namespace blockwatch::interpose {

// Whether this kernel lets us sample our own threads. Tried once (an event on
// the calling thread, opened and closed); true until an open fails for lack of
// permission. BLOCKWATCH_SAMPLER=signal (read by the caller) skips perf.
bool perf_sampler_available();

// Keeps one counting event (disabled, no ring) open on the calling thread for
// the process's life. The kernel switches its scheduler hooks for perf on when
// the first task event of the machine opens (static key, synchronize_rcu: 5-25
// ms here, more under load) and off 1 s after the last closes; without this,
// most stall samples would pay that, and a short stall could end before its
// sample came. Cost: those hooks stay on (a few ns per context switch) while
// the process lives. Once, from one thread of ours (the event outlives it),
// when stall detection is on; after perf_sampler_available() was decided.
void perf_sampler_keep_warm();

enum class PerfSampleResult {
  kSampled,      // `out` holds the registers and stack copy
  kNoSample,     // the thread did not run in user space before the deadline
  kUnavailable,  // perf refused (permission) or the thread is gone
};

// Samples thread `tid` once: enables an event on it and waits at most
// `timeout_ns` for the first user-space sample. `still_worth_waiting` is asked
// every millisecond or so (null: always); false ends the wait early (e.g. the
// thread went to sleep in a system call).
PerfSampleResult perf_sample_thread(int32_t tid, StackCopy* out, int64_t timeout_ns,
                                    bool (*still_worth_waiting)(int32_t tid) = nullptr);

}  // namespace blockwatch::interpose
