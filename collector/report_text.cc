// Renders the text report line by line; every line is cut to kTextReportColumns so
// long C++ names never wrap a terminal.
#include "collector/report_text.h"

#include <algorithm>
#include <ostream>

#include "collector/config.h"

namespace blockwatch::collector {

namespace {

class LineWriter {
 public:
  explicit LineWriter(std::ostream& out) : out_(out) {}
  void line(std::string text) {
    if (text.size() > kTextReportColumns) {
      text.resize(kTextReportColumns - 3);
      text += "...";
    }
    out_ << text << '\n';
  }

 private:
  std::ostream& out_;
};

std::string join(const std::vector<std::string>& names, size_t max_names) {
  std::string text;
  for (size_t i = 0; i < names.size() && i < max_names; ++i) {
    if (i > 0) text += ", ";
    text += names[i];
  }
  if (names.size() > max_names) text += ", +" + std::to_string(names.size() - max_names);
  return text;
}

void add_unique(std::vector<std::string>* names, const std::string& name) {
  if (std::find(names->begin(), names->end(), name) == names->end()) names->push_back(name);
}

std::string basename(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// "model::Infer() demo_service.cc:88", or with the module when there is no source
// line: "model::Infer()  (demo_service)"; inlined frames say so.
std::string frame_text(const StackFrame& f) {
  std::string text = f.function;
  if (!f.file.empty()) {
    text += " " + basename(f.file);
    if (f.line > 0) text += ":" + std::to_string(f.line);
  } else if (!f.module.empty()) {
    text += "  (" + basename(f.module) + ")";
  }
  if (f.inlined) text += "  [inlined]";
  return text;
}

void write_hotspot(LineWriter& w, size_t rank, const Hotspot& h, const TextReportOptions& o) {
  const bool turn_stall = h.kind == "stall" && h.scope == "turn";
  const std::string kind = turn_stall ? std::string("turn stall") : h.kind;
  std::string head = "#" + std::to_string(rank) + " " + kind + "  " + std::to_string(h.count) +
                     "x  total " + format_duration(h.total_ns) + "  max " +
                     format_duration(h.max_ns) + "  p99 " + format_duration(h.p99_ns);
  if (!h.path.empty()) head += "  [" + h.path + "]";
  if (!h.is_new) head += "  (in baseline)";
  w.line(head);
  if (turn_stall) {
    w.line("   a loop turn, not one task: it may span several tasks (task boundaries unknown)");
  }
  if (h.allowed) w.line("   allowed: " + h.allow_reason);
  std::string who = "   threads: " + join(h.threads, 4);
  if (!h.holders.empty()) who += "   held by: " + join(h.holders, 3);
  w.line(who);
  if (!h.tasks.empty()) w.line("   tasks: " + join(h.tasks, 4));
  // Where a stall's time went: a stall spent waiting for a CPU is the
  // machine's (an overloaded host), not the task's code.
  const bool stall_split = h.kind == "stall" && h.cpu_ns + h.runqueue_ns + h.offcpu_ns > 0;
  if (stall_split) {
    w.line("   time: on CPU " + format_duration(h.cpu_ns) + ", waiting for a CPU " +
           format_duration(h.runqueue_ns) + ", blocked " + format_duration(h.offcpu_ns));
  }
  if (!h.task_function.empty()) w.line("   task function: " + h.task_function);
  // A stall the watchdog could not sample: the stack is the blocking call's.
  if (h.stack_source == "blocking_call") {
    std::string call = h.caused_by.function.empty()
                           ? h.caused_by.kind
                           : h.caused_by.function + ", " + h.caused_by.kind;
    w.line("   stack of the blocking call it was in (" + call + "):");
  }
  // frames_per_hotspot counts physical frames: the functions inlined into a
  // frame are shown with it.
  size_t shown = 0;
  for (const StackFrame& f : h.stack) {
    if (shown == o.frames_per_hotspot) break;
    if (is_system_frame(f) && shown == 0 && &f != &h.stack.back()) continue;
    w.line("   at " + frame_text(f));
    if (!f.inlined) ++shown;
  }
  if (h.stack.empty()) {
    // Samples are taken on the thread's CPU clock: a thread that waits for a
    // CPU gives none.
    w.line(stall_split && h.runqueue_ns > h.cpu_ns + h.offcpu_ns
               ? "   (no stack: the thread was mostly waiting for a CPU, not running its code)"
               : "   (no stack)");
  }
}

// Per process, only when there is something to say: what was probed, what was
// refused and why, and what probes never cover.
void write_task_probes(LineWriter& w, const Report& report) {
  for (const ProcessInfo& p : report.processes) {
    std::vector<std::string> installed;
    for (const TaskProbe& probe : p.task_probes) {
      if (probe.installed) add_unique(&installed, probe.rule);
    }
    const bool refusals = std::any_of(p.task_probes.begin(), p.task_probes.end(),
                                      [](const TaskProbe& probe) { return !probe.installed; });
    if (installed.empty() && !refusals && p.task_probes_note.empty()) continue;
    const std::string who = basename(p.exe) + " (pid " + std::to_string(p.pid) + ")";
    w.line("task probes in " + who + ": " +
           (installed.empty() ? std::string("none installed") : join(installed, 3)));
    // Once per function and reason: a Rust generic has one copy per type.
    std::vector<std::string> refusals_seen;
    for (const TaskProbe& probe : p.task_probes) {
      if (probe.installed) continue;
      const std::string line = "   refused " + probe.function + ": " + probe.refused;
      if (std::find(refusals_seen.begin(), refusals_seen.end(), line) != refusals_seen.end()) {
        continue;
      }
      refusals_seen.push_back(line);
      w.line(line);
    }
    if (!p.task_probes_note.empty()) w.line("   " + p.task_probes_note);
  }
}

// Modules in the reported stacks that had no debug info anywhere the collector
// looked: their frames have no file:line, and the report says so rather than
// leave the user to wonder.
void write_missing_debug_info(LineWriter& w, const Report& report) {
  std::vector<std::string> modules;
  for (const Hotspot& h : report.hotspots) {
    for (const StackFrame& f : h.stack) {
      if (f.no_debug_info && !f.module.empty()) add_unique(&modules, basename(f.module));
    }
  }
  if (modules.empty()) return;
  w.line("");
  w.line("no debug info: " + join(modules, 6) + " (no file:line in their frames;");
  w.line("   install their debug symbols, or set DEBUGINFOD_URLS for a debuginfod server)");
}

// "boost::asio::detail::scheduler::do_run_one (probe)" or "api task 'parse'".
std::string task_entry_name(const TaskStats& t) {
  if (t.source == "api") return "task '" + (t.label.empty() ? std::string("(no label)") : t.label) + "'";
  return (t.function.empty() ? t.rule : t.function) + " (probe)";
}

// Per task entry: how many tasks, how long the timed ones ran, how many went
// over 1 ms. Sampled numbers say so ("16 of 2050 timed", "~50 estimated").
void write_task_stats(LineWriter& w, const Report& report, size_t max_lines) {
  if (report.tasks.empty()) return;
  w.line("");
  w.line("tasks (per task entry; durations of the timed tasks, a random sample unless all were):");
  for (size_t i = 0; i < report.tasks.size() && i < max_lines; ++i) {
    const TaskStats& t = report.tasks[i];
    w.line("   " + task_entry_name(t) + " in " + basename(t.exe));
    std::string timed = t.tasks_timed >= t.tasks_total
                            ? "all timed"
                            : std::to_string(t.tasks_timed) + " of " +
                                  std::to_string(t.tasks_total) + " timed";
    std::string line = "      " + std::to_string(t.tasks_total) + " tasks (" + timed + ")";
    if (t.tasks_timed > 0) {
      line += ": p50 " + format_duration(t.p50_ns) + ", p99 " + format_duration(t.p99_ns) +
              ", max " + format_duration(t.max_ns);
    }
    w.line(line);
    if (t.tasks_timed == 0) continue;
    w.line(t.over_1ms_exact
               ? "      over 1ms: " + std::to_string(t.over_1ms)
               : "      over 1ms: ~" + std::to_string(t.over_1ms) + " (estimated: " +
                     std::to_string(t.timed_over_1ms) + " of the timed tasks, scaled)");
  }
  if (report.tasks.size() > max_lines) {
    w.line("   ... and " + std::to_string(report.tasks.size() - max_lines) + " more task entries");
  }
  // The task functions that stalled a worker (named from their stalls' stacks):
  // the CPU work to move off the executor (spawn_blocking, another pool).
  std::vector<std::pair<std::string, uint64_t>> stalled;
  for (const Hotspot& h : report.hotspots) {
    if (h.kind != "stall" || h.scope == "turn" || h.task_function.empty() || h.allowed) continue;
    auto it = std::find_if(stalled.begin(), stalled.end(),
                           [&](const auto& s) { return s.first == h.task_function; });
    if (it == stalled.end()) {
      stalled.emplace_back(h.task_function, h.count);
    } else {
      it->second += h.count;
    }
  }
  if (!stalled.empty()) {
    w.line("   task functions over the stall threshold (move their work off the executor):");
    for (const auto& [function, count] : stalled) {
      w.line("      " + function + "  (" + std::to_string(count) + " stalls)");
    }
  }
  if (report.task_labels_dropped > 0) {
    w.line("   " + std::to_string(report.task_labels_dropped) +
           " API tasks not listed (a thread had too many distinct labels)");
  }
}

}  // namespace

void write_text_report(const Report& report, std::ostream& out, const TextReportOptions& o) {
  LineWriter w(out);
  w.line("blockwatch: " + std::to_string(report.blocking_events) + " blocking events (" +
         format_duration(report.blocked_ns) + "), " + std::to_string(report.stalls) + " stalls (" +
         format_duration(report.stalled_ns) + "), " + std::to_string(report.allowed_events) +
         " allowed, " + std::to_string(report.processes.size()) + " processes");
  std::vector<const Hotspot*> order;
  for (const Hotspot& h : report.hotspots) order.push_back(&h);
  std::stable_sort(order.begin(), order.end(),
                   [](const Hotspot* a, const Hotspot* b) { return !a->allowed && b->allowed; });
  if (!order.empty()) w.line("");
  for (size_t i = 0; i < order.size() && i < o.max_hotspots; ++i) {
    write_hotspot(w, i + 1, *order[i], o);
  }
  if (order.size() > o.max_hotspots) {
    w.line("   ... and " + std::to_string(order.size() - o.max_hotspots) + " more hotspots");
  }
  if (!report.paths.empty()) {
    w.line("");
    w.line("paths:");
    for (const PathTotals& p : report.paths) {
      w.line("   " + (p.path.empty() ? std::string("(no path)") : p.path) + ": " +
             std::to_string(p.blocking_events) + " blocking (" + format_duration(p.blocked_ns) +
             "), " + std::to_string(p.stalls) + " stalls (" + format_duration(p.stalled_ns) + ")");
    }
  }
  write_task_stats(w, report, o.max_hotspots);
  write_task_probes(w, report);
  write_missing_debug_info(w, report);
  if (report.dropped > 0) {
    w.line("");
    w.line("dropped: " + std::to_string(report.dropped) +
           " records were lost (queue full, no collector or too deep); totals are lower bounds");
  }
  if (report.threads_unwatched > 0) {
    w.line("");
    w.line("unwatched: " + std::to_string(report.threads_unwatched) +
           " threads found every blockwatch thread slot taken (more live threads than slots);");
    w.line("   their blocking calls and stalls were not recorded");
  }
  w.line("");
  if (report.verdict.failed) {
    w.line("verdict: FAILED");
    for (const auto& reason : report.verdict.reasons) w.line("   " + reason);
  } else {
    w.line("verdict: ok");
  }
  for (const auto& path : o.written_reports) w.line("report: " + path);
}

}  // namespace blockwatch::collector
