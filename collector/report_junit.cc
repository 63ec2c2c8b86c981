// The JUnit XML writer. Hotspots are grouped into test cases (by path, else by
// process); text from the report (frame names, thread names, reasons) is escaped,
// and characters XML 1.0 forbids are replaced, so any report gives parseable XML.
#include "collector/report_junit.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <vector>

#include "common/duration.h"

namespace blockwatch::collector {
namespace {

constexpr size_t kMaxFramesPerHotspot = 5;
constexpr size_t kMaxHotspotsPerCase = 50;

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // XML 1.0 allows no control characters but tab, newline and return.
        out += (byte < 0x20 && c != '\t' && c != '\n' && c != '\r') ? '?' : c;
    }
  }
  return out;
}

struct TestCase {
  std::string classname;
  std::string name;
  std::vector<const Hotspot*> hotspots;
};

std::string describe_hotspot(const Hotspot& hotspot) {
  std::string text = hotspot.kind + ": " + std::to_string(hotspot.count) + " times, " +
                     duration::format_duration(hotspot.total_ns) + " total, max " +
                     duration::format_duration(hotspot.max_ns);
  if (!hotspot.threads.empty()) {
    text += ", threads";
    for (const auto& thread : hotspot.threads) text += ' ' + thread;
  }
  if (!hotspot.holders.empty()) {
    text += ", held by";
    for (const auto& holder : hotspot.holders) text += ' ' + holder;
  }
  if (hotspot.allowed) text += " [allowed: " + hotspot.allow_reason + "]";
  if (!hotspot.is_new) text += " [in baseline]";
  text += '\n';
  for (size_t i = 0; i < hotspot.stack.size() && i < kMaxFramesPerHotspot; ++i) {
    const StackFrame& frame = hotspot.stack[i];
    text += "    at " + (frame.function.empty() ? std::string("[unknown]") : frame.function);
    if (!frame.file.empty()) {
      text += ' ' + frame.file.substr(frame.file.rfind('/') + 1);
      if (frame.line > 0) text += ':' + std::to_string(frame.line);
    }
    if (frame.inlined) text += " [inlined]";
    if (!frame.module.empty()) {
      char offset[32];
      std::snprintf(offset, sizeof offset, "+0x%llx",
                    static_cast<unsigned long long>(frame.offset));
      text += " (" + frame.module + offset + ')';
    }
    text += '\n';
  }
  if (hotspot.stack.size() > kMaxFramesPerHotspot)
    text +=
        "    ... " + std::to_string(hotspot.stack.size() - kMaxFramesPerHotspot) + " more frames\n";
  return text;
}

std::string describe_hotspots(const std::vector<const Hotspot*>& hotspots) {
  std::string text;
  for (size_t i = 0; i < hotspots.size() && i < kMaxHotspotsPerCase; ++i)
    text += describe_hotspot(*hotspots[i]);
  if (hotspots.size() > kMaxHotspotsPerCase)
    text += "... " + std::to_string(hotspots.size() - kMaxHotspotsPerCase) + " more hotspots\n";
  return text;
}

bool report_has_paths(const Report& report) {
  for (const auto& totals : report.paths)
    if (!totals.path.empty()) return true;
  return std::any_of(report.hotspots.begin(), report.hotspots.end(),
                     [](const Hotspot& h) { return !h.path.empty(); });
}

std::vector<TestCase> cases_by_path(const Report& report) {
  std::map<std::string, TestCase> by_path;  // sorted: deterministic order
  for (const auto& totals : report.paths)
    if (!totals.path.empty()) by_path[totals.path] = {"blockwatch.path", totals.path, {}};
  for (const auto& hotspot : report.hotspots) {
    std::string name = hotspot.path.empty() ? "(no path)" : hotspot.path;
    auto& test_case = by_path[name];
    test_case.classname = "blockwatch.path";
    test_case.name = name;
    test_case.hotspots.push_back(&hotspot);
  }
  std::vector<TestCase> cases;
  for (auto& [name, test_case] : by_path) cases.push_back(std::move(test_case));
  return cases;
}

