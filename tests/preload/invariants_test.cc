// The injected library's invariants (DESIGN.md, issue 2), each checked on a real
// program under the preload: the program's results are unchanged (the target
// checks its own errno and return values and exits 3 when one differs), early
// and nested calls pass through, and fork / vfork / posix_spawn / system / exec /
// exit paths behave as interpose/README.md documents.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include "tests/preload/run_target.h"

namespace blockwatch::preload_test {
namespace {

using ::testing::HasSubstr;

size_t count_with_exe_event(const RunResult& run, const std::string& site) {
  size_t streams = 0;
  for (const DecodedStream& s : run.streams) {
    for (const DecodedEvent& e : s.events) {
      if (e.stack_contains(site)) {
        ++streams;
        break;
      }
    }
  }
  return streams;
}

TEST(Invariants, ErrnoAndReturnValuesIncludingEintrAndTimeoutsAreUnchanged) {
  // Every scenario checks its own results; these are the errno-heavy ones.
  for (const char* scenario : {"eintr", "semaphore", "mutex_timed", "condvar", "io", "futex"}) {
    const RunResult run = run_target(scenario, kWorkerRule);
    EXPECT_TRUE(run.exited_with(0)) << scenario << ": " << run.stderr_text;
  }
  // And in strict mode, where every call takes the slow path.
  auto strict = kWorkerRule;
  strict["BLOCKWATCH_THRESHOLD"] = "0";
  for (const char* scenario : {"eintr", "semaphore", "io", "futex"}) {
    const RunResult run = run_target(scenario, strict);
    EXPECT_TRUE(run.exited_with(0)) << scenario << " (strict): " << run.stderr_text;
  }
}

TEST(Invariants, SignalHandlerOnAWorkerPassesThrough) {
  // eintr's SIGALRM handler calls write() on a worker that is inside a hook.
  const RunResult run = run_target("eintr", kWorkerRule);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  for (const DecodedEvent& e : run.events()) EXPECT_FALSE(e.stack_contains("on_alarm"));
}

TEST(Invariants, HooksBeforeTheConstructorPassThrough) {
  const RunResult run = run_target("early_hooks", kWorkerRule);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  EXPECT_EQ(run.events().size(), 1u) << describe(run.events());  // and it works after
}

// dlsym_nested.h: the program's free() calls hooked functions while blockwatch
// is inside the dlsym of its first resolve. The program prints what each call
// returned ("write=1:0 ...", rc:errno) and exits 0 only when every one is what the
// real function returns (3 otherwise).
std::string nested_result(const RunResult& run, const std::string& name) {
  const size_t at = run.stdout_text.find(name + "=");
  if (at == std::string::npos) return "";
  const size_t begin = at + name.size() + 1;
  return run.stdout_text.substr(begin, run.stdout_text.find_first_of(" \n", begin) - begin);
}

TEST(Invariants, HooksCalledDuringBlockwatchsOwnDlsymNeitherHangNorCrash) {
  const RunResult run = run_target("", kWorkerRule, true, BW_DLSYM_NESTED_TARGET);
  // Proof that the scenario happened: the program's free ran inside blockwatch's
  // resolve (twice: glibc frees the pending error's string and its record).
  EXPECT_GE(std::atoi(nested_result(run, "nested_free_calls").c_str()), 1) << run.stdout_text;
  EXPECT_TRUE(run.exited_with(0) || run.exited_with(3)) << run.stderr_text;
  // syscall() falls back to the raw instruction: the real result.
  EXPECT_EQ(nested_result(run, "getpid"), std::to_string(run.pid));
  // And blockwatch works afterwards: the worker's one usleep is recorded.
  EXPECT_EQ(run.events().size(), 1u) << describe(run.events());
}

// Invariant 4 in full: each nested call answers what the real function answers
// (real_symbols.cc fills its table from libc's symbol table before any dlsym).
TEST(Invariants, HooksCalledDuringBlockwatchsOwnDlsymPassThrough) {
  const RunResult run = run_target("", kWorkerRule, true, BW_DLSYM_NESTED_TARGET);
  EXPECT_TRUE(run.exited_with(0)) << run.stdout_text << run.stderr_text;
  EXPECT_EQ(nested_result(run, "write"), "1:0");
  EXPECT_EQ(nested_result(run, "read"), "1");
  EXPECT_EQ(nested_result(run, "timedlock"), std::to_string(EDEADLK));
  EXPECT_EQ(nested_result(run, "usleep"), "0:0");
}

TEST(Invariants, DlsymNestedScenarioWithoutThePreloadMakesNoNestedCalls) {
  const RunResult run = run_target("", kWorkerRule, false, BW_DLSYM_NESTED_TARGET);
  ASSERT_TRUE(run.exited_with(0)) << run.stdout_text << run.stderr_text;
  EXPECT_EQ(nested_result(run, "nested_free_calls"), "0");
}

TEST(Invariants, DisabledLibraryRecordsNothing) {
  auto env = kWorkerRule;
  env["BLOCKWATCH_DISABLE"] = "1";
  const RunResult run = run_target("mutex", env);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  EXPECT_TRUE(run.events().empty());
}

TEST(Invariants, ForkWithoutExecChildKeepsWorkingAndAnnouncesItself) {
  const RunResult run = run_target("fork", kWorkerRule);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;  // the target checks the child's status
  const DecodedStream* parent = run.main_stream(run.pid);
  ASSERT_NE(parent, nullptr);
  const DecodedStream* child = nullptr;
  for (const DecodedStream& s : run.streams) {
    if (s.has_hello && s.hello.forked_child()) child = &s;
  }
  ASSERT_NE(child, nullptr) << "the forked child announces itself";
  EXPECT_EQ(child->hello.ppid(), run.pid);
  ASSERT_EQ(child->events.size(), 1u) << describe(child->events);
  EXPECT_TRUE(child->events[0].stack_contains("fork_child_site"));
  EXPECT_EQ(child->goodbye.exit_status(), 7);
}

TEST(Invariants, VforkPosixSpawnAndSystemChildrenAreFollowed) {
  const RunResult run = run_target("spawn", kWorkerRule);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  // vfork+exec, posix_spawn and system() each run `preload_target child`.
  EXPECT_EQ(count_with_exe_event(run, "exec_child_site"), 3u);
  const DecodedStream* parent = run.main_stream(run.pid);
  ASSERT_NE(parent, nullptr);
  EXPECT_TRUE(parent->has_goodbye) << "the vfork child's exec must not end the parent's stream";
  EXPECT_EQ(parent->goodbye.reason(), "exit");
}

TEST(Invariants, FollowChildrenOffLeavesChildrenUnwatched) {
  auto env = kWorkerRule;
  env["BLOCKWATCH_FOLLOW_CHILDREN"] = "0";
  const RunResult run = run_target("spawn", env);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  EXPECT_EQ(count_with_exe_event(run, "exec_child_site"), 0u);
  EXPECT_EQ(run.streams.size(), 1u);
}

TEST(Invariants, ExecWithFollowChildrenWatchesTheNewImage) {
  auto env = kWorkerRule;
  env["BLOCKWATCH_WORKERS"] = "main,name:worker-.*";
  const RunResult run = run_target("exec", env);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  EXPECT_EQ(count_with_exe_event(run, "exec_child_site"), 1u);
  // The old image's record (main thread, before exec) was flushed before exec
  // replaced it, and kept: the new image continues the same file.
  bool old_image_event = false;
  for (const DecodedEvent& e : run.events()) {
    old_image_event |= e.event.tid() == run.pid && !e.stack_contains("exec_child_site");
  }
  EXPECT_TRUE(old_image_event) << describe(run.events());
}

TEST(Invariants, ClosingEveryFdAndDup2OverTheOutputDoesNotHurtTheProgram) {
  const RunResult run = run_target("close_fds", kWorkerRule);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("still running"));
}

TEST(Invariants, TwoThousandShortLivedWorkerThreads) {
  const RunResult run = run_target("many_threads", kWorkerRule);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  ASSERT_EQ(run.streams.size(), 1u);
  EXPECT_TRUE(run.streams[0].has_goodbye);
  for (const DecodedEvent& e : run.events()) EXPECT_EQ(e.thread_name, "worker-short");
}

TEST(Invariants, ExitFromANonMainThreadFlushesWithItsStatus) {
  const RunResult run = run_target("exit_thread", kWorkerRule);
  ASSERT_TRUE(run.exited_with(5)) << run.stderr_text;
  ASSERT_EQ(run.streams.size(), 1u);
  EXPECT_EQ(run.streams[0].events.size(), 1u);
  EXPECT_TRUE(run.streams[0].has_goodbye);
  EXPECT_EQ(run.streams[0].goodbye.exit_status(), 5);
}

TEST(Invariants, UnderscoreExitFlushesWithItsStatus) {
  const RunResult run = run_target("underscore_exit", kWorkerRule);
  ASSERT_TRUE(run.exited_with(6)) << run.stderr_text;
  ASSERT_EQ(run.streams.size(), 1u);
  EXPECT_EQ(run.streams[0].events.size(), 1u);
  EXPECT_EQ(run.streams[0].goodbye.reason(), "exit");
  EXPECT_EQ(run.streams[0].goodbye.exit_status(), 6);
}

TEST(Invariants, AbortStillAborts) {
  const RunResult run = run_target("abort", kWorkerRule);
  EXPECT_TRUE(run.killed_by(SIGABRT));
  ASSERT_EQ(run.streams.size(), 1u);
  EXPECT_TRUE(run.streams[0].has_hello);
}

TEST(Invariants, OnBlockingAbortStopsAtTheSiteAndSaysWhy) {
  auto env = kWorkerRule;
  env["BLOCKWATCH_ON_BLOCKING"] = "abort";
  const RunResult run = run_target("abort_on_blocking", env);
  EXPECT_TRUE(run.killed_by(SIGABRT));
  EXPECT_THAT(run.stderr_text, HasSubstr("blockwatch: usleep blocked worker thread"));
  // backtrace_symbols_fd names only exported functions: check the frames are
  // the program's, not blockwatch's.
  EXPECT_THAT(run.stderr_text, HasSubstr("preload_target("));
  EXPECT_THAT(run.stderr_text, ::testing::Not(HasSubstr("libblockwatch")));
  EXPECT_THAT(run.stdout_text, ::testing::Not(HasSubstr("not reached")));
}

}  // namespace
}  // namespace blockwatch::preload_test
