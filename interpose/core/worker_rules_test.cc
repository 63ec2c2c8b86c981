// BLOCKWATCH_WORKERS parsing and matching: `main`, `name:REGEX` (full match),
// lists, and clear errors for malformed rules that keep the good ones.
#include "interpose/core/worker_rules.h"

#include <gtest/gtest.h>

namespace blockwatch::interpose {
namespace {

TEST(WorkerRules, EmptyMatchesNothing) {
  WorkerRules rules;
  std::string error;
  ASSERT_TRUE(rules.parse("", &error));
  EXPECT_TRUE(rules.empty());
  EXPECT_FALSE(rules.matches("worker", true));
  EXPECT_FALSE(rules.matches("worker", false));
}

TEST(WorkerRules, MainMatchesOnlyTheMainThread) {
  WorkerRules rules;
  std::string error;
  ASSERT_TRUE(rules.parse("main", &error));
  EXPECT_TRUE(rules.matches("anything", true));
  EXPECT_FALSE(rules.matches("anything", false));
}

TEST(WorkerRules, NameRegexIsAFullMatch) {
  WorkerRules rules;
  std::string error;
  ASSERT_TRUE(rules.parse("name:io-worker-[0-9]+", &error)) << error;
  EXPECT_TRUE(rules.matches("io-worker-12", false));
  EXPECT_FALSE(rules.matches("io-worker-12x", false));   // suffix
  EXPECT_FALSE(rules.matches("my-io-worker-1", false));  // prefix
  EXPECT_FALSE(rules.matches("io-worker-", false));
}

TEST(WorkerRules, AlternationInsideOneRuleIsAnchoredAsAWhole) {
  WorkerRules rules;
  std::string error;
  ASSERT_TRUE(rules.parse("name:a|b", &error));
  EXPECT_TRUE(rules.matches("a", false));
  EXPECT_TRUE(rules.matches("b", false));
  EXPECT_FALSE(rules.matches("ab", false));
}

TEST(WorkerRules, ListCombinesRules) {
  WorkerRules rules;
  std::string error;
  ASSERT_TRUE(rules.parse("main, name:tokio-runtime-w.*,name:uv", &error)) << error;
  EXPECT_TRUE(rules.matches("x", true));
  EXPECT_TRUE(rules.matches("tokio-runtime-w", false));
  EXPECT_TRUE(rules.matches("uv", false));
  EXPECT_FALSE(rules.matches("uvx", false));
}

// A comma inside a regex (a bound, a bracket) is not a rule separator: only a
// comma followed by the next rule's keyword is (issue 10, 7a).
TEST(WorkerRules, CommaInsideARegexStaysInTheRegex) {
  WorkerRules rules;
  std::string error;
  ASSERT_TRUE(rules.parse("name:w{1,15}", &error)) << error;
  EXPECT_TRUE(rules.matches("www", false));
  EXPECT_FALSE(rules.matches("w{1", false));
  ASSERT_TRUE(rules.parse("name:w{1,15}, main,name:[a,b]x", &error)) << error;
  EXPECT_TRUE(rules.matches("w", false));
  EXPECT_TRUE(rules.matches("anything", true));
  EXPECT_TRUE(rules.matches(",x", false));
  EXPECT_TRUE(rules.matches("bx", false));
  EXPECT_FALSE(rules.matches("cx", false));
  ASSERT_TRUE(rules.parse("name:a,,name:b,", &error)) << error;  // empty rules skipped
  EXPECT_TRUE(rules.matches("a", false));
  EXPECT_TRUE(rules.matches("b", false));
  // A misspelt keyword after a comma is a rule of its own, and reported.
  EXPECT_FALSE(rules.parse("name:x,thread:foo", &error));
  EXPECT_NE(error.find("'thread:foo'"), std::string::npos) << error;
}

TEST(WorkerRules, MalformedRuleIsReportedAndTheOthersKept) {
  WorkerRules rules;
  std::string error;
  EXPECT_FALSE(rules.parse("main,thread:foo,name:ok", &error));
  EXPECT_NE(error.find("thread:foo"), std::string::npos) << error;
  EXPECT_TRUE(rules.matches("ok", false));
  EXPECT_TRUE(rules.matches("x", true));
}

TEST(WorkerRules, BadRegexIsReportedNotThrown) {
  WorkerRules rules;
  std::string error;
  EXPECT_FALSE(rules.parse("name:worker-[0-9", &error));
  EXPECT_NE(error.find("bad regular expression"), std::string::npos) << error;
  EXPECT_FALSE(rules.parse("name:", &error));
}

TEST(WorkerRules, ReparseReplaces) {
  WorkerRules rules;
  std::string error;
  ASSERT_TRUE(rules.parse("name:a", &error));
  ASSERT_TRUE(rules.parse("name:b", &error));
  EXPECT_FALSE(rules.matches("a", false));
  EXPECT_TRUE(rules.matches("b", false));
}

// Linux keeps 15 bytes of a thread name: tokio names its threads
// "tokio-runtime-worker" and the kernel (and so every hook) sees "tokio-runtime-w".
TEST(WorkerRules, LongLiteralRulesAlsoMatchTheNameLinuxKeeps) {
  WorkerRules rules;
  std::string error;
  ASSERT_TRUE(rules.parse("name:tokio-runtime-worker,name:inference-pool-[0-9]+", &error)) << error;
  EXPECT_TRUE(rules.matches("tokio-runtime-w", false));
  EXPECT_TRUE(rules.matches("inference-pool-", false));
  EXPECT_TRUE(rules.matches("inference-pool-3", false));  // a full match as before
  EXPECT_FALSE(rules.matches("tokio-runtime-x", false));
  EXPECT_FALSE(rules.matches("tokio-runtime-", false));  // 14 bytes: not a cut name
  EXPECT_FALSE(rules.matches("tokio-runtime-wo", false));
}

TEST(WorkerRules, ShortOrOptionalEndingsAreNotCut) {
  WorkerRules rules;
  std::string error;
  // "p" is optional: the literal start is 15 bytes, which the regex matches anyway.
  ASSERT_TRUE(rules.parse("name:abcdefghijklmnop?,name:short-name", &error)) << error;
  EXPECT_TRUE(rules.matches("abcdefghijklmno", false));
  EXPECT_FALSE(rules.matches("abcdefghijklmn", false));
  EXPECT_FALSE(rules.matches("short-name-xxxx", false));
  // Alternatives have no single literal start: matched by the regex alone.
  ASSERT_TRUE(rules.parse("name:aaaaaaaaaaaaaaaaaa|b", &error)) << error;
  EXPECT_FALSE(rules.matches("aaaaaaaaaaaaaaa", false));
}

}  // namespace
}  // namespace blockwatch::interpose
