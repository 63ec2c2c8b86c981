// Prometheus text format writer. Label values are escaped as the exposition format
// requires (backslash, double quote, newline); series are sorted by their labels so
// the output is deterministic.
#include "collector/metrics.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <tuple>
#include <vector>

#include "common/task_histogram.h"

namespace blockwatch::collector {
namespace {

std::string escape_label_value(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string format_seconds(int64_t ns) {
  char buffer[48];
  std::snprintf(buffer, sizeof buffer, "%.9f", static_cast<double>(ns) / 1e9);
  return buffer;
}

void family(std::string& out, const char* name, const char* type, const char* help) {
  out += std::string("# HELP ") + name + ' ' + help + '\n';
  out += std::string("# TYPE ") + name + ' ' + type + '\n';
}

struct Totals {
  uint64_t count = 0;
  int64_t ns = 0;
};

void blocking_families(const Report& report, std::string& out) {
  std::map<std::tuple<std::string, std::string, bool>, Totals> blocking;  // kind, path, allowed
  std::map<std::pair<std::string, std::string>, Totals> stalls;           // path, scope
  for (const auto& hotspot : report.hotspots) {
    Totals& totals = hotspot.kind == "stall"
                         ? stalls[{hotspot.path, hotspot.scope}]
                         : blocking[{hotspot.kind, hotspot.path, hotspot.allowed}];
    totals.count += hotspot.count;
    totals.ns += hotspot.total_ns;
  }
  auto labels = [](const auto& key) {
    const auto& [kind, path, allowed] = key;
    return "{kind=\"" + escape_label_value(kind) + "\",path=\"" + escape_label_value(path) +
           "\",allowed=\"" + (allowed ? "true" : "false") + "\"}";
  };
  family(out, "blockwatch_blocking_events_total", "counter",
         "Blocking calls of worker threads over the threshold, by kind and path.");
  for (const auto& [key, totals] : blocking)
    out += "blockwatch_blocking_events_total" + labels(key) + ' ' + std::to_string(totals.count) +
           '\n';
  family(out, "blockwatch_blocked_seconds_total", "counter",
         "Time worker threads spent blocked, by kind and path.");
  for (const auto& [key, totals] : blocking)
    out +=
        "blockwatch_blocked_seconds_total" + labels(key) + ' ' + format_seconds(totals.ns) + '\n';
  // scope="task": one task ran too long; "turn": a loop turn (task boundaries
  // unknown), which may hold many short tasks; "" when the library did not say.
  auto stall_labels = [](const std::pair<std::string, std::string>& key) {
    return "{path=\"" + escape_label_value(key.first) + "\",scope=\"" +
           escape_label_value(key.second) + "\"}";
  };
  family(out, "blockwatch_stalls_total", "counter",
         "Tasks (scope=task) or loop turns (scope=turn) past the stall threshold.");
  for (const auto& [key, totals] : stalls)
    out +=
        "blockwatch_stalls_total" + stall_labels(key) + ' ' + std::to_string(totals.count) + '\n';
  family(out, "blockwatch_stalled_seconds_total", "counter",
         "Duration of the stalled tasks or loop turns.");
  for (const auto& [key, totals] : stalls)
    out += "blockwatch_stalled_seconds_total" + stall_labels(key) + ' ' +
           format_seconds(totals.ns) + '\n';
}

// Per hotspot: the busiest kHotspotSeries by total time, so a scrape stays
// small whatever the program does; the rest are summed in one "(other)" series.
constexpr size_t kHotspotSeries = 50;

std::string hotspot_labels(const Hotspot& hotspot) {
  const StackFrame* frame = top_user_frame(hotspot);
  std::string location;
  if (frame != nullptr && !frame->file.empty()) {
    const size_t slash = frame->file.rfind('/');
    location = frame->file.substr(slash == std::string::npos ? 0 : slash + 1) + ':' +
               std::to_string(frame->line);
  }
  return "{kind=\"" + escape_label_value(hotspot.kind) + "\",function=\"" +
         escape_label_value(frame ? frame->function : "(no stack)") + "\",location=\"" +
         escape_label_value(location) + "\",path=\"" + escape_label_value(hotspot.path) + "\"}";
}

void hotspot_families(const Report& report, std::string& out) {
  std::vector<const Hotspot*> ranked;
  for (const Hotspot& hotspot : report.hotspots) ranked.push_back(&hotspot);
  std::sort(ranked.begin(), ranked.end(), [](const Hotspot* a, const Hotspot* b) {
    return a->total_ns != b->total_ns ? a->total_ns > b->total_ns : a->count > b->count;
  });
  // Two hotspots may share labels (same top frame, other callers): sum them.
  std::map<std::string, Totals> series;
  Totals other;
  for (size_t i = 0; i < ranked.size(); ++i) {
    Totals& totals = i < kHotspotSeries ? series[hotspot_labels(*ranked[i])] : other;
    totals.count += ranked[i]->count;
    totals.ns += ranked[i]->total_ns;
  }
  if (ranked.size() > kHotspotSeries) {
    series["{kind=\"(other)\",function=\"(other)\",location=\"\",path=\"\"}"] = other;
  }
  family(out, "blockwatch_hotspot_events_total", "counter",
         "Blocking calls or stalls per hotspot (kind and the innermost user frame), busiest 50.");
  for (const auto& [labels, totals] : series)
    out += "blockwatch_hotspot_events_total" + labels + ' ' + std::to_string(totals.count) + '\n';
  family(out, "blockwatch_hotspot_seconds_total", "counter",
         "Time blocked or stalled per hotspot (kind and the innermost user frame), busiest 50.");
  for (const auto& [labels, totals] : series)
    out += "blockwatch_hotspot_seconds_total" + labels + ' ' + format_seconds(totals.ns) + '\n';
}

void process_families(const Report& report, std::string& out) {
  uint64_t queue_full = 0, no_collector = 0, too_deep = 0, received = 0, connected = 0;
  for (const auto& process : report.processes) {
    queue_full += process.dropped_queue_full;
    no_collector += process.dropped_no_collector;
    too_deep += process.dropped_too_deep;
    received += process.events;
    connected += process.connected ? 1 : 0;
  }
  family(out, "blockwatch_dropped_records_total", "counter",
         "Records the injected library could not deliver, by reason.");
  out += "blockwatch_dropped_records_total{reason=\"queue_full\"} " + std::to_string(queue_full) +
         '\n';
  out += "blockwatch_dropped_records_total{reason=\"no_collector\"} " +
         std::to_string(no_collector) + '\n';
  out += "blockwatch_dropped_records_total{reason=\"too_deep\"} " + std::to_string(too_deep) + '\n';
  family(out, "blockwatch_records_received_total", "counter",
         "Event records received from processes.");
  out += "blockwatch_records_received_total " + std::to_string(received) + '\n';
  family(out, "blockwatch_processes", "gauge",
         "Processes known to the collector, by stream state.");
  out += "blockwatch_processes{state=\"connected\"} " + std::to_string(connected) + '\n';
  out += "blockwatch_processes{state=\"ended\"} " +
         std::to_string(report.processes.size() - connected) + '\n';
  family(out, "blockwatch_hotspots", "gauge", "Distinct hotspots (kind and stack) in the report.");
  out += "blockwatch_hotspots " + std::to_string(report.hotspots.size()) + '\n';
}

// Per task entry (report.tasks): the exact count, and the timed tasks'
// durations as a histogram on common/task_histogram.h's bucket bounds.
void task_families(const Report& report, std::string& out) {
  if (report.tasks.empty()) return;
  auto labels = [](const TaskStats& t) {
    const size_t slash = t.exe.rfind('/');
    const std::string entry = t.source == "api" ? t.label : (t.function.empty() ? t.rule : t.function);
    return "exe=\"" + escape_label_value(t.exe.substr(slash == std::string::npos ? 0 : slash + 1)) +
           "\",source=\"" + t.source + "\",entry=\"" + escape_label_value(entry) + "\"";
  };
  family(out, "blockwatch_tasks_total", "counter", "Tasks run, per task entry (exact).");
  for (const TaskStats& t : report.tasks) {
    out += "blockwatch_tasks_total{" + labels(t) + "} " + std::to_string(t.tasks_total) + '\n';
  }
  family(out, "blockwatch_task_duration_seconds", "histogram",
         "Durations of the timed tasks per task entry (probe-entered tasks: a random sample; "
         "API tasks: all).");
  for (const TaskStats& t : report.tasks) {
    const std::string l = labels(t);
    uint64_t cumulative = 0;
    // Up to the last non-empty bucket (the rest only repeat the count), then +Inf.
    for (size_t i = 0; i < t.buckets.size(); ++i) {
      cumulative += t.buckets[i];
      if (static_cast<int>(i) == task_histogram::kBuckets - 1) break;  // open-ended: +Inf below
      out += "blockwatch_task_duration_seconds_bucket{" + l + ",le=\"" +
             format_seconds(task_histogram::bucket_upper_ns(static_cast<int>(i))) + "\"} " +
             std::to_string(cumulative) + '\n';
    }
    out += "blockwatch_task_duration_seconds_bucket{" + l + ",le=\"+Inf\"} " +
           std::to_string(t.tasks_timed) + '\n';
    out += "blockwatch_task_duration_seconds_sum{" + l + "} " + format_seconds(t.timed_sum_ns) + '\n';
    out += "blockwatch_task_duration_seconds_count{" + l + "} " + std::to_string(t.tasks_timed) +
           '\n';
  }
  family(out, "blockwatch_tasks_over_1ms", "gauge",
         "Tasks that ran over 1 ms per task entry; estimated=\"true\" when scaled up from the "
         "timed sample.");
  for (const TaskStats& t : report.tasks) {
    out += "blockwatch_tasks_over_1ms{" + labels(t) + ",estimated=\"" +
           (t.over_1ms_exact ? "false" : "true") + "\"} " + std::to_string(t.over_1ms) + '\n';
  }
}

}  // namespace

int64_t read_resident_memory_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size_pages = 0, resident_pages = 0;
  if (!(statm >> size_pages >> resident_pages)) return 0;
  return resident_pages * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

std::string render_prometheus_metrics(const Report& report, int64_t resident_memory_bytes) {
  std::string out;
  blocking_families(report, out);
  hotspot_families(report, out);
  process_families(report, out);
  task_families(report, out);
  family(out, "blockwatch_collector_resident_memory_bytes", "gauge",
         "Resident memory of the collector.");
  out +=
      "blockwatch_collector_resident_memory_bytes " + std::to_string(resident_memory_bytes) + '\n';
  return out;
}

}  // namespace blockwatch::collector
