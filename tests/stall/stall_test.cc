// Stall and hang detection end to end: runs stall_target (stall_target.cc) under
// LD_PRELOAD=libblockwatch.so with a 20 ms stall threshold, decodes what the
// library wrote (collector/stream_decoder.h) and checks the stalls found, their
// sampled stacks and time split, and that the program saw no difference. What a
// user sees of each stall (one per stall id, which stack) is checked on the
// collector's own report (collector/aggregate.h) of the same streams.
// BW_PRELOAD_LIBRARY and BW_STALL_TARGET are set by CMake.
#include <fcntl.h>
#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "collector/aggregate.h"
#include "collector/stream_decoder.h"
#include "collector/symbolizer.h"
#include "tests/stall/run_support.h"

namespace blockwatch {
namespace {

using collector::DecodedStream;
using collector::Hotspot;
using collector::ResolvedEvent;
using stall_test::perf_allowed;
using stall_test::read_text;
using stall_test::run_program;

struct ScenarioRun {
  collector::Report report;  // what the collector makes of the streams
  int status = -1;
  std::string stdout_text;
  std::vector<ResolvedEvent> events;
  uint64_t stalls_suppressed = 0;
  bool has_counters = false;
  int forked_child_stalls = 0;  // stall records in streams of fork() children
};

// Runs one scenario with the preload and `env`; kills it after 20 s.
ScenarioRun run_scenario(const std::string& scenario, std::map<std::string, std::string> env,
                         const char* target = BW_STALL_TARGET) {
  char dir_template[] = "/tmp/bw_stall_XXXXXX";
  const std::filesystem::path dir = mkdtemp(dir_template);
  env["LD_PRELOAD"] = BW_PRELOAD_LIBRARY;
  env["BLOCKWATCH_OUTPUT"] = (dir / "stream.%p.bwrec").string();
  if (!env.count("BLOCKWATCH_STALL_THRESHOLD")) env["BLOCKWATCH_STALL_THRESHOLD"] = "20ms";
  const std::string stdout_path = (dir / "stdout").string();
  ScenarioRun run;
  run.status = run_program({target, scenario.c_str()}, env, stdout_path, std::chrono::seconds(20));
  run.stdout_text = read_text(stdout_path);
  std::string error;
  collector::Aggregator aggregator(collector::StackClassifier::create({}, &error));
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".bwrec") continue;
    collector::StreamHandler* sink = aggregator.begin_stream();
    collector::StreamDecoder decoder(
        sink, {.allow_restart = true, .symbolizer = &collector::Symbolizer::shared()});
    const std::string bytes = read_text(entry.path());
    EXPECT_TRUE(decoder.feed(bytes.data(), bytes.size()) && decoder.finish()) << decoder.error();
    aggregator.end_stream(sink, "disconnected");
    DecodedStream stream;
    EXPECT_TRUE(
        collector::decode_file(entry.path().string(), &stream, &collector::Symbolizer::shared()))
        << stream.error;
    run.events.insert(run.events.end(), stream.events.begin(), stream.events.end());
    for (const ResolvedEvent& e : stream.events) {
      if (stream.hello.forked_child() && e.raw.kind() == wire::KIND_STALL)
        ++run.forked_child_stalls;
    }
    run.stalls_suppressed += stream.counters.stalls_suppressed();
    run.has_counters = run.has_counters || stream.has_counters;
  }
  run.report = aggregator.report();
  std::filesystem::remove_all(dir);
  return run;
}

std::vector<ResolvedEvent> of_kind(const ScenarioRun& run, wire::Kind kind) {
  std::vector<ResolvedEvent> out;
  for (const ResolvedEvent& e : run.events) {
    if (e.raw.kind() == kind) out.push_back(e);
  }
  return out;
}

// One event per stall, by the collector's rule (collector/aggregate.h): the
// latest sample's numbers with the stack of the first sample that has one.
std::map<uint64_t, ResolvedEvent> stalls_by_id(const ScenarioRun& run) {
  std::map<uint64_t, ResolvedEvent> stalls;
  for (const ResolvedEvent& e : of_kind(run, wire::KIND_STALL)) {
    auto [it, inserted] = stalls.emplace(e.raw.stall_id(), e);
    if (inserted) continue;
    std::vector<collector::StackFrame> stack = it->second.stack;
    if (e.raw.duration_ns() > it->second.raw.duration_ns()) it->second = e;
    it->second.stack = stack.empty() ? e.stack : stack;
  }
  return stalls;
}

