// Driver of preload_hardening_target (hardening_target.cc): the ways a program
// could break under the preload that issue 10 found, each run under the real
// library with what the program saw and what was recorded checked.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/preload/hardening_target.h"
#include "tests/preload/run_target.h"

namespace blockwatch::preload_test {
namespace {

using ::testing::HasSubstr;

RunResult run_hardening(const std::string& scenario, std::map<std::string, std::string> env) {
  return run_target(scenario, env, /*preload=*/true, BW_HARDENING_TARGET);
}

// A thread's first hooked calls are made in a signal handler that interrupted
// malloc (a crash handler's syscall(SYS_gettid), a write). Classifying the thread
// must not run regexec there (it allocates: deadlock on malloc's lock). The
// thread is classified later, and its name rule (with a comma in the regex)
// then makes its blocking calls reported under its name.
TEST(Hardening, FirstHookInASignalHandlerThatInterruptedMallocNeitherDeadlocksNorMisclassifies) {
  const RunResult run = run_hardening(
      "signal_first_hook",
      {{"BLOCKWATCH_WORKERS", preload_target::kFirstHookRule}, {"BLOCKWATCH_THRESHOLD", "5ms"}});
  ASSERT_TRUE(run.exited_with(0)) << "status " << run.status << " (SIGALRM = deadlock)\n"
                                  << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("first hooks in a signal handler"));
  EXPECT_EQ(run.stderr_text, "");  // the rule parsed: no warning
  std::set<std::string> names;
  for (const DecodedEvent& e : at_site(run.events(), "learnt_name_site")) {
    names.insert(e.thread_name);
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(preload_target::kFirstHookThreads))
      << describe(run.events());
  EXPECT_TRUE(names.count("wq-0") && names.count("wq-19")) << describe(run.events());
}

}  // namespace
}  // namespace blockwatch::preload_test
