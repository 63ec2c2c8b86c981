// What every "with and without the preload, in one run" benchmark shares: a
// reporter that keeps each benchmark's CPU ns per iteration, the library's path,
// and re-running this binary under LD_PRELOAD to collect the same numbers there.
// The child writes "name ns" lines to fd 3 (write_child_results); the parent
// reads them back (run_under_preload) and prints the comparison itself.
#pragma once

#include <benchmark/benchmark.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace blockwatch::bench {

// Prints as usual and keeps each benchmark's CPU ns per iteration (CPU time, not
// wall time: on a shared 2-core machine wall time mostly measures the neighbours).
// With --benchmark_repetitions=N it keeps the lowest of the N: what neighbours
// add (cache and TLB pollution, a hypervisor's steal) only ever adds.
class KeepingReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.run_type == Run::RT_Aggregate) continue;  // mean, median, stddev
      const double ns = run.GetAdjustedCPUTime();
      auto [kept, inserted] = ns_per_iteration.emplace(run.benchmark_name(), ns);
      if (!inserted && ns < kept->second) kept->second = ns;
    }
  }
  std::map<std::string, double> ns_per_iteration;
};

inline bool is_preloaded_child() { return std::getenv("BW_BENCH_CHILD") != nullptr; }

// BW_BENCH_LIBRARY, else the path the build compiled in; null when neither.
inline const char* library_path() {
  if (const char* env = std::getenv("BW_BENCH_LIBRARY")) return env;
#ifdef BW_BENCH_LIBRARY_DEFAULT
  return BW_BENCH_LIBRARY_DEFAULT;
#else
  return nullptr;
#endif
}

// In the preloaded child: hand the results to the parent on fd 3.
inline int write_child_results(const KeepingReporter& reporter) {
  FILE* out = fdopen(3, "w");
  if (out == nullptr) return 1;
  for (const auto& [name, ns] : reporter.ns_per_iteration)
    std::fprintf(out, "%s %.3f\n", name.c_str(), ns);
  std::fclose(out);
  return 0;
}

// Re-runs this binary (`args`, argv[0] first) under LD_PRELOAD=`library` with the
// extra environment `env` and extra arguments `extra_args`; returns the child's
// "name ns" results, empty when it failed.
inline std::map<std::string, double> run_under_preload(
    const std::vector<std::string>& args, const char* library,
    const std::vector<std::pair<const char*, const char*>>& env = {},
    const std::vector<std::string>& extra_args = {}) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 3);
    setenv("LD_PRELOAD", library, 1);
    setenv("BW_BENCH_CHILD", "1", 1);
    setenv("BLOCKWATCH_OUTPUT", "/dev/null", 1);
    unsetenv("BLOCKWATCH_WORKERS");  // workers come from the benchmarks' own API calls
    for (const auto& [name, value] : env) setenv(name, value, 1);
    std::vector<std::string> child_args = args;
    child_args.insert(child_args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (std::string& arg : child_args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    execv("/proc/self/exe", argv.data());
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

}  // namespace blockwatch::bench
