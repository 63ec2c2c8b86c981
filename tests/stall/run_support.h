// What the stall tests share: running a target program under the preload with
// a clean BLOCKWATCH_* environment and a deadline, reading its output, and
// whether this kernel lets a process sample its own threads with perf.
#pragma once

#include <fcntl.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace blockwatch::stall_test {

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream file(path);
  std::stringstream buffer;
  buffer << file.rdbuf();
  return buffer.str();
}

// Runs `argv` with `env` added to a copy of ours without BLOCKWATCH_* and
// LD_PRELOAD, stdout to `stdout_path`; kills it after `limit`. The wait status.
inline int run_program(const std::vector<const char*>& argv,
                       const std::map<std::string, std::string>& env,
                       const std::string& stdout_path, std::chrono::seconds limit) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    const std::string entry = *e;
    if (entry.rfind("BLOCKWATCH_", 0) != 0 && entry.rfind("LD_PRELOAD=", 0) != 0) {
      env_strings.push_back(entry);
    }
  }
  for (const auto& [name, value] : env) env_strings.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (const char* arg : argv) args.push_back(const_cast<char*>(arg));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    const int out = open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      ADD_FAILURE() << argv[0] << " " << (argv.size() > 1 ? argv[1] : "")
                    << " did not finish; killed";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return status;
}

// Whether this kernel lets a process sample its own threads with perf (the
// library's default sampler); otherwise it falls back to the signal sampler.
inline bool perf_allowed() {
  perf_event_attr attr = {};
  attr.size = sizeof attr;
  attr.type = PERF_TYPE_SOFTWARE;
  attr.config = PERF_COUNT_SW_TASK_CLOCK;
  attr.disabled = 1;
  attr.exclude_kernel = 1;
  attr.exclude_hv = 1;
  const long fd = syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
  if (fd < 0) return false;
  close(static_cast<int>(fd));
  return true;
}

}  // namespace blockwatch::stall_test
