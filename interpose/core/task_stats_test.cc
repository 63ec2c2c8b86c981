// Per-task statistics without the preload: API tasks are counted and timed per
// label, probe entries are counted exactly and timed 1 in N, a timed task's
// clock stops during idle waits, a full label table counts what it drops, and
// the sender's snapshot sums it all (interpose/core/task_stats.h).
#include "interpose/core/task_stats.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "interpose/core/process_scope.h"
#include "interpose/core/thread_state.h"

namespace blockwatch::interpose {
namespace {

class TaskStatsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    set_watched_process(getpid());
    thread_state_init();
    task_stats_init(0);
  }
};

const TaskStatsLine* find_label(const std::vector<TaskStatsLine>& lines, const std::string& label) {
  for (const TaskStatsLine& line : lines) {
    if (line.probe_id < 0 && line.label == label) return &line;
  }
  return nullptr;
}

const TaskStatsLine* find_probe(const std::vector<TaskStatsLine>& lines, int probe_id) {
  for (const TaskStatsLine& line : lines) {
    if (line.probe_id == probe_id) return &line;
  }
  return nullptr;
}

uint64_t bucket_sum(const TaskStatsLine& line) {
  uint64_t sum = 0;
  for (uint64_t count : line.buckets) sum += count;
  return sum;
}

TEST_F(TaskStatsTest, ApiTasksAreAllTimedPerLabel) {
  std::thread([] {
    for (int i = 0; i < 3; ++i) {
      task_begin("api-parse");
      task_end();
    }
    task_begin("api-outer");
    task_begin("api-inner");
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // at least 2 ms, any machine
    task_end();
    task_end();
  }).join();
  uint64_t dropped = 0;
  const std::vector<TaskStatsLine> lines = task_stats_snapshot(&dropped);
  const TaskStatsLine* parse = find_label(lines, "api-parse");
  ASSERT_NE(parse, nullptr);
  EXPECT_EQ(parse->tasks_total, 3u);
  EXPECT_EQ(parse->tasks_timed, 3u);
  EXPECT_EQ(bucket_sum(*parse), 3u);
  for (const char* label : {"api-outer", "api-inner"}) {
    const TaskStatsLine* line = find_label(lines, label);
    ASSERT_NE(line, nullptr) << label;
    EXPECT_EQ(line->tasks_total, 1u) << label;
    EXPECT_EQ(line->timed_over_1ms, 1u) << label;  // both held the 2 ms sleep
    EXPECT_GE(line->max_ns, 2'000'000) << label;
    EXPECT_GE(line->sum_ns, line->max_ns) << label;
  }
}

TEST_F(TaskStatsTest, FullLabelTableCountsDrops) {
  uint64_t dropped_before = 0;
  task_stats_snapshot(&dropped_before);
  std::thread([] {
    static const std::string labels[kTaskLabelStats + 2] = {"l0", "l1", "l2", "l3", "l4",
                                                             "l5", "l6", "l7", "l8", "l9"};
    for (const std::string& label : labels) {
      task_begin(label.c_str());
      task_end();
    }
  }).join();
  uint64_t dropped = 0;
  const std::vector<TaskStatsLine> lines = task_stats_snapshot(&dropped);
  // The thread may have reused an earlier test thread's slot (and its labels):
  // at least the last two find the table full, and every task is somewhere.
  int listed = 0;
  for (const char* label : {"l0", "l1", "l2", "l3", "l4", "l5", "l6", "l7", "l8", "l9"}) {
    listed += find_label(lines, label) != nullptr;
  }
  EXPECT_EQ(find_label(lines, "l9"), nullptr);
  EXPECT_GE(dropped - dropped_before, 2u);
  EXPECT_EQ(listed + static_cast<int>(dropped - dropped_before), kTaskLabelStats + 2);
}

// Probe entries (probe_hook.cc's path, called directly): every one counted, a
// random sample timed, and the timed ones all end up in the histogram.
TEST_F(TaskStatsTest, ProbeEntriesAreCountedExactlyAndSampled) {
  constexpr int kProbe = 6;
  constexpr int kEntries = 4000;
  std::thread([] {
    ThreadSlot* slot = current_slot();
    ASSERT_NE(slot, nullptr);
    for (int i = 0; i < kEntries; ++i) {
      if (probe_task_entry(*slot, kProbe)) {
        task_timer_entry_clock(slot->task_timer, static_cast<int>(slot - g_thread_slots), kProbe,
                               slot->tid.load());
      }
    }
    // The last timed task (if any) ends at the thread's idle wait... or not at
    // all: it is still running; end it as the next entry would.
    task_timer_finish(slot->task_timer, static_cast<int>(slot - g_thread_slots),
                      hook_clock_ticks());
  }).join();
  uint64_t dropped = 0;
  const std::vector<TaskStatsLine> lines = task_stats_snapshot(&dropped);
  const TaskStatsLine* line = find_probe(lines, kProbe);
  ASSERT_NE(line, nullptr);
  EXPECT_EQ(line->tasks_total, static_cast<uint64_t>(kEntries));
  // 1 in 16 on average: ~250 of 4000. The bounds are many standard deviations wide.
  EXPECT_GT(line->tasks_timed, 100u);
  EXPECT_LT(line->tasks_timed, 600u);
  EXPECT_EQ(bucket_sum(*line), line->tasks_timed);
}

// A timed task's duration leaves out its idle waits: ticks counted before the
// wait plus ticks since it ended (deterministic: ticks given, not read).
TEST_F(TaskStatsTest, TimedTaskExcludesIdleWait) {
  constexpr int kProbe = 7;
  const uint64_t saved_rate = g_task_ns_per_tick_q32.load();
  g_task_ns_per_tick_q32.store(uint64_t{1} << 32);  // 1 tick = 1 ns for this test
  std::thread([] {
    ThreadSlot* slot = current_slot();
    ASSERT_NE(slot, nullptr);
    TaskTimer& timer = slot->task_timer;
    timer.timing_probe = kProbe;
    timer.start_ticks = 1'000;
    timer.run_ticks = 4'000'000;  // 4 ms before an idle wait
    timer.idle = true;            // still in it: nothing since counts
    task_timer_finish(timer, static_cast<int>(slot - g_thread_slots), 900'000'000);
    EXPECT_EQ(timer.timing_probe, -1);
    timer.timing_probe = kProbe;
    timer.start_ticks = 10'000;
    timer.run_ticks = 1'000;
    timer.idle = false;  // 1 us before, 5 us since the wait ended
    task_timer_finish(timer, static_cast<int>(slot - g_thread_slots), 15'000);
  }).join();
  g_task_ns_per_tick_q32.store(saved_rate);
  // Timed but never counted by an entry (the test skipped it): the snapshot
  // lists no line for it, so the slots are read directly.
  int64_t max_ns = 0, sum_ns = 0;
  uint64_t timed = 0;
  for (int i = 0; i < thread_slots_high_water(); ++i) {
    const TaskHistogram& slot_h = g_task_stats[i].probes[kProbe];
    timed += slot_h.timed.load();
    sum_ns += slot_h.sum_ns.load();
    max_ns = std::max(max_ns, slot_h.max_ns.load());
  }
  EXPECT_EQ(timed, 2u);
  EXPECT_EQ(max_ns, 4'000'000);
  EXPECT_EQ(sum_ns, 4'000'000 + 6'000);
}

}  // namespace
}  // namespace blockwatch::interpose
