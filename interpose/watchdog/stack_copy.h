// What a stack sample is before it is unwound: the sampled thread's user
// registers and a copy of the top of its stack, taken at one instant (by the
// kernel for a perf_event sample, by the fallback signal handler otherwise). The
// watchdog unwinds the copy with DWARF (stack_unwinder.h) on its own thread, so
// nothing heavier than a memcpy ever runs on the sampled thread.
//
// Plain data: no allocation, no lock; filling one is async-signal-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace blockwatch::interpose {

// How much of the stack above the sampled sp is copied. Deep enough for the
// frames between a stalled task's code and the sampled pc (a perf sample's
// record must stay below 64 KiB: its size field is 16 bits).
inline constexpr size_t kStackCopyBytes = 32 * 1024;

// Registers in DWARF / libunwind x86-64 numbering (UNW_X86_64_RAX = 0 ...
// UNW_X86_64_R15 = 15, then RIP): what a DWARF unwinder may need to recover
// the caller's frame.
inline constexpr int kStackCopyRegs = 17;
inline constexpr int kRegRbp = 6;
inline constexpr int kRegRsp = 7;
inline constexpr int kRegRip = 16;

struct StackCopy {
  uint64_t regs[kStackCopyRegs] = {};
  uintptr_t stack_start = 0;  // the sampled sp: stack[0] is the byte at this address
  size_t stack_bytes = 0;     // valid bytes in `stack`
  alignas(16) unsigned char stack[kStackCopyBytes] = {};
};

}  // namespace blockwatch::interpose
