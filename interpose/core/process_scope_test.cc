// decide_process_scope: which BLOCKWATCH_WORKERS section applies to a process,
// and which processes stay dormant.
#include "interpose/core/process_scope.h"

#include <unistd.h>

#include <gtest/gtest.h>

namespace blockwatch::interpose {
namespace {

TEST(ProcessScope, WithoutCmdExeEveryProcessGetsTheDefaultRules) {
  const ScopeDecision d = decide_process_scope("main,name:w-.*", "/usr/bin/sleep", "");
  EXPECT_TRUE(d.watched);
  EXPECT_EQ(d.thread_rules, "main,name:w-.*");
  EXPECT_TRUE(d.error.empty());
}

TEST(ProcessScope, DefaultRulesApplyToCmdsExecutableOnly) {
  EXPECT_TRUE(decide_process_scope("main", "/usr/bin/dash", "/usr/bin/dash").watched);
  const ScopeDecision other = decide_process_scope("main", "/usr/bin/sleep", "/usr/bin/dash");
  EXPECT_FALSE(other.watched);
  EXPECT_TRUE(other.thread_rules.empty());
}

// The process blockwatch run started stays CMD through an exec in place
// (`env X=1 prog`, `nice prog`): its new image gets the default rules too.
TEST(ProcessScope, CmdProcessKeepsItsRulesAcrossExecInPlace) {
  const ScopeDecision d = decide_process_scope("main", "/srv/app", "/usr/bin/env", true);
  EXPECT_TRUE(d.watched);
  EXPECT_EQ(d.thread_rules, "main");
  EXPECT_FALSE(decide_process_scope("main", "/srv/app", "/usr/bin/env", false).watched);
}

TEST(ProcessScope, CmdIsWatchedEvenWithoutRules) {  // it may use the bw_* API
  EXPECT_TRUE(decide_process_scope("", "/srv/app", "/srv/app").watched);
  EXPECT_FALSE(decide_process_scope("", "/usr/bin/cat", "/srv/app").watched);
}

TEST(ProcessScope, ExeSectionWithoutRulesTakesTheDefaultRules) {
  const ScopeDecision d = decide_process_scope("main,exe:sleep|cat", "/usr/bin/cat", "/bin/sh");
  EXPECT_TRUE(d.watched);
  EXPECT_EQ(d.thread_rules, "main");
  EXPECT_FALSE(decide_process_scope("main,exe:sleep|cat", "/usr/bin/tee", "/bin/sh").watched);
}

TEST(ProcessScope, ExeSectionsHaveTheirOwnRules) {
  const char* rules = "name:asio-.*, exe:node, main, exe:my_server, name:io-[0-9]+";
  EXPECT_EQ(decide_process_scope(rules, "/usr/bin/node", "/srv/app").thread_rules, "main");
  EXPECT_EQ(decide_process_scope(rules, "/opt/my_server", "/srv/app").thread_rules,
            "name:io-[0-9]+");
  EXPECT_EQ(decide_process_scope(rules, "/srv/app", "/srv/app").thread_rules, "name:asio-.*");
  EXPECT_FALSE(decide_process_scope(rules, "/usr/bin/sleep", "/srv/app").watched);
}

TEST(ProcessScope, ExePatternMatchesTheWholePathOrTheWholeBaseName) {
  EXPECT_TRUE(decide_process_scope("exe:/opt/.*/server", "/opt/a/server", "x").watched);
  EXPECT_TRUE(decide_process_scope("exe:serv.*", "/opt/a/server", "x").watched);
  EXPECT_FALSE(decide_process_scope("exe:serv", "/opt/a/server", "x").watched);
  EXPECT_FALSE(decide_process_scope("exe:opt", "/opt/a/server", "x").watched);
}

TEST(ProcessScope, CommasInsideAPatternDoNotEndIt) {
  const ScopeDecision d = decide_process_scope("exe:a{1,3}x,main", "/bin/aax", "/bin/sh");
  EXPECT_TRUE(d.watched);
  EXPECT_EQ(d.thread_rules, "main");
}

TEST(ProcessScope, ExeSectionWinsOverCmdForTheSameExecutable) {
  const ScopeDecision d = decide_process_scope("main,exe:app,name:x", "/srv/app", "/srv/app");
  EXPECT_EQ(d.thread_rules, "name:x");
}

TEST(ProcessScope, ExeInsideAThreadRuleIsNotASelector) {
  const ScopeDecision d = decide_process_scope("name:exe:x", "/bin/other", "/bin/other");
  EXPECT_EQ(d.thread_rules, "name:exe:x");
}

TEST(ProcessScope, ExeInsideAGroupOfAThreadRuleIsNotASelector) {
  const ScopeDecision d = decide_process_scope("name:(a,exe:b),main", "/bin/x", "/bin/x");
  EXPECT_TRUE(d.watched);
  EXPECT_EQ(d.thread_rules, "name:(a,exe:b),main");
}

TEST(ProcessScope, BadExePatternIsReportedAndSelectsNothing) {
  const ScopeDecision d = decide_process_scope("main,exe:(", "/bin/sh", "/usr/bin/app");
  EXPECT_FALSE(d.watched);
  EXPECT_NE(d.error.find("exe:("), std::string::npos);
  EXPECT_FALSE(decide_process_scope("exe:", "/bin/sh", "/bin/x").error.empty());
}

TEST(ProcessScope, OriginalProcessIsTheOneSet) {
  set_watched_process(0);
  EXPECT_FALSE(is_original_process());
  set_watched_process(getpid());
  EXPECT_TRUE(is_original_process());
  set_watched_process(getpid() + 1);
  EXPECT_FALSE(is_original_process());
}

}  // namespace
}  // namespace blockwatch::interpose
