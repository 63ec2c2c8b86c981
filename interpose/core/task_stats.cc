// Per-task statistics storage and the sender's sum (see task_stats.h): the
// per-slot histograms of probe-entered tasks and API tasks, kept out of
// ThreadSlot so the hook path's hot slot fields stay together.
#include "interpose/core/task_stats.h"

#include <cstring>

#include "interpose/core/thread_state.h"

namespace blockwatch::interpose {

std::atomic<uint64_t> g_task_ns_per_tick_q32{uint64_t{1} << 32};
uint32_t g_task_timing_every = kTaskTimingEveryDefault;

SlotTaskStats g_task_stats[kMaxThreadSlots];

namespace {

void bump(std::atomic<uint64_t>& counter) {
  counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

// The entry of `label` in the slot's table, adding it if there is room; null
// when the table is full. Owner thread only. No allocation, no lock.
TaskLabelStats* label_entry(SlotTaskStats& stats, const char* label) {
  for (TaskLabelStats& entry : stats.labels) {
    if (entry.used.load(std::memory_order_relaxed) == 0) {
      std::strncpy(entry.label, label, kTaskLabelBytes - 1);
      entry.used.store(1, std::memory_order_release);
      return &entry;
    }
    if (std::strncmp(entry.label, label, kTaskLabelBytes - 1) == 0) return &entry;
  }
  return nullptr;
}

void refresh_tick_conversion() {
  if (!g_ticks_are_tsc) return;  // ticks are ns: the default 1 << 32 is exact
  const int64_t ns = ticks_to_ns(int64_t{1} << 32);
  if (ns > 0) g_task_ns_per_tick_q32.store(static_cast<uint64_t>(ns), std::memory_order_relaxed);
}

void add_histogram(const TaskHistogram& from, TaskStatsLine& to) {
  to.tasks_timed += from.timed.load(std::memory_order_relaxed);
  to.timed_over_1ms += from.over_1ms.load(std::memory_order_relaxed);
  const int64_t max_ns = from.max_ns.load(std::memory_order_relaxed);
  if (max_ns > to.max_ns) to.max_ns = max_ns;
  to.sum_ns += from.sum_ns.load(std::memory_order_relaxed);
  if (to.buckets.empty()) to.buckets.assign(task_histogram::kBuckets, 0);
  for (int i = 0; i < task_histogram::kBuckets; ++i) {
    to.buckets[i] += from.buckets[i].load(std::memory_order_relaxed);
  }
}

}  // namespace

void task_stats_api_begin(TaskTimer& timer, int depth) {
  if (depth < kTaskApiNesting) timer.api_start_ticks[depth] = hook_clock_ticks();
}

void task_stats_api_end(TaskTimer& timer, int slot_index, int depth, const char* label) {
  SlotTaskStats& stats = g_task_stats[slot_index];
  TaskLabelStats* entry = label_entry(stats, label ? label : "");
  if (entry == nullptr) {
    bump(stats.labels_dropped);
    return;
  }
  bump(entry->total);
  if (depth >= kTaskApiNesting) return;  // its start was not kept: counted, not timed
  task_histogram_add(entry->histogram,
                     task_ticks_to_ns(hook_clock_ticks() - timer.api_start_ticks[depth]));
}

void task_stats_init(uint32_t timing_every) {
  g_task_timing_every = timing_every == 0 ? kTaskTimingEveryDefault : timing_every;
  refresh_tick_conversion();
}

std::vector<TaskStatsLine> task_stats_snapshot(uint64_t* labels_dropped) {
  refresh_tick_conversion();
  std::vector<TaskStatsLine> lines;
  *labels_dropped = 0;
  const int slot_end = thread_slots_high_water();
  for (int probe = 0; probe < kTaskProbeStats; ++probe) {
    TaskStatsLine line;
    line.probe_id = probe;
    for (int i = 0; i < slot_end; ++i) {
      line.tasks_total += g_thread_slots[i].task_timer.probe_tasks[probe].load(
          std::memory_order_relaxed);
      add_histogram(g_task_stats[i].probes[probe], line);
    }
    if (line.tasks_total != 0) lines.push_back(std::move(line));
  }
  const size_t first_label = lines.size();
  for (int i = 0; i < slot_end; ++i) {
    SlotTaskStats& stats = g_task_stats[i];
    *labels_dropped += stats.labels_dropped.load(std::memory_order_relaxed);
    for (const TaskLabelStats& entry : stats.labels) {
      if (entry.used.load(std::memory_order_acquire) == 0) break;
      const std::string label(entry.label, strnlen(entry.label, kTaskLabelBytes));
      TaskStatsLine* line = nullptr;
      for (size_t k = first_label; k < lines.size(); ++k) {
        if (lines[k].label == label) line = &lines[k];
      }
      if (line == nullptr) {
        lines.emplace_back();
        line = &lines.back();
        line->label = label;
      }
      line->tasks_total += entry.total.load(std::memory_order_relaxed);
      add_histogram(entry.histogram, *line);
    }
  }
  for (TaskStatsLine& line : lines) {
    while (!line.buckets.empty() && line.buckets.back() == 0) line.buckets.pop_back();
  }
  return lines;
}

void task_stats_after_fork_child() {
  const int slot_end = thread_slots_high_water();
  for (int i = 0; i < slot_end; ++i) {
    for (auto& count : g_thread_slots[i].task_timer.probe_tasks) {
      if (count.load(std::memory_order_relaxed) != 0) count.store(0, std::memory_order_relaxed);
    }
    g_thread_slots[i].task_timer.timing_probe = -1;
    SlotTaskStats& stats = g_task_stats[i];
    const bool used = stats.labels[0].used.load(std::memory_order_relaxed) != 0;
    bool probed = false;
    for (const TaskHistogram& h : stats.probes) probed |= h.timed.load(std::memory_order_relaxed) != 0;
    // Placement-new would do too; only written pages fault (copy-on-write).
    if (used || probed || stats.labels_dropped.load(std::memory_order_relaxed) != 0) {
      std::memset(static_cast<void*>(&stats), 0, sizeof stats);
    }
  }
}

}  // namespace blockwatch::interpose
