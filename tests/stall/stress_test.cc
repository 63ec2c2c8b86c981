// Sampling never changes what the program sees: stress_target (see its header)
// runs without blockwatch, then under LD_PRELOAD with a 1 ms stall threshold and
// a 50 ms hang threshold, once per sampler (perf, and the signal fallback); each
// run's transcript of return values, byte counts and errnos must equal the
// plain run's, and the preloaded runs must really have sampled: stalls with
// stacks on the workers, the small-stack worker's stall among them, and hang
// dumps. BW_PRELOAD_LIBRARY and BW_STRESS_TARGET are set by CMake.
#include <fcntl.h>
#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "collector/stream_decoder.h"
#include "collector/symbolizer.h"
#include "tests/stall/run_support.h"

namespace blockwatch {
namespace {

using collector::DecodedStream;
using collector::ResolvedEvent;
using stall_test::perf_allowed;
using stall_test::read_text;
using stall_test::run_program;

struct Run {
  int status = -1;
  std::string stdout_text;
  std::vector<ResolvedEvent> events;
};

// Runs the target with `env` added to a copy of ours without BLOCKWATCH_* and
// LD_PRELOAD; with `preload`, under the library. Killed after 120 s.
Run run_target(bool preload, std::map<std::string, std::string> env) {
  char dir_template[] = "/tmp/bw_stress_XXXXXX";
  const std::filesystem::path dir = mkdtemp(dir_template);
  if (preload) {
    env["LD_PRELOAD"] = BW_PRELOAD_LIBRARY;
    env["BLOCKWATCH_OUTPUT"] = (dir / "stream.bwrec").string();
  }
  const std::string stdout_path = (dir / "stdout").string();
  Run run;
  run.status = run_program({BW_STRESS_TARGET}, env, stdout_path, std::chrono::seconds(120));
  run.stdout_text = read_text(stdout_path);
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".bwrec") continue;
    DecodedStream stream;
    EXPECT_TRUE(
        collector::decode_file(entry.path().string(), &stream, &collector::Symbolizer::shared()))
        << stream.error;
    run.events.insert(run.events.end(), stream.events.begin(), stream.events.end());
  }
  std::filesystem::remove_all(dir);
  return run;
}

bool stack_contains(const ResolvedEvent& e, const std::string& function) {
  for (const auto& frame : e.stack) {
    if (frame.function.find(function) != std::string::npos) return true;
  }
  return false;
}

// The first line where two transcripts differ, for the failure message.
std::string first_difference(const std::string& expected, const std::string& actual) {
  std::istringstream a(expected), b(actual);
  std::string line_a, line_b;
  for (int line = 1;; ++line) {
    const bool more_a = static_cast<bool>(std::getline(a, line_a));
    const bool more_b = static_cast<bool>(std::getline(b, line_b));
    if (!more_a && !more_b) return "none";
    if (line_a != line_b || more_a != more_b) {
      return "line " + std::to_string(line) + ": expected '" + line_a + "', got '" + line_b + "'";
    }
  }
}

void expect_unchanged_and_sampled(const std::string& sampler) {
  const Run plain = run_target(false, {});
  ASSERT_TRUE(WIFEXITED(plain.status) && WEXITSTATUS(plain.status) == 0) << plain.stdout_text;
  // The plain run itself is what the program expects: full transfers, no EINTR.
  EXPECT_EQ(plain.stdout_text.find("errno="), std::string::npos) << plain.stdout_text;
  EXPECT_NE(plain.stdout_text.find("pool-small created=0 nanosleep=0 done=1"), std::string::npos);

  const Run watched = run_target(true, {{"BLOCKWATCH_WORKERS", "name:pool-.*"},
                                        {"BLOCKWATCH_STALL_THRESHOLD", "1ms"},
                                        {"BLOCKWATCH_HANG_THRESHOLD", "50ms"},
                                        {"BLOCKWATCH_STALL_BUDGET", "0"},
                                        {"BLOCKWATCH_SAMPLER", sampler}});
  ASSERT_TRUE(WIFEXITED(watched.status) && WEXITSTATUS(watched.status) == 0)
      << "status " << watched.status << "\n"
      << watched.stdout_text;
  EXPECT_EQ(watched.stdout_text, plain.stdout_text)
      << "first difference: " << first_difference(plain.stdout_text, watched.stdout_text);

  // It really sampled while all that ran.
  int stalls = 0, stalls_with_stack = 0, small_stack_samples = 0, hangs = 0;
  for (const ResolvedEvent& e : watched.events) {
    if (e.raw.kind() == wire::KIND_HANG) ++hangs;
    if (e.thread_name == "pool-small" && stack_contains(e, "deep_stall_site"))
      ++small_stack_samples;
    if (e.raw.kind() != wire::KIND_STALL) continue;
    ++stalls;
    if (stack_contains(e, "stress_spin_site")) ++stalls_with_stack;
  }
  EXPECT_GT(stalls, 20);
  EXPECT_GT(stalls_with_stack, 10) << stalls << " stalls";
  EXPECT_GT(small_stack_samples, 0);  // stall or hang-dump samples, with its stack
  std::printf("%s: stalls=%d with_stack=%d small_stack_samples=%d hang_records=%d\n",
              sampler.c_str(), stalls, stalls_with_stack, small_stack_samples, hangs);
  EXPECT_GT(hangs, 0);
}

TEST(SamplingStress, PerfSamplerChangesNothing) {
  if (!perf_allowed()) GTEST_SKIP() << "perf_event_open refused on this machine";
  expect_unchanged_and_sampled("perf");
}

// The fallback is used only where CPU-timer signals wait for the return to user
// mode (stall_sampler.h: x86-64, Linux 5.11 and later).
bool signal_fallback_supported() {
#if defined(__x86_64__)
  utsname name;
  int major = 0, minor = 0;
  return uname(&name) == 0 && std::sscanf(name.release, "%d.%d", &major, &minor) == 2 &&
         (major > 5 || (major == 5 && minor >= 11));
#else
  return false;
#endif
}

TEST(SamplingStress, SignalFallbackChangesNothing) {
  if (!signal_fallback_supported()) GTEST_SKIP() << "the signal fallback is off on this kernel";
  expect_unchanged_and_sampled("signal");
}

}  // namespace
}  // namespace blockwatch
