// Unit tests (no preload) for the idle-wait classifier: the lock-free verdict
// cache, the stack hash, and the verdicts the library gives real executors'
// wait stacks with the built-in rules (the matcher itself: common/stack_rule_test.cc).
#include "interpose/core/wait_classifier.h"

#include <gtest/gtest.h>

#include <thread>

#include "common/builtin_rules.h"

namespace blockwatch::interpose {
namespace {

namespace shared = blockwatch::builtin_rules;

TEST(VerdictCache, StoresAndFindsVerdicts) {
  static VerdictCache cache;
  cache.clear();
  EXPECT_EQ(cache.lookup(12345), WaitVerdict::kUnknown);
  EXPECT_TRUE(cache.insert(12345, WaitVerdict::kIdle));
  EXPECT_TRUE(cache.insert(99999, WaitVerdict::kOther));
  EXPECT_EQ(cache.lookup(12345), WaitVerdict::kIdle);
  EXPECT_EQ(cache.lookup(99999), WaitVerdict::kOther);
  EXPECT_EQ(cache.lookup(12346 + 4), WaitVerdict::kUnknown);
  // Re-inserting a key keeps one entry (the first verdict wins for a racing pair).
  EXPECT_TRUE(cache.insert(12345, WaitVerdict::kIdle));
  EXPECT_EQ(cache.lookup(12345), WaitVerdict::kIdle);
}

TEST(VerdictCache, CollidingKeysProbeAndAFullNeighbourhoodEvictsOne) {
  static VerdictCache cache;
  cache.clear();
  // Keys that land on the same first entry (same value modulo kEntries after tagging).
  const uint64_t base = 4 * 1000;
  for (int i = 0; i < VerdictCache::kProbes; ++i) {
    const uint64_t key = base + static_cast<uint64_t>(i) * 4 * VerdictCache::kEntries;
    ASSERT_TRUE(cache.insert(key, i % 2 ? WaitVerdict::kOther : WaitVerdict::kIdle)) << i;
  }
  for (int i = 0; i < VerdictCache::kProbes; ++i) {
    const uint64_t key = base + static_cast<uint64_t>(i) * 4 * VerdictCache::kEntries;
    EXPECT_EQ(cache.lookup(key), i % 2 ? WaitVerdict::kOther : WaitVerdict::kIdle) << i;
  }
  // Every entry of the neighbourhood of `base` is taken by other keys now: the
  // new key takes one of their places (that one is classified again later).
  const uint64_t crowded = base + uint64_t{VerdictCache::kProbes} * 4 * VerdictCache::kEntries;
  EXPECT_TRUE(cache.insert(crowded, WaitVerdict::kIdle));
  EXPECT_EQ(cache.lookup(crowded), WaitVerdict::kIdle);
  int forgotten = 0;
  for (int i = 0; i < VerdictCache::kProbes; ++i) {
    const uint64_t key = base + static_cast<uint64_t>(i) * 4 * VerdictCache::kEntries;
    forgotten += cache.lookup(key) == WaitVerdict::kUnknown;
  }
  EXPECT_EQ(forgotten, 1);
}

TEST(VerdictCache, ReadersSeeWholeEntriesWhileOneThreadInserts) {
  static VerdictCache cache;
  cache.clear();
  std::atomic<bool> done{false};
  std::atomic<int> wrong{0};
  std::thread reader([&] {
    while (!done.load()) {
      for (uint64_t key = 8; key < 8 + 4 * 2000; key += 4) {
        const WaitVerdict verdict = cache.lookup(key);
        if (verdict != WaitVerdict::kUnknown && verdict != WaitVerdict::kIdle) ++wrong;
      }
    }
  });
  for (uint64_t key = 8; key < 8 + 4 * 2000; key += 4) cache.insert(key, WaitVerdict::kIdle);
  done.store(true);
  reader.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(cache.lookup(8 + 4 * 1999), WaitVerdict::kIdle);
}

TEST(WaitStackHash, DependsOnEveryFrameAndIsNeverZero) {
  const uintptr_t a[] = {0x1000, 0x2000, 0x3000};
  const uintptr_t b[] = {0x1000, 0x2000, 0x3001};
  EXPECT_NE(wait_stack_hash(a, 3), wait_stack_hash(b, 3));
  EXPECT_NE(wait_stack_hash(a, 2), wait_stack_hash(a, 3));
  EXPECT_EQ(wait_stack_hash(a, 3), wait_stack_hash(a, 3));
  EXPECT_NE(wait_stack_hash(nullptr, 0), 0u);
}

TEST(BuiltinRules, SchedulerRunIsAWholeWord) {
  // `scheduler::run\b`: run() is the scheduler's loop, run_one() is not.
  EXPECT_EQ(
      classify_wait_stack("condvar", {{"boost::asio::detail::scheduler::run_one()", "/bin/x"}}),
      WaitVerdict::kOther);
  EXPECT_EQ(classify_wait_stack("condvar", {{"boost::asio::detail::scheduler::run()", "/bin/x"}}),
            WaitVerdict::kIdle);
}

const char kLibc[] = "/lib/x86_64-linux-gnu/libc.so.6";
const char kLibstdcxx[] = "/lib/x86_64-linux-gnu/libstdc++.so.6";

TEST(ClassifyWaitStack, AsioSchedulerParkIsIdleAHandlerWaitIsNot) {
  // posix_event::wait inlined into do_run_one (what -O2 leaves).
  const std::vector<NamedFrame> park = {
      {"boost::asio::detail::scheduler::do_run_one()", "/bin/svc"},
      {"boost::asio::detail::scheduler::run()", "/bin/svc"},
      {"std::thread::_State_impl<>::_M_run()", "/bin/svc"}};
  EXPECT_EQ(classify_wait_stack("condvar", park), WaitVerdict::kIdle);
  const std::vector<NamedFrame> handler = {
      {"std::condition_variable::wait(std::unique_lock<std::mutex>&)", kLibstdcxx},
      {"planted_handler", "/bin/svc"},
      {"boost::asio::detail::executor_op<>::do_complete()", "/bin/svc"},
      {"boost::asio::detail::scheduler::do_run_one()", "/bin/svc"},
      {"boost::asio::detail::scheduler::run()", "/bin/svc"}};
  EXPECT_EQ(classify_wait_stack("condvar", handler), WaitVerdict::kOther);
}

TEST(ClassifyWaitStack, CondvarPoolLoopIsIdleOnlyForCondvarAndFutex) {
  const std::vector<NamedFrame> park = {
      {"std::condition_variable::wait(std::unique_lock<std::mutex>&)", kLibstdcxx},
      {"(anonymous namespace)::Pool::worker_loop(int)", "/bin/pool"},
      {"0x7f00", kLibstdcxx}};
  EXPECT_EQ(classify_wait_stack("condvar", park), WaitVerdict::kIdle);
  EXPECT_EQ(classify_wait_stack("futex", park), WaitVerdict::kIdle);
  EXPECT_EQ(classify_wait_stack("semaphore", park), WaitVerdict::kOther);
  const std::vector<NamedFrame> job = {
      {"pthread_cond_wait", kLibc},
      {"wait_for_reply", "/bin/pool"},
      {"(anonymous namespace)::Pool::worker_loop(int)", "/bin/pool"}};
  EXPECT_EQ(classify_wait_stack("condvar", job), WaitVerdict::kOther);
}

TEST(ClassifyWaitStack, TokioParkIsIdleItsBlockingPoolIsNoWorker) {
  const std::vector<NamedFrame> park = {
      {"std::sys::unix::futex::futex_wait", "/bin/rt"},
      {"std::sys::unix::locks::futex_condvar::Condvar::wait", "/bin/rt"},
      {"tokio::runtime::park::Inner::park", "/bin/rt"},
      {"tokio::runtime::scheduler::multi_thread::worker::Context::park_timeout", "/bin/rt"}};
  EXPECT_EQ(classify_wait_stack("futex", park), WaitVerdict::kIdle);
  const std::vector<NamedFrame> blocking_pool = {
      {"std::sys::unix::futex::futex_wait", "/bin/rt"},
      {"std::sync::condvar::Condvar::wait_timeout", "/bin/rt"},
      {"tokio::runtime::blocking::pool::Inner::run", "/bin/rt"},
      {"tokio::runtime::blocking::pool::Spawner::spawn_thread::{{closure}}", "/bin/rt"}};
  // The pool waiting for a job: idle for the thread's turns; never demoted.
  EXPECT_EQ(classify_wait_stack("futex", blocking_pool), WaitVerdict::kIdle);
  // A worker's own lock wait: tokio runs workers as pool jobs, so the pool's loop
  // is on its stack too, below the worker's scheduler loop.
  const std::vector<NamedFrame> worker_lock = {
      {"std::sys::unix::futex::futex_wait", "/bin/rt"},
      {"std::sync::mutex::Mutex<T>::lock", "/bin/rt"},
      {"rt::handler::{{closure}}", "/bin/rt"},
      {"tokio::runtime::scheduler::multi_thread::worker::run", "/bin/rt"},
      {"tokio::runtime::blocking::pool::Inner::run", "/bin/rt"}};
  EXPECT_EQ(classify_wait_stack("futex", worker_lock), WaitVerdict::kOther);
  const std::vector<NamedFrame> user_lock = {{"std::sys::unix::futex::futex_wait", "/bin/rt"},
                                             {"std::sync::mutex::Mutex<T>::lock", "/bin/rt"},
                                             {"rt::handler::{{closure}}", "/bin/rt"}};
  EXPECT_EQ(classify_wait_stack("futex", user_lock), WaitVerdict::kOther);
}

TEST(ClassifyWaitStack, UnknownFramesAreOther) {
  EXPECT_EQ(classify_wait_stack("condvar", {}), WaitVerdict::kOther);
  EXPECT_EQ(classify_wait_stack("condvar", {{"", ""}, {"", ""}}), WaitVerdict::kOther);
}

// epoll waits are idle by definition (any loop: libuv, Asio, a hand-written
// one), except in a nested loop: Node's execSync waiting for its child.
TEST(ClassifyWaitStack, EpollWaitIsIdleUnlessANestedLoop) {
  const std::vector<NamedFrame> main_loop = {
      {"uv__io_poll", "/usr/bin/node"}, {"uv_run", "/usr/bin/node"},
      {"node::SpinEventLoop(node::Environment*)", "/usr/bin/node"}};
  EXPECT_EQ(classify_wait_stack("poll", main_loop), WaitVerdict::kIdle);
  EXPECT_EQ(classify_wait_stack("poll", {{"my_own_loop", "/bin/svc"}, {"main", "/bin/svc"}}),
            WaitVerdict::kIdle);
  const std::vector<NamedFrame> exec_sync = {
      {"uv__io_poll", "/usr/bin/node"},
      {"uv_run", "/usr/bin/node"},
      {"node::SyncProcessRunner::TryInitializeAndRunLoop()", "/usr/bin/node"},
      {"node::SyncProcessRunner::Run()", "/usr/bin/node"}};
  EXPECT_EQ(classify_wait_stack("poll", exec_sync), WaitVerdict::kOther);
}

}  // namespace
}  // namespace blockwatch::interpose
