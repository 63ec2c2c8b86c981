// Prometheus text exposition (format 0.0.4) of a live collector's Report, served
// at /metrics so Prometheus (and Grafana) can watch blocking across a fleet.
#pragma once

#include <cstdint>
#include <string>

#include "collector/report_model.h"

namespace blockwatch::collector {

// Resident set size of this process from /proc/self/statm; 0 when unreadable.
int64_t read_resident_memory_bytes();

// Metric families (all with # HELP and # TYPE):
//   blockwatch_blocking_events_total{kind,path,allowed}   counter
//   blockwatch_blocked_seconds_total{kind,path,allowed}   counter
//   blockwatch_stalls_total{path}, blockwatch_stalled_seconds_total{path}
//   blockwatch_dropped_records_total{reason}               counter
//   blockwatch_records_received_total                      counter
//   blockwatch_processes{state="connected"|"ended"}        gauge
//   blockwatch_hotspots                                    gauge
//   blockwatch_tasks_total{exe,source,entry}               counter (exact)
//   blockwatch_task_duration_seconds{exe,source,entry}     histogram of the timed tasks
//   blockwatch_tasks_over_1ms{exe,source,entry,estimated}  gauge
//   blockwatch_collector_resident_memory_bytes             gauge
// The counters are totals over what the report holds: they only decrease if the
// collector forgets processes (documented in docs/formats.md).
std::string render_prometheus_metrics(const Report& report, int64_t resident_memory_bytes);

}  // namespace blockwatch::collector
