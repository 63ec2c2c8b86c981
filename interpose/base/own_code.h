// Which program counters are blockwatch's own: the executable segments of the
// object this code is linked into (libblockwatch.so; in a unit test, the test
// binary). Stacks drop their innermost own frames so they start at the caller.
#pragma once

#include <cstdint>

namespace blockwatch::interpose {

// Finds the ranges (dl_iterate_phdr: takes the loader lock). Library constructor
// and fork child; again is harmless.
void own_code_init();

// True when `pc` lies in one of those ranges. Lock-free, no allocation,
// async-signal-safe.
bool is_own_pc(uintptr_t pc);

}  // namespace blockwatch::interpose
