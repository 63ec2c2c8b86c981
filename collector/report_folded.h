// The folded-stacks writer: one line per distinct stack, the format of Brendan
// Gregg's flamegraph.pl (stackcollapse output) that speedscope and inferno read.
#pragma once

#include <ostream>

#include "collector/report_model.h"

namespace blockwatch::collector {

// Writes `[kind];root;...;innermost VALUE\n` per hotspot, VALUE = blocked (or
// stalled) nanoseconds. The kind is the root frame so a flame graph splits by kind
// first. Allowed hotspots get `[allowed]` after the kind. Hotspots of different
// processes with the same folded stack are summed; lines are sorted so the output
// is deterministic. `;` and line breaks inside frame names are replaced.
void write_folded_report(const Report& report, std::ostream& out);

}  // namespace blockwatch::collector
