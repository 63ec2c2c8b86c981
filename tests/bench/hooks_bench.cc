// Cost of the runtime hooks (blockwatch.hpp): an empty task begin+end, allowed and
// worker scopes, with and without libblockwatch.so, in one run. The process runs
// the benchmarks, then re-executes itself under LD_PRELOAD and prints both results
// and their ratio. Target (issue 4): an empty task at most 10 ns with the preload.
//
//   hooks_bench [--benchmark_* flags]       # library path from the build, or
//   BW_BENCH_LIBRARY=/path/libblockwatch.so hooks_bench
#include <benchmark/benchmark.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "blockwatch/blockwatch.hpp"
#include "tests/bench/preload_compare.h"

namespace bench = blockwatch::bench;

namespace {

void BM_EmptyTask(benchmark::State& state) {
  for (auto _ : state) {
    blockwatch::TaskScope task("bench task");
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_EmptyTask);

void BM_EmptyTaskOnWorker(benchmark::State& state) {
  blockwatch::WorkerScope worker;
  for (auto _ : state) {
    blockwatch::TaskScope task("bench task");
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_EmptyTaskOnWorker);

void BM_AllowBlockingOnWorker(benchmark::State& state) {
  blockwatch::WorkerScope worker;
  for (auto _ : state) {
    blockwatch::AllowBlocking allow("bench reason");
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_AllowBlockingOnWorker);

void BM_WorkerScope(benchmark::State& state) {
  for (auto _ : state) {
    blockwatch::WorkerScope worker;
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_WorkerScope);

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> argv_copy(argv, argv + argc);
  benchmark::Initialize(&argc, argv);
  const bool child = bench::is_preloaded_child();
  std::printf("== hooks_bench %s libblockwatch.so (bw_active=%d)\n", child ? "with" : "without",
              blockwatch_active());
  std::fflush(stdout);
  bench::KeepingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  if (child) return bench::write_child_results(reporter);
  const char* library = bench::library_path();
  if (library == nullptr || access(library, R_OK) != 0) {
    std::printf("no libblockwatch.so (set BW_BENCH_LIBRARY): measured without the preload only\n");
    return 0;
  }
  std::fflush(stdout);
  const std::map<std::string, double> preloaded =
      bench::run_under_preload(std::vector<std::string>(argv_copy.begin(), argv_copy.end()),
                               library);
  std::printf("\n%-28s %16s %16s %8s\n", "benchmark", "without cpu ns", "with cpu ns", "ratio");
  for (const auto& [name, ns] : reporter.ns_per_iteration) {
    auto it = preloaded.find(name);
    if (it == preloaded.end() || name.ends_with("_cv")) continue;
    std::printf("%-28s %16.2f %16.2f %8.1f\n", name.c_str(), ns, it->second,
                ns > 0 ? it->second / ns : 0.0);
  }
  return preloaded.empty() ? 1 : 0;
}
