// Per-task statistics in the collector (issue 9 item 3): wire TaskStats lines
// become report TaskStats, merged over the processes of one exe, with their
// percentiles and the over-1 ms estimate. The bucket bounds are
// common/task_histogram.h's.
#pragma once

#include <vector>

#include "collector/report_model.h"
#include "proto/blockwatch.pb.h"

namespace blockwatch::collector {

// One wire line of `process`; a probe line's function is taken from the
// process's installed task probes of its rule. Counts only; finish_task_stats
// fills the rest.
TaskStats task_stats_from_wire(const wire::TaskStats& line, const ProcessInfo& process);

// Adds `line` into `merged`: the line of the same exe and entry (source, rule,
// function, label) gets its counts, buckets and pids; a new entry otherwise.
void merge_task_stats(const TaskStats& line, std::vector<TaskStats>* merged);

// The task function of a stall's stack (Hotspot::task_function): walking in
// from the innermost frame one of `entry_rules` names (common/task_entry.h),
// the first frame that is not executor or runtime code (boost::asio::,
// tokio::, Rust core/std/alloc, builtin_rules::is_system_frame). "" when no
// frame is an entry or nothing is inside it. Pure.
std::string task_function_of(const std::vector<StackFrame>& stack,
                             const std::vector<std::string>& entry_rules);

// p50/p99 from the buckets, over_1ms (estimated unless every task was timed),
// and the report order (most tasks over 1 ms, then most tasks, first).
void finish_task_stats(std::vector<TaskStats>* tasks);

}  // namespace blockwatch::collector
