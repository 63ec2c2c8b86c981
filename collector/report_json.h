// The JSON report (schema: docs/report-schema.md). Keys are report_model.h's field
// names; the summary fields of Report sit under "summary". read_json_report
// accepts what write_json_report writes (and tolerates missing keys), so
// `blockwatch report run.json` and --baseline can re-read a saved report.
#pragma once

#include <iosfwd>
#include <string>

#include "collector/report_model.h"

namespace blockwatch::collector {

void write_json_report(const Report& report, std::ostream& out);
// False with *error when the text is not JSON or not a version-1 report.
bool read_json_report(std::istream& in, Report* report, std::string* error);
bool read_json_report_file(const std::string& path, Report* report, std::string* error);

}  // namespace blockwatch::collector
