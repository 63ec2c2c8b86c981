// The signal side of stall detection: the watchdog asks one thread at a time for
// its stack by sending it a realtime signal (tgkill); the handler, running on that
// thread while the stall is happening, walks the frame-pointer chain from the
// interrupted context into one shared sample buffer and publishes it with an
// atomic. The handler is async-signal-safe (see stall_sampler.cc).
//
// Only the watchdog thread calls the functions below (one request at a time); they
// are not hook-path code and may read /proc.
#pragma once

#include <cstdint>

namespace blockwatch::interpose {

// Note blockwatch's own code ranges (dl_iterate_phdr) and the signal to use. The
// handler itself is installed lazily by the first stall_sampler_sample(), so a
// program that never stalls never sees it, and one that takes the signal for
// itself before then keeps it. Constructor or watchdog thread.
void stall_sampler_prepare(int signal);

// Install the sample handler for `signal` now (SA_SIGINFO|SA_RESTART|SA_ONSTACK).
// Never steals a signal: if the program already has a handler or ignores it,
// nothing is installed and false is returned (stalls are then reported without a
// stack). Also notes blockwatch's own code ranges (dl_iterate_phdr): call from
// the watchdog thread or the constructor, never from a signal handler.
// `drop_own_frames` false keeps them (unit tests, where "own" is the test itself).
bool stall_sampler_install(int signal, bool drop_own_frames = true);

// True while the handler installed above is still the signal's disposition (the
// program may install its own later: then blockwatch stops sending the signal).
bool stall_sampler_usable();

// The syscall a thread is blocked in, read from /proc/self/task/TID/syscall.
// `interruptible` is false when a signal handler would make that syscall return
// EINTR to the program even with SA_RESTART (sleeps, poll/epoll/select, futex,
// sigwait, SysV IPC...): such threads are never signalled (invariant 1).
// `name` is a static string ("nanosleep", "futex", ...) or null when running or
// unknown.
struct ThreadSyscall {
  bool interruptible = true;
  const char* name = nullptr;
};
ThreadSyscall read_thread_syscall(int32_t tid);
// The same from the file's text (unit tests).
ThreadSyscall parse_thread_syscall(const char* text);

// Sample the stack of thread `tid` of this process: pcs innermost first,
// blockwatch's own frames removed. Waits at most `timeout_ns` for the handler.
// Returns the number of frames, or -1 when the thread did not answer (exited,
// handler replaced) or was not asked because it blocks the signal (a pending
// signal could reach the program through sigwaitinfo or signalfd); a handler
// that answers after the timeout writes nothing. Watchdog thread only (reads /proc/self/maps;
// allocates nothing).
int stall_sampler_sample(int32_t tid, uintptr_t* frames, int max_frames, int64_t timeout_ns);

// Whether a /proc/self/task/TID/status text says `signal` is blocked (SigBlk).
// True when it cannot tell (the safe answer: do not send). Unit tests.
bool parse_signal_blocked(const char* status_text, int signal);

// The sampler state in a fork() child: no request can be in flight there.
void stall_sampler_after_fork_child();

}  // namespace blockwatch::interpose
