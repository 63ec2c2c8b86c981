// The folded-stacks writer. flamegraph.pl splits a line at its last space and each
// stack at `;`, so frame names lose their `;` and line breaks, and keep spaces.
#include "collector/report_folded.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <string>

namespace blockwatch::collector {
namespace {

std::string folded_frame_name(const StackFrame& frame) {
  std::string name = frame.function;
  if (name.empty()) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "0x%" PRIx64, frame.offset);
    name = buffer;
    if (!frame.module.empty()) name = frame.module.substr(frame.module.rfind('/') + 1) + '+' + name;
  }
  for (char& c : name) {
    if (c == ';') c = ':';
    if (c == '\n' || c == '\r') c = ' ';
  }
  return name;
}

}  // namespace

void write_folded_report(const Report& report, std::ostream& out) {
  std::map<std::string, int64_t> ns_by_stack;
  for (const auto& hotspot : report.hotspots) {
    std::string line = '[' + hotspot.kind + ']';
    if (hotspot.allowed) line += ";[allowed]";
    if (hotspot.stack.empty()) line += ";[no stack]";
    // The stack is innermost first; folded stacks are root first.
    for (auto frame = hotspot.stack.rbegin(); frame != hotspot.stack.rend(); ++frame)
      line += ';' + folded_frame_name(*frame);
    ns_by_stack[line] += std::max<int64_t>(hotspot.total_ns, 0);
  }
  for (const auto& [stack, ns] : ns_by_stack) out << stack << ' ' << ns << '\n';
}

}  // namespace blockwatch::collector
