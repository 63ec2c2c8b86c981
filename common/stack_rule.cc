// The one stack matcher (see stack_rule.h).
#include "common/stack_rule.h"

#include <algorithm>

namespace blockwatch::stack_rule {

RuleText builtin_rule_text(int index, std::string_view pool_wait) {
  const builtin_rules::Rule& rule = builtin_rules::kRules[index];
  RuleText text;
  if (index == builtin_rules::kPoolWaitRuleIndex && !pool_wait.empty()) {
    text.frames.emplace_back(pool_wait);
  } else {
    text.frames.assign(rule.patterns, rule.patterns + rule.pattern_count);
  }
  text.unless.assign(rule.unless, rule.unless + rule.unless_count);
  text.kinds.assign(rule.kinds, rule.kinds + rule.kind_count);
  text.max_depth = rule.max_depth;
  return text;
}

void CompiledRegex::Free::operator()(regex_t* regex) const {
  regfree(regex);
  delete regex;
}

bool CompiledRegex::compile(const std::vector<std::string>& patterns, std::string* error) {
  regex_.reset();
  if (patterns.empty()) return true;
  std::string alternation;
  for (const std::string& pattern : patterns) {
    // Each alone first, so an error names the pattern that has it.
    regex_t single;
    const int status = regcomp(&single, pattern.c_str(), REG_EXTENDED | REG_NOSUB);
    if (status != 0) {
      char message[128];
      regerror(status, &single, message, sizeof message);
      *error = "bad regex \"" + pattern + "\" (POSIX extended): " + message;
      return false;
    }
    regfree(&single);
    if (!alternation.empty()) alternation += '|';
    alternation += '(' + pattern + ')';
  }
  auto* regex = new regex_t;
  if (regcomp(regex, alternation.c_str(), REG_EXTENDED | REG_NOSUB) != 0) {
    delete regex;
    *error = "bad regex alternation \"" + alternation + "\"";
    return false;
  }
  regex_.reset(regex);
  return true;
}

bool CompiledRegex::search(const char* text) const {
  return regex_ && regexec(regex_.get(), text, 0, nullptr, 0) == 0;
}

bool StackRule::compile(const RuleText& text, std::string* error) {
  if (!frame_.compile(text.frames, error)) return false;
  if (!file_.compile(text.files, error)) return false;
  if (!module_.compile(
          text.module.empty() ? std::vector<std::string>{} : std::vector<std::string>{text.module},
          error)) {
    return false;
  }
  if (!unless_.compile(text.unless, error)) return false;
  kinds_ = text.kinds;
  max_depth_ = text.max_depth;
  return true;
}

bool StackRule::kind_listed(std::string_view kind) const {
  return kinds_.empty() || std::find(kinds_.begin(), kinds_.end(), kind) != kinds_.end();
}

}  // namespace blockwatch::stack_rule
