// Extension -> writer. Each row names an extension and a function writing the
// report to a stream; binary formats open the file in binary mode.
#include "collector/report_writers.h"

#include <fstream>
#include <functional>
#include <sstream>

#include "collector/report_folded.h"
#include "collector/report_html.h"
#include "collector/report_json.h"
#include "collector/report_junit.h"
#include "collector/report_pprof.h"
#include "collector/report_text.h"

namespace blockwatch::collector {

namespace {

using Writer = std::function<bool(const Report&, const ReportSources&, std::ostream&)>;

struct WriterRow {
  const char* extension;
  Writer write;
};

const std::vector<WriterRow>& writers() {
  static const std::vector<WriterRow> rows = {
      {".txt",
       [](const Report& r, const ReportSources&, std::ostream& out) {
         TextReportOptions options;
         options.max_hotspots = 1000;
         options.frames_per_hotspot = 8;
         write_text_report(r, out, options);
         return true;
       }},
      {".json",
       [](const Report& r, const ReportSources&, std::ostream& out) {
         write_json_report(r, out);
         return true;
       }},
      {".bwrec",
       [](const Report&, const ReportSources& s, std::ostream& out) {
         if (s.raw_streams == nullptr) return false;
         out << *s.raw_streams;
         return true;
       }},
      {".pb.gz",
       [](const Report& r, const ReportSources&, std::ostream& out) {
         write_pprof_report(r, out);
         return true;
       }},
      {".folded",
       [](const Report& r, const ReportSources&, std::ostream& out) {
         write_folded_report(r, out);
         return true;
       }},
      {".xml",
       [](const Report& r, const ReportSources&, std::ostream& out) {
         write_junit_report(r, out);
         return true;
       }},
      {".html",
       [](const Report& r, const ReportSources&, std::ostream& out) {
         std::stringstream json;
         write_json_report(r, json);
         write_html_report(json.str(), out);
         return true;
       }},
  };
  return rows;
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

bool write_report_file(const std::string& path, const Report& report, const ReportSources& sources,
                       std::string* error) {
  for (const WriterRow& row : writers()) {
    if (!ends_with(path, row.extension)) continue;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) {
      *error = path + ": cannot write";
      return false;
    }
    if (!row.write(report, sources, out)) {
      *error = path + ": nothing to write in this format here (a raw stream needs a live run)";
      return false;
    }
    out.close();
    if (!out) {
      *error = path + ": write failed";
      return false;
    }
    return true;
  }
  std::string known;
  for (const auto& e : report_extensions()) known += " " + e;
  *error = path + ": unknown report format (known:" + known + ")";
  return false;
}

std::vector<std::string> report_extensions() {
  std::vector<std::string> extensions;
  for (const WriterRow& row : writers()) extensions.push_back(row.extension);
  return extensions;
}

}  // namespace blockwatch::collector
