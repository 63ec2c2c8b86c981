// Libraries the injected library needs only in a watched process, loaded then
// and not at preload time: libunwind (stack capture). A dormant process
// (process_scope.h) and every program it execs pays only for libblockwatch.so
// itself, which links libstdc++ (and libiberty, the demangler of
// common/demangle.h) statically: loading libstdc++, libunwind and liblzma for
// `sleep` or `cat` doubled the cost of their fork+exec (see
// tests/bench/fork_exec_bench.c).
//
// Each function is reached through a weak reference: where the library is
// linked anyway (unit tests, a target that links libunwind), that definition
// is used; otherwise load_*() dlopens it. Not the hook path except
// unwind_backtrace(), a plain load and an indirect call.
#pragma once

namespace blockwatch::interpose {

using UnwBacktraceFn = int (*)(void** buffer, int size);

// Set by load_unwinder(); read on the hook path.
extern UnwBacktraceFn g_unw_backtrace;

// From the library constructor of a watched process (single-threaded, not a
// hook). False when libunwind cannot be loaded: stacks are then empty.
bool load_unwinder();

// libunwind's unw_backtrace, or 0 frames before load_unwinder() succeeded.
// Async-signal-safe as unw_backtrace is; no allocation of ours.
inline int unwind_backtrace(void** buffer, int size) {
  const UnwBacktraceFn backtrace = __atomic_load_n(&g_unw_backtrace, __ATOMIC_ACQUIRE);
  return backtrace ? backtrace(buffer, size) : 0;
}

}  // namespace blockwatch::interpose
