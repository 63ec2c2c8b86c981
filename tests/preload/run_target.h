// Test support for the preload tier: runs preload_target (target.cc) under
// LD_PRELOAD=libblockwatch.so with one scenario, and returns what the program
// saw (exit status, output) and what blockwatch recorded (decoded streams).
// BW_PRELOAD_LIBRARY, BW_PRELOAD_TARGET and BW_DLSYM_NESTED_TARGET are set by
// CMake.
#pragma once
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/preload/decode.h"

namespace blockwatch::preload_test {

inline constexpr int64_t kMs = 1'000'000;

struct RunResult {
  int status = -1;  // as from waitpid
  std::string stdout_text;
  std::string stderr_text;
  std::vector<DecodedStream> streams;

  bool exited_with(int code) const { return WIFEXITED(status) && WEXITSTATUS(status) == code; }
  bool killed_by(int signal) const { return WIFSIGNALED(status) && WTERMSIG(status) == signal; }

  // The stream of the process that was started (not a forked/exec'd child).
  const DecodedStream* main_stream(pid_t pid) const {
    for (const DecodedStream& s : streams) {
      if (s.has_hello && s.hello.pid() == pid) return &s;
    }
    return nullptr;
  }
  std::vector<DecodedEvent> events() const {
    std::vector<DecodedEvent> all;
    for (const DecodedStream& s : streams) all.insert(all.end(), s.events.begin(), s.events.end());
    return all;
  }
  pid_t pid = 0;
};

inline std::string read_text(const std::string& path) {
  std::ifstream file(path);
  std::stringstream buffer;
  buffer << file.rdbuf();
  return buffer.str();
}

// Runs the target with the preload, env = ours + BLOCKWATCH_OUTPUT + `env`.
// Kills it after 20 s (a hang is a failure, not a stuck suite). `program` is
// preload_target unless a scenario needs a program of its own.
inline RunResult run_target(const std::string& scenario,
                            const std::map<std::string, std::string>& env, bool preload = true,
                            const char* program = BW_PRELOAD_TARGET) {
  char dir_template[] = "/tmp/bw_preload_XXXXXX";
  const std::string dir = mkdtemp(dir_template);
  const std::string out_dir = dir + "/out";
  std::filesystem::create_directory(out_dir);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    if (std::string(*e).rfind("BLOCKWATCH_", 0) != 0 &&
        std::string(*e).rfind("LD_PRELOAD=", 0) != 0) {
      env_strings.push_back(*e);
    }
  }
  if (preload) env_strings.push_back(std::string("LD_PRELOAD=") + BW_PRELOAD_LIBRARY);
  env_strings.push_back("BLOCKWATCH_OUTPUT=" + out_dir + "/stream.%p.bwrec");
  for (const auto& [name, value] : env) env_strings.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  const std::string stdout_path = dir + "/stdout", stderr_path = dir + "/stderr";

  RunResult result;
  const pid_t pid = fork();
  if (pid == 0) {
    const int out = open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, 1);
    dup2(err, 2);
    const char* argv[] = {program, scenario.c_str(), nullptr};
    execve(program, const_cast<char**>(argv), envp.data());
    _exit(127);
  }
  result.pid = pid;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (waitpid(pid, &result.status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &result.status, 0);
      ADD_FAILURE() << "scenario " << scenario << " hung; killed";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  // Exec'd children of some scenarios may still be flushing: they are waited
  // for by the target itself, so the directory is complete here.
  result.stdout_text = read_text(stdout_path);
  result.stderr_text = read_text(stderr_path);
  result.streams = decode_directory(out_dir);
  for (const DecodedStream& s : result.streams) {
    EXPECT_EQ(s.error, "") << s.path;
  }
  std::filesystem::remove_all(dir);
  return result;
}

inline std::vector<DecodedEvent> of_kind(const std::vector<DecodedEvent>& events, wire::Kind kind) {
  std::vector<DecodedEvent> out;
  for (const DecodedEvent& e : events) {
    if (e.event.kind() == kind) out.push_back(e);
  }
  return out;
}

inline std::vector<DecodedEvent> at_site(const std::vector<DecodedEvent>& events,
                                         const std::string& site) {
  std::vector<DecodedEvent> out;
  for (const DecodedEvent& e : events) {
    if (e.stack_contains(site)) out.push_back(e);
  }
  return out;
}

inline std::string describe(const std::vector<DecodedEvent>& events) {
  std::string text;
  for (const DecodedEvent& e : events) {
    text += wire::Kind_Name(e.event.kind()) + " " + e.event.function() + " " +
            std::to_string(e.event.duration_ns()) + "ns on '" + e.thread_name + "':";
    for (const std::string& f : e.functions) text += " " + f;
    text += "\n";
  }
  return text;
}

inline const std::map<std::string, std::string> kWorkerRule = {
    {"BLOCKWATCH_WORKERS", "name:worker-.*"}};

}  // namespace blockwatch::preload_test
