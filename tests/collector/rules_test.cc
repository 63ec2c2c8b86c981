// Unit tests of --fail-on rules and --baseline matching.
#include "collector/rules.h"

#include <gtest/gtest.h>

#include "tests/collector/sample_report.h"

namespace blockwatch::collector {
namespace {

Report judged(const std::vector<std::string>& rule_texts, Report r = testing::sample_report()) {
  std::vector<FailRule> rules;
  std::string error;
  EXPECT_TRUE(parse_fail_rules(rule_texts, &rules, &error)) << error;
  evaluate_rules(rules, &r);
  return r;
}

TEST(FailRules, ParseErrorsNameTheRule) {
  std::vector<FailRule> rules;
  std::string error;
  EXPECT_FALSE(parse_fail_rules({"blocking>=soon"}, &rules, &error));
  EXPECT_NE(error.find("blocking>=soon"), std::string::npos);
  EXPECT_FALSE(parse_fail_rules({"everything"}, &rules, &error));
  EXPECT_NE(error.find("unknown rule"), std::string::npos);
  EXPECT_TRUE(parse_fail_rules({"any,kind:fsync", "path:model>=1ms"}, &rules, &error));
  EXPECT_EQ(rules.size(), 3u);
}

TEST(FailRules, EachRuleBreaksOnlyOnWhatItNames) {
  EXPECT_TRUE(judged({"any"}).verdict.failed);
  EXPECT_TRUE(judged({"blocking>=10ms"}).verdict.failed);   // fsync 12ms
  EXPECT_FALSE(judged({"blocking>=13ms"}).verdict.failed);  // allowed sleep 90ms does not count
  EXPECT_TRUE(judged({"stall>=50ms"}).verdict.failed);
  EXPECT_FALSE(judged({"stall>=61ms"}).verdict.failed);
  EXPECT_TRUE(judged({"kind:fsync"}).verdict.failed);
  EXPECT_FALSE(judged({"kind:rwlock_read"}).verdict.failed);
  EXPECT_FALSE(judged({"kind:sleep"}).verdict.failed);       // only the allowed one
  EXPECT_TRUE(judged({"path:model>=50ms"}).verdict.failed);  // the stall
  EXPECT_FALSE(judged({"path:worker-pool"}).verdict.failed);
  EXPECT_FALSE(judged({}).verdict.failed);
}

// stall>= counts task stalls (and stalls whose scope a library did not say);
// a turn stall, which may hold many short tasks, fails only turn-stall>=.
TEST(FailRules, TurnStallsFailOnlyTheirOwnRule) {
  Report turn = testing::sample_report();
  for (Hotspot& h : turn.hotspots) {
    if (h.kind == "stall") h.scope = "turn";
  }
  EXPECT_FALSE(judged({"stall>=1ms"}, turn).verdict.failed);
  const Report failed = judged({"turn-stall>=50ms"}, turn);
  ASSERT_TRUE(failed.verdict.failed);
  EXPECT_NE(failed.verdict.reasons[0].find("worst turn stall"), std::string::npos)
      << failed.verdict.reasons[0];
  EXPECT_FALSE(judged({"turn-stall>=61ms"}, turn).verdict.failed);
  Report task = testing::sample_report();
  for (Hotspot& h : task.hotspots) {
    if (h.kind == "stall") h.scope = "task";
  }
  EXPECT_TRUE(judged({"stall>=50ms"}, task).verdict.failed);
  EXPECT_FALSE(judged({"turn-stall>=1ms"}, task).verdict.failed);
}

TEST(FailRules, ReasonsNameRuleCountAndWorstUserFrame) {
  Report r = judged({"blocking>=1ms", "kind:fsync"});
  ASSERT_EQ(r.verdict.reasons.size(), 2u);
  EXPECT_EQ(r.verdict.reasons[0],
            "blocking>=1ms: 2 hotspots, worst fsync 12ms in app::SaveState()");
}

TEST(Baseline, KnownHotspotsDoNotFailNewOnesDo) {
  Report baseline = testing::sample_report();
  baseline.hotspots.erase(baseline.hotspots.begin());  // the fsync is new
  Report current = testing::sample_report();
  // Addresses differ between runs; names match.
  for (auto& h : current.hotspots) {
    for (auto& f : h.stack) f.pc += 0x1000;
  }
  apply_baseline(baseline, &current);
  EXPECT_TRUE(current.hotspots[0].is_new);
  EXPECT_FALSE(current.hotspots[1].is_new);
  Report r = judged({"any"}, current);
  ASSERT_TRUE(r.verdict.failed);
  EXPECT_NE(r.verdict.reasons[0].find("1 hotspot,"), std::string::npos) << r.verdict.reasons[0];
  apply_baseline(testing::sample_report(), &current);
  EXPECT_FALSE(judged({"any"}, current).verdict.failed);
}

// A baseline written without inlined frames (an older collector, or a build that
// inlined less) still knows the hotspot.
TEST(Baseline, InlinedFramesDoNotMakeAHotspotNew) {
  Report baseline = testing::sample_report();
  Report current = testing::sample_report();
  StackFrame inlined = current.hotspots[0].stack[1];
  inlined.function = "app::helper_inlined_now()";
  inlined.inlined = true;
  current.hotspots[0].stack.insert(current.hotspots[0].stack.begin() + 1, inlined);
  apply_baseline(baseline, &current);
  EXPECT_FALSE(current.hotspots[0].is_new);
  current.hotspots[0].stack[1].inlined = false;  // a real call is a frame of the stack
  apply_baseline(baseline, &current);
  EXPECT_TRUE(current.hotspots[0].is_new);
}

}  // namespace
}  // namespace blockwatch::collector
