// The self-contained HTML report and the live dashboard page. Both are the one
// page built from viewer/ (scripts, styles and the flame-graph library inlined at
// build time): the static report carries the JSON report inside the page; the
// live dashboard carries none and polls /api/report instead.
#pragma once

#include <ostream>
#include <string>
#include <string_view>

namespace blockwatch::collector {

// Writes the HTML report for `report_json` (a JSON report, docs/report-schema.md)
// to `out`. The JSON is embedded in a <script type="application/json"> element,
// escaped so that no byte sequence in it can end that element or break a JS
// parser (`<`, `>`, `&`, U+2028, U+2029 become \u escapes inside strings).
void write_html_report(const std::string& report_json, std::ostream& out);

// The live dashboard page that blockwatchd serves at "/": the same page with no
// embedded report; it fetches ./api/report every 2 s.
std::string live_dashboard_html();

// The escaping write_html_report applies; exposed for tests.
std::string escape_json_for_html(std::string_view json);

}  // namespace blockwatch::collector
