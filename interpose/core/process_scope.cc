// Process scoping (process_scope.h): picks the BLOCKWATCH_WORKERS section for
// this process. The selector's grammar (where exe: sections begin and end) is
// common/worker_selector.h; a section's thread rules go on as text to
// worker_rules.h.
#include "interpose/core/process_scope.h"

#include <regex.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <vector>

#include "common/worker_selector.h"
#include "interpose/base/proc_file.h"

namespace blockwatch::interpose {
namespace {

constinit std::atomic<pid_t> g_watched_pid{0};

std::string_view base_name(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// Full match of `pattern` (POSIX ERE) against the path or its base name.
// Allocates (regcomp); constructor only. Sets `error` for a bad pattern.
bool exe_matches(std::string_view pattern, std::string_view exe_path, std::string* error) {
  regex_t compiled;
  std::string why;
  if (!worker_selector::compile_full_match(pattern, "exe:" + std::string(pattern), &compiled,
                                           &why)) {
    if (error->empty()) *error = why;
    return false;
  }
  const std::string path(exe_path), name(base_name(exe_path));
  const bool matched = regexec(&compiled, path.c_str(), 0, nullptr, 0) == 0 ||
                       regexec(&compiled, name.c_str(), 0, nullptr, 0) == 0;
  regfree(&compiled);
  return matched;
}

}  // namespace

ScopeDecision decide_process_scope(std::string_view rules, std::string_view exe_path,
                                   std::string_view cmd_exe, bool is_cmd_process) {
  ScopeDecision decision;
  const worker_selector::Sections split = worker_selector::split_sections(rules);
  const std::string_view default_rules = split.default_rules;
  for (const worker_selector::ExeSection& section : split.exe_sections) {
    if (section.pattern.empty()) {
      if (decision.error.empty()) decision.error = "rule 'exe:' names no executable";
      continue;
    }
    if (!exe_matches(section.pattern, exe_path, &decision.error)) continue;
    decision.watched = true;
    decision.thread_rules =
        std::string(section.thread_rules.empty() ? default_rules : section.thread_rules);
    return decision;
  }
  // CMD's own executable (or, when nobody said which that is, every process) is
  // always watched, with or without rules: it may mark workers with the API.
  if (cmd_exe.empty() || cmd_exe == exe_path || is_cmd_process) {
    decision.watched = true;
    decision.thread_rules = std::string(default_rules);
  }
  return decision;
}

ScopeDecision decide_own_scope(const char* rules) {
  char exe[4096];
  read_exe_path(exe, sizeof exe);
  const char* cmd_exe = getenv("BLOCKWATCH_EXE");
  const char* cmd_pid = getenv("BLOCKWATCH_CMD_PID");
  const bool is_cmd_process = cmd_pid != nullptr && atol(cmd_pid) == getpid();
  return decide_process_scope(rules ? rules : "", exe, cmd_exe ? cmd_exe : "", is_cmd_process);
}

void set_watched_process(pid_t pid) { g_watched_pid.store(pid, std::memory_order_relaxed); }

bool is_original_process() {
  const pid_t pid = g_watched_pid.load(std::memory_order_relaxed);
  return pid != 0 && pid == getpid();
}

}  // namespace blockwatch::interpose