std::vector<TestCase> cases_by_process(const Report& report) {
  std::vector<TestCase> cases;
  for (const auto& process : report.processes) {
    TestCase test_case{
        "blockwatch.process", "pid " + std::to_string(process.pid) + ' ' + process.exe, {}};
    for (const auto& hotspot : report.hotspots) {
      bool in_process = hotspot.pids.empty() ? hotspot.exe == process.exe
                                             : std::find(hotspot.pids.begin(), hotspot.pids.end(),
                                                         process.pid) != hotspot.pids.end();
      if (in_process) test_case.hotspots.push_back(&hotspot);
    }
    cases.push_back(std::move(test_case));
  }
  if (cases.empty() && !report.hotspots.empty()) {
    TestCase all{"blockwatch.process", "all processes", {}};
    for (const auto& hotspot : report.hotspots) all.hotspots.push_back(&hotspot);
    cases.push_back(std::move(all));
  }
  return cases;
}

void write_test_case(const TestCase& test_case, bool verdict_failed, std::ostream& out) {
  std::vector<const Hotspot*> failing;
  if (verdict_failed) {
    for (const Hotspot* hotspot : test_case.hotspots)
      if (!hotspot->allowed && hotspot->is_new) failing.push_back(hotspot);
  }
  out << "    <testcase classname=\"" << xml_escape(test_case.classname) << "\" name=\""
      << xml_escape(test_case.name) << "\">\n";
  if (!failing.empty()) {
    int64_t failing_ns = 0;
    for (const Hotspot* hotspot : failing) failing_ns += hotspot->total_ns;
    std::string message =
        std::to_string(failing.size()) + " blocking hotspot" + (failing.size() == 1 ? "" : "s") +
        ", " + duration::format_duration(failing_ns) + " blocked or stalled, in " + test_case.name;
    out << "      <failure type=\"blockwatch.hotspot\" message=\"" << xml_escape(message) << "\">"
        << xml_escape(describe_hotspots(failing)) << "</failure>\n";
  }
  if (!test_case.hotspots.empty())
    out << "      <system-out>" << xml_escape(describe_hotspots(test_case.hotspots))
        << "</system-out>\n";
  out << "    </testcase>\n";
}

}  // namespace

void write_junit_report(const Report& report, std::ostream& out) {
  std::vector<TestCase> cases =
      report_has_paths(report) ? cases_by_path(report) : cases_by_process(report);
  const bool verdict_failed = report.verdict.failed;
  size_t failures = verdict_failed ? 1 : 0;
  for (const auto& test_case : cases) {
    bool fails =
        verdict_failed && std::any_of(test_case.hotspots.begin(), test_case.hotspots.end(),
                                      [](const Hotspot* h) { return !h->allowed && h->is_new; });
    failures += fails ? 1 : 0;
  }
  const size_t tests = cases.size() + 1;
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<testsuites name=\"blockwatch\" tests=\"" << tests << "\" failures=\"" << failures
      << "\" errors=\"0\">\n"
      << "  <testsuite name=\"blockwatch\" tests=\"" << tests << "\" failures=\"" << failures
      << "\" errors=\"0\" skipped=\"0\">\n";
  out << "    <testcase classname=\"blockwatch\" name=\"verdict\">\n";
  if (verdict_failed) {
    std::string reasons;
    for (const auto& reason : report.verdict.reasons) reasons += reason + '\n';
    std::string message = report.verdict.reasons.empty() ? "blockwatch verdict: failed"
                                                         : report.verdict.reasons.front();
    out << "      <failure type=\"blockwatch.verdict\" message=\"" << xml_escape(message) << "\">"
        << xml_escape(reasons) << "</failure>\n";
  }
  out << "    </testcase>\n";
  for (const auto& test_case : cases) write_test_case(test_case, verdict_failed, out);
  out << "  </testsuite>\n</testsuites>\n";
}

}  // namespace blockwatch::collector
