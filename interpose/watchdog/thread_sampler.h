// How the watchdog gets one thread's stack without changing what the program
// sees: the one place that chooses between the samplers.
//
//  1. A thread sleeping inside a system call (/proc/self/task/TID/syscall) is
//     never sampled: it is reported as blocked in that call (the blocking hook's
//     own record has the stack, if the call is hooked).
//  2. perf_event_open (perf_sampler.h): no signal at all. The default wherever
//     the kernel allows it.
//  3. Otherwise the CPU-timer signal (stall_sampler.h), only for watched
//     workers whose alternate stack is ready and that are outside every
//     blocking hook, on kernels where that signal cannot interrupt a syscall.
//  4. Otherwise no stack.
// The copy is unwound with DWARF (stack_unwinder.h) on the watchdog thread.
//
// BLOCKWATCH_SAMPLER=auto (default) | perf | signal | off forces a choice.
// Watchdog thread only (thread_sampler_init: the constructor). No malloc.
#pragma once

#include <cstdint>

namespace blockwatch::interpose {

struct ThreadSlot;

enum class SamplerMode : uint8_t { kPerf, kSignal, kOff };

// Picks the mode (BLOCKWATCH_SAMPLER and what the kernel allows) and, for the
// signal fallback, asks thread_state to prepare each new worker's alternate
// stack. Call before threads are classified (library constructor).
void thread_sampler_init(int signal);
SamplerMode thread_sampler_mode();

// On the watchdog thread as it starts: with stall detection on and perf in
// use, a short-lived thread of ours keeps the kernel's perf hooks warm
// (perf_sampler_keep_warm), so stall samples do not wait for it.
void thread_sampler_watchdog_started(bool stalls_on);
// "perf", "signal" or "off".
const char* thread_sampler_mode_name();

// Sample `tid`. `slot`/`slot_index` are its thread slot, or null/-1 for a thread
// that never met a hook (hang dumps list every thread). Fills `frames` and
// returns their count (0: no stack). When the thread sleeps in a system call,
// `*syscall_name` is set to it (a static string) and nothing is sampled.
int sample_thread_stack(int32_t tid, const ThreadSlot* slot, int slot_index, uintptr_t* frames,
                        int max_frames, int64_t timeout_ns, const char** syscall_name);

// In a fork() child.
void thread_sampler_after_fork_child();

}  // namespace blockwatch::interpose
