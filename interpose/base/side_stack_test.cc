// Side stacks without the preload: the work runs on another stack, with every
// signal blocked, and an unwind started there continues into the caller's
// frames; how deep libunwind's first use on a thread goes (the README number).
#include "interpose/base/side_stack.h"

#include "interpose/base/optional_libs.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <thread>

#include <gtest/gtest.h>

#include "interpose/core/capture.h"
#include "interpose/core/record.h"
#include "interpose/core/thread_state.h"

namespace blockwatch::interpose {
namespace {

struct Probe {
  uintptr_t local_address = 0;
  bool usr1_blocked = false;
};

void probe(void* arg) {
  auto* p = static_cast<Probe*>(arg);
  int local = 0;
  p->local_address = reinterpret_cast<uintptr_t>(&local);
  sigset_t mask;
  pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  p->usr1_blocked = sigismember(&mask, SIGUSR1) == 1;
}

TEST(SideStack, RunsOnAnotherStackWithSignalsBlockedAndRestoresTheMask) {
  SideStack stack;
  int here = 0;
  Probe p;
  ASSERT_TRUE(run_on_side_stack(stack, probe, &p));
  const auto low = reinterpret_cast<uintptr_t>(stack.low.load());
  EXPECT_GE(p.local_address, low);
  EXPECT_LT(p.local_address, low + kSideStackBytes);
  const uintptr_t caller = reinterpret_cast<uintptr_t>(&here);
  EXPECT_GT(caller > p.local_address ? caller - p.local_address : p.local_address - caller,
            kSideStackBytes);
  EXPECT_TRUE(p.usr1_blocked);
  sigset_t mask;
  pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  EXPECT_FALSE(sigismember(&mask, SIGUSR1));
  EXPECT_EQ(stack.busy.load(), 0);
}

void nested(void* arg) {
  auto* stack = static_cast<SideStack*>(arg);
  *reinterpret_cast<bool*>(&stack[1]) = run_on_side_stack(*stack, probe, nullptr);
}

TEST(SideStack, ABusyStackRefusesInsteadOfWaiting) {
  struct {
    SideStack stack;
    bool nested_ran = true;
  } state;
  ASSERT_TRUE(run_on_side_stack(state.stack, nested, &state.stack));
  EXPECT_FALSE(state.nested_ran);
}

__attribute__((noinline)) int capture_here(uintptr_t* frames) {
  const int count = capture_stack(frames, kMaxFrames);
  __asm__ volatile("" : : "r"(count) : "memory");  // not a tail call: stays on the stack
  return count;
}

// Each thread's first unwind is libunwind's deepest use of a stack: it runs on
// the slot's side stack, and the frames go on through the caller's stack.
TEST(SideStack, UnwindCrossesBackIntoTheCallersStack) {
  thread_state_init();
  ASSERT_TRUE(load_unwinder());  // a watched process's constructor does this
  size_t deepest = 0;
  for (int i = 0; i < 3; ++i) {
    std::thread([&deepest] {
      ThreadSlot* slot = current_slot();
      ASSERT_NE(slot, nullptr);
      slot->side_stack.busy.store(0);
      uintptr_t frames[kMaxFrames];
      const int count = capture_here(frames);
      ASSERT_GE(count, 2);
      // The test binary is the "own code" here (own_code_init was not called,
      // so nothing is dropped): the frames must include capture_here's caller.
      // A return address inside capture_here: the unwind left the side stack.
      const auto begin = reinterpret_cast<uintptr_t>(&capture_here);
      bool found = false;
      for (int f = 0; f < count; ++f) found |= frames[f] > begin && frames[f] < begin + 256;
      EXPECT_TRUE(found) << count << " frames";
      deepest = std::max(deepest, side_stack_used_bytes(slot->side_stack));
    }).join();
  }
  std::printf("deepest side-stack use (a thread's first unwind): %zu bytes of %zu\n", deepest,
              kSideStackBytes);
  EXPECT_GT(deepest, 0u);
  EXPECT_LT(deepest, kSideStackBytes / 2);
}

}  // namespace
}  // namespace blockwatch::interpose
