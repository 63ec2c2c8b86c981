// Unit tests of the record ring and agent_submit(): FIFO order, full and empty
// behaviour across many laps, no record lost or duplicated under concurrent
// producers, reset, and drop counting.
#include "interpose/transport/record_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "interpose/transport/agent.h"

namespace blockwatch::interpose {
namespace {

Record make_record(int32_t tid, uint64_t seq) {
  Record record;
  record.tid = tid;
  record.task_seq = seq;
  record.frame_count = 1;
  record.frames[0] = seq * 3;
  return record;
}

TEST(RecordQueue, EmptyPopFails) {
  auto queue = std::make_unique<RecordQueue>();
  Record out;
  EXPECT_FALSE(queue->try_pop(out));
}

TEST(RecordQueue, FifoAcrossManyLaps) {
  auto queue = std::make_unique<RecordQueue>();
  uint64_t next_push = 0, next_pop = 0;
  // Push in uneven batches so head and tail wrap at different slots.
  for (int round = 0; round < 100; ++round) {
    for (int i = 0; i < 97; ++i) ASSERT_TRUE(queue->try_push(make_record(1, next_push++)));
    Record out;
    for (int i = 0; i < 97; ++i) {
      ASSERT_TRUE(queue->try_pop(out));
      EXPECT_EQ(out.task_seq, next_pop);
      EXPECT_EQ(out.frames[0], next_pop * 3);
      ++next_pop;
    }
    EXPECT_FALSE(queue->try_pop(out));
  }
  EXPECT_EQ(queue->claimed_count(), next_push);
  EXPECT_EQ(queue->popped_count(), next_pop);
}

TEST(RecordQueue, FullRejectsUntilPopped) {
  auto queue = std::make_unique<RecordQueue>();
  for (size_t i = 0; i < RecordQueue::kSlots; ++i) ASSERT_TRUE(queue->try_push(make_record(1, i)));
  EXPECT_FALSE(queue->try_push(make_record(1, 999999)));
  Record out;
  ASSERT_TRUE(queue->try_pop(out));
  EXPECT_EQ(out.task_seq, 0u);
  EXPECT_TRUE(queue->try_push(make_record(1, RecordQueue::kSlots)));
  EXPECT_FALSE(queue->try_push(make_record(1, 999999)));
}

TEST(RecordQueue, ResetForgetsEverything) {
  auto queue = std::make_unique<RecordQueue>();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(queue->try_push(make_record(1, i)));
  queue->reset();
  Record out;
  EXPECT_FALSE(queue->try_pop(out));
  EXPECT_EQ(queue->claimed_count(), 0u);
  ASSERT_TRUE(queue->try_push(make_record(1, 42)));
  ASSERT_TRUE(queue->try_pop(out));
  EXPECT_EQ(out.task_seq, 42u);
}

// Producers push (tid, seq) pairs while one consumer pops: every accepted record
// comes out exactly once, and each producer's records come out in its order.
TEST(RecordQueue, ConcurrentProducersLoseNothing) {
  auto queue = std::make_unique<RecordQueue>();
  constexpr int kProducers = 4;
  constexpr uint64_t kPerProducer = 50'000;
  std::atomic<int> producers_done{0};
  std::vector<uint64_t> accepted(kProducers, 0);
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (uint64_t i = 0; i < kPerProducer; ++i) {
        if (queue->try_push(make_record(p, accepted[p]))) ++accepted[p];
      }
      producers_done.fetch_add(1);
    });
  }
  std::vector<uint64_t> next_expected(kProducers, 0);
  Record out;
  for (;;) {
    const bool all_done = producers_done.load() == kProducers;
    if (queue->try_pop(out)) {
      ASSERT_GE(out.tid, 0);
      ASSERT_LT(out.tid, kProducers);
      ASSERT_EQ(out.task_seq, next_expected[out.tid]) << "producer " << out.tid;
      ASSERT_EQ(out.frames[0], out.task_seq * 3);
      ++next_expected[out.tid];
    } else if (all_done) {
      break;
    }
  }
  for (auto& producer : producers) producer.join();
  for (int p = 0; p < kProducers; ++p) EXPECT_EQ(next_expected[p], accepted[p]);
}

TEST(AgentSubmit, CountsDropsWhenFullAndAfterShutdown) {
  RecordQueue& queue = global_record_queue();
  AgentCounters& counters = global_agent_counters();
  const uint64_t full_before = counters.dropped_queue_full.load();
  size_t accepted = 0;
  for (size_t i = 0; i < RecordQueue::kSlots + 100; ++i)
    accepted += agent_submit(make_record(7, i));
  EXPECT_EQ(accepted, RecordQueue::kSlots);
  EXPECT_EQ(counters.dropped_queue_full.load() - full_before, 100u);

  Record out;
  while (queue.try_pop(out)) {
  }
  set_agent_shut_down(true);
  const uint64_t late_before = counters.dropped_after_shutdown.load();
  EXPECT_FALSE(agent_submit(make_record(7, 1)));
  EXPECT_EQ(counters.dropped_after_shutdown.load() - late_before, 1u);
  EXPECT_FALSE(queue.try_pop(out));
  set_agent_shut_down(false);
  EXPECT_TRUE(agent_submit(make_record(7, 2)));

  const uint64_t deep_before = counters.dropped_too_deep.load();
  agent_count_not_captured();
  EXPECT_EQ(counters.dropped_too_deep.load() - deep_before, 1u);
}

}  // namespace
}  // namespace blockwatch::interpose
