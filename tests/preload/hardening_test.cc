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

// The sender's tables at their bounds (README "Memory") take a few MiB; the
// unbounded tables took 28.7 MB for these labels.
constexpr long kLabelRssCeilingKib = 8 * 1024;

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

// A reported call made in a signal handler is unwound from inside the handler
// (DESIGN invariant 3). The handlers here interrupt a worker inside
// dl_iterate_phdr's callback, holding the loader's lock, and inside malloc; the
// unwind takes neither (it walks the library's module copy, phdr_cache.h, and
// libunwind's local walk allocates nothing). No deadlock, every call reported
// with the handler and what it interrupted in its stack.
TEST(Hardening, ReportedCallsInSignalHandlersThatInterruptedTheLoaderOrMalloc) {
  const RunResult run = run_hardening("reported_in_handler", kWorkerRule);
  ASSERT_TRUE(run.exited_with(0)) << "status " << run.status << " (SIGALRM = deadlock)\n"
                                  << run.stderr_text;
  const auto reported = at_site(run.events(), "handler_blocking_site");
  EXPECT_EQ(reported.size(), static_cast<size_t>(preload_target::kReportedHandlerSignals))
      << describe(run.events());
  size_t through_loader_lock = 0;
  for (const DecodedEvent& e : reported) {
    EXPECT_TRUE(e.stack_contains("reporting_handler")) << describe({e});
    if (e.stack_contains("loader_lock_held_callback")) ++through_loader_lock;
  }
  // Most of the worker's time is in the callback: signals land there.
  EXPECT_GT(through_loader_lock, 0u) << describe(reported);
  std::printf("%zu of %zu reported inside dl_iterate_phdr's callback\n", through_loader_lock,
              reported.size());
}

// The same with the worker taking and releasing the loader's lock in a loop, so
// signals land inside pthread_mutex_lock/unlock of that lock, where glibc's
// recursive lock has its word taken but no owner written: an unwind that asked
// glibc's dl_iterate_phdr waited for itself there (5 of 5 runs hung). Captures
// walk the library's module copy instead (interpose/base/phdr_cache.h).
TEST(Hardening, ReportedCallsInSignalHandlersAtTheLoaderLocksEdges) {
  const RunResult run = run_hardening("reported_at_loader_lock_edges", kWorkerRule);
  ASSERT_TRUE(run.exited_with(0)) << "status " << run.status << " (SIGALRM = deadlock)\n"
                                  << run.stderr_text;
  const auto reported = at_site(run.events(), "handler_blocking_site");
  EXPECT_EQ(reported.size(), static_cast<size_t>(preload_target::kLoaderLockEdgeSignals));
  size_t through_loader = 0;
  for (const DecodedEvent& e : reported) {
    EXPECT_TRUE(e.stack_contains("reporting_handler")) << describe({e});
    if (e.stack_contains("dl_iterate_phdr")) ++through_loader;
  }
  // The unwind goes on past the signal frame into what the handler interrupted.
  EXPECT_GT(through_loader, 0u) << describe(reported);
  std::printf("%zu of %zu reported inside dl_iterate_phdr\n", through_loader, reported.size());
}

// A program shrinks the default thread stack to 64 KiB, then forks: blockwatch's
// threads in the child start after that, and its watchdog demangles a 906-byte
// call-site name (over 64 KiB of stack) to classify a worker's condvar wait.
// They take a stack of their own size; with the default the child crashed.
TEST(Hardening, OurThreadsDoNotTakeAShrunkDefaultStack) {
  const RunResult run = run_hardening("small_default_stack", kWorkerRule);
  ASSERT_TRUE(run.exited_with(0)) << run.status << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("child: exit 0"));
  const auto reported = at_site(run.events(), "deep_named_wait_site<");
  ASSERT_EQ(reported.size(), 1u) << describe(run.events());
  EXPECT_EQ(reported[0].event.kind(), wire::KIND_CONDVAR);
}

size_t stack_used(const std::string& stdout_text) {
  const size_t at = stdout_text.find("stack used by a reported call: ");
  if (at == std::string::npos) return SIZE_MAX;
  return std::stoul(stdout_text.substr(at + 31));
}