// The stall hotspots of the collector's report (stalls moved elsewhere leave
// empty ones out of it).
std::vector<Hotspot> stall_hotspots(const ScenarioRun& run) {
  std::vector<Hotspot> stalls;
  for (const Hotspot& h : run.report.hotspots) {
    if (h.kind == "stall") stalls.push_back(h);
  }
  return stalls;
}

bool frames_contain(const std::vector<collector::StackFrame>& stack, const std::string& function) {
  for (const auto& frame : stack) {
    if (frame.function.find(function) != std::string::npos) return true;
  }
  return false;
}

bool stack_contains(const ResolvedEvent& e, const std::string& function) {
  return frames_contain(e.stack, function);
}

std::string describe(const ScenarioRun& run) {
  std::string text = "stdout: " + run.stdout_text +
                     "stalls_suppressed: " + std::to_string(run.stalls_suppressed) + "\nevents:\n";
  for (const ResolvedEvent& e : run.events) {
    text += e.kind + " id=" + std::to_string(e.raw.stall_id()) +
            " sample=" + std::to_string(e.raw.sample()) + " " +
            std::to_string(e.raw.duration_ns()) + "ns cpu=" + std::to_string(e.raw.cpu_ns()) +
            " rq=" + std::to_string(e.raw.runqueue_ns()) +
            " off=" + std::to_string(e.raw.offcpu_ns()) + " tid=" + std::to_string(e.raw.tid()) +
            " '" + e.thread_name + "' task='" + e.task + "' in=" + e.raw.blocked_in() + ":";
    for (const auto& frame : e.stack) text += " " + frame.function;
    text += "\n";
  }
  return text;
}

TEST(Stall, CpuLoopIsOneStallSampledInsideTheLoop) {
  const ScenarioRun run = run_scenario("cpu_task", {});
  ASSERT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0) << describe(run);
  EXPECT_NE(run.stdout_text.find("errno_after=4242"), std::string::npos) << run.stdout_text;
  const auto stalls = stalls_by_id(run);
  ASSERT_EQ(stalls.size(), 1u) << describe(run);
  const ResolvedEvent& stall = stalls.begin()->second;
  EXPECT_EQ(stall.task, "cpu_task");
  EXPECT_TRUE(stall.raw.in_task());
  EXPECT_GE(stall.raw.duration_ns(), 20'000'000);
  EXPECT_EQ(stall.raw.blocked_in(), "");
  // CPU share of the time the thread could run (the machine may be busy: time
  // spent waiting for a CPU is run queue, not off CPU).
  const double cpu_share = double(stall.raw.cpu_ns()) /
                           double(std::max<int64_t>(1, stall.raw.cpu_ns() + stall.raw.offcpu_ns()));
  EXPECT_LE(stall.raw.cpu_ns() + stall.raw.runqueue_ns(), stall.raw.duration_ns());
  EXPECT_GT(cpu_share, 0.8) << describe(run);
  EXPECT_LT(stall.raw.offcpu_ns(), stall.raw.duration_ns() / 5) << describe(run);
  // The report: one stall, with the stack sampled inside the loop.
  EXPECT_EQ(run.report.stalls, 1u) << describe(run);
  const auto hotspots = stall_hotspots(run);
  ASSERT_EQ(hotspots.size(), 1u) << describe(run);
  EXPECT_EQ(hotspots[0].stack_source, "own");
  EXPECT_TRUE(frames_contain(hotspots[0].stack, "stall_cpu_loop_site")) << describe(run);
  EXPECT_EQ(hotspots[0].tasks, std::vector<std::string>{"cpu_task"});
  // Its samples (1x, 2x, 4x, in that order) have the loop on their stacks. A
  // later sample may come without a stack (the sampler gives up rather than
  // interrupt a thread it cannot interrupt safely); the first one must have it.
  uint32_t last_sample = 0;
  for (const ResolvedEvent& e : of_kind(run, wire::KIND_STALL)) {
    if (e.raw.sample() > 1 && e.stack.empty()) continue;
    EXPECT_TRUE(stack_contains(e, "stall_cpu_loop_site")) << describe(run);
    EXPECT_GT(e.raw.sample(), last_sample) << describe(run);
    EXPECT_LE(e.raw.sample(), 4u);
    last_sample = e.raw.sample();
  }
}

