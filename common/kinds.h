// The kinds of event, the one definition both sides build from: the number each
// kind has on the wire (proto/blockwatch.proto `Kind`, static_asserted against
// the generated enum by the collector) and its report name (JSON, text, rules,
// `bw_kind_name`). The public C header's BW_KIND_* values are static_asserted
// against this list by the injected library (shims/agent_api.cc).
//
// Header-only, constexpr, no allocation: usable on the hook path and in signal
// handlers.
#pragma once

#include <cstdint>

// X(enumerator, wire number, report name, suffix of the wire enum's KIND_ name)
#define BLOCKWATCH_KIND_LIST(X)                        \
  X(kKindMutex, 1, "mutex", MUTEX)                     \
  X(kKindRwlockRead, 2, "rwlock_read", RWLOCK_READ)    \
  X(kKindRwlockWrite, 3, "rwlock_write", RWLOCK_WRITE) \
  X(kKindCondvar, 4, "condvar", CONDVAR)               \
  X(kKindSemaphore, 5, "semaphore", SEMAPHORE)         \
  X(kKindFutex, 6, "futex", FUTEX)                     \
  X(kKindRead, 7, "read", READ)                        \
  X(kKindWrite, 8, "write", WRITE)                     \
  X(kKindFsync, 9, "fsync", FSYNC)                     \
  X(kKindSleep, 10, "sleep", SLEEP)                    \
  X(kKindPoll, 11, "poll", POLL)                       \
  X(kKindStall, 12, "stall", STALL)                    \
  X(kKindHang, 13, "hang", HANG)

namespace blockwatch::kinds {

#define BLOCKWATCH_KIND_ENUMERATOR(name, number, text, wire) name = number,
enum Kind : uint8_t { BLOCKWATCH_KIND_LIST(BLOCKWATCH_KIND_ENUMERATOR) };
#undef BLOCKWATCH_KIND_ENUMERATOR

// The report name of a wire kind number; "unknown" for any other number.
// Async-signal-safe, no allocation.
constexpr const char* kind_name(int kind) {
  switch (kind) {
#define BLOCKWATCH_KIND_CASE(name, number, text, wire) \
  case number:                                         \
    return text;
    BLOCKWATCH_KIND_LIST(BLOCKWATCH_KIND_CASE)
#undef BLOCKWATCH_KIND_CASE
    default:
      return "unknown";
  }
}

// What a stall is one of: the wire's StallScope numbers (static_asserted by the
// collector) and their report names (`scope` in JSON, text, HTML, metrics).
inline constexpr uint8_t kStallScopeUnspecified = 0;
inline constexpr uint8_t kStallScopeTask = 1;  // one task ran too long
inline constexpr uint8_t kStallScopeTurn = 2;  // one loop turn: may hold many tasks

constexpr const char* stall_scope_name(int scope) {
  return scope == kStallScopeTask ? "task" : scope == kStallScopeTurn ? "turn" : "";
}

}  // namespace blockwatch::kinds
