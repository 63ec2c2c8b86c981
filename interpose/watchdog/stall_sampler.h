// The fallback stack sampler, for kernels that refuse perf_event_open
// (perf_sampler.h): a one-shot timer on the stalled thread's own CPU-time clock
// delivers a realtime signal to that thread; the handler, on an alternate signal
// stack, copies the interrupted registers and the top of the stack into one
// preallocated buffer (stack_copy.h) and the watchdog unwinds the copy with DWARF
// (stack_unwinder.h). The handler is async-signal-safe (see stall_sampler.cc).
//
// Why a CPU-time timer and not tgkill: on kernels whose CPU timers expire from
// task work (CONFIG_POSIX_CPU_TIMERS_TASK_WORK: x86-64 since Linux 5.11) the
// signal is generated only while the thread returns to user mode, after any
// system call has completed, so it can never make a read/write short or a
// sleep/poll/epoll_wait return EINTR. Elsewhere the fallback is off (stalls are
// reported without a stack). The timer is also only armed while the thread is
// outside every blocking hook.
//
// Only the watchdog thread calls these functions, except
// stall_sampler_prepare_thread (the worker itself, when it becomes a worker).
#pragma once

#include <cstdint>

#include "interpose/watchdog/stack_copy.h"

namespace blockwatch::interpose {

// Note the signal to use; the handler is installed lazily by the first
// sample, so a program that never stalls never sees it. Constructor or watchdog.
void stall_sampler_prepare(int signal);

// Install the sample handler for `signal` now (SA_SIGINFO|SA_RESTART|SA_ONSTACK).
// Never steals a signal: if the program already has a handler or ignores it,
// nothing is installed and false is returned (stalls are then reported without a
// stack). Watchdog thread or constructor, never a signal handler.
bool stall_sampler_install(int signal);

// True while the handler installed above is still the signal's disposition (the
// program may install its own later: then blockwatch stops arming timers).
bool stall_sampler_usable();

// Whether this kernel generates CPU-timer signals only on the way back to user
// mode (see above): the fallback is used only then.
bool stall_sampler_kernel_is_safe();

// On the calling thread, when it becomes a watched worker: make sure a sample
// signal would run on an alternate stack. A program's own sigaltstack is kept
// (and used); otherwise one of ours, mapped once per `index` (the thread's slot,
// reused by the slot's next owner) and never freed. Not hook-path hot code:
// mmap and sigaltstack, no malloc, no lock. Returns whether the thread is ready.
bool stall_sampler_prepare_thread(int index);

// The syscall a thread is in, read from /proc/self/task/TID/syscall. `in_syscall`
// is true when the thread sleeps inside one (then `name` is a static string such
// as "write", "nanosleep", or "syscall" when unnamed); false when it runs (or
// waits for a CPU) or is gone.
struct ThreadSyscall {
  bool in_syscall = false;
  const char* name = nullptr;
};
ThreadSyscall read_thread_syscall(int32_t tid);
// The same from the file's text (unit tests).
ThreadSyscall parse_thread_syscall(const char* text);

// Sample thread `tid` (prepared at `index`) into `out`. 1: sampled; 0: no sample
// before `timeout_ns` (the thread did not run, or blocked); -1: not asked (no
// usable handler, kernel not safe, no alternate stack, or the thread blocks the
// signal: a pending signal could reach the program through sigwaitinfo or a
// signalfd). A handler that runs after the timeout writes nothing.
int stall_sampler_sample(int32_t tid, int index, StackCopy* out, int64_t timeout_ns);

// Whether a /proc/self/task/TID/status text says `signal` is blocked (SigBlk).
// True when it cannot tell (the safe answer: do not send). Unit tests.
bool parse_signal_blocked(const char* status_text, int signal);

// The sampler state in a fork() child: no request can be in flight there.
void stall_sampler_after_fork_child();

}  // namespace blockwatch::interpose
