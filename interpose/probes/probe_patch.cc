// Entry-probe planning and trampolines (see probe_patch.h). Instructions are
// decoded with Zydis 4; the trampoline's own code is the compiler-assembled
// template of probe_hook.cc, copied with its immediates filled in.
//
// Not hook-path code: constructor only.
#include "interpose/probes/probe_patch.h"

#include <Zydis/Zydis.h>

#include <cstring>

#include "interpose/probes/probe_hook.h"

namespace blockwatch::interpose {
namespace {

constexpr uint8_t kJmpRel32 = 0xE9;  // the one instruction we write ourselves

bool fits_int32(int64_t value) { return value >= INT32_MIN && value <= INT32_MAX; }

ZydisDecoder make_decoder() {
  ZydisDecoder decoder;
  ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
  return decoder;
}

bool is_relative_branch(const ZydisDecodedInstruction& instruction) {
  return (instruction.attributes & ZYDIS_ATTRIB_IS_RELATIVE) && instruction.raw.imm[0].is_relative;
}

// Every instruction of the function, decoded linearly: none may fail to decode
// (data in code would make the scan below meaningless) and no relative branch
// may land in (address, address + displaced).
const char* check_branch_targets(const ZydisDecoder& decoder, const uint8_t* function, size_t size,
                                 uint64_t address, size_t displaced) {
  ZydisDecodedInstruction instruction;
  ZydisDecodedOperand operands[ZYDIS_MAX_OPERAND_COUNT];
  for (size_t offset = 0; offset < size; offset += instruction.length) {
    if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder, function + offset, size - offset,
                                             &instruction, operands))) {
      return "the function's code could not be decoded to its end";
    }
    if (!is_relative_branch(instruction)) continue;
    ZyanU64 target = 0;
    for (int i = 0; i < instruction.operand_count_visible; ++i) {
      if (operands[i].type == ZYDIS_OPERAND_TYPE_IMMEDIATE &&
          ZYAN_SUCCESS(
              ZydisCalcAbsoluteAddress(&instruction, &operands[i], address + offset, &target)) &&
          target > address && target < address + displaced) {
        return "a branch in the function lands inside the bytes the probe replaces";
      }
    }
  }
  return nullptr;
}

}  // namespace

const char* plan_probe(const uint8_t* function, size_t size, uint64_t address, uint64_t new_address,
                       ProbePlan* plan) {
  *plan = ProbePlan{};
  if (size < kProbeJumpBytes) return "the function is shorter than the probe's jump";
  const ZydisDecoder decoder = make_decoder();
  ZydisDecodedInstruction instruction;
  ZydisDecodedOperand operands[ZYDIS_MAX_OPERAND_COUNT];
  size_t offset = 0;
  while (offset < kProbeJumpBytes) {
    if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder, function + offset, size - offset,
                                             &instruction, operands))) {
      return "the function's first instructions could not be decoded";
    }
    const ZydisInstructionCategory category = instruction.meta.category;
    if (is_relative_branch(instruction)) {
      return "a relative branch among the function's first instructions";
    }
    if (category == ZYDIS_CATEGORY_RET || category == ZYDIS_CATEGORY_UNCOND_BR ||
        category == ZYDIS_CATEGORY_INTERRUPT) {
      return "the function ends within the probe's jump";
    }
    if (offset + instruction.length > size) return "the function is shorter than the probe's jump";
    uint8_t* out = plan->relocated + plan->relocated_size;
    std::memcpy(out, function + offset, instruction.length);
    if (instruction.attributes & ZYDIS_ATTRIB_IS_RELATIVE) {
      // A rip-relative memory operand: same target, seen from the new place.
      if (instruction.raw.disp.size != 32) return "a rip-relative operand that cannot be moved";
      const int64_t target =
          static_cast<int64_t>(address + offset + instruction.length) + instruction.raw.disp.value;
      const int64_t moved =
          target - static_cast<int64_t>(new_address + plan->relocated_size + instruction.length);
      if (!fits_int32(moved)) return "a rip-relative operand out of reach of the trampoline";
      const int32_t displacement = static_cast<int32_t>(moved);
      std::memcpy(out + instruction.raw.disp.offset, &displacement, sizeof displacement);
    }
    plan->relocated_size += instruction.length;
    offset += instruction.length;
  }
  plan->displaced_bytes = offset;
  return check_branch_targets(decoder, function, size, address, offset);
}

size_t trampoline_max_bytes() {
  return static_cast<size_t>(bw_probe_stub_end - bw_probe_stub_begin) + kMaxRelocatedBytes +
         kProbeJumpBytes;
}

size_t build_trampoline(uint8_t* out, size_t out_capacity, uint64_t out_address, uint32_t probe_id,
                        uint64_t address, const ProbePlan& plan) {
  const size_t stub_bytes = static_cast<size_t>(bw_probe_stub_end - bw_probe_stub_begin);
  const size_t total = stub_bytes + plan.relocated_size + kProbeJumpBytes;
  if (total > out_capacity) return 0;
  std::memcpy(out, bw_probe_stub_begin, stub_bytes);
  auto put = [&](const uint8_t* label, const void* value, size_t bytes) {
    std::memcpy(out + (label - bw_probe_stub_begin) - bytes, value, bytes);
  };
  const uint64_t fast = reinterpret_cast<uint64_t>(&bw_probe_fast);
  const uint64_t slow = reinterpret_cast<uint64_t>(&bw_probe_slow);
  put(bw_probe_stub_id_fast, &probe_id, sizeof probe_id);
  put(bw_probe_stub_call_fast, &fast, sizeof fast);
  put(bw_probe_stub_id_slow, &probe_id, sizeof probe_id);
  put(bw_probe_stub_call_slow, &slow, sizeof slow);
  std::memcpy(out + stub_bytes, plan.relocated, plan.relocated_size);
  // Back to the first instruction the probe did not move.
  uint8_t* jump = out + stub_bytes + plan.relocated_size;
  const int64_t back = static_cast<int64_t>(address + plan.displaced_bytes) -
                       static_cast<int64_t>(out_address + (jump - out) + kProbeJumpBytes);
  if (!fits_int32(back)) return 0;
  const int32_t rel = static_cast<int32_t>(back);
  jump[0] = kJmpRel32;
  std::memcpy(jump + 1, &rel, sizeof rel);
  return total;
}

}  // namespace blockwatch::interpose
