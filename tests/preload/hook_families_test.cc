// Each hook family, run under the preload: the right kind and count, a duration
// of at least the threshold, a stack containing the blocking site, the thread's
// name; non-worker threads produce nothing. Counts are taken per site (the
// *_site functions of target.cc): threads a worker creates inherit its name, so
// helper threads may be workers too.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/preload/run_target.h"

namespace blockwatch::preload_test {
namespace {

using ::testing::HasSubstr;

TEST(HookFamilies, ContendedMutexOnWorkerHasHolderStackAndName) {
  const RunResult run = run_target("mutex", kWorkerRule);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  const auto events = of_kind(run.events(), wire::KIND_MUTEX);
  // worker-1 contends once; other-1 (not a worker) contends the same way.
  ASSERT_EQ(events.size(), 1u) << describe(run.events());
  const DecodedEvent& e = events[0];
  EXPECT_EQ(e.event.function(), "pthread_mutex_lock");
  EXPECT_EQ(e.thread_name, "worker-1");
  EXPECT_GE(e.event.duration_ns(), 1 * kMs);  // default threshold
  EXPECT_TRUE(e.stack_contains("contended_lock_site")) << describe(events);
  EXPECT_FALSE(e.stack_contains("pthread_mutex_lock")) << "blockwatch frames must be removed";
  // The target prints the holder's tid for each contention; the first is worker-1's.
  int holder = 0;
  ASSERT_EQ(sscanf(run.stdout_text.c_str(), "holder %d", &holder), 1);
  EXPECT_EQ(e.event.holder_tid(), holder);
  EXPECT_NE(e.event.address(), 0u);
  ASSERT_NE(run.main_stream(run.pid), nullptr);
  EXPECT_EQ(e.event.tid() == run.pid, false);
}

TEST(HookFamilies, TimedAndClockMutexLocksTimeOutAsWithoutPreload) {
  const RunResult run = run_target("mutex_timed", kWorkerRule);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  const auto events = at_site(of_kind(run.events(), wire::KIND_MUTEX), "timed_lock_site");
  ASSERT_EQ(events.size(), 2u) << describe(run.events());
  EXPECT_EQ(events[0].event.function(), "pthread_mutex_timedlock");
  EXPECT_EQ(events[1].event.function(), "pthread_mutex_clocklock");
  for (const auto& e : events) EXPECT_GE(e.event.duration_ns(), 1 * kMs);
}

TEST(HookFamilies, C11MutexIsAMutex) {
  const RunResult run = run_target("c11_mutex", kWorkerRule);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  const auto events = at_site(of_kind(run.events(), wire::KIND_MUTEX), "c11_lock_site");
  ASSERT_EQ(events.size(), 1u) << describe(run.events());
  EXPECT_EQ(events[0].event.function(), "mtx_lock");
  EXPECT_NE(events[0].event.holder_tid(), 0);
}

TEST(HookFamilies, RwlockReadAndWriteHaveTheirKinds) {
  const RunResult run = run_target("rwlock", kWorkerRule);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  const auto reads = at_site(of_kind(run.events(), wire::KIND_RWLOCK_READ), "rwlock_site");
  const auto writes = at_site(of_kind(run.events(), wire::KIND_RWLOCK_WRITE), "rwlock_site");
  ASSERT_EQ(reads.size(), 1u) << describe(run.events());
  ASSERT_EQ(writes.size(), 1u) << describe(run.events());
  EXPECT_EQ(reads[0].event.function(), "pthread_rwlock_rdlock");
  EXPECT_NE(reads[0].event.holder_tid(), 0) << "a writer held it";
  EXPECT_EQ(writes[0].event.function(), "pthread_rwlock_wrlock");
  EXPECT_GE(writes[0].event.duration_ns(), 1 * kMs);
}

// A condvar site's events less the warm-up wait (target_locks.cc): its deadline
// has passed, so it returns at once, but a loaded machine may preempt it past the
// 1 ms threshold, and then it is reported too, before the planted waits. Only an
// event beyond `planted`, first, and of `warm_up_function`, is dropped.
std::vector<DecodedEvent> without_warm_up(std::vector<DecodedEvent> events, size_t planted,
                                          const std::string& warm_up_function) {
  if (events.size() == planted + 1 && events[0].event.function() == warm_up_function) {
    events.erase(events.begin());
  }
  return events;
}

TEST(HookFamilies, CondvarWaitsAreTimed) {
  const RunResult run = run_target("condvar", kWorkerRule);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  const auto events =
      without_warm_up(at_site(of_kind(run.events(), wire::KIND_CONDVAR), "condvar_site"), 2,
                      "pthread_cond_timedwait");
  ASSERT_EQ(events.size(), 2u) << describe(run.events());
  EXPECT_EQ(events[0].event.function(), "pthread_cond_timedwait");
  EXPECT_EQ(events[1].event.function(), "pthread_cond_clockwait");
  for (const auto& e : events) EXPECT_GE(e.event.duration_ns(), 1 * kMs);
  // The wait re-locks its mutex inside glibc: no mutex event from it.
  EXPECT_TRUE(at_site(of_kind(run.events(), wire::KIND_MUTEX), "condvar_site").empty());
}

TEST(HookFamilies, OldAbiCondvarReachesTheOldImplementationThroughOurShim) {
  const RunResult run = run_target("condvar_old_abi", kWorkerRule);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  EXPECT_THAT(run.stdout_text, HasSubstr("libblockwatch"));
  const auto events =
      without_warm_up(of_kind(run.events(), wire::KIND_CONDVAR), 1, "pthread_cond_timedwait");
  ASSERT_EQ(events.size(), 1u) << describe(run.events());
  EXPECT_EQ(events[0].event.function(), "pthread_cond_timedwait");
}

TEST(HookFamilies, SemaphoreTimesOnlyWhenItWaits) {
  const RunResult run = run_target("semaphore", kWorkerRule);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  const auto events = at_site(of_kind(run.events(), wire::KIND_SEMAPHORE), "semaphore_site");
  ASSERT_EQ(events.size(), 1u) << describe(run.events());
  EXPECT_EQ(events[0].event.function(), "sem_timedwait");
  EXPECT_GE(events[0].event.duration_ns(), 1 * kMs);
}

TEST(HookFamilies, DirectFutexSyscallsAreCaught) {
  const RunResult run = run_target("futex", kWorkerRule);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  const auto futexes = of_kind(run.events(), wire::KIND_FUTEX);
  const auto direct = at_site(futexes, "futex_site");
  ASSERT_EQ(direct.size(), 1u) << describe(run.events());
  EXPECT_EQ(direct[0].event.function(), "futex");
  EXPECT_GE(direct[0].event.duration_ns(), 1 * kMs);
  // A Rust-std-like lock built on futex wait/wake: the contended lock is caught.
  const auto rust_like = at_site(futexes, "rust_like_lock_site");
  ASSERT_GE(rust_like.size(), 1u) << describe(run.events());
  EXPECT_TRUE(rust_like[0].stack_contains("FutexMutex::lock"));
  // libstdc++'s std::atomic::wait and std::future::get block the same way.
  EXPECT_GE(at_site(futexes, "atomic_wait_site").size(), 1u) << describe(run.events());
  EXPECT_GE(at_site(futexes, "future_wait_site").size(), 1u) << describe(run.events());
}

TEST(HookFamilies, IoHasFdTypeAndFsyncKind) {
  // Strict mode: a tmpfs fsync may take less than the default 1 ms.
  auto env = kWorkerRule;
  env["BLOCKWATCH_THRESHOLD"] = "0";
  const RunResult run = run_target("io", env);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  const auto reads = at_site(of_kind(run.events(), wire::KIND_READ), "pipe_read_site");
  ASSERT_EQ(reads.size(), 1u) << describe(run.events());
  EXPECT_EQ(reads[0].event.function(), "read");
  EXPECT_EQ(reads[0].event.fd_type(), wire::FD_PIPE);
  EXPECT_GE(reads[0].event.fd(), 0);
  EXPECT_GE(reads[0].event.duration_ns(), 1 * kMs);
  const auto file_writes = at_site(of_kind(run.events(), wire::KIND_WRITE), "file_fsync_site");
  ASSERT_EQ(file_writes.size(), 1u) << describe(run.events());
  EXPECT_EQ(file_writes[0].event.fd_type(), wire::FD_REGULAR);
  const auto syncs = at_site(of_kind(run.events(), wire::KIND_FSYNC), "file_fsync_site");
  ASSERT_EQ(syncs.size(), 3u) << describe(run.events());  // fsync, fdatasync, fsync(-1)
  EXPECT_EQ(syncs[0].event.function(), "fsync");
  EXPECT_EQ(syncs[1].event.function(), "fdatasync");
}

TEST(HookFamilies, SleepsAndPollsButNeverTheIdleWait) {
  const RunResult run = run_target("sleep", kWorkerRule);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  const auto sleeps = at_site(of_kind(run.events(), wire::KIND_SLEEP), "sleep_site");
  ASSERT_EQ(sleeps.size(), 3u) << describe(run.events());
  EXPECT_EQ(sleeps[0].event.function(), "usleep");
  EXPECT_EQ(sleeps[1].event.function(), "nanosleep");
  EXPECT_EQ(sleeps[2].event.function(), "clock_nanosleep");
  const auto polls = at_site(of_kind(run.events(), wire::KIND_POLL), "sleep_site");
  ASSERT_EQ(polls.size(), 2u) << describe(run.events());  // poll(5 ms), select; not poll(0)
  EXPECT_EQ(polls[0].event.function(), "poll");
  EXPECT_EQ(polls[1].event.function(), "select");
  for (const auto& e : run.events()) EXPECT_NE(e.event.function(), "epoll_wait");
  for (const auto& e : sleeps) {
    EXPECT_GE(e.event.duration_ns(), 1 * kMs);
    EXPECT_EQ(e.thread_name, "worker-1");
  }
}

TEST(HookFamilies, NonWorkerThreadsProduceNothing) {
  const RunResult run = run_target("mutex", {});  // no rule: nobody is a worker
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  EXPECT_TRUE(run.events().empty()) << describe(run.events());
  ASSERT_EQ(run.streams.size(), 1u);
  EXPECT_TRUE(run.streams[0].has_hello);
}

TEST(HookFamilies, MainRuleMakesOnlyTheFirstThreadAWorker) {
  const RunResult run = run_target("main", {{"BLOCKWATCH_WORKERS", "main"}});
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  const auto events = run.events();
  ASSERT_EQ(events.size(), 1u) << describe(events);
  EXPECT_TRUE(events[0].stack_contains("main_thread_site"));
  EXPECT_EQ(events[0].event.tid(), run.pid);
}

TEST(HookFamilies, ThreadRenamedFromOutsideIsReclassified) {
  const RunResult run =
      run_target("rename_from_outside", {{"BLOCKWATCH_WORKERS", "name:worker-ext"}});
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  const auto events = run.events();
  ASSERT_EQ(events.size(), 1u) << describe(events);
  EXPECT_EQ(events[0].thread_name, "worker-ext");
  EXPECT_TRUE(events[0].stack_contains("main_thread_site"));
}

TEST(HookFamilies, ApiMarksWorkerTaskAndAllowedScope) {
  const RunResult run = run_target("api", {});
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  const auto events = at_site(run.events(), "api_site");
  ASSERT_EQ(events.size(), 2u) << describe(run.events());
  EXPECT_EQ(events[0].thread_name, "api-thread");
  EXPECT_EQ(events[0].task, "handle_request");
  EXPECT_TRUE(events[0].event.in_task());
  EXPECT_GE(events[0].event.task_seq(), 1u);
  EXPECT_EQ(events[0].allow_reason, "");
  EXPECT_EQ(events[1].allow_reason, "startup config read");
}

TEST(HookFamilies, ThresholdFiltersShortCalls) {
  auto env = kWorkerRule;
  env["BLOCKWATCH_THRESHOLD"] = "100ms";
  const RunResult run = run_target("threshold", env);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  const auto events = run.events();
  ASSERT_EQ(events.size(), 1u) << describe(events);
  EXPECT_GE(events[0].event.duration_ns(), 100 * kMs);
  EXPECT_EQ(run.streams[0].hello.threshold_ns(), 100 * kMs);
}

TEST(HookFamilies, StrictModeReportsUncontendedLocks) {
  auto env = kWorkerRule;
  env["BLOCKWATCH_THRESHOLD"] = "0";
  RunResult run = run_target("strict", env);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  EXPECT_EQ(of_kind(run.events(), wire::KIND_MUTEX).size(), 3u) << describe(run.events());
  EXPECT_EQ(of_kind(run.events(), wire::KIND_RWLOCK_READ).size(), 1u) << describe(run.events());
  EXPECT_EQ(of_kind(run.events(), wire::KIND_RWLOCK_WRITE).size(), 1u) << describe(run.events());
  run = run_target("strict", kWorkerRule);  // 1 ms: an uncontended lock is nothing
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  EXPECT_TRUE(run.events().empty()) << describe(run.events());
}

TEST(HookFamilies, MalformedSettingsWarnOnceAndKeepDefaults) {
  auto env = kWorkerRule;
  env["BLOCKWATCH_THRESHOLD"] = "abc";
  env["BLOCKWATCH_WORKERS"] = "name:worker-.*,bogus";
  const RunResult run = run_target("threshold", env);
  ASSERT_TRUE(run.exited_with(0)) << run.stderr_text;
  EXPECT_THAT(run.stderr_text,
              HasSubstr("blockwatch: BLOCKWATCH_THRESHOLD='abc' is not a duration (examples: 0, "
                        "250us, 1ms, 2s); using 1ms"));
  EXPECT_THAT(run.stderr_text, HasSubstr("'bogus'"));
  EXPECT_EQ(run.events().size(), 2u) << describe(run.events());  // 2 ms and 150 ms at 1 ms
}

}  // namespace
}  // namespace blockwatch::preload_test
