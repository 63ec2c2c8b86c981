// Test helper for the browser tests: writes the HTML report of a JSON report file
// through the real write_html_report (so the tests cover the C++ embedding), or
// the live dashboard page. With the collector core built, it can first pass the
// report through read_json_report + write_json_report, so the browser tests see
// exactly what the collector writes and the fixtures are checked against its
// schema.
//   blockwatch_render_report REPORT.json OUT.html [--via-model]
//   blockwatch_render_report --live OUT.html
//   blockwatch_render_report --rewrite REPORT.json OUT.json   (the JSON round trip alone)
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "collector/report_html.h"
#include "collector/report_json.h"
#include "collector/report_model.h"

namespace {

bool read_file(const std::string& path, std::string* text) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream buffer;
  buffer << in.rdbuf();
  *text = buffer.str();
  return true;
}

// The report as the collector would write it after reading it back.
bool via_model(const std::string& path, std::string* json) {
  blockwatch::collector::Report report;
  std::string error;
  if (!blockwatch::collector::read_json_report_file(path, &report, &error)) {
    std::cerr << path << ": " << error << "\n";
    return false;
  }
  std::ostringstream out;
  blockwatch::collector::write_json_report(report, out);
  *json = out.str();
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string usage = std::string("usage: ") + argv[0] +
                            " (REPORT.json OUT.html [--via-model] | --live OUT.html |"
                            " --rewrite REPORT.json OUT.json)\n";
  if (argc < 3 || argc > 4) {
    std::cerr << usage;
    return 2;
  }
  const std::string first = argv[1];
  std::string page;
  std::string out_path = argv[2];
  if (first == "--live" && argc == 3) {
    page = blockwatch::collector::live_dashboard_html();
  } else if (first == "--rewrite" && argc == 4) {
    if (!via_model(argv[2], &page)) return 1;
    out_path = argv[3];
  } else {
    const bool model = argc == 4 && std::string(argv[3]) == "--via-model";
    if (argc == 4 && !model) {
      std::cerr << usage;
      return 2;
    }
    std::string json;
    if (!(model ? via_model(first, &json) : read_file(first, &json))) {
      std::cerr << "cannot read " << first << "\n";
      return 1;
    }
    std::ostringstream out;
    blockwatch::collector::write_html_report(json, out);
    page = out.str();
  }
  std::ofstream out(out_path, std::ios::binary);
  out << page;
  return out.good() ? 0 : 1;
}
