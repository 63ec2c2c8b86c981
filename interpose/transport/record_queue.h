// The bounded, lock-free queue between hook-path producers and the sender thread:
// Vyukov's bounded MPMC ring with one sequence number per slot, used here with many
// producers and one consumer. The slots are preallocated (static storage in the
// library, zero pages until touched), so nothing on the hook path allocates.
//
// Why a global ring rather than per-thread rings: worker threads come and go
// (2,000 short-lived threads must work) and a per-thread ring would need
// registration, reclamation and a way for the sender to find it. A slot claim is one
// CAS on a shared counter; at the event rates that matter (blocking over a
// threshold) that contention is noise next to the capture itself.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "interpose/core/record.h"

namespace blockwatch::interpose {

class RecordQueue {
 public:
  static constexpr size_t kSlots = 4096;  // a power of two
  static_assert((kSlots & (kSlots - 1)) == 0);

  // Constant-initialised and all zero (it lives in .bss): a slot's sequence is
  // stored relative to its index, so zero is the valid initial state and the queue
  // works even for a push that comes before any constructor of ours ran.
  constexpr RecordQueue() = default;
  RecordQueue(const RecordQueue&) = delete;
  RecordQueue& operator=(const RecordQueue&) = delete;

  // Copy `record` into a free slot. Hook path: async-signal-safe (a signal handler
  // that interrupts a push on the same thread claims the next slot; the consumer
  // sees the interrupted slot once its push completes), allocates nothing, takes no
  // lock, never waits for the consumer. Returns false when the ring is full.
  bool try_push(const Record& record);

  // Move the oldest published record into `out`. Consumer only (one thread at a
  // time). Returns false when the ring is empty or the oldest claimed slot is still
  // being written (its producer has not finished copying).
  bool try_pop(Record& out);

  // Positions: how many pushes have claimed a slot, how many pops completed. Both
  // only grow (until reset). claimed_count() is the "sequence number" bw_flush waits
  // for. Async-signal-safe.
  uint64_t claimed_count() const { return enqueue_pos_.load(std::memory_order_acquire); }
  uint64_t popped_count() const { return dequeue_pos_.load(std::memory_order_acquire); }

  // Forget everything: every slot free, positions zero. Only when no producer or
  // consumer runs concurrently: at construction and in the child after fork(),
  // where pushes that were half done by threads of the parent can never complete.
  void reset();

  // In the child after fork(): drop what the parent had queued (it sends its own
  // copies), including pushes its other threads had only half done, by marking
  // just those slots popped. Unlike reset(), it writes only the pending slots
  // (usually none): resetting all 4096 made the child copy-on-write fault in
  // the whole 3 MB ring, about 1 ms per fork. No concurrent producer or consumer.
  void discard_pending();

 private:
  struct alignas(64) Slot {
    std::atomic<uint64_t> sequence_minus_index{0};
    // Raw bytes, not a Record: Record's non-zero member initialisers would move
    // the whole ring from .bss into .data (megabytes in the file).
    alignas(Record) unsigned char record_bytes[sizeof(Record)] = {};
  };
  alignas(64) std::atomic<uint64_t> enqueue_pos_{0};
  alignas(64) std::atomic<uint64_t> dequeue_pos_{0};
  Slot slots_[kSlots] = {};
};

// The process's one queue, used by agent_submit() and the sender.
RecordQueue& global_record_queue();

// Counters kept next to the queue (hook path: relaxed atomics, async-signal-safe).
struct AgentCounters {
  std::atomic<uint64_t> dropped_queue_full{0};
  std::atomic<uint64_t> dropped_too_deep{0};
  std::atomic<uint64_t> dropped_after_shutdown{0};
  std::atomic<uint64_t> stalls_suppressed{0};  // over the stall budget (watchdog.cc)
  // Records taken before the queue was last reset (fork): events_recorded is
  // this plus the queue's claimed_count(), so a push pays no extra atomic.
  std::atomic<uint64_t> recorded_before_reset{0};
};
AgentCounters& global_agent_counters();

// After agent_shutdown() agent_submit() drops (and counts) instead of queueing.
// Async-signal-safe.
void set_agent_shut_down(bool shut_down);
bool agent_is_shut_down();

}  // namespace blockwatch::interpose
