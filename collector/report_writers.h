// The one dispatch table from a report file's extension to its writer (text,
// JSON, HTML, pprof, folded, JUnit, the raw .bwrec stream); to add a format, add
// one row to writers() in report_writers.cc.
#pragma once

#include <string>
#include <vector>

#include "collector/report_model.h"

namespace blockwatch::collector {

// What a writer may need besides the Report.
struct ReportSources {
  const std::string* raw_streams = nullptr;  // for .bwrec: the recorded wire streams
};

// Writes `report` to `path` in the format its extension names. False with
// *error for an unknown extension, a format not built in, or an I/O failure.
bool write_report_file(const std::string& path, const Report& report, const ReportSources& sources,
                       std::string* error);

// The extensions this build can write, for --help: ".txt", ".json", ...
std::vector<std::string> report_extensions();

}  // namespace blockwatch::collector
