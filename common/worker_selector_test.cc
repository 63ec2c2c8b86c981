// worker_selector: the one grammar of --workers / BLOCKWATCH_WORKERS, and the
// check the CLI runs before CMD starts.
#include "common/worker_selector.h"

#include <gtest/gtest.h>

namespace blockwatch::worker_selector {
namespace {

TEST(WorkerSelector, SplitsDefaultRulesAndExeSections) {
  const Sections s = split_sections("main, exe:redis-server,name:io-.*,exe:a{1,3},main");
  EXPECT_EQ(s.default_rules, "main");
  ASSERT_EQ(s.exe_sections.size(), 2u);
  EXPECT_EQ(s.exe_sections[0].pattern, "redis-server");
  EXPECT_EQ(s.exe_sections[0].thread_rules, "name:io-.*");
  EXPECT_EQ(s.exe_sections[1].pattern, "a{1,3}");  // the comma stays in the pattern
  EXPECT_EQ(s.exe_sections[1].thread_rules, "main");
}

TEST(WorkerSelector, ThreadRulesKeepCommasInsideARegex) {
  std::vector<ThreadRule> rules;
  std::string error;
  ASSERT_TRUE(parse_thread_rules("name:w{1,15},main", &rules, &error)) << error;
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0].regex, "w{1,15}");
  EXPECT_TRUE(rules[1].main);
}

TEST(WorkerSelector, LongLiteralRuleCarriesTheCutName) {
  std::vector<ThreadRule> rules;
  std::string error;
  ASSERT_TRUE(parse_thread_rules("name:tokio-runtime-worker", &rules, &error));
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0].cut_name, "tokio-runtime-w");
}

TEST(WorkerSelector, CheckAcceptsWellFormedSelectors) {
  std::string error;
  for (const char* ok : {"", "main", "name:pool-[0-9]+", "main,name:w{1,15}",
                         "main,exe:sleep", "exe:redis-server,name:io-.*", "name:a,exe:b,main"}) {
    EXPECT_TRUE(check(ok, &error)) << ok << ": " << error;
  }
}

TEST(WorkerSelector, CheckRejectsEachKindOfMistakeInOneLine) {
  struct Case {
    const char* selector;
    const char* says;
  } cases[] = {
      {"mian", "'mian'"},
      {"thread:x", "'thread:x'"},
      {"name:", "'name:'"},
      {"name:pool-[0-9", "bad regular expression"},
      {"main,exe:(", "bad regular expression"},
      {"exe:", "names no executable"},
      {"exe:sleep,name:(", "bad regular expression"},
  };
  for (const Case& c : cases) {
    std::string error;
    EXPECT_FALSE(check(c.selector, &error)) << c.selector;
    EXPECT_NE(error.find(c.says), std::string::npos) << c.selector << ": " << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  }
}

}  // namespace
}  // namespace blockwatch::worker_selector
