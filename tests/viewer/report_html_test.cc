// Unit tests of the HTML report writer: the JSON is embedded so that it parses back
// equal and cannot end its <script> element; the live page has no embedded report.
#include "collector/report_html.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace blockwatch::collector {
namespace {

constexpr std::string_view kSlotOpen = R"(<script id="bw-report" type="application/json">)";

// The text between the report slot's opening tag and the next "</script".
std::string embedded_json(const std::string& page) {
  const size_t open = page.find(kSlotOpen);
  EXPECT_NE(open, std::string::npos);
  const size_t begin = open + kSlotOpen.size();
  const size_t end = page.find("</script", begin);
  EXPECT_NE(end, std::string::npos);
  return page.substr(begin, end - begin);
}

TEST(ReportHtml, EmbedsJsonThatParsesBackEqual) {
  nlohmann::json report = {
      {"version", 1},
      {"hotspots",
       {{{"kind", "mutex"},
         {"stack", {{{"function", "f</script><script>alert(1)</script>"}, {"module", "a&b<!--"}}}},
         {"tasks", {"line\u2028sep\u2029para", "x > y"}}}}}};
  const std::string json = report.dump();
  std::ostringstream out;
  write_html_report(json, out);
  const std::string page = out.str();
  const std::string inside = embedded_json(page);
  EXPECT_EQ(inside.find('<'), std::string::npos);
  EXPECT_EQ(inside.find("\u2028"), std::string::npos);
  EXPECT_EQ(inside.find("\u2029"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(inside), report);
  EXPECT_EQ(page.find("alert(1)</script>"), std::string::npos);
}

TEST(ReportHtml, EscapesOnlyWhatHtmlOrJsCouldMisread) {
  EXPECT_EQ(escape_json_for_html(R"({"a":"</script>&"})"), R"({"a":"\u003c/script\u003e\u0026"})");
  EXPECT_EQ(escape_json_for_html("\"\xE2\x80\xA8\xE2\x80\xA9\""), R"("\u2028\u2029")");
  // Other multi-byte characters pass unchanged (here U+2026 and U+00E9).
  EXPECT_EQ(escape_json_for_html("\"\xE2\x80\xA6\xC3\xA9\""), "\"\xE2\x80\xA6\xC3\xA9\"");
  // A truncated sequence at the end must not read past the input.
  EXPECT_EQ(escape_json_for_html("\xE2\x80"), "\xE2\x80");
}

TEST(ReportHtml, PageIsSelfContained) {
  std::ostringstream out;
  write_html_report(R"({"version":1})", out);
  const std::string page = out.str();
  EXPECT_NE(page.find("<!doctype html>"), std::string::npos);
  EXPECT_NE(page.find("</html>"), std::string::npos);
  EXPECT_EQ(page.find("src=\"http"), std::string::npos);
  EXPECT_EQ(page.find("href=\"http"), std::string::npos);
  EXPECT_EQ(page.find("@BLOCKWATCH_REPORT_JSON@"), std::string::npos);
  EXPECT_GT(page.size(), 50u * 1024);  // the bundled viewer and flame-graph library are inside
  EXPECT_EQ(embedded_json(page), R"({"version":1})");
}

TEST(ReportHtml, LiveDashboardHasNoEmbeddedReport) {
  const std::string page = live_dashboard_html();
  EXPECT_EQ(embedded_json(page), "");
  std::ostringstream out;
  write_html_report("", out);
  EXPECT_EQ(out.str(), page);
}

}  // namespace
}  // namespace blockwatch::collector