// A frame of the clock call: clock_gettime in the vDSO or libc, the target's
// thread_cpu_ns() that calls it, anything else of theirs, or the program's PLT stub that jumps to
// libc (no symbol covers it: it comes out as a bare address in the program's own module).
bool is_clock_frame(const collector::StackFrame& frame) {
  return frame.function.find("clock_gettime") != std::string::npos ||
         frame.function == "thread_cpu_ns" ||  // the loop's own clock helper
         frame.function.rfind("0x", 0) == 0 || frame.module.find("libc.so") != std::string::npos ||
         frame.module.find("vdso") != std::string::npos;
}

// A clock-reading loop built without frame pointers (stall_target_nofp), sampled
// by `sampler`: every sample's first frame outside libc and the vDSO is the
// loop's function, and its caller comes right after it.
void expect_loop_right_below_the_clock(const std::string& sampler, const char* target,
                                       const std::string& site, const std::string& caller) {
  const ScenarioRun run = run_scenario("clock_loop", {{"BLOCKWATCH_SAMPLER", sampler}}, target);
  ASSERT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0) << describe(run);
  int with_stack = 0;
  for (const ResolvedEvent& e : of_kind(run, wire::KIND_STALL)) {
    if (e.stack.empty()) continue;
    ++with_stack;
    size_t first = 0;
    while (first < e.stack.size() && is_clock_frame(e.stack[first])) ++first;
    ASSERT_LT(first + 1, e.stack.size()) << describe(run);
    EXPECT_EQ(e.stack[first].function, site) << describe(run);
    EXPECT_EQ(e.stack[first + 1].function, caller) << describe(run);
  }
  EXPECT_GT(with_stack, 0) << describe(run);
  if (getenv("BW_STALL_TEST_VERBOSE")) std::printf("%s", describe(run).c_str());
}

void expect_loop_right_below_the_clock(const std::string& sampler) {
  expect_loop_right_below_the_clock(sampler, BW_STALL_TARGET_NOFP, "clock_loop_site",
                                    "clock_loop_caller");
}

TEST(Stall, StackThroughCodeWithoutFramePointersPerf) {
  if (!perf_allowed()) GTEST_SKIP() << "perf_event_open refused on this machine";
  expect_loop_right_below_the_clock("perf");
}

TEST(Stall, StackThroughCodeWithoutFramePointersSignalFallback) {
  expect_loop_right_below_the_clock("signal");
}

// The same in Rust (stall_rust.rs, opt-level 2, no frame pointers).
TEST(Stall, RustStackWithoutFramePointers) {
  if (std::string(BW_STALL_RUST).empty()) GTEST_SKIP() << "Debian's rustc not found";
  if (!perf_allowed()) GTEST_SKIP() << "perf_event_open refused on this machine";
  expect_loop_right_below_the_clock("perf", BW_STALL_RUST, "rust_clock_loop_site",
                                    "rust_clock_loop_caller");
}

TEST(Stall, RustStackWithoutFramePointersSignalFallback) {
  if (std::string(BW_STALL_RUST).empty()) GTEST_SKIP() << "Debian's rustc not found";
  expect_loop_right_below_the_clock("signal", BW_STALL_RUST, "rust_clock_loop_site",
                                    "rust_clock_loop_caller");
}

