// What a task-entry probe costs per task (issue 9: goal <= 5 ns): a loop of
// empty Boost.Asio handlers, each posted and run by the same thread
// (io_context::run_one, so one do_run_one call, the probed task entry, per
// handler), on a worker chosen by BLOCKWATCH_WORKERS=main. Measured three ways
// in one run: without the preload, with it and its probes, with it and
// BLOCKWATCH_PROBES=off; the difference of the last two is the probe's cost.
// The probe run is repeated with sampled task timing at its default (1 in 16
// tasks timed, interpose/core/task_stats.h) and with every task timed
// (BLOCKWATCH_TASK_TIMING_EVERY=1), to show what the clock read would cost.
// CPU ns per handler (the lowest of the repetitions). No timing assertion.
#include <benchmark/benchmark.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cstdio>

#include "tests/bench/preload_compare.h"

namespace {

namespace bench = blockwatch::bench;

void empty_handler() { benchmark::ClobberMemory(); }

void BM_AsioEmptyPost(benchmark::State& state) {
  boost::asio::io_context io(1);
  auto work = boost::asio::make_work_guard(io);
  for (auto _ : state) {
    boost::asio::post(io, empty_handler);
    io.run_one();
  }
}
BENCHMARK(BM_AsioEmptyPost)->Repetitions(5)->ReportAggregatesOnly(false);

std::map<std::string, double> measure(const std::vector<std::string>& args, const char* library,
                                      const char* probes, const char* timing_every = "16") {
  return bench::run_under_preload(args, library,
                                  {{"BLOCKWATCH_WORKERS", "main"},
                                   {"BLOCKWATCH_PROBES", probes},
                                   {"BLOCKWATCH_TASK_TIMING_EVERY", timing_every}});
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv, argv + argc);
  benchmark::Initialize(&argc, argv);
  bench::KeepingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  if (bench::is_preloaded_child()) return bench::write_child_results(reporter);
  const char* library = bench::library_path();
  if (library == nullptr) return 0;
  const auto with_probes = measure(args, library, "on");
  const auto without_probes = measure(args, library, "off");
  const auto every_task_timed = measure(args, library, "on", "1");
  const auto almost_never_timed = measure(args, library, "on", "1000000");
  const auto one_in_32_timed = measure(args, library, "on", "32");
  const std::string name = "BM_AsioEmptyPost/repeats:5";
  if (!with_probes.count(name) || !without_probes.count(name) || !every_task_timed.count(name) ||
      !almost_never_timed.count(name) || !one_in_32_timed.count(name)) {
    std::printf("the preloaded runs failed\n");
    return 1;
  }
  const double plain = reporter.ns_per_iteration[name];
  const double probed = with_probes.at(name), unprobed = without_probes.at(name);
  std::printf(
      "\nempty Asio handler, CPU ns: no preload %.1f, preload without probes %.1f "
      "(%.2fx), preload with probes %.1f (%.2fx)\n",
      plain, unprobed, unprobed / plain, probed, probed / plain);
  std::printf(
      "task-entry probe, counting every task and timing 1 in 16: %.1f ns per task entry "
      "(goal <= 5 ns)\n",
      probed - unprobed);
  const double count_only = almost_never_timed.at(name);
  std::printf(
      "task-entry probe, counting only (1 in 1000000 timed): %.1f ns per task entry; "
      "so timing 1 in 16 adds %.1f ns\n",
      count_only - unprobed, probed - count_only);
  std::printf("task-entry probe, timing 1 in 32: %.1f ns per task entry\n",
              one_in_32_timed.at(name) - unprobed);
  const double all_timed = every_task_timed.at(name);
  std::printf(
      "task-entry probe, timing every task (BLOCKWATCH_TASK_TIMING_EVERY=1): %.1f ns per task "
      "entry (%.2fx the sampled probe's run)\n",
      all_timed - unprobed, all_timed / probed);
  return 0;
}
