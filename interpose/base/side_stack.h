// Side stacks: where a hook does its heavy work (unwinding with libunwind,
// building a Record, fstat) so that a reported call costs the caller's thread
// only a few hundred bytes of its own stack. A worker may run with a small stack
// and little of it left (a 64 KiB coroutine or pool stack): the ~7 KB, ~17 KB on
// a thread's first unwind, that this work takes must not come out of it.
//
// A fixed pool of stacks, mapped once with a guard page below each, claimed with
// one atomic bit per stack. The switch is a small assembly trampoline whose CFI
// says "my caller's frame is at the saved frame pointer": libunwind, gdb and
// perf unwind from the side stack straight back into the caller's stack, so
// unw_backtrace run on it still sees the program's frames.
//
// Hook-path code: async-signal-safe, no allocation, no lock, never waits.
#pragma once

#include <cstddef>

namespace blockwatch::interpose {

inline constexpr int kSideStacks = 64;                   // one claim bit each
inline constexpr size_t kSideStackBytes = 64 * 1024;     // measured need: see README

// Maps the pool (mmap, mprotect). Library constructor (and a unit test); safe to
// call again. Without it (or if mmap failed) run_on_side_stack returns false.
void side_stack_init();

// Runs fn(arg) on a free side stack with every signal blocked (so no handler of
// the program ever runs on our stack, and none interrupts the work), and returns
// true; false, without running fn, when every side stack is in use or the pool
// is missing. Async-signal-safe; reentrant (a nested call claims another stack).
bool run_on_side_stack(void (*fn)(void*), void* arg);

// Deepest use of any side stack so far, in bytes (scans for the first touched
// byte below each stack's top: not for the hook path). For tests and README
// numbers.
size_t side_stack_high_water_bytes();

}  // namespace blockwatch::interpose
