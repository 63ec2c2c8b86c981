// Unit tests of the watchdog's pure logic (the per-slot stall state machine, the
// report budget, the /proc parsers) and of the stack samplers (perf and the
// signal fallback) with the DWARF unwinder, which work in any process: this test
// samples its own threads.
#include "interpose/watchdog/watchdog.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <thread>

#include <gtest/gtest.h>

#include "common/kinds.h"
#include "interpose/core/record.h"
#include "interpose/watchdog/perf_sampler.h"
#include "interpose/watchdog/stack_unwinder.h"
#include "interpose/watchdog/stall_sampler.h"

namespace blockwatch::interpose {
namespace {

constexpr int64_t kMs = 1'000'000;
const Thresholds kThresholds{20 * kMs, 1000 * kMs};

SlotView busy_task(uint64_t task_seq) {
  SlotView view;
  view.tid = 42;
  view.worker = true;
  view.in_task = true;
  view.key.task_seq = task_seq;
  return view;
}

TEST(ObserveSlot, OneTaskRunningLongGivesSamplesAtOneTwoAndFourTimesTheThreshold) {
  StallTracker tracker;
  EXPECT_TRUE(observe_slot(tracker, busy_task(7), 0, kThresholds).started);
  std::vector<uint32_t> samples;
  for (int64_t now = 5 * kMs; now <= 100 * kMs; now += 5 * kMs) {
    const TickDecision decision = observe_slot(tracker, busy_task(7), now, kThresholds);
    EXPECT_FALSE(decision.started);
    EXPECT_EQ(decision.elapsed_ns, now);
    if (decision.sample) samples.push_back(decision.sample);
  }
  EXPECT_EQ(samples, (std::vector<uint32_t>{1, 2, 4}));
}

TEST(ObserveSlot, SecondTickAsksForTheLateBaselineOnce) {
  StallTracker tracker;
  observe_slot(tracker, busy_task(1), 0, kThresholds);
  EXPECT_TRUE(observe_slot(tracker, busy_task(1), 5 * kMs, kThresholds).late_baseline);
  EXPECT_FALSE(observe_slot(tracker, busy_task(1), 10 * kMs, kThresholds).late_baseline);
}

TEST(ObserveSlot, ALateTickSkipsToTheLargestDueSample) {
  StallTracker tracker;
  observe_slot(tracker, busy_task(1), 0, kThresholds);
  EXPECT_EQ(observe_slot(tracker, busy_task(1), 50 * kMs, kThresholds).sample, 2u);
  EXPECT_EQ(observe_slot(tracker, busy_task(1), 60 * kMs, kThresholds).sample, 0u);
  EXPECT_EQ(observe_slot(tracker, busy_task(1), 80 * kMs, kThresholds).sample, 4u);
  EXPECT_EQ(observe_slot(tracker, busy_task(1), 500 * kMs, kThresholds).sample, 0u);
}

TEST(ObserveSlot, ANewTaskRestartsTheClock) {
  StallTracker tracker;
  for (uint64_t seq = 1; seq <= 50; ++seq) {
    const TickDecision decision =
        observe_slot(tracker, busy_task(seq), static_cast<int64_t>(seq) * 5 * kMs, kThresholds);
    EXPECT_TRUE(decision.started);
    EXPECT_EQ(decision.sample, 0u);
  }
}

TEST(ObserveSlot, IdleWorkersNonWorkersAndLooplessThreadsNeverStall) {
  StallTracker tracker;
  SlotView idle_loop;
  idle_loop.tid = 1;
  idle_loop.worker = true;
  idle_loop.idle = true;
  idle_loop.key.loop_turns = 3;
  SlotView not_worker = busy_task(1);
  not_worker.worker = false;
  SlotView no_task_no_loop;
  no_task_no_loop.tid = 1;
  no_task_no_loop.worker = true;
  for (const SlotView& view : {idle_loop, not_worker, no_task_no_loop}) {
    StallTracker fresh;
    for (int64_t now = 0; now <= 2000 * kMs; now += 10 * kMs) {
      const TickDecision decision = observe_slot(fresh, view, now, kThresholds);
      EXPECT_FALSE(decision.started || decision.sample || decision.hang);
    }
  }
}

TEST(ObserveSlot, ALoopTurnOutsideTheIdleWaitStalls) {
  StallTracker tracker;
  SlotView turn;
  turn.tid = 1;
  turn.worker = true;
  turn.key.loop_turns = 4;
  observe_slot(tracker, turn, 0, kThresholds);
  EXPECT_EQ(observe_slot(tracker, turn, 25 * kMs, kThresholds).sample, 1u);
  turn.idle = true;  // back in epoll_wait: the stall is over
  EXPECT_EQ(observe_slot(tracker, turn, 45 * kMs, kThresholds).sample, 0u);
  turn.idle = false;
  turn.key.loop_turns = 5;
  EXPECT_TRUE(observe_slot(tracker, turn, 50 * kMs, kThresholds).started);
}

// Task-entry probes: every entry advances task_seq, so a burst of short tasks
// restarts the clock at every tick that sees a new one and never stalls; a
// probed thread is busy even before its first loop turn, and its stalls are a
// task's.
TEST(ObserveSlot, AProbedThreadStallsPerTaskNotPerTurn) {
  StallTracker tracker;
  SlotView probed;
  probed.tid = 1;
  probed.worker = true;
  probed.probed = true;
  probed.key.loop_turns = 0;
  EXPECT_TRUE(slot_is_busy(probed));
  EXPECT_EQ(stall_scope_of(probed), kinds::kStallScopeTask);
  for (int64_t now = 0; now <= 200 * kMs; now += 5 * kMs) {
    ++probed.key.task_seq;  // a new task at every tick: a burst, one turn long
    EXPECT_EQ(observe_slot(tracker, probed, now, kThresholds).sample, 0u);
  }
  observe_slot(tracker, probed, 210 * kMs, kThresholds);  // one long task from here
  EXPECT_EQ(observe_slot(tracker, probed, 235 * kMs, kThresholds).sample, 1u);
  probed.idle = true;
  EXPECT_FALSE(slot_is_busy(probed));
  SlotView turn;
  turn.worker = true;
  turn.key.loop_turns = 2;
  EXPECT_EQ(stall_scope_of(turn), kinds::kStallScopeTurn);
  turn.in_task = true;  // bw_task_begin
  EXPECT_EQ(stall_scope_of(turn), kinds::kStallScopeTask);
}

TEST(ObserveSlot, HangOncePerStallEvenWithStallsOff) {
  StallTracker tracker;
  const Thresholds hang_only{0, 100 * kMs};
  observe_slot(tracker, busy_task(1), 0, hang_only);
  int hangs = 0, samples = 0;
  for (int64_t now = 10 * kMs; now <= 500 * kMs; now += 10 * kMs) {
    const TickDecision decision = observe_slot(tracker, busy_task(1), now, hang_only);
    hangs += decision.hang;
    samples += decision.sample != 0;
  }
  EXPECT_EQ(hangs, 1);
  EXPECT_EQ(samples, 0);
  observe_slot(tracker, busy_task(2), 510 * kMs, hang_only);  // the next task can hang again
  EXPECT_TRUE(observe_slot(tracker, busy_task(2), 610 * kMs, hang_only).hang);
}

TEST(ObserveSlot, ANewThreadInTheSlotStartsFresh) {
  StallTracker tracker;
  observe_slot(tracker, busy_task(1), 0, kThresholds);
  SlotView other = busy_task(1);
  other.tid = 43;  // same key, another thread
  EXPECT_TRUE(observe_slot(tracker, other, 30 * kMs, kThresholds).started);
}

TEST(StallBudget, AdmitsPerMinuteAndCountsTheRest) {
  StallBudget budget(2);
  EXPECT_TRUE(budget.admit(0));
  EXPECT_TRUE(budget.admit(1 * kMs));
  EXPECT_FALSE(budget.admit(2 * kMs));
  EXPECT_FALSE(budget.admit(59'000 * kMs));
  EXPECT_EQ(budget.suppressed(), 2u);
  EXPECT_TRUE(budget.admit(60'000 * kMs));  // a new minute
  EXPECT_EQ(budget.suppressed(), 2u);
}

TEST(StallBudget, ZeroMeansNoLimit) {
  StallBudget budget(0);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(budget.admit(i));
  EXPECT_EQ(budget.suppressed(), 0u);
}

TEST(Tick, QuarterOfTheSmallestThresholdWithinOneToTenMs) {
  EXPECT_EQ(watchdog_tick_ns(20 * kMs, 10'000 * kMs), 5 * kMs);
  EXPECT_EQ(watchdog_tick_ns(2 * kMs, 10'000 * kMs), 1 * kMs);
  EXPECT_EQ(watchdog_tick_ns(200 * kMs, 12 * kMs), 3 * kMs);
  EXPECT_EQ(watchdog_tick_ns(0, 10'000 * kMs), 100 * kMs);  // hangs only: slow
  EXPECT_EQ(watchdog_tick_ns(0, 1'000 * kMs), 25 * kMs);
}

TEST(ProcParsers, SchedstatStatStatusAndSyscall) {
  ThreadSchedStat sched;
  ASSERT_TRUE(parse_schedstat("123456 7890 12\n", &sched));
  EXPECT_EQ(sched.cpu_ns, 123456);
  EXPECT_EQ(sched.runqueue_ns, 7890);
  EXPECT_FALSE(parse_schedstat("", &sched));

  ThreadFaults faults;
  // A name with spaces and a parenthesis; minflt=111, majflt=3.
  ASSERT_TRUE(parse_stat_faults("77 (a b) c) R 1 77 77 0 -1 4194560 111 0 3 0 5 6", &faults));
  EXPECT_EQ(faults.state, 'R');
  EXPECT_EQ(faults.minor, 111);
  EXPECT_EQ(faults.major, 3);
  EXPECT_FALSE(parse_stat_faults("77 no parenthesis", &faults));

  EXPECT_EQ(parse_voluntary_switches("Name:\tx\nvoluntary_ctxt_switches:\t17\n"
                                     "nonvoluntary_ctxt_switches:\t4\n"),
            17);
  EXPECT_EQ(parse_voluntary_switches("Name:\tx\n"), -1);

  EXPECT_FALSE(parse_thread_syscall("running\n").in_syscall);
  EXPECT_FALSE(parse_thread_syscall("-1 0x7ffd 0x4005\n").in_syscall);
  const ThreadSyscall sleeping = parse_thread_syscall("230 0x1 0x0 0x7ffd 0x0 0 0 0x7ffd 0x7f00\n");
  EXPECT_TRUE(sleeping.in_syscall);
  EXPECT_STREQ(sleeping.name, "clock_nanosleep");
  EXPECT_STREQ(parse_thread_syscall("0 0x3 0x7ffd 0x10 0 0 0 0x7ffd 0x7f00\n").name, "read");
}

TEST(RunqueueSplit, NeverMoreThanTheTimeOffCpu) {
  EXPECT_EQ(stall_runqueue_ns(100, 30, 20, false), 20);
  EXPECT_EQ(stall_runqueue_ns(100, 30, 20, true), 70);    // never blocked: all waiting
  EXPECT_EQ(stall_runqueue_ns(100, 30, 500, false), 70);  // a wait that began earlier
  EXPECT_EQ(stall_runqueue_ns(100, 130, 5, false), 0);
}

// --- the samplers, on this test's own threads ------------------------------------

std::atomic<bool> g_spin{true};
std::atomic<int> g_spinner_tid{0};
std::atomic<int> g_errno_seen{0};
std::atomic<bool> g_spinner_ready{false};

// A loop without a frame pointer that calls clock_gettime (vDSO, no frame
// pointers either): a frame-pointer walk loses its caller, DWARF must not.
extern "C" __attribute__((noinline, optimize("omit-frame-pointer"))) uint64_t
watchdog_test_spin_site() {
  errno = 777;
  uint64_t sum = 0;
  while (g_spin.load(std::memory_order_relaxed)) {
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    sum += static_cast<uint64_t>(now.tv_nsec);
  }
  g_errno_seen = errno;
  return sum;
}

extern "C" __attribute__((noinline, optimize("omit-frame-pointer"))) uint64_t
watchdog_test_spin_caller() {
  return watchdog_test_spin_site() + 1;
}

// Starts a spinner thread prepared for the signal sampler at `index`.
std::thread start_spinner(int index) {
  g_spin = true;
  g_spinner_tid = 0;
  g_spinner_ready = false;
  std::thread spinner([index] {
    stall_sampler_prepare_thread(index);
    g_spinner_tid = gettid();
    g_spinner_ready = true;
    watchdog_test_spin_caller();
  });
  while (!g_spinner_ready) std::this_thread::yield();
  return spinner;
}

bool near(uintptr_t pc, const void* function, uintptr_t bytes) {
  const auto start = reinterpret_cast<uintptr_t>(function);
  return pc > start && pc <= start + bytes;
}

// Whether `frames` hold the spin site followed (at once, or after libc/vDSO
// frames) by its caller.
bool has_site_then_caller(const uintptr_t* frames, int count) {
  for (int i = 0; i + 1 < count; ++i) {
    if (near(frames[i], reinterpret_cast<void*>(&watchdog_test_spin_site), 512)) {
      return near(frames[i + 1], reinterpret_cast<void*>(&watchdog_test_spin_caller), 128);
    }
  }
  return false;
}

TEST(PerfSampler, SamplesASpinningThreadAndUnwindsThroughCodeWithoutFramePointers) {
  if (!perf_sampler_available()) GTEST_SKIP() << "perf_event_open refused on this machine";
  std::thread spinner = start_spinner(0);
  int hits = 0;
  for (int i = 0; i < 5; ++i) {
    static StackCopy copy;
    ASSERT_EQ(perf_sample_thread(g_spinner_tid, &copy, 2'000 * kMs), PerfSampleResult::kSampled);
    uintptr_t frames[kMaxFrames];
    const int count = unwind_stack_copy(copy, frames, kMaxFrames, /*drop_own_frames=*/false);
    if (has_site_then_caller(frames, count)) ++hits;
  }
  g_spin = false;
  spinner.join();
  EXPECT_EQ(hits, 5);
}

TEST(PerfSampler, ASleepingThreadGivesNoSample) {
  if (!perf_sampler_available()) GTEST_SKIP() << "perf_event_open refused on this machine";
  std::atomic<int> tid{0};
  std::atomic<bool> stop{false};
  std::thread sleeper([&] {
    tid = gettid();
    while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  });
  while (tid == 0) std::this_thread::yield();
  static StackCopy copy;
  EXPECT_EQ(perf_sample_thread(tid, &copy, 20 * kMs), PerfSampleResult::kNoSample);
  stop = true;
  sleeper.join();
}

// A function whose epilogue leaves a stale CFI rule, as LLVM emits them: after
// `pop %rbp` the rule still says rbp is saved at CFA-16, which at the `ret` is
// below sp. A sample there must still unwind to the caller.
asm(R"(
  .text
  .globl bw_test_stale_epilogue
  .type bw_test_stale_epilogue, @function
bw_test_stale_epilogue:
  .cfi_startproc
  push %rbp
  .cfi_def_cfa_offset 16
  .cfi_offset %rbp, -16
  mov %rsp, %rbp
  .cfi_def_cfa_register %rbp
  pop %rbp
  .cfi_def_cfa %rsp, 8
  .globl bw_test_stale_epilogue_ret
bw_test_stale_epilogue_ret:
  ret
  .cfi_endproc
  .size bw_test_stale_epilogue, .-bw_test_stale_epilogue
)");
extern "C" void bw_test_stale_epilogue();
extern "C" char bw_test_stale_epilogue_ret[];

extern "C" __attribute__((noinline)) uintptr_t watchdog_test_return_site() {
  return reinterpret_cast<uintptr_t>(__builtin_return_address(0));
}

// Its return site is in code whose CFA is rbp-based: unwinding past it needs
// rbp, which the stale rule above would read from below sp.
extern "C" __attribute__((noinline, optimize("no-omit-frame-pointer"))) uintptr_t
watchdog_test_rbp_frame_caller() {
  volatile uintptr_t result = watchdog_test_return_site();  // no tail call
  return result;
}

TEST(StackUnwinder, ASampleAtARetAfterAStaleRuleReachesTheCallers) {
  const uintptr_t return_address = watchdog_test_rbp_frame_caller();
  const uintptr_t outer_return = reinterpret_cast<uintptr_t>(&watchdog_test_spin_caller) + 4;
  // The copy stands for a stack at 0x10000: [sp] the return address into the
  // caller; the caller's frame at rbp = sp + 32: {saved rbp 0, outer return}.
  static StackCopy copy;
  copy = StackCopy{};
  copy.stack_start = 0x10000;
  copy.stack_bytes = 64;
  const uintptr_t words[8] = {return_address, 0, 0, 0, 0, outer_return, 0, 0};
  std::memcpy(copy.stack, words, sizeof words);
  copy.regs[kRegRip] = reinterpret_cast<uintptr_t>(bw_test_stale_epilogue_ret);
  copy.regs[kRegRsp] = copy.stack_start;
  copy.regs[kRegRbp] = copy.stack_start + 32;  // already restored by the pop
  uintptr_t frames[kMaxFrames];
  const int count = unwind_stack_copy(copy, frames, kMaxFrames, /*drop_own_frames=*/false);
  ASSERT_GE(count, 3);
  EXPECT_EQ(frames[0], reinterpret_cast<uintptr_t>(bw_test_stale_epilogue_ret) + 1);
  EXPECT_EQ(frames[1], return_address);
  EXPECT_EQ(frames[2], outer_return);
}

TEST(StallSampler, SamplesASpinningThreadOnItsAltStackAndKeepsErrno) {
  if (!stall_sampler_kernel_is_safe()) GTEST_SKIP() << "CPU-timer signals may interrupt syscalls";
  const int signal = SIGRTMIN + 7;
  ASSERT_TRUE(stall_sampler_install(signal));
  EXPECT_TRUE(stall_sampler_usable());
  std::thread spinner = start_spinner(1);
  int hits = 0;
  for (int i = 0; i < 5; ++i) {
    static StackCopy copy;
    ASSERT_EQ(stall_sampler_sample(g_spinner_tid, 1, &copy, 2'000 * kMs), 1);
    uintptr_t frames[kMaxFrames];
    const int count = unwind_stack_copy(copy, frames, kMaxFrames, /*drop_own_frames=*/false);
    if (has_site_then_caller(frames, count)) ++hits;
  }
  g_spin = false;
  spinner.join();
  EXPECT_EQ(hits, 5);
  EXPECT_EQ(g_errno_seen.load(), 777);
}

TEST(StallSampler, AThreadWithoutAnAltStackIsNotSampled) {
  ASSERT_TRUE(stall_sampler_install(SIGRTMIN + 7));
  std::thread spinner = start_spinner(2);
  static StackCopy copy;
  EXPECT_EQ(stall_sampler_sample(g_spinner_tid, 3, &copy, 30 * kMs), -1);  // other index
  g_spin = false;
  spinner.join();
}

TEST(StallSampler, SigBlkParsing) {
  const char* status =
      "Name:\tx\nSigQ:\t0/1\nSigPnd:\t0000000000000000\n"
      "SigBlk:\t0000000000010002\nSigIgn:\t0\n";
  EXPECT_TRUE(parse_signal_blocked(status, 2));         // bit 1
  EXPECT_TRUE(parse_signal_blocked(status, 17));        // bit 16
  EXPECT_FALSE(parse_signal_blocked(status, 41));       // SIGRTMIN+7 on glibc
  EXPECT_TRUE(parse_signal_blocked("Name:\tx\n", 41));  // unknown: do not send
}

TEST(StallSampler, SyscallFileParsing) {
  EXPECT_FALSE(parse_thread_syscall("running\n").in_syscall);
  EXPECT_FALSE(parse_thread_syscall("-1 0x7ffd 0x401000\n").in_syscall);
  const ThreadSyscall write_call =
      parse_thread_syscall("1 0x3 0x7f00 0x400000 0 0 0 0x7ffd 0x7f\n");
  EXPECT_TRUE(write_call.in_syscall);
  EXPECT_STREQ(write_call.name, "write");
  EXPECT_STREQ(parse_thread_syscall("9999 0 0 0 0 0 0 0 0\n").name, "syscall");
}

TEST(StallSampler, AThreadThatBlocksTheSignalIsNotSentOne) {
  ASSERT_TRUE(stall_sampler_install(SIGRTMIN + 7));
  std::atomic<int> tid{0};
  std::atomic<bool> stop{false};
  std::atomic<int> left_pending{-1};
  std::thread blocked([&] {
    stall_sampler_prepare_thread(4);
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    tid = gettid();
    while (!stop) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    // A signal left pending here would reach a program's sigwaitinfo/signalfd.
    sigset_t pending;
    sigpending(&pending);
    left_pending = sigismember(&pending, SIGRTMIN + 7);
  });
  while (tid == 0) std::this_thread::yield();
  static StackCopy copy;
  EXPECT_EQ(stall_sampler_sample(tid, 4, &copy, 30 * kMs), -1);
  stop = true;
  blocked.join();
  EXPECT_EQ(left_pending.load(), 0);
}

TEST(StallSampler, NeverTakesASignalTheProgramHandles) {
  const int signal = SIGRTMIN + 9;
  struct sigaction action = {};
  action.sa_handler = [](int) {};
  ASSERT_EQ(sigaction(signal, &action, nullptr), 0);
  EXPECT_FALSE(stall_sampler_install(signal));
  struct sigaction after;
  sigaction(signal, nullptr, &after);
  EXPECT_EQ(after.sa_handler, action.sa_handler);
}

}  // namespace
}  // namespace blockwatch::interpose
