// Process scoping (process_scope.h): splits BLOCKWATCH_WORKERS into its default
// section and its exe: sections, and picks the one for this process. The thread
// rules of a section are handed on as text to worker_rules.h, which owns their
// grammar; this file only finds where exe: sections begin and end.
#include "interpose/core/process_scope.h"

#include <regex.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <vector>

#include "interpose/base/proc_file.h"

namespace blockwatch::interpose {
namespace {

constinit std::atomic<pid_t> g_watched_pid{0};

struct ExeSection {
  std::string_view pattern;
  std::string_view thread_rules;
};

// Where an "exe:" selector starts: at the text's start or right after a comma
// (spaces allowed between), outside (), [] and {} and not escaped, so that a
// `name:` pattern holding ",exe:" inside a group stays a pattern. npos when
// none from `from` on.
size_t find_exe_selector(std::string_view text, size_t from) {
  int depth = 0;
  bool rule_start = true;  // at the text's start or after a top-level comma
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\\' && i + 1 < text.size()) {
      ++i;
      rule_start = false;
    } else if (c == '(' || c == '[' || c == '{') {
      ++depth;
      rule_start = false;
    } else if ((c == ')' || c == ']' || c == '}') && depth > 0) {
      --depth;
    } else if (c == ',' && depth == 0) {
      rule_start = true;
    } else if (c != ' ') {
      if (rule_start && i >= from && text.compare(i, 4, "exe:") == 0) return i;
      rule_start = false;
    }
  }
  return std::string_view::npos;
}

// The end of an exe: pattern: the first comma outside (), [] and {}, so that
// `exe:a{1,3}` keeps its comma.
size_t pattern_end(std::string_view text, size_t from) {
  int depth = 0;
  for (size_t i = from; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\\' && i + 1 < text.size()) {
      ++i;
    } else if (c == '(' || c == '[' || c == '{') {
      ++depth;
    } else if ((c == ')' || c == ']' || c == '}') && depth > 0) {
      --depth;
    } else if (c == ',' && depth == 0) {
      return i;
    }
  }
  return text.size();
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == ',')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == ',')) text.remove_suffix(1);
  return text;
}

std::string_view base_name(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// Full match of `pattern` (POSIX ERE) against the path or its base name.
// Allocates (regcomp); constructor only. Sets `error` for a bad pattern.
bool exe_matches(std::string_view pattern, std::string_view exe_path, std::string* error) {
  const std::string anchored = "^(" + std::string(pattern) + ")$";
  regex_t compiled;
  const int rc = regcomp(&compiled, anchored.c_str(), REG_EXTENDED | REG_NOSUB);
  if (rc != 0) {
    char reason[128];
    regerror(rc, &compiled, reason, sizeof reason);
    if (error->empty()) {
      *error = "rule 'exe:" + std::string(pattern) + "': bad regular expression (" + reason + ")";
    }
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
  size_t first = find_exe_selector(rules, 0);
  const std::string_view default_rules =
      trim(rules.substr(0, first == std::string_view::npos ? rules.size() : first));
  std::vector<ExeSection> sections;
  while (first != std::string_view::npos) {
    const size_t pattern_start = first + 4;
    const size_t end = pattern_end(rules, pattern_start);
    const size_t next = end < rules.size() ? find_exe_selector(rules, end) : std::string_view::npos;
    const size_t rules_end = next == std::string_view::npos ? rules.size() : next;
    sections.push_back({rules.substr(pattern_start, end - pattern_start),
                        trim(rules.substr(end, rules_end > end ? rules_end - end : 0))});
    first = next;
  }
  for (const ExeSection& section : sections) {
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
