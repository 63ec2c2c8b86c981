// Entry probes on x86-64: decide whether a function's first bytes can be moved
// to a trampoline (Zydis decodes them; nothing here decodes by hand), relocate
// them, build the trampoline, and write the 5-byte jump over the entry.
//
// Not hook-path code: runs in the library constructor, while the process has
// one thread (task_probes.cc checks), allocates, and changes page protections.
// What runs later, on every probed call, is the trampoline (probe_trampoline.S
// text, copied) and the hook it calls (probe_hook.cc).
#pragma once

#include <cstddef>
#include <cstdint>

namespace blockwatch::interpose {

// The bytes of a `jmp rel32`: what a probe writes over a function's entry.
inline constexpr size_t kProbeJumpBytes = 5;
// Relocated entry instructions take at most this many bytes (each at most 15,
// at most kProbeJumpBytes + 14 bytes of them are moved).
inline constexpr size_t kMaxRelocatedBytes = 64;

struct ProbePlan {
  size_t displaced_bytes = 0;  // whole instructions covering the jump, moved away
  uint8_t relocated[kMaxRelocatedBytes] = {};
  size_t relocated_size = 0;
};

// Plans moving the entry of the function at `function` (its bytes, `size` long,
// as mapped at `address`) to code placed at `new_address`. Refuses (returns a
// reason, a string literal) when the function cannot be fully decoded, is
// shorter than the jump, has a relative branch among its first instructions,
// has any branch landing inside the bytes the jump replaces, or has a
// rip-relative operand whose target is out of reach from `new_address`.
// nullptr: `plan` is filled. Pure: reads only the given bytes.
const char* plan_probe(const uint8_t* function, size_t size, uint64_t address, uint64_t new_address,
                       ProbePlan* plan);

// The trampoline for a probe: save the argument registers, call the hook with
// `probe_id`, restore them, run the relocated instructions, jump back to
// `address + plan.displaced_bytes`. Written to `out` (which will execute at
// `out_address`, within +-2 GiB of `address`); returns the bytes written, 0 when
// `out_capacity` is too small or a jump is out of reach.
size_t build_trampoline(uint8_t* out, size_t out_capacity, uint64_t out_address, uint32_t probe_id,
                        uint64_t address, const ProbePlan& plan);

// Bytes a trampoline takes at most (build_trampoline's `out_capacity`).
size_t trampoline_max_bytes();

}  // namespace blockwatch::interpose