TEST(Stall, SleepIsAnOffCpuStallInNanosleep) {
  const ScenarioRun run = run_scenario("sleep_task", {});
  ASSERT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0) << describe(run);
  // The sleep was not cut short by a sampling signal.
  EXPECT_NE(run.stdout_text.find("nanosleep=0 errno=0"), std::string::npos) << run.stdout_text;
  const auto stalls = stalls_by_id(run);
  ASSERT_EQ(stalls.size(), 1u) << describe(run);
  const ResolvedEvent& stall = stalls.begin()->second;
  EXPECT_EQ(stall.task, "sleep_task");
  EXPECT_EQ(stall.raw.blocked_in(), "nanosleep") << describe(run);
  EXPECT_GT(stall.raw.blocked_ns(), 0);
  // Off CPU for most of the time it was not waiting for a CPU: the run-queue
  // wait after the sleep is the machine's load (half the stall under two busy
  // loops), not the program's.
  const double own_ns = double(stall.raw.duration_ns() - stall.raw.runqueue_ns());
  EXPECT_GT(double(stall.raw.offcpu_ns()) / own_ns, 0.8) << describe(run);
  // Never signalled inside its sleep, the stall has no sampled stack; the report
  // shows it with the stack of the nanosleep record that covers its samples.
  EXPECT_TRUE(stall.stack.empty()) << describe(run);
  EXPECT_EQ(run.report.stalls, 1u) << describe(run);
  const auto hotspots = stall_hotspots(run);
  ASSERT_EQ(hotspots.size(), 1u) << describe(run);
  const Hotspot& shown = hotspots[0];
  EXPECT_EQ(shown.stack_source, "blocking_call") << describe(run);
  EXPECT_TRUE(frames_contain(shown.stack, "stall_sleep_site")) << describe(run);
  EXPECT_EQ(shown.caused_by.kind, "sleep");
  EXPECT_EQ(shown.caused_by.function, "nanosleep");
  EXPECT_EQ(shown.tasks, std::vector<std::string>{"sleep_task"});
  EXPECT_EQ(shown.total_ns, stall.raw.duration_ns());
}

TEST(Stall, EpollLoopSlowTurnIsAStallIdleWaitIsNot) {
  const ScenarioRun run = run_scenario("epoll_loop", {{"BLOCKWATCH_WORKERS", "main"}});
  ASSERT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0) << describe(run);
  EXPECT_NE(run.stdout_text.find("turns=3"), std::string::npos) << run.stdout_text;
  const auto stalls = stalls_by_id(run);
  ASSERT_EQ(stalls.size(), 1u) << describe(run);
  const ResolvedEvent& stall = stalls.begin()->second;
  EXPECT_FALSE(stall.raw.in_task());
  EXPECT_TRUE(stack_contains(stall, "stall_loop_turn_site")) << describe(run);
  EXPECT_LT(stall.raw.duration_ns(), 150'000'000) << "the idle wait counted as a stall";
}

TEST(Stall, WatchdogRunsInAForkChild) {
  const ScenarioRun run = run_scenario("fork_child_stall", {});
  ASSERT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0) << describe(run);
  EXPECT_EQ(stalls_by_id(run).size(), 1u) << describe(run);
  EXPECT_GT(run.forked_child_stalls, 0) << describe(run);
  for (const ResolvedEvent& e : of_kind(run, wire::KIND_STALL)) {
    if (e.raw.sample() > 1 && e.stack.empty()) continue;  // as in CpuLoopIsOneStall...
    EXPECT_TRUE(stack_contains(e, "stall_cpu_loop_site")) << describe(run);
  }
}

TEST(Stall, ShortTasksAreNoStall) {
  const ScenarioRun run = run_scenario("short_tasks", {});
  ASSERT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0) << describe(run);
  // Each task needs 1 ms of CPU. On a loaded machine one may still wait 20 ms for
  // a CPU: that is a real stall of the loop, but then the run queue dominates it.
  for (const ResolvedEvent& e : of_kind(run, wire::KIND_STALL)) {
    EXPECT_GE(e.raw.runqueue_ns(), e.raw.duration_ns() / 2) << describe(run);
    EXPECT_LT(e.raw.cpu_ns(), 5'000'000) << describe(run);
  }
}

// The signal fallback (BLOCKWATCH_SAMPLER=signal) never takes a signal the
// program handles: the stall is still reported, without a stack.
TEST(Stall, ProgramsOwnSignalIsNeverTaken) {
  const ScenarioRun run = run_scenario("program_owns_signal", {{"BLOCKWATCH_SAMPLER", "signal"}});
  ASSERT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0) << describe(run);
  EXPECT_NE(run.stdout_text.find("program_signals=0"), std::string::npos) << run.stdout_text;
  const auto stalls = stalls_by_id(run);
  ASSERT_EQ(stalls.size(), 1u) << describe(run);
  EXPECT_TRUE(stalls.begin()->second.stack.empty()) << describe(run);
}

