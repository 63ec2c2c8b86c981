// Thread state without the preload: API nesting switches the thread's mode, task
// labels nest and bump the sequence number, allowed scopes keep the outermost
// reason, worker rules apply at first hook and on rename, and a slot is given
// back when its thread exits.
#include "interpose/core/thread_state.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "interpose/core/process_scope.h"
#include "interpose/core/worker_rules.h"

namespace blockwatch::interpose {
namespace {

class ThreadStateTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string error;
    ASSERT_TRUE(install_worker_rules("name:rule-worker", &error)) << error;
    set_watched_process(getpid());  // what the library constructor does
    thread_state_init();
  }
};

int claimed_slots() {
  int claimed = 0;
  for (const ThreadSlot& slot : g_thread_slots) claimed += slot.tid.load() != 0;
  return claimed;
}

TEST_F(ThreadStateTest, WorkerNestingSwitchesMode) {
  std::thread([] {
    EXPECT_FALSE(hook_should_time());  // classified: no rule matches its name
    EXPECT_EQ(current_mode(), kModeNotWorker);
    worker_begin();
    worker_begin();
    EXPECT_TRUE(hook_should_time());
    worker_end();
    EXPECT_TRUE(hook_should_time()) << "still one mark";
    worker_end();
    EXPECT_FALSE(hook_should_time());
    worker_end();  // unbalanced: ignored
    EXPECT_EQ(current_slot()->worker_depth.load(), 0);
  }).join();
}

TEST_F(ThreadStateTest, GuardMakesHooksPassThrough) {
  std::thread([] {
    worker_begin();
    {
      RecursionGuard guard;
      EXPECT_FALSE(hook_should_time());
    }
    EXPECT_TRUE(hook_should_time());
    worker_end();
  }).join();
}

TEST_F(ThreadStateTest, TasksNestAndCountAndAllowKeepsOutermostReason) {
  std::thread([] {
    ThreadSlot* slot = current_slot();
    ASSERT_NE(slot, nullptr);
    task_begin("outer");
    task_begin("inner");
    EXPECT_EQ(slot->task_depth.load(), 2);
    EXPECT_STREQ(slot->task_labels[1].load(), "inner");
    EXPECT_EQ(slot->task_seq.load(), 2u);
    task_end();
    EXPECT_STREQ(slot->task_labels[0].load(), "outer");
    task_end();
    task_end();  // unbalanced: ignored
    EXPECT_EQ(slot->task_depth.load(), 0);
    allow_begin("first");
    allow_begin("second");
    EXPECT_STREQ(slot->allow_reason.load(), "first");
    allow_end();
    EXPECT_EQ(slot->allow_depth.load(), 1);
    allow_end();
    EXPECT_EQ(slot->allow_reason.load(), nullptr);
  }).join();
}

// A name the rules' verdict table has not learnt (set without the naming hook,
// as here) cannot be classified by a hook (regexec allocates: no regex on the
// hook path): the thread passes through until the sender learns it.
TEST_F(ThreadStateTest, RuleAppliesOnceTheNameIsLearntAndOnRename) {
  std::thread([] {
    pthread_setname_np(pthread_self(), "rule-worker");  // no hook: not learnt
    EXPECT_FALSE(hook_should_time());
    EXPECT_EQ(current_mode(), kModeUnknown);
    EXPECT_EQ(current_slot()->classify_pending.load(), 1);
    EXPECT_STREQ(current_slot()->name, "rule-worker");
    EXPECT_FALSE(hook_should_time()) << "still pending";
    thread_state_classify_pending();  // the sender's turn
    EXPECT_EQ(current_slot()->classify_pending.load(), 0);
    EXPECT_TRUE(hook_should_time());
    pthread_setname_np(pthread_self(), "not-a-worker");
    thread_renamed(pthread_self(), "not-a-worker");  // what the naming hook calls
    EXPECT_FALSE(hook_should_time());
  }).join();
}

