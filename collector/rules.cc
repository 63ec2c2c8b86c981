// Fail-on rule parsing and evaluation, and baseline matching.
#include "collector/rules.h"

#include <sstream>

#include "absl/container/flat_hash_set.h"
#include "collector/config.h"

namespace blockwatch::collector {

namespace {

bool parse_one(const std::string& text, FailRule* rule, std::string* error) {
  rule->text = text;
  std::string head = text;
  size_t ge = text.find(">=");
  if (ge != std::string::npos) {
    head = text.substr(0, ge);
    if (!parse_duration(text.substr(ge + 2), &rule->min_ns)) {
      *error = "--fail-on " + text + ": bad duration (expected e.g. 1ms, 250us)";
      return false;
    }
  }
  if (head == "any" && ge == std::string::npos) {
    rule->type = FailRule::Type::kAny;
  } else if (head == "blocking") {
    rule->type = FailRule::Type::kBlocking;
  } else if (head == "stall") {
    rule->type = FailRule::Type::kStall;
  } else if (head == "turn-stall") {
    rule->type = FailRule::Type::kTurnStall;
  } else if (head.rfind("kind:", 0) == 0 && head.size() > 5) {
    rule->type = FailRule::Type::kKind;
    rule->name = head.substr(5);
  } else if (head.rfind("path:", 0) == 0 && head.size() > 5) {
    rule->type = FailRule::Type::kPath;
    rule->name = head.substr(5);
  } else {
    *error = "--fail-on " + text +
             ": unknown rule (expected any, blocking>=DUR, stall>=DUR, turn-stall>=DUR, "
             "kind:KIND, "
             "path:NAME[>=DUR])";
    return false;
  }
  return true;
}

bool breaks(const FailRule& rule, const Hotspot& h) {
  if (h.allowed || !h.is_new || h.max_ns < rule.min_ns) return false;
  switch (rule.type) {
    case FailRule::Type::kAny:
      return true;
    case FailRule::Type::kBlocking:
      return h.kind != "stall" && h.kind != "hang";
    case FailRule::Type::kStall:
      return h.kind == "stall" && h.scope != "turn";
    case FailRule::Type::kTurnStall:
      return h.kind == "stall" && h.scope == "turn";
    case FailRule::Type::kKind:
      return h.kind == rule.name;
    case FailRule::Type::kPath:
      return h.path == rule.name;
  }
  return false;
}

std::string hotspot_kind_label(const Hotspot& h) {
  return h.kind == "stall" && h.scope == "turn" ? "turn stall" : h.kind;
}

std::string top_user_function(const Hotspot& h) {
  const StackFrame* frame = top_user_frame(h);
  return frame ? frame->function : "(no stack)";
}

}  // namespace

bool parse_fail_rules(const std::vector<std::string>& texts, std::vector<FailRule>* out,
                      std::string* error) {
  for (const std::string& text : texts) {
    std::stringstream in(text);
    std::string part;
    while (std::getline(in, part, ',')) {
      if (part.empty()) continue;
      FailRule rule;
      if (!parse_one(part, &rule, error)) return false;
      out->push_back(std::move(rule));
    }
  }
  return true;
}

std::string baseline_signature(const Hotspot& hotspot) {
  std::string signature = hotspot.kind;
  size_t taken = 0;
  for (const StackFrame& f : hotspot.stack) {
    if (taken == kBaselineFrames) break;
    // Inlined functions are left out: another compiler or optimisation level
    // inlines differently, and a baseline written before the collector showed
    // them still matches.
    if (is_system_frame(f) || f.inlined) continue;
    std::string name = f.function;
    if (name.rfind("0x", 0) == 0) name = f.module.substr(f.module.rfind('/') + 1) + "+?";
    signature += '\n' + name;
    ++taken;
  }
  return signature;
}

void apply_baseline(const Report& baseline, Report* report) {
  absl::flat_hash_set<std::string> known;
  for (const Hotspot& h : baseline.hotspots) known.insert(baseline_signature(h));
  for (Hotspot& h : report->hotspots) h.is_new = !known.contains(baseline_signature(h));
}

void evaluate_rules(const std::vector<FailRule>& rules, Report* report) {
  report->verdict = Verdict{};
  for (const FailRule& rule : rules) {
    const Hotspot* worst = nullptr;
    size_t broken = 0;
    for (const Hotspot& h : report->hotspots) {
      if (!breaks(rule, h)) continue;
      ++broken;
      if (worst == nullptr || h.max_ns > worst->max_ns) worst = &h;
    }
    if (broken == 0) continue;
    report->verdict.failed = true;
    report->verdict.reasons.push_back(
        rule.text + ": " + std::to_string(broken) + (broken == 1 ? " hotspot" : " hotspots") +
        ", worst " + hotspot_kind_label(*worst) + " " + format_duration(worst->max_ns) + " in " +
        top_user_function(*worst));
  }
}

}  // namespace blockwatch::collector