// perf sampling sends no signal at all: the program keeps its signal and the
// stall still has its stack.
TEST(Stall, PerfSamplingNeedsNoSignal) {
  if (!perf_allowed()) GTEST_SKIP() << "perf_event_open refused on this machine";
  const ScenarioRun run = run_scenario("program_owns_signal", {{"BLOCKWATCH_SAMPLER", "perf"}});
  ASSERT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0) << describe(run);
  EXPECT_NE(run.stdout_text.find("program_signals=0"), std::string::npos) << run.stdout_text;
  const auto stalls = stalls_by_id(run);
  ASSERT_EQ(stalls.size(), 1u) << describe(run);
  EXPECT_TRUE(stack_contains(stalls.begin()->second, "stall_cpu_loop_site")) << describe(run);
}

TEST(Stall, BudgetSuppressesAndCounts) {
  const ScenarioRun run = run_scenario("three_stalls", {{"BLOCKWATCH_STALL_BUDGET", "1"}});
  ASSERT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0) << describe(run);
  EXPECT_EQ(stalls_by_id(run).size(), 1u) << describe(run);
  EXPECT_EQ(run.stalls_suppressed, 2u) << describe(run);
}

TEST(Stall, BudgetZeroMeansNoLimit) {
  const ScenarioRun run = run_scenario("three_stalls", {{"BLOCKWATCH_STALL_BUDGET", "0"}});
  ASSERT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0) << describe(run);
  EXPECT_EQ(stalls_by_id(run).size(), 3u) << describe(run);
  EXPECT_EQ(run.stalls_suppressed, 0u);
}

// Threads of the hang scenario, as the program printed them.
std::map<std::string, int> printed_tids(const std::string& text) {
  std::map<std::string, int> tids;
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    const auto eq = word.find('=');
    if (eq != std::string::npos) tids[word.substr(0, eq)] = std::atoi(word.c_str() + eq + 1);
  }
  return tids;
}

void expect_hang_dump(const ScenarioRun& run) {
  const auto tids = printed_tids(run.stdout_text);
  ASSERT_EQ(tids.size(), 3u) << run.stdout_text;
  const auto hangs = of_kind(run, wire::KIND_HANG);
  std::map<int, ResolvedEvent> by_tid;
  std::set<uint64_t> dump_ids;
  for (const ResolvedEvent& e : hangs) {
    EXPECT_TRUE(by_tid.emplace(e.raw.tid(), e).second) << "one dump, one record per thread\n"
                                                       << describe(run);
    dump_ids.insert(e.raw.stall_id());
  }
  EXPECT_EQ(dump_ids.size(), 1u);
  for (const auto& [name, tid] : tids) {
    ASSERT_TRUE(by_tid.count(tid)) << name << " has no hang record\n" << describe(run);
  }
  const ResolvedEvent& worker = by_tid.at(tids.at("worker"));
  EXPECT_TRUE(stack_contains(worker, "hang_spin_site")) << describe(run);
  EXPECT_EQ(worker.task, "hang_task");
  EXPECT_GE(worker.raw.duration_ns(), 1'000'000'000);
  // The helper sleeps: never signalled (that would end its sleep early), so no
  // stack, but the syscall it is in.
  EXPECT_NE(by_tid.at(tids.at("helper")).raw.blocked_in().find("nanosleep"), std::string::npos)
      << describe(run);
}

TEST(Hang, DumpsEveryThreadOnce) {
  const ScenarioRun run = run_scenario("hang", {{"BLOCKWATCH_HANG_THRESHOLD", "1s"}});
  ASSERT_TRUE(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0) << describe(run);
  expect_hang_dump(run);
}

TEST(Hang, DumpIsFlushedBeforeTheProcessDies) {
  const ScenarioRun run = run_scenario("hang_killed", {{"BLOCKWATCH_HANG_THRESHOLD", "1s"}});
  ASSERT_TRUE(WIFSIGNALED(run.status) && WTERMSIG(run.status) == SIGKILL) << describe(run);
  expect_hang_dump(run);
}

}  // namespace
}  // namespace blockwatch
