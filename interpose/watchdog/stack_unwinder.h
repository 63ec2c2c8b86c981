// DWARF unwinding of a stack sample (stack_copy.h), on the watchdog thread,
// with libunwind's remote API: the sampled registers start the walk, reads of
// the sampled stack come from the copy, and unwind tables (.eh_frame_hdr /
// .eh_frame) and code are read from the live modules of this process. So code
// built without frame pointers (libc, the vDSO, -fomit-frame-pointer programs,
// Rust) keeps its callers; a frame without unwind info falls back to libunwind's
// frame-pointer step.
//
// Watchdog thread only (one static address space, not reentrant). Takes the
// loader's lock (dl_iterate_phdr) at most once a second, or when code outside
// the known modules shows up, to see the current modules;
// allocates nothing after the first call (libunwind's address space, created
// once; its caches use mmap, not malloc).
#pragma once

#include <cstdint>

#include "interpose/watchdog/stack_copy.h"

namespace blockwatch::interpose {

// Unwinds `copy` into `frames` (innermost first): the sampled pc as pc + 1
// (stacks are symbolized at address - 1; see stall_sampler.h), then return
// addresses. blockwatch's own frames are left out when `drop_own_frames`.
// Returns the number of frames (0 when the copy holds no registers).
int unwind_stack_copy(const StackCopy& copy, uintptr_t* frames, int max_frames,
                      bool drop_own_frames = true);

}  // namespace blockwatch::interpose
