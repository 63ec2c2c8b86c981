// The lock-free record ring (see record_queue.h) and agent_submit(), the one entry
// point the hooks use to hand a record over. Everything here is hook-path code:
// async-signal-safe, no allocation, no lock, no waiting on the consumer.
#include "interpose/transport/record_queue.h"

#include <cstddef>
#include <cstring>

#include "interpose/transport/agent.h"

namespace blockwatch::interpose {
namespace {

constinit RecordQueue g_queue;

// Bytes of a record worth copying: everything up to the frames, then only the
// frames in use (frames is the last member; a shallow stack copies ~250 bytes, not
// ~770).
static_assert(offsetof(Record, frames) + sizeof(Record::frames) == sizeof(Record));
size_t used_bytes(uint16_t frame_count) {
  const size_t frames = frame_count < kMaxFrames ? frame_count : kMaxFrames;
  return offsetof(Record, frames) + frames * sizeof(uintptr_t);
}
constinit AgentCounters g_counters;
constinit std::atomic<bool> g_shut_down{false};

}  // namespace

bool RecordQueue::try_push(const Record& record) {
  uint64_t pos = enqueue_pos_.load(std::memory_order_relaxed);
  for (;;) {
    const uint64_t index = pos & (kSlots - 1);
    Slot& slot = slots_[index];
    const uint64_t sequence = slot.sequence_minus_index.load(std::memory_order_acquire) + index;
    const int64_t diff = static_cast<int64_t>(sequence - pos);
    if (diff == 0) {
      // The slot is free for this lap: claim it.
      if (enqueue_pos_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
        std::memcpy(slot.record_bytes, &record, used_bytes(record.frame_count));
        slot.sequence_minus_index.store(pos + 1 - index, std::memory_order_release);
        return true;
      }
      // CAS failure reloaded pos; retry.
    } else if (diff < 0) {
      return false;  // the consumer has not freed this slot from the previous lap
    } else {
      pos = enqueue_pos_.load(std::memory_order_relaxed);
    }
  }
}

bool RecordQueue::try_pop(Record& out) {
  const uint64_t pos = dequeue_pos_.load(std::memory_order_relaxed);
  const uint64_t index = pos & (kSlots - 1);
  Slot& slot = slots_[index];
  const uint64_t sequence = slot.sequence_minus_index.load(std::memory_order_acquire) + index;
  if (static_cast<int64_t>(sequence - (pos + 1)) < 0) return false;  // empty or being written
  // out.frames past frame_count keep stale values: readers stop at frame_count.
  uint16_t frame_count = 0;
  std::memcpy(&frame_count, slot.record_bytes + offsetof(Record, frame_count), sizeof frame_count);
  std::memcpy(&out, slot.record_bytes, used_bytes(frame_count));
  slot.sequence_minus_index.store(pos + kSlots - index, std::memory_order_release);
  dequeue_pos_.store(pos + 1, std::memory_order_release);
  return true;
}

void RecordQueue::reset() {
  for (Slot& slot : slots_) slot.sequence_minus_index.store(0, std::memory_order_relaxed);
  enqueue_pos_.store(0, std::memory_order_relaxed);
  dequeue_pos_.store(0, std::memory_order_release);
}

void RecordQueue::discard_pending() {
  const uint64_t end = enqueue_pos_.load(std::memory_order_relaxed);
  for (uint64_t pos = dequeue_pos_.load(std::memory_order_relaxed); pos != end; ++pos) {
    const uint64_t index = pos & (kSlots - 1);
    slots_[index].sequence_minus_index.store(pos + kSlots - index, std::memory_order_relaxed);
  }
  dequeue_pos_.store(end, std::memory_order_release);
}

RecordQueue& global_record_queue() { return g_queue; }
AgentCounters& global_agent_counters() { return g_counters; }

void set_agent_shut_down(bool shut_down) {
  g_shut_down.store(shut_down, std::memory_order_release);
}
bool agent_is_shut_down() { return g_shut_down.load(std::memory_order_acquire); }

// Hook path: async-signal-safe, no allocation, no lock, never blocks.
bool agent_submit(const Record& record) {
  if (g_shut_down.load(std::memory_order_acquire)) {
    g_counters.dropped_after_shutdown.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (!g_queue.try_push(record)) {
    g_counters.dropped_queue_full.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

// Async-signal-safe.
void agent_count_not_captured() {
  g_counters.dropped_too_deep.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace blockwatch::interpose
