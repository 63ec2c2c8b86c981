// The terminal report: fits kTextReportColumns columns. Top hotspots (allowed ones
// after the others) with their first user frames (libc and pthread internals
// skipped), per-path totals, drops, the verdict, and where the full reports went.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "collector/report_model.h"

namespace blockwatch::collector {

inline constexpr size_t kTextReportColumns = 100;

struct TextReportOptions {
  size_t max_hotspots = 10;
  size_t frames_per_hotspot = 3;
  std::vector<std::string> written_reports;  // paths listed at the end
};

void write_text_report(const Report& report, std::ostream& out,
                       const TextReportOptions& options = {});

}  // namespace blockwatch::collector
