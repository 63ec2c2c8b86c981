// The stack classifier (declared in config.h): configured rules, then the
// built-in ones. Built-in idle rules recognise the executor's own wait for work,
// so a program whose handlers never block reports nothing:
//   Boost.Asio   epoll_reactor::run, conditionally_enabled_event::wait, posix_event::wait,
//                scheduler::do_wait_one; scheduler::do_run_one only as the direct caller
//   tokio        runtime park, worker Context::park, the I/O and time drivers, mio
//   libuv        uv__io_poll / uv_run as the direct caller of the wait
//   condvar pool a condvar wait called directly from a pool's worker loop
// and a not_worker rule for tokio's blocking pool, whose threads carry the workers'
// name. Direct-caller rules use max_depth 1: a handler that blocks has its own
// frames between the blocking call and the scheduler. The table lives in
// common/builtin_rules.h and the matcher in common/stack_rule.h, both shared with
// the injected library, which classifies condvar and futex waits with them
// (interpose/core/wait_classifier.h).
#include <algorithm>
#include <cstdint>

#include "collector/config.h"
#include "common/builtin_rules.h"

namespace blockwatch::collector {

config::Config builtin_rules(const std::string& pool_wait_regex) {
  namespace shared = blockwatch::builtin_rules;
  config::Config c;
  for (int i = 0; i < shared::count_of(shared::kRules); ++i) {
    const shared::Rule& rule = shared::kRules[i];
    auto* section =
        rule.section == shared::Section::kIdle ? c.mutable_idle() : c.mutable_not_worker();
    config::Rule* out = section->Add();
    if (i == shared::kPoolWaitRuleIndex) {
      out->add_frame(pool_wait_regex);
    } else {
      for (int p = 0; p < rule.pattern_count; ++p) out->add_frame(rule.patterns[p]);
    }
    for (int k = 0; k < rule.kind_count; ++k) out->add_kind(rule.kinds[k]);
    for (int u = 0; u < rule.unless_count; ++u) out->add_unless_frame(rule.unless[u]);
    out->set_max_depth(rule.max_depth);
  }
  return c;
}

bool StackClassifier::compile(const config::Rule& rule, const char* section, CompiledRule* out,
                              std::string* error) {
  stack_rule::RuleText text;
  text.frames.assign(rule.frame().begin(), rule.frame().end());
  text.files.assign(rule.file().begin(), rule.file().end());
  text.module = rule.module();
  text.unless.assign(rule.unless_frame().begin(), rule.unless_frame().end());
  text.kinds.assign(rule.kind().begin(), rule.kind().end());
  text.max_depth = rule.max_depth();
  std::string why;
  if (!out->matcher.compile(text, &why)) {
    *error = std::string(section) + " rule " + (rule.name().empty() ? "" : rule.name() + " ") +
             "has a " + why;
    return false;
  }
  out->name = rule.name();
  out->reason = rule.reason();
  return true;
}

std::unique_ptr<StackClassifier> StackClassifier::create(const config::Config& rules,
                                                         std::string* error) {
  auto classifier = std::unique_ptr<StackClassifier>(new StackClassifier());
  config::Config all = rules;
  if (!rules.no_builtin_rules()) {
    config::Config builtin =
        builtin_rules(rules.pool_wait().empty() ? kDefaultPoolWaitRegex : rules.pool_wait());
    all.MergeFrom(builtin);  // repeated fields append: configured rules come first
  }
  struct Section {
    const google::protobuf::RepeatedPtrField<config::Rule>& rules;
    const char* name;
    std::vector<CompiledRule>* out;
  } sections[] = {{all.idle(), "idle", &classifier->idle_},
                  {all.allow(), "allow", &classifier->allow_},
                  {all.path(), "path", &classifier->path_},
                  {all.not_worker(), "not_worker", &classifier->not_worker_}};
  for (const auto& section : sections) {
    for (const auto& rule : section.rules) {
      CompiledRule compiled;
      if (!compile(rule, section.name, &compiled, error)) return nullptr;
      compiled.index = classifier->rule_count_++;
      section.out->push_back(std::move(compiled));
    }
  }
  return classifier;
}

bool StackClassifier::function_matches(const CompiledRule& rule,
                                       const std::string& function) const {
  auto [it, inserted] = match_cache_.try_emplace(function);
  if (inserted) it->second.assign(rule_count_, 0);
  uint8_t& known = it->second[rule.index];
  if (known == 0) known = rule.matcher.function_matches(function.c_str()) ? 2 : 1;
  return known == 2;
}

bool StackClassifier::matches(const CompiledRule& rule, std::string_view kind,
                              const std::vector<StackFrame>& stack) const {
  return rule.matcher.matches(
      kind, stack, [&](const StackFrame& frame) { return function_matches(rule, frame.function); });
}

StackClass StackClassifier::classify(std::string_view kind,
                                     const std::vector<StackFrame>& stack) const {
  StackClass result;
  auto first_match = [&](const std::vector<CompiledRule>& rules) -> const CompiledRule* {
    for (const auto& rule : rules) {
      if (matches(rule, kind, stack)) return &rule;
    }
    return nullptr;
  };
  if (first_match(not_worker_) != nullptr) {
    result.not_worker = true;
    return result;
  }
  if (first_match(idle_) != nullptr) {
    result.idle = true;
    return result;
  }
  if (const CompiledRule* allow = first_match(allow_)) {
    result.allowed = true;
    result.allow_reason = allow->reason.empty() ? "allowed by config" : allow->reason;
  }
  if (const CompiledRule* path = first_match(path_)) result.path = path->name;
  return result;
}

}  // namespace blockwatch::collector
