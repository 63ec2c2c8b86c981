// Side stacks: where a hook does its heavy work (unwinding with libunwind,
// building a Record, fstat) so that a reported call costs the caller's thread
// only a few hundred bytes of its own stack. A worker may run with a small stack
// and little of it left (a 64 KiB coroutine or pool stack): the ~7 KB, ~17 KB on
// a thread's first unwind, that this work takes must not come out of it.
//
// One side stack per thread slot (thread_state.h), mapped at the slot's first
// use and kept for the slot's later owners: no thread ever waits for another's
// (a shared pool ran out when thousands of threads made their first, slow,
// unwind at once). The switch is a small assembly trampoline whose CFI says
// "my caller's frame is at the saved frame pointer": libunwind, gdb and perf
// unwind from the side stack straight back into the caller's stack, so
// unw_backtrace run on it still sees the program's frames.
//
// Hook-path code: async-signal-safe (mmap, rt_sigprocmask: syscalls), no
// allocation from the heap, no lock, never waits.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace blockwatch::interpose {

// 4x the deepest use measured (a thread's first unwind: README), plus a guard
// page below it.
inline constexpr size_t kSideStackBytes = 32 * 1024;

struct SideStack {
  std::atomic<unsigned char*> low{nullptr};  // lowest usable byte; null: not mapped yet
  std::atomic<uint8_t> busy{0};              // 1 while a call runs on it
};

// Runs fn(arg) on `stack` (mapping it on first use) with every signal blocked
// (so no handler of the program ever runs on our stack, and none interrupts the
// work), and returns true. False, without running fn, when the stack is busy
// (never on the one thread that owns it), could not be mapped, or the platform
// has no trampoline (not x86-64). Async-signal-safe.
bool run_on_side_stack(SideStack& stack, void (*fn)(void*), void* arg);

// How deep `stack` was ever used, in bytes (scans for the first touched byte:
// not for the hook path). For tests and README numbers.
size_t side_stack_used_bytes(const SideStack& stack);

}  // namespace blockwatch::interpose
