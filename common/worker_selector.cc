// Parses worker selectors (see worker_selector.h): where exe: sections begin and
// end, how thread rules split at commas, and the one way their regexes compile.
#include "common/worker_selector.h"

#include <cstring>

namespace blockwatch::worker_selector {
namespace {

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

// Does `text` start a rule? A lower-case word that ends the list, is followed by
// a comma, a space or a colon: `main`, `name:`, and a misspelt `nmae:` or
// `bogus`, which are then reported rather than swallowed into the regex.
bool starts_rule(std::string_view text) {
  size_t letters = 0;
  while (letters < text.size() && text[letters] >= 'a' && text[letters] <= 'z') ++letters;
  if (letters == 0) return false;
  return letters == text.size() || text[letters] == ',' || text[letters] == ' ' ||
         text[letters] == ':';
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

Sections split_sections(std::string_view text) {
  Sections sections;
  size_t first = find_exe_selector(text, 0);
  sections.default_rules =
      trim(text.substr(0, first == std::string_view::npos ? text.size() : first));
  while (first != std::string_view::npos) {
    const size_t pattern_start = first + 4;
    const size_t end = pattern_end(text, pattern_start);
    const size_t next = end < text.size() ? find_exe_selector(text, end) : std::string_view::npos;
    const size_t rules_end = next == std::string_view::npos ? text.size() : next;
    sections.exe_sections.push_back({text.substr(pattern_start, end - pattern_start),
                                     trim(text.substr(end, rules_end > end ? rules_end - end : 0))});
    first = next;
  }
  return sections;
}

bool parse_thread_rules(std::string_view text, std::vector<ThreadRule>* rules,
                        std::string* error) {
  bool ok = true;
  auto fail = [&](std::string message) {
    if (ok && error) *error = std::move(message);
    ok = false;
  };
  std::string_view rest = text;
  while (!rest.empty()) {
    const size_t comma = rule_end(rest);
    std::string_view rule = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    while (!rule.empty() && rule.front() == ' ') rule.remove_prefix(1);
    while (!rule.empty() && rule.back() == ' ') rule.remove_suffix(1);
    if (rule.empty()) continue;
    if (rule == "main") {
      ThreadRule main_rule;
      main_rule.main = true;
      rules->push_back(std::move(main_rule));
      continue;
    }
    if (!rule.starts_with("name:") || rule.size() == 5) {
      fail("rule '" + std::string(rule) + "' is neither 'main', 'name:REGEX' nor 'exe:REGEX'");
      continue;
    }
    ThreadRule parsed;
    parsed.regex = std::string(rule.substr(5));
    // A rule whose literal start fills a whole kept name also matches the cut
    // name: "name:tokio-runtime-worker" selects "tokio-runtime-w".
    const std::string start = literal_start(parsed.regex);
    if (start.size() >= kKeptNameBytes) parsed.cut_name = start.substr(0, kKeptNameBytes);
    rules->push_back(std::move(parsed));
  }
  return ok;
}

bool compile_full_match(std::string_view regex, std::string_view rule, regex_t* out,
                        std::string* error) {
  // Anchored: the rule names whole names, not substrings.
  const std::string anchored = "^(" + std::string(regex) + ")$";
  const int rc = regcomp(out, anchored.c_str(), REG_EXTENDED | REG_NOSUB);
  if (rc == 0) return true;
  char reason[128];
  regerror(rc, out, reason, sizeof reason);
  if (error) *error = "rule '" + std::string(rule) + "': bad regular expression (" + reason + ")";
  return false;
}

bool check(std::string_view text, std::string* error) {
  const Sections sections = split_sections(text);
  std::vector<std::string_view> rule_texts{sections.default_rules};
  for (const ExeSection& section : sections.exe_sections) {
    if (section.pattern.empty()) {
      *error = "rule 'exe:' names no executable";
      return false;
    }
    regex_t compiled;
    if (!compile_full_match(section.pattern, "exe:" + std::string(section.pattern), &compiled,
                            error)) {
      return false;
    }
    regfree(&compiled);
    rule_texts.push_back(section.thread_rules);
  }
  for (std::string_view rule_text : rule_texts) {
    std::vector<ThreadRule> rules;
    if (!parse_thread_rules(rule_text, &rules, error)) return false;
    for (const ThreadRule& rule : rules) {
      if (rule.main) continue;
      regex_t compiled;
      if (!compile_full_match(rule.regex, "name:" + rule.regex, &compiled, error)) return false;
      regfree(&compiled);
    }
  }
  return true;
}

}  // namespace blockwatch::worker_selector
