// The JUnit XML writer: lets a CI system (GitLab, Jenkins, GitHub test reporters)
// show blockwatch's verdict next to the project's own tests.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>

#include "collector/report_model.h"

namespace blockwatch::collector {

// One <testsuite name="blockwatch"> with: a test case "verdict" that fails with
// the broken --fail-on rules; one test case per config path ("(no path)" for
// hotspots outside every path) or, when the report has no paths, one per process.
// When the verdict failed, a path or process case fails with every hotspot in it
// that is neither allowed nor already in the baseline (kind, count, durations,
// threads, top frames). Every case lists its hotspots in <system-out>.
void write_junit_report(const Report& report, std::ostream& out);

}  // namespace blockwatch::collector
