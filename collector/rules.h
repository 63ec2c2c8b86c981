// Fail-on rules: whether a run should fail, and why. Rules (repeatable; several in
// one argument separated by commas; any broken rule fails the run):
//   any                 any hotspot that is not allowed
//   blocking>=DUR       a blocking (non-stall) hotspot whose longest event >= DUR
//   stall>=DUR          a task stall >= DUR (one task ran that long; turn stalls,
//                       which may hold many short tasks, never match)
//   turn-stall>=DUR     a turn stall >= DUR (only loop turns were known)
//   kind:KIND[>=DUR]    a hotspot of that kind (e.g. kind:fsync)
//   path:NAME[>=DUR]    a hotspot in that config path (e.g. path:model>=5ms)
// Allowed hotspots never fail. With a baseline (an earlier JSON report), hotspots
// present in it (same kind and top kBaselineFrames function names) are not new and
// do not fail; new ones do.
#pragma once

#include <string>
#include <vector>

#include "collector/report_model.h"

namespace blockwatch::collector {

inline constexpr size_t kBaselineFrames = 5;

struct FailRule {
  enum class Type { kAny, kBlocking, kStall, kTurnStall, kKind, kPath } type = Type::kAny;
  std::string name;    // kind or path name
  int64_t min_ns = 0;  // >= DUR; 0 = any duration
  std::string text;    // as written, for the verdict's reasons
};

// Parses "any", "blocking>=5ms,kind:fsync", ... False with *error on a bad rule.
bool parse_fail_rules(const std::vector<std::string>& texts, std::vector<FailRule>* out,
                      std::string* error);

// The baseline identity of a hotspot: kind + its top function names (system
// frames skipped, unknown functions by module name), independent of addresses.
std::string baseline_signature(const Hotspot& hotspot);

// Marks hotspots found in `baseline` as not new (is_new = false).
void apply_baseline(const Report& baseline, Report* report);

// Sets report->verdict from the rules (allowed and non-new hotspots never fail).
void evaluate_rules(const std::vector<FailRule>& rules, Report* report);

}  // namespace blockwatch::collector