// A worker by name whose first contact with blockwatch is a task (no hooked
// call yet) is classified then: the watchdog needs it to be a worker to see its
// stalls.
TEST_F(ThreadStateTest, TaskBeginClassifiesAThreadWithoutAHookYet) {
  std::thread([] {
    pthread_setname_np(pthread_self(), "rule-worker");
    task_begin("first");
    EXPECT_EQ(current_mode(), kModeWorker);
    ASSERT_NE(tls_thread.slot, nullptr);
    EXPECT_TRUE(tls_thread.slot->worker_by_rule);
    task_end();
  }).join();
  std::thread([] {
    pthread_setname_np(pthread_self(), "not-a-worker");
    task_begin("first");
    EXPECT_EQ(current_mode(), kModeNotWorker);
    task_end();
  }).join();
}


TEST_F(ThreadStateTest, LearntNamesNeedNoSender) {
  thread_renamed(pthread_self(), "rule-worker");  // learnt by a naming hook
  std::thread([] {
    pthread_setname_np(pthread_self(), "rule-worker");
    EXPECT_TRUE(hook_should_time());
    EXPECT_EQ(current_slot()->classify_pending.load(), 0);
  }).join();
}

// A thread waiting for the sender to learn its (unlearnt) name is renamed from
// outside: its next hook classifies it by the new name, not the old one.
TEST_F(ThreadStateTest, RenameFromOutsideWhilePendingUsesTheNewName) {
  std::atomic<int> phase{0};
  std::thread worker([&] {
    pthread_setname_np(pthread_self(), "unlearnt-name");  // no hook: not learnt
    EXPECT_FALSE(hook_should_time());
    EXPECT_EQ(current_slot()->classify_pending.load(), 1);
    phase = 1;
    while (phase != 2) std::this_thread::yield();
    EXPECT_TRUE(hook_should_time());
    EXPECT_STREQ(current_slot()->name, "rule-worker");
  });
  while (phase != 1) std::this_thread::yield();
  pthread_setname_np(worker.native_handle(), "rule-worker");
  thread_renamed(worker.native_handle(), "rule-worker");
  phase = 2;
  worker.join();
}

TEST_F(ThreadStateTest, RenameFromOutsideReclassifiesAtNextHook) {
  std::atomic<int> phase{0};
  std::thread worker([&] {
    EXPECT_FALSE(hook_should_time());
    phase = 1;
    while (phase != 2) std::this_thread::yield();
    EXPECT_TRUE(hook_should_time());
  });
  while (phase != 1) std::this_thread::yield();
  pthread_setname_np(worker.native_handle(), "rule-worker");
  thread_renamed(worker.native_handle(), "rule-worker");
  phase = 2;
  worker.join();
}

// thread_renamed() on a thread that is exiting must never write into its TLS
// after the exit path dropped it (the slot's mode_access flag orders the two).
TEST_F(ThreadStateTest, RenamingThreadsFromOutsideWhileTheyExitIsSafe) {
  std::atomic<bool> done{false};
  std::atomic<pthread_t> latest{};
  std::thread renamer([&] {
    while (!done.load()) thread_renamed(latest.load(), "rule-worker");
  });
  for (int i = 0; i < 300; ++i) {
    std::thread short_lived([] { EXPECT_FALSE(hook_should_time()); });
    latest.store(short_lived.native_handle());
    short_lived.join();
  }
  done.store(true);
  renamer.join();
  for (const ThreadSlot& slot : g_thread_slots) EXPECT_EQ(slot.mode_access.load(), 0);
}

TEST_F(ThreadStateTest, SlotIsReleasedAtThreadExit) {
  const int before = claimed_slots();
  for (int i = 0; i < 100; ++i) {
    std::thread([] {
      worker_begin();
      EXPECT_NE(tls_thread.slot, nullptr);
    }).join();
  }
  EXPECT_EQ(claimed_slots(), before);
}

TEST_F(ThreadStateTest, LibraryThreadIsNeverAWorker) {
  std::thread([] {
    mark_current_thread_internal();
    worker_begin();
    EXPECT_FALSE(hook_should_time());
    worker_end();
  }).join();
}

}  // namespace
}  // namespace blockwatch::interpose
