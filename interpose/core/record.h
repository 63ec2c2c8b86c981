// The record a hook hands to the agent: the one boundary between the hook side
// (shims/*.cc, thread state, capture) and the agent side (queue, sender, encoder).
//
// Hook-path code. A Record is trivially copyable and fixed size; nothing in it
// owns memory. Strings are copied in (truncated) so the record outlives the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace blockwatch::interpose {

inline constexpr int kMaxFrames = 64;
inline constexpr int kThreadNameBytes = 16;  // as pthread_setname_np
inline constexpr int kLabelBytes = 64;       // task labels and allow reasons

struct Record {
  uint8_t kind = 0;     // kinds::kKind* (common/kinds.h)
  uint8_t fd_type = 0;  // blockwatch.wire.FdType
  uint8_t in_task = 0;
  uint8_t stall_sample = 0;  // stalls: 1, 2 or 4
  uint16_t frame_count = 0;
  uint8_t stall_scope = 0;  // stalls: blockwatch.wire.StallScope
  int32_t tid = 0;
  int32_t holder_tid = 0;  // 0 when unknown
  int32_t fd = -1;
  // Stalls and hangs: the same on every sample of one stall (wire Event.stall_id).
  // 32 bits fill what was padding, so the record keeps its size.
  uint32_t stall_id = 0;
  int64_t start_mono_ns = 0;  // CLOCK_MONOTONIC
  int64_t duration_ns = 0;
  uint64_t address = 0;
  uint64_t task_seq = 0;
  const char* function = nullptr;  // static storage: the interposed call's name
  // Stalls only.
  int64_t cpu_ns = 0;
  int64_t runqueue_ns = 0;
  int64_t minor_faults = 0;
  int64_t major_faults = 0;
  const char* blocked_in = nullptr;  // static storage
  int64_t blocked_ns = 0;
  char thread_name[kThreadNameBytes] = {};
  char task[kLabelBytes] = {};          // empty outside a task
  char allow_reason[kLabelBytes] = {};  // empty outside an allowed scope
  uintptr_t frames[kMaxFrames] = {};    // return addresses, innermost first
};
static_assert(std::is_trivially_copyable_v<Record>);
static_assert(sizeof(Record) <= 768, "keep records small: the queue holds thousands");

}  // namespace blockwatch::interpose
