// What a task-entry probe costs per task (issue 9: goal <= 5 ns): a loop of
// empty Boost.Asio handlers, each posted and run by the same thread
// (io_context::run_one, so one do_run_one call, the probed task entry, per
// handler), on a worker chosen by BLOCKWATCH_WORKERS=main. Measured three ways
// in one run: without the preload, with it and its probes, with it and
// BLOCKWATCH_PROBES=off; the difference of the last two is the probe's cost.
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
                                      const char* probes) {
  return bench::run_under_preload(args, library,
                                  {{"BLOCKWATCH_WORKERS", "main"}, {"BLOCKWATCH_PROBES", probes}});
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
  const std::string name = "BM_AsioEmptyPost/repeats:5";
  if (!with_probes.count(name) || !without_probes.count(name)) {
    std::printf("the preloaded runs failed\n");
    return 1;
  }
  const double plain = reporter.ns_per_iteration[name];
  const double probed = with_probes.at(name), unprobed = without_probes.at(name);
  std::printf(
      "\nempty Asio handler, CPU ns: no preload %.1f, preload without probes %.1f "
      "(%.2fx), preload with probes %.1f (%.2fx)\n",
      plain, unprobed, unprobed / plain, probed, probed / plain);
  std::printf("task-entry probe: %.1f ns per task entry (goal <= 5 ns)\n", probed - unprobed);
  return 0;
}
