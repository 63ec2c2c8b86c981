// plan_probe and build_trampoline on real machine code: prologues assembled by
// the compiler (top-level asm below), and a probed function of this test called
// through its trampoline with integer and floating-point arguments.
#include "interpose/probes/probe_patch.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cstring>

extern "C" {
extern const uint8_t frame_prologue[], frame_prologue_end[];
extern const uint8_t too_short[], too_short_end[];
extern const uint8_t loop_into_entry[], loop_into_entry_end[];
extern const uint8_t rip_relative[], rip_relative_end[];
extern const uint8_t branch_first[], branch_first_end[];
}

__asm__(R"(
    .pushsection .rodata.probe_patch_test, "a"
frame_prologue:
    push %rbp
    mov %rsp, %rbp
    push %r15
    xor %eax, %eax
    pop %r15
    pop %rbp
    ret
frame_prologue_end:
too_short:
    xor %eax, %eax
    ret
too_short_end:
loop_into_entry:
    xor %eax, %eax
2:  inc %eax
    cmp $10, %eax
    jl 2b
    ret
loop_into_entry_end:
rip_relative:
    lea 0x100(%rip), %rax
    ret
rip_relative_end:
branch_first:
    jmp 3f
    nop
    nop
    nop
    nop
3:  ret
branch_first_end:
    .popsection
)");

namespace blockwatch::interpose {
namespace {

size_t bytes(const uint8_t* begin, const uint8_t* end) { return static_cast<size_t>(end - begin); }

TEST(ProbePatch, MovesWholeInstructionsCoveringTheJump) {
  ProbePlan plan;
  const uint64_t address = 0x400000;
  ASSERT_EQ(plan_probe(frame_prologue, bytes(frame_prologue, frame_prologue_end), address,
                       address + 0x1000, &plan),
            nullptr);
  EXPECT_EQ(plan.displaced_bytes, 6u);  // push rbp (1) + mov rbp,rsp (3) + push r15 (2)
  EXPECT_EQ(plan.relocated_size, 6u);
  EXPECT_EQ(std::memcmp(plan.relocated, frame_prologue, 6), 0);
}

TEST(ProbePatch, RefusesWhatCannotBeMoved) {
  ProbePlan plan;
  EXPECT_NE(plan_probe(too_short, bytes(too_short, too_short_end), 0x400000, 0x401000, &plan),
            nullptr);
  EXPECT_NE(plan_probe(loop_into_entry, bytes(loop_into_entry, loop_into_entry_end), 0x400000,
                       0x401000, &plan),
            nullptr);
  EXPECT_NE(
      plan_probe(branch_first, bytes(branch_first, branch_first_end), 0x400000, 0x401000, &plan),
      nullptr);
  // A rip-relative target more than 2 GiB away from the trampoline.
  EXPECT_NE(plan_probe(rip_relative, bytes(rip_relative, rip_relative_end), 0x400000,
                       0x400000 + (uint64_t{3} << 30), &plan),
            nullptr);
}

TEST(ProbePatch, RipRelativeOperandKeepsItsTarget) {
  ProbePlan plan;
  const uint64_t address = 0x400000, moved_to = 0x500000;
  ASSERT_EQ(
      plan_probe(rip_relative, bytes(rip_relative, rip_relative_end), address, moved_to, &plan),
      nullptr);
  ASSERT_EQ(plan.relocated_size, 7u);  // lea rax,[rip+disp32]
  int32_t displacement = 0;
  std::memcpy(&displacement, plan.relocated + 3, sizeof displacement);
  EXPECT_EQ(moved_to + 7 + displacement, address + 7 + 0x100);
}

// A probed function of this program, called through its trampoline: the hook
// runs (it finds the thread unclassified and blockwatch not initialised, so it
// does nothing) and every argument register, integer and vector, arrives.
extern "C" __attribute__((noinline)) double probed_sum(int a, long b, double c, double d, int e,
                                                       int f, int g, double h) {
  __asm__ volatile("" ::: "memory");
  return a + b + c + d + e + f + g + h;
}

TEST(ProbePatch, TrampolineRunsTheFunctionWithItsArguments) {
  // A copy of the function in a fresh page, probed there (the test does not
  // rewrite its own text).
  const size_t page = 4096;
  auto* area = static_cast<uint8_t*>(mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE | PROT_EXEC,
                                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(area, MAP_FAILED);
  uint8_t* function = area;
  uint8_t* trampoline = area + page;
  const auto* original = reinterpret_cast<const uint8_t*>(&probed_sum);
  // The function has no rip-relative operand or call (checked by running it).
  std::memcpy(function, original, 256);
  ProbePlan plan;
  const uint64_t address = reinterpret_cast<uint64_t>(function);
  const size_t stub = trampoline_max_bytes() - kMaxRelocatedBytes - kProbeJumpBytes;
  const uint64_t out = reinterpret_cast<uint64_t>(trampoline);
  const char* refused = plan_probe(function, 64, address, out + stub, &plan);
  if (refused) GTEST_SKIP() << "this compiler's prologue: " << refused;
  ASSERT_GT(build_trampoline(trampoline, page, out, 7, address, plan), 0u);
  const int32_t rel = static_cast<int32_t>(out - (address + kProbeJumpBytes));
  function[0] = 0xE9;
  std::memcpy(function + 1, &rel, sizeof rel);
  auto* probed =
      reinterpret_cast<double (*)(int, long, double, double, int, int, int, double)>(function);
  EXPECT_DOUBLE_EQ(probed(1, 2, 0.5, 0.25, 3, 4, 5, 0.125), 15.875);
  munmap(area, 2 * page);
}

}  // namespace
}  // namespace blockwatch::interpose
