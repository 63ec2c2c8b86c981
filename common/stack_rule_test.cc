// The shared stack matcher: every built-in pattern compiles, and the rule
// semantics both sides rely on (kinds, depth over non-system frames, module,
// unless, a bad regex named in the error).
#include "common/stack_rule.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

// Rules below name only the RuleText fields they set.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace blockwatch::stack_rule {
namespace {

struct Frame {
  std::string function;
  std::string module;
};

StackRule compiled(const RuleText& text) {
  StackRule rule;
  std::string error;
  EXPECT_TRUE(rule.compile(text, &error)) << error;
  return rule;
}

TEST(StackRule, EveryBuiltinRuleCompiles) {
  for (int i = 0; i < builtin_rules::count_of(builtin_rules::kRules); ++i) {
    StackRule rule;
    std::string error;
    EXPECT_TRUE(rule.compile(builtin_rule_text(i), &error)) << i << ": " << error;
  }
}

TEST(StackRule, ConfiguredPoolWaitReplacesOnlyThePoolRulesFrames) {
  const RuleText text = builtin_rule_text(builtin_rules::kPoolWaitRuleIndex, "MyPool::Main");
  ASSERT_EQ(text.frames, std::vector<std::string>{"MyPool::Main"});
  EXPECT_EQ(text.kinds, (std::vector<std::string>{"condvar", "futex"}));
  EXPECT_EQ(builtin_rule_text(0, "MyPool::Main").frames.size(),
            static_cast<size_t>(builtin_rules::kRules[0].pattern_count));
}

TEST(StackRule, MaxDepthCountsOnlyNonSystemFrames) {
  const StackRule rule = compiled({.frames = {"Pool::loop"}, .max_depth = 1});
  const std::vector<Frame> park = {{"pthread_cond_wait", "/lib/x86_64-linux-gnu/libc.so.6"},
                                   {"std::condition_variable::wait", "/usr/lib/libstdc++.so.6"},
                                   {"Pool::loop()", "/bin/app"}};
  EXPECT_TRUE(rule.matches("condvar", park));
  const std::vector<Frame> handler = {{"pthread_cond_wait", "/lib/libc.so.6"},
                                      {"handler()", "/bin/app"},
                                      {"Pool::loop()", "/bin/app"}};
  EXPECT_FALSE(rule.matches("condvar", handler));
}

TEST(StackRule, KindsModuleAndUnless) {
  const StackRule rule = compiled(
      {.frames = {"^run$"}, .module = "/bin/app$", .unless = {"excused"}, .kinds = {"futex"}});
  EXPECT_TRUE(rule.matches("futex", std::vector<Frame>{{"run", "/bin/app"}}));
  EXPECT_FALSE(rule.matches("condvar", std::vector<Frame>{{"run", "/bin/app"}}));
  EXPECT_FALSE(rule.matches("futex", std::vector<Frame>{{"run", "/lib/other.so"}}));
  EXPECT_FALSE(rule.matches("futex", std::vector<Frame>{{"run", "/bin/app"}, {"excused", ""}}));
  EXPECT_FALSE(rule.matches("futex", std::vector<Frame>{{"rerun", "/bin/app"}}));
}

TEST(StackRule, NoFramesMatchesNothing) {
  const StackRule rule = compiled({});
  EXPECT_FALSE(rule.matches("mutex", std::vector<Frame>{{"anything", "/bin/app"}}));
}

TEST(StackRule, BadRegexIsNamedInTheError) {
  StackRule rule;
  std::string error;
  EXPECT_FALSE(rule.compile({.frames = {"ok", "broken("}}, &error));
  EXPECT_NE(error.find("broken("), std::string::npos) << error;
}

TEST(StackRule, WholeWordAnchorsWork) {
  // `scheduler::run\b` (POSIX ERE in glibc supports \b): run() is the
  // scheduler's loop, run_one() is not.
  const StackRule rule = compiled({.frames = {"scheduler::run\\b"}});
  EXPECT_TRUE(rule.matches("condvar", std::vector<Frame>{{"asio::scheduler::run()", ""}}));
  EXPECT_FALSE(rule.matches("condvar", std::vector<Frame>{{"asio::scheduler::run_one()", ""}}));
}

}  // namespace
}  // namespace blockwatch::stack_rule
