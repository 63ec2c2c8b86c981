// Per-task statistics in the collector: see aggregate_tasks.h.
#include "collector/aggregate_tasks.h"

#include <algorithm>

#include "common/builtin_rules.h"
#include "common/task_entry.h"
#include "common/task_histogram.h"

namespace blockwatch::collector {

TaskStats task_stats_from_wire(const wire::TaskStats& line, const ProcessInfo& process) {
  TaskStats t;
  if (!line.rule().empty()) {
    t.source = "probe";
    t.rule = line.rule();
    // The function the rule matched (a Rust generic matches once per type, all
    // under one name; the first installed one names them).
    for (const TaskProbe& probe : process.task_probes) {
      if (probe.installed && probe.rule == t.rule) {
        t.function = probe.function;
        break;
      }
    }
  } else {
    t.source = "api";
    t.label = line.label();
  }
  t.exe = process.exe;
  t.pids.push_back(process.pid);
  t.tasks_total = line.tasks_total();
  t.tasks_timed = line.tasks_timed();
  t.timed_over_1ms = line.timed_over_1ms();
  t.max_ns = line.max_timed_ns();
  t.timed_sum_ns = line.sum_timed_ns();
  t.buckets.assign(line.buckets().begin(), line.buckets().end());
  if (t.buckets.size() > static_cast<size_t>(task_histogram::kBuckets)) {
    t.buckets.resize(task_histogram::kBuckets);  // a newer library's: the last is open-ended
  }
  return t;
}

void merge_task_stats(const TaskStats& line, std::vector<TaskStats>* merged) {
  for (TaskStats& t : *merged) {
    if (t.exe != line.exe || t.source != line.source || t.rule != line.rule ||
        t.function != line.function || t.label != line.label) {
      continue;
    }
    t.tasks_total += line.tasks_total;
    t.tasks_timed += line.tasks_timed;
    t.timed_over_1ms += line.timed_over_1ms;
    t.timed_sum_ns += line.timed_sum_ns;
    t.max_ns = std::max(t.max_ns, line.max_ns);
    if (t.buckets.size() < line.buckets.size()) t.buckets.resize(line.buckets.size());
    for (size_t i = 0; i < line.buckets.size(); ++i) t.buckets[i] += line.buckets[i];
    for (int pid : line.pids) {
      if (std::find(t.pids.begin(), t.pids.end(), pid) == t.pids.end()) t.pids.push_back(pid);
    }
    return;
  }
  merged->push_back(line);
}

namespace {

bool is_entry_frame(const std::string& function, const std::vector<std::string>& entry_rules) {
  for (const std::string& rule : entry_rules) {
    if (task_entry::names_function(rule, function)) return true;
  }
  return false;
}

// Executor and language-runtime frames between the entry and the task's code.
bool is_executor_frame(const StackFrame& frame) {
  static const char* const kPrefixes[] = {
      "boost::asio::", "boost_asio_handler_invoke_helpers::", "tokio::", "<tokio::", "core::",
      "<core::", "std::", "<std::", "alloc::", "<alloc::"};
  for (const char* prefix : kPrefixes) {
    if (frame.function.rfind(prefix, 0) == 0) return true;
  }
  return builtin_rules::is_system_frame(frame.function, frame.module);
}

}  // namespace

std::string task_function_of(const std::vector<StackFrame>& stack,
                             const std::vector<std::string>& entry_rules) {
  size_t entry = 0;
  while (entry < stack.size() && !is_entry_frame(stack[entry].function, entry_rules)) ++entry;
  if (entry == stack.size()) return "";
  for (size_t i = entry; i-- > 0;) {
    if (!is_executor_frame(stack[i])) return stack[i].function;
  }
  return "";
}

void finish_task_stats(std::vector<TaskStats>* tasks) {
  for (TaskStats& t : *tasks) {
    const int n = static_cast<int>(t.buckets.size());
    t.p50_ns = task_histogram::quantile_ns(t.buckets.data(), n, 0.50, t.max_ns);
    t.p99_ns = task_histogram::quantile_ns(t.buckets.data(), n, 0.99, t.max_ns);
    t.over_1ms_exact = t.tasks_timed >= t.tasks_total;
    if (t.over_1ms_exact || t.tasks_timed == 0) {
      t.over_1ms = t.timed_over_1ms;
    } else {
      // Each timed task stands for total/timed tasks (uniform random sampling).
      const long double scaled = static_cast<long double>(t.timed_over_1ms) *
                                 static_cast<long double>(t.tasks_total) /
                                 static_cast<long double>(t.tasks_timed);
      t.over_1ms = static_cast<uint64_t>(scaled + 0.5L);
    }
  }
  std::stable_sort(tasks->begin(), tasks->end(), [](const TaskStats& a, const TaskStats& b) {
    if (a.over_1ms != b.over_1ms) return a.over_1ms > b.over_1ms;
    return a.tasks_total > b.tasks_total;
  });
}

}  // namespace blockwatch::collector
