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

// Prints as usual and keeps each benchmark's CPU nanoseconds per iteration (CPU
// time, not wall time: on a shared 2-core machine wall time mostly measures the
// neighbours).
class KeepingReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) ns_per_iteration[run.benchmark_name()] = run.GetAdjustedCPUTime();
  }
  std::map<std::string, double> ns_per_iteration;
};

const char* library_path() {
  if (const char* env = std::getenv("BW_BENCH_LIBRARY")) return env;
#ifdef BW_BENCH_LIBRARY_DEFAULT
  return BW_BENCH_LIBRARY_DEFAULT;
#else
  return nullptr;
#endif
}

// Re-runs this binary under the preload; returns its "name ns" result lines.
std::map<std::string, double> RunUnderPreload(char** argv, const char* library) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 3);
    setenv("LD_PRELOAD", library, 1);
    setenv("BW_BENCH_CHILD", "1", 1);
    setenv("BLOCKWATCH_OUTPUT", "/dev/null", 1);
    execv("/proc/self/exe", argv);
    _exit(127);
  }
  close(fds[1]);
  std::string text;
  char buffer[4096];
  ssize_t n;
  while ((n = read(fds[0], buffer, sizeof buffer)) > 0) text.append(buffer, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  std::map<std::string, double> results;
  char name[256];
  double ns = 0;
  for (const char* line = text.c_str(); *line != '\0';) {
    if (std::sscanf(line, "%255s %lf", name, &ns) == 2) results[name] = ns;
    const char* next = std::strchr(line, '\n');
    if (next == nullptr) break;
    line = next + 1;
  }
  return results;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> original_argv(argv, argv + argc);
  original_argv.push_back(nullptr);
  benchmark::Initialize(&argc, argv);
  const bool child = std::getenv("BW_BENCH_CHILD") != nullptr;
  std::printf("== hooks_bench %s libblockwatch.so (bw_active=%d)\n", child ? "with" : "without",
              blockwatch_active());
  std::fflush(stdout);
  KeepingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  if (child) {  // results for the parent on fd 3
    FILE* out = fdopen(3, "w");
    if (out == nullptr) return 1;
    for (const auto& [name, ns] : reporter.ns_per_iteration)
      std::fprintf(out, "%s %.3f\n", name.c_str(), ns);
    std::fclose(out);
    return 0;
  }
  const char* library = library_path();
  if (library == nullptr || access(library, R_OK) != 0) {
    std::printf("no libblockwatch.so (set BW_BENCH_LIBRARY): measured without the preload only\n");
    return 0;
  }
  std::fflush(stdout);
  std::map<std::string, double> preloaded = RunUnderPreload(original_argv.data(), library);
  std::printf("\n%-28s %16s %16s %8s\n", "benchmark", "without cpu ns", "with cpu ns", "ratio");
  for (const auto& [name, ns] : reporter.ns_per_iteration) {
    auto it = preloaded.find(name);
    if (it == preloaded.end() || name.ends_with("_cv")) continue;
    std::printf("%-28s %16.2f %16.2f %8.1f\n", name.c_str(), ns, it->second,
                ns > 0 ? it->second / ns : 0.0);
  }
  return preloaded.empty() ? 1 : 0;
}
