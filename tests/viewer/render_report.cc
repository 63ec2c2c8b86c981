// Test helper for the browser tests: writes the HTML report of a JSON report file
// through the real write_html_report (so the tests cover the C++ embedding), or
// the live dashboard page.
//   blockwatch_render_report REPORT.json OUT.html
//   blockwatch_render_report --live OUT.html
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "collector/report_html.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << " (REPORT.json | --live) OUT.html\n";
    return 2;
  }
  const std::string input = argv[1];
  std::ofstream out(argv[2], std::ios::binary);
  if (!out) {
    std::cerr << "cannot write " << argv[2] << "\n";
    return 1;
  }
  if (input == "--live") {
    out << blockwatch::collector::live_dashboard_html();
  } else {
    std::ifstream in(input, std::ios::binary);
    if (!in) {
      std::cerr << "cannot read " << input << "\n";
      return 1;
    }
    std::stringstream json;
    json << in.rdbuf();
    blockwatch::collector::write_html_report(json.str(), out);
  }
  return out.good() ? 0 : 1;
}
