// Parses and matches BLOCKWATCH_WORKERS rules (see worker_rules.h). POSIX regcomp
// rather than std::regex: the injected library is built without exceptions, and
// std::regex reports a bad pattern only by throwing.
#include "interpose/core/worker_rules.h"

#include <cstring>
#include <string_view>

namespace blockwatch::interpose {

namespace {

// Linux keeps 15 bytes of a thread's name (TASK_COMM_LEN - 1); Rust's std, glibc's
// pthread_setname_np callers and prctl all end up with the cut name. So a rule
// written for the name a program gives ("tokio-runtime-worker") would never match
// what the kernel keeps ("tokio-runtime-w").
constexpr size_t kThreadNameBytes = 15;

// The literal text a pattern starts with: up to its first special character, less
// the character a following quantifier makes optional. Empty when the pattern has
// a top-level choice of alternatives (no one literal start).
std::string literal_start(std::string_view pattern) {
  if (pattern.find('|') != std::string_view::npos) return "";
  std::string literal;
  for (const char c : pattern) {
    if (std::strchr(".[]()*+?{}^$\\", c) != nullptr) {
      if ((c == '*' || c == '?' || c == '{') && !literal.empty()) literal.pop_back();
      return literal;
    }
    literal += c;
  }
  return literal;
}

// Does `text` start a rule? `main` alone, or a keyword and a colon (`name:`, and
// any other `word:`, so a misspelt `nmae:` is reported rather than swallowed).
bool starts_rule(std::string_view text) {
  if (text.starts_with("main") && (text.size() == 4 || text[4] == ',' || text[4] == ' ')) {
    return true;
  }
  size_t letters = 0;
  while (letters < text.size() && text[letters] >= 'a' && text[letters] <= 'z') ++letters;
  return letters > 0 && letters < text.size() && text[letters] == ':';
}

// Where the rule at the front of `rest` ends: at the first comma followed (after
// spaces) by another rule, an empty rule or the end, so a comma inside a regular
// expression ("name:w{1,15}", "name:[a,b]x") stays in it.
size_t rule_end(std::string_view rest) {
  for (size_t comma = rest.find(','); comma != std::string_view::npos;
       comma = rest.find(',', comma + 1)) {
    std::string_view next = rest.substr(comma + 1);
    while (!next.empty() && next.front() == ' ') next.remove_prefix(1);
    if (next.empty() || next.front() == ',' || starts_rule(next)) return comma;
  }
  return std::string_view::npos;
}

}  // namespace

WorkerRules::~WorkerRules() { clear(); }

void WorkerRules::clear() {
  for (regex_t& pattern : patterns_) regfree(&pattern);
  patterns_.clear();
  cut_names_.clear();
  match_main_ = false;
}

bool WorkerRules::parse(const char* text, std::string* error) {
  clear();
  bool ok = true;
  auto fail = [&](std::string message) {
    if (ok && error) *error = std::move(message);
    ok = false;
  };
  std::string_view rest = text ? text : "";
  while (!rest.empty()) {
    const size_t comma = rule_end(rest);
    std::string_view rule = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    while (!rule.empty() && rule.front() == ' ') rule.remove_prefix(1);
    while (!rule.empty() && rule.back() == ' ') rule.remove_suffix(1);
    if (rule.empty()) continue;
    if (rule == "main") {
      match_main_ = true;
      continue;
    }
    if (!rule.starts_with("name:") || rule.size() == 5) {
      fail("rule '" + std::string(rule) + "' is neither 'main' nor 'name:REGEX'");
      continue;
    }
    // Anchored: the rule names whole thread names, not substrings.
    const std::string anchored = "^(" + std::string(rule.substr(5)) + ")$";
    regex_t pattern;
    const int rc = regcomp(&pattern, anchored.c_str(), REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
      char reason[128];
      regerror(rc, &pattern, reason, sizeof reason);
      fail("rule '" + std::string(rule) + "': bad regular expression (" + reason + ")");
      continue;
    }
    patterns_.push_back(pattern);
    // A rule whose literal start fills a whole thread name also matches
    // the cut name: "name:tokio-runtime-worker" selects "tokio-runtime-w".
    const std::string start = literal_start(rule.substr(5));
    if (start.size() >= kThreadNameBytes) cut_names_.push_back(start.substr(0, kThreadNameBytes));
  }
  return ok;
}

bool WorkerRules::matches(const char* thread_name, bool is_main_thread) const {
  if (is_main_thread && match_main_) return true;
  if (!thread_name) return false;
  for (const regex_t& pattern : patterns_) {
    if (regexec(&pattern, thread_name, 0, nullptr, 0) == 0) return true;
  }
  for (const std::string& cut : cut_names_) {
    if (cut == thread_name) return true;
  }
  return false;
}

namespace {
WorkerRules& process_rules() {
  static WorkerRules* rules = new WorkerRules();  // never destroyed: hooks run during exit
  return *rules;
}
}  // namespace

bool install_worker_rules(const char* text, std::string* error) {
  return process_rules().parse(text, error);
}

bool worker_rules_match(const char* thread_name, bool is_main_thread) {
  return process_rules().matches(thread_name, is_main_thread);
}

}  // namespace blockwatch::interpose
