// JSON (de)serialisation of Report with nlohmann::json's ADL hooks: one to_json and
// one from_json per struct, listing the report_model.h fields by name.
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

void to_json(json& j, const StackFrame& f) {
  j = json{{"function", f.function}, {"module", f.module}, {"offset", f.offset}, {"pc", f.pc}};
}
void from_json(const json& j, StackFrame& f) {
  get_if(j, "function", &f.function);
  get_if(j, "module", &f.module);
  get_if(j, "offset", &f.offset);
  get_if(j, "pc", &f.pc);
}

void to_json(json& j, const ProcessInfo& p) {
  j = json{{"pid", p.pid},
           {"ppid", p.ppid},
           {"exe", p.exe},
           {"argv", p.argv},
           {"hostname", p.hostname},
           {"start_unix_ns", p.start_unix_ns},
           {"threshold_ns", p.threshold_ns},
           {"stall_threshold_ns", p.stall_threshold_ns},
           {"forked_child", p.forked_child},
           {"connected", p.connected},
           {"said_goodbye", p.said_goodbye},
           {"end_reason", p.end_reason},
           {"exit_status", p.exit_status},
           {"events", p.events},
           {"dropped", p.dropped},
           {"dropped_queue_full", p.dropped_queue_full},
           {"dropped_no_collector", p.dropped_no_collector},
           {"dropped_too_deep", p.dropped_too_deep},
           {"stalls_suppressed", p.stalls_suppressed}};
}
void from_json(const json& j, ProcessInfo& p) {
  get_if(j, "pid", &p.pid);
  get_if(j, "ppid", &p.ppid);
  get_if(j, "exe", &p.exe);
  get_if(j, "argv", &p.argv);
  get_if(j, "hostname", &p.hostname);
  get_if(j, "start_unix_ns", &p.start_unix_ns);
  get_if(j, "threshold_ns", &p.threshold_ns);
  get_if(j, "stall_threshold_ns", &p.stall_threshold_ns);
  get_if(j, "forked_child", &p.forked_child);
  get_if(j, "connected", &p.connected);
  get_if(j, "said_goodbye", &p.said_goodbye);
  get_if(j, "end_reason", &p.end_reason);
  get_if(j, "exit_status", &p.exit_status);
  get_if(j, "events", &p.events);
  get_if(j, "dropped", &p.dropped);
  get_if(j, "dropped_queue_full", &p.dropped_queue_full);
  get_if(j, "dropped_no_collector", &p.dropped_no_collector);
  get_if(j, "dropped_too_deep", &p.dropped_too_deep);
  get_if(j, "stalls_suppressed", &p.stalls_suppressed);
}

void to_json(json& j, const Occurrence& o) {
  j = json{{"pid", o.pid},
           {"tid", o.tid},
           {"thread", o.thread},
           {"start_unix_ns", o.start_unix_ns},
           {"duration_ns", o.duration_ns},
           {"task", o.task}};
}
void from_json(const json& j, Occurrence& o) {
  get_if(j, "pid", &o.pid);
  get_if(j, "tid", &o.tid);
  get_if(j, "thread", &o.thread);
  get_if(j, "start_unix_ns", &o.start_unix_ns);
  get_if(j, "duration_ns", &o.duration_ns);
  get_if(j, "task", &o.task);
}

void to_json(json& j, const Hotspot& h) {
  j = json{{"kind", h.kind},
           {"count", h.count},
           {"total_ns", h.total_ns},
           {"max_ns", h.max_ns},
           {"p50_ns", h.p50_ns},
           {"p99_ns", h.p99_ns},
           {"threads", h.threads},
           {"holders", h.holders},
           {"tasks", h.tasks},
           {"functions", h.functions},
           {"fd_types", h.fd_types},
           {"path", h.path},
           {"allowed", h.allowed},
           {"allow_reason", h.allow_reason},
           {"exe", h.exe},
           {"pids", h.pids},
           {"stack", h.stack},
           {"cpu_ns", h.cpu_ns},
           {"runqueue_ns", h.runqueue_ns},
           {"offcpu_ns", h.offcpu_ns},
           {"occurrences", h.occurrences},
           {"is_new", h.is_new}};
}
void from_json(const json& j, Hotspot& h) {
  get_if(j, "kind", &h.kind);
  get_if(j, "count", &h.count);
  get_if(j, "total_ns", &h.total_ns);
  get_if(j, "max_ns", &h.max_ns);
  get_if(j, "p50_ns", &h.p50_ns);
  get_if(j, "p99_ns", &h.p99_ns);
  get_if(j, "threads", &h.threads);
  get_if(j, "holders", &h.holders);
  get_if(j, "tasks", &h.tasks);
  get_if(j, "functions", &h.functions);
  get_if(j, "fd_types", &h.fd_types);
  get_if(j, "path", &h.path);
  get_if(j, "allowed", &h.allowed);
  get_if(j, "allow_reason", &h.allow_reason);
  get_if(j, "exe", &h.exe);
  get_if(j, "pids", &h.pids);
  get_if(j, "stack", &h.stack);
  get_if(j, "cpu_ns", &h.cpu_ns);
  get_if(j, "runqueue_ns", &h.runqueue_ns);
  get_if(j, "offcpu_ns", &h.offcpu_ns);
  get_if(j, "occurrences", &h.occurrences);
  get_if(j, "is_new", &h.is_new);
}

void to_json(json& j, const PathTotals& p) {
  j = json{{"path", p.path},
           {"blocking_events", p.blocking_events},
           {"blocked_ns", p.blocked_ns},
           {"stalls", p.stalls},
           {"stalled_ns", p.stalled_ns}};
}
void from_json(const json& j, PathTotals& p) {
  get_if(j, "path", &p.path);
  get_if(j, "blocking_events", &p.blocking_events);
  get_if(j, "blocked_ns", &p.blocked_ns);
  get_if(j, "stalls", &p.stalls);
  get_if(j, "stalled_ns", &p.stalled_ns);
}

void write_json_report(const Report& r, std::ostream& out) {
  json j = {{"version", r.version},
            {"processes", r.processes},
            {"hotspots", r.hotspots},
            {"paths", r.paths},
            {"summary",
             {{"blocking_events", r.blocking_events},
              {"blocked_ns", r.blocked_ns},
              {"stalls", r.stalls},
              {"stalled_ns", r.stalled_ns},
              {"allowed_events", r.allowed_events},
              {"dropped", r.dropped}}},
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
    if (auto s = j.find("summary"); s != j.end()) {
      get_if(*s, "blocking_events", &parsed.blocking_events);
      get_if(*s, "blocked_ns", &parsed.blocked_ns);
      get_if(*s, "stalls", &parsed.stalls);
      get_if(*s, "stalled_ns", &parsed.stalled_ns);
      get_if(*s, "allowed_events", &parsed.allowed_events);
      get_if(*s, "dropped", &parsed.dropped);
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
