// The HTML report writer: the viewer's page template (generated into
// report_html_assets.cc by viewer/build.mjs at build time) with the JSON report
// placed in its slot, escaped for an HTML <script> element.
#include "report_html.h"

#include <cstddef>

namespace blockwatch::collector {
namespace html_assets {
extern const char kPageBeforeJson[];
extern const size_t kPageBeforeJsonSize;
extern const char kPageAfterJson[];
extern const size_t kPageAfterJsonSize;
}  // namespace html_assets

namespace {

std::string_view page_before_json() {
  return {html_assets::kPageBeforeJson, html_assets::kPageBeforeJsonSize};
}

std::string_view page_after_json() {
  return {html_assets::kPageAfterJson, html_assets::kPageAfterJsonSize};
}

}  // namespace

// Valid JSON has `<`, `>`, `&` and U+2028/U+2029 only inside strings, where a
// \uXXXX escape means the same character: the JSON stays equal after parsing,
// and neither "</script", "<!--" nor a JS line separator survives.
std::string escape_json_for_html(std::string_view json) {
  std::string out;
  out.reserve(json.size() + json.size() / 16);
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (c == '<') {
      out += "\\u003c";
    } else if (c == '>') {
      out += "\\u003e";
    } else if (c == '&') {
      out += "\\u0026";
    } else if (c == '\xE2' && i + 2 < json.size() && json[i + 1] == '\x80' &&
               (json[i + 2] == '\xA8' || json[i + 2] == '\xA9')) {
      out += json[i + 2] == '\xA8' ? "\\u2028" : "\\u2029";
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

void write_html_report(const std::string& report_json, std::ostream& out) {
  const std::string_view before = page_before_json();
  const std::string_view after = page_after_json();
  const std::string escaped = escape_json_for_html(report_json);
  out.write(before.data(), static_cast<std::streamsize>(before.size()));
  out.write(escaped.data(), static_cast<std::streamsize>(escaped.size()));
  out.write(after.data(), static_cast<std::streamsize>(after.size()));
}

std::string live_dashboard_html() {
  std::string page(page_before_json());
  page += page_after_json();
  return page;
}

}  // namespace blockwatch::collector
