// JSON (de)serialisation of Report with nlohmann::json's ADL hooks, generated from
// one list of report_model.h field names per struct.
#include "collector/report_json.h"

#include <fstream>
#include <nlohmann/json.hpp>

namespace blockwatch::collector {

using nlohmann::json;

namespace {
// Reads key if present (older or hand-written reports may omit fields).
template <typename T>
void get_if(const json& j, const char* key, T* value) {
  auto it = j.find(key);
  if (it != j.end() && !it->is_null()) it->get_to(*value);
}
}  // namespace

// One field list per struct generates both directions, so a field added to
// report_model.h is added to the JSON in one place.
#define BW_JSON_WRITE_FIELD(field) j[#field] = value.field;
#define BW_JSON_READ_FIELD(field) get_if(j, #field, &value.field);
#define BW_JSON_STRUCT(Type, FIELDS)                                              \
  void to_json(json& j, const Type& value) {                                      \
    j = json::object();                                                           \
    FIELDS(BW_JSON_WRITE_FIELD)                                                   \
  }                                                                               \
  void from_json(const json& j, Type& value) { FIELDS(BW_JSON_READ_FIELD) }

// Source fields of a frame (file, line, function_line, inlined,
// build_id_mismatch, no_debug_info) are written only when set: frames without debug info read as
// before, and a reader of an older report gets the defaults.
#define BW_STACK_FRAME_FIELDS(X) X(function) X(module) X(offset) X(pc)
#define BW_STACK_FRAME_SOURCE_FIELDS(X) \
  X(file) X(line) X(function_line) X(inlined) X(build_id_mismatch) X(no_debug_info)
#define BW_PROCESS_INFO_FIELDS(X)                                                     \
  X(pid) X(ppid) X(exe) X(argv) X(hostname) X(start_unix_ns) X(threshold_ns)          \
  X(stall_threshold_ns) X(forked_child) X(connected) X(said_goodbye) X(end_reason)    \
  X(exit_status) X(events) X(dropped) X(dropped_queue_full) X(dropped_no_collector)   \
  X(dropped_too_deep) X(stalls_suppressed) X(task_probes) X(task_probes_note) \
  X(threads_unwatched)
#define BW_TASK_PROBE_FIELDS(X) X(rule) X(function) X(module) X(installed) X(refused)
#define BW_BLOCKING_CALL_FIELDS(X) X(kind) X(function)
#define BW_OCCURRENCE_FIELDS(X) X(pid) X(tid) X(thread) X(start_unix_ns) X(duration_ns) X(task)
#define BW_HOTSPOT_FIELDS(X)                                                           \
  X(kind) X(scope) X(count) X(total_ns) X(max_ns) X(p50_ns) X(p99_ns) X(threads) X(holders)     \
  X(tasks) X(functions) X(fd_types) X(path) X(allowed) X(allow_reason) X(exe) X(pids)  \
  X(stack) X(stack_source) X(caused_by) X(task_function) X(cpu_ns) X(runqueue_ns) X(offcpu_ns) X(occurrences) \
  X(is_new)
#define BW_TASK_STATS_FIELDS(X)                                                        \
  X(source) X(rule) X(function) X(label) X(exe) X(pids) X(tasks_total) X(tasks_timed)  \
  X(p50_ns) X(p99_ns) X(max_ns) X(timed_sum_ns) X(timed_over_1ms) X(over_1ms) X(over_1ms_exact) X(buckets)
#define BW_PATH_TOTALS_FIELDS(X) X(path) X(blocking_events) X(blocked_ns) X(stalls) X(stalled_ns)

void to_json(json& j, const StackFrame& value) {
  j = json::object();
  BW_STACK_FRAME_FIELDS(BW_JSON_WRITE_FIELD)
#define BW_JSON_WRITE_FIELD_IF_SET(field) \
  if (value.field != decltype(value.field){}) j[#field] = value.field;
  BW_STACK_FRAME_SOURCE_FIELDS(BW_JSON_WRITE_FIELD_IF_SET)
#undef BW_JSON_WRITE_FIELD_IF_SET
}
void from_json(const json& j, StackFrame& value) {
  BW_STACK_FRAME_FIELDS(BW_JSON_READ_FIELD)
  BW_STACK_FRAME_SOURCE_FIELDS(BW_JSON_READ_FIELD)
}
BW_JSON_STRUCT(TaskProbe, BW_TASK_PROBE_FIELDS)
BW_JSON_STRUCT(ProcessInfo, BW_PROCESS_INFO_FIELDS)
BW_JSON_STRUCT(BlockingCall, BW_BLOCKING_CALL_FIELDS)
BW_JSON_STRUCT(Occurrence, BW_OCCURRENCE_FIELDS)
BW_JSON_STRUCT(Hotspot, BW_HOTSPOT_FIELDS)
BW_JSON_STRUCT(PathTotals, BW_PATH_TOTALS_FIELDS)
BW_JSON_STRUCT(TaskStats, BW_TASK_STATS_FIELDS)

void write_json_report(const Report& r, std::ostream& out) {
  json j = {{"version", r.version},
            {"processes", r.processes},
            {"hotspots", r.hotspots},
            {"paths", r.paths},
            {"tasks", r.tasks},
            {"summary",
             {{"blocking_events", r.blocking_events},
              {"blocked_ns", r.blocked_ns},
              {"stalls", r.stalls},
              {"stalled_ns", r.stalled_ns},
              {"allowed_events", r.allowed_events},
              {"dropped", r.dropped},
              {"threads_unwatched", r.threads_unwatched},
              {"task_labels_dropped", r.task_labels_dropped}}},
            {"verdict", {{"failed", r.verdict.failed}, {"reasons", r.verdict.reasons}}}};
  // Invalid UTF-8 from a target's thread names must not make the report unwritable.
  out << j.dump(1, ' ', false, json::error_handler_t::replace) << '\n';
}

bool read_json_report(std::istream& in, Report* r, std::string* error) {
  try {
    json j = json::parse(in);
    if (!j.is_object() || j.value("version", 0) != 1) {
      *error = "not a blockwatch JSON report (version 1)";
      return false;
    }
    Report parsed;
    get_if(j, "processes", &parsed.processes);
    get_if(j, "hotspots", &parsed.hotspots);
    get_if(j, "paths", &parsed.paths);
    get_if(j, "tasks", &parsed.tasks);
    if (auto s = j.find("summary"); s != j.end()) {
      get_if(*s, "blocking_events", &parsed.blocking_events);
      get_if(*s, "blocked_ns", &parsed.blocked_ns);
      get_if(*s, "stalls", &parsed.stalls);
      get_if(*s, "stalled_ns", &parsed.stalled_ns);
      get_if(*s, "allowed_events", &parsed.allowed_events);
      get_if(*s, "dropped", &parsed.dropped);
      get_if(*s, "threads_unwatched", &parsed.threads_unwatched);
      get_if(*s, "task_labels_dropped", &parsed.task_labels_dropped);
    }
    if (auto v = j.find("verdict"); v != j.end()) {
      get_if(*v, "failed", &parsed.verdict.failed);
      get_if(*v, "reasons", &parsed.verdict.reasons);
    }
    *r = std::move(parsed);
    return true;
  } catch (const json::exception& e) {
    *error = std::string("bad JSON report: ") + e.what();
    return false;
  }
}

bool read_json_report_file(const std::string& path, Report* report, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = path + ": cannot open";
    return false;
  }
  if (!read_json_report(in, report, error)) {
    *error = path + ": " + *error;
    return false;
  }
  return true;
}

}  // namespace blockwatch::collector