// A worker with a 64 KiB stack and 5 KiB of it left makes reported calls (its
// first is the thread's first unwind): the program runs as without the preload,
// every call is reported with its stack, and each took under 1 KiB of the
// thread's stack (painted, then scanned for the deepest byte written).
TEST(Hardening, ReportedCallsFitInASmallStackAndUnderOneKiB) {
  const RunResult bare =
      run_target("small_stack", kWorkerRule, /*preload=*/false, BW_HARDENING_TARGET);
  ASSERT_TRUE(bare.exited_with(0)) << bare.stderr_text;
  const RunResult run = run_hardening("small_stack", kWorkerRule);
  ASSERT_TRUE(run.exited_with(0)) << "status " << run.status << "\n" << run.stderr_text;
  const size_t used = stack_used(run.stdout_text);
  EXPECT_LT(used, preload_target::kStackBudgetBytes)
      << run.stdout_text << "without the preload: " << bare.stdout_text;
  const auto sleeps = at_site(of_kind(run.events(), wire::KIND_SLEEP), "small_stack_site");
  const auto waits = at_site(of_kind(run.events(), wire::KIND_CONDVAR), "small_stack_site");
  EXPECT_EQ(sleeps.size(), static_cast<size_t>(preload_target::kSmallStackCalls))
      << describe(run.events());
  EXPECT_EQ(waits.size(), static_cast<size_t>(preload_target::kSmallStackCalls))
      << describe(run.events());
  for (const DecodedEvent& e : sleeps) {
    EXPECT_TRUE(e.stack_contains("with_stack_left") && e.stack_contains("small_stack_thread"))
        << "the unwind crossed back from the side stack";
  }
  std::printf("%s(without the preload: %s)\n", run.stdout_text.c_str(), bare.stdout_text.c_str());
}

const wire::Counters* final_counters(const RunResult& run) {
  const DecodedStream* stream = run.main_stream(run.pid);
  return stream ? &stream->counters : nullptr;
}

// More live worker threads than the library has slots: each one is either
// watched (its blocking call reported) or counted as unwatched; none is lost
// silently (issue 10, defect 6).
TEST(Hardening, WorkersBeyondTheThreadSlotsAreCountedAsUnwatched) {
  const RunResult run = run_hardening("more_threads_than_slots", kWorkerRule);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  std::set<int32_t> reporting_tids;
  for (const DecodedEvent& e : at_site(run.events(), "slot_site")) {
    reporting_tids.insert(e.event.tid());
  }
  const wire::Counters* counters = final_counters(run);
  ASSERT_NE(counters, nullptr);
  EXPECT_GE(counters->threads_unwatched(), 8u);  // 4096 slots, 4104 workers + main
  EXPECT_EQ(reporting_tids.size() + counters->threads_unwatched(),
            static_cast<size_t>(preload_target::kLiveWorkerThreads))
      << reporting_tids.size() << " reported, " << counters->threads_unwatched() << " unwatched, "
      << counters->dropped_queue_full() << " queue full, " << counters->dropped_no_collector()
      << " no collector, " << counters->dropped_too_deep() << " too deep";
}

// Threads that end through a raw SYS_exit never run their TLS destructors, so
// their slots were never freed: after 4096 of them no thread was watched. Their
// slots are reclaimed when the slots run out (issue 10, 7b).
TEST(Hardening, SlotsOfThreadsEndedByARawExitAreReclaimed) {
  const RunResult run = run_hardening("raw_exit_threads", kWorkerRule);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  const auto last = at_site(run.events(), "slot_site");
  ASSERT_EQ(last.size(), 1u) << describe(run.events());
  EXPECT_EQ(last[0].thread_name, "worker-last");
  const wire::Counters* counters = final_counters(run);
  ASSERT_NE(counters, nullptr);
  EXPECT_EQ(counters->threads_unwatched(), 0u);
}

long rss_growth_kib(const std::string& stdout_text) {
  const std::string tag = "unique labels: ";
  const size_t at = stdout_text.find(tag);
  return at == std::string::npos ? -1 : std::stol(stdout_text.substr(at + tag.size()));
}

// 200,000 reports, each in a task whose label was never used before: the
// library's memory in the target stays under a ceiling (it grew 28.7 MB before:
// every label was interned for the process's life), and every event still
// carries its own label (issue 10, defect 3).
TEST(Hardening, DistinctTaskLabelsDoNotGrowTheTargetsMemory) {
  auto env = kWorkerRule;
  env["BLOCKWATCH_THRESHOLD"] = "0";
  const RunResult run = run_hardening("unique_labels", env);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  const long growth = rss_growth_kib(run.stdout_text);
  ASSERT_GE(growth, 0) << run.stdout_text;
  EXPECT_LT(growth, kLabelRssCeilingKib) << run.stdout_text;
  const auto events = at_site(run.events(), "labelled_site");
  const wire::Counters* counters = final_counters(run);
  ASSERT_NE(counters, nullptr);
  const size_t total = preload_target::kWarmUpLabels + preload_target::kUniqueLabels;
  EXPECT_EQ(events.size() + counters->dropped_queue_full() + counters->dropped_too_deep(), total);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().task, "req-" + std::to_string(total - 1));
  std::printf("%s", run.stdout_text.c_str());
}

// A vfork() child runs on its parent's thread until it execs or exits: its
// blocking calls were recorded as the parent's (its pid, its thread). They are
// not recorded; the parent's own call is (issue 10, 7).
TEST(Hardening, AVforkChildsCallsAreNotRecordedAsTheParents) {
  const RunResult run = run_hardening("vfork_child", kWorkerRule);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  EXPECT_TRUE(at_site(run.events(), "vfork_child_site").empty()) << describe(run.events());
  EXPECT_EQ(at_site(run.events(), "vfork_parent_site").size(), 1u) << describe(run.events());
}

}  // namespace
}  // namespace blockwatch::preload_test
