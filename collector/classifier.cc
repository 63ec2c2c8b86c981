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
// frames between the blocking call and the scheduler. The table itself lives in
// proto/builtin_rules.h, shared with the injected library, which classifies
// condvar and futex waits with the same rules (interpose/wait_classifier.h).
#include <algorithm>
#include <cstdint>

#include "collector/config.h"
#include "proto/builtin_rules.h"

namespace blockwatch::collector {

static_assert(std::string_view(kDefaultPoolWaitRegex) ==
                  std::string_view(blockwatch::builtin_rules::kDefaultPoolWaitPattern),
              "collector/config.h and proto/builtin_rules.h name the same pool_wait default");

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

namespace {
std::string alternation_of(const google::protobuf::RepeatedPtrField<std::string>& patterns) {
  std::string alternation;
  for (const auto& p : patterns) {
    if (!alternation.empty()) alternation += '|';
    alternation += "(?:" + p + ")";
  }
  return alternation;
}
}  // namespace

bool StackClassifier::compile(const config::Rule& rule, const char* section, CompiledRule* out,
                              std::string* error) {
  std::string alternation = alternation_of(rule.frame());
  try {
    if (alternation.empty()) alternation = "$^";  // a rule without frames matches no name
    out->frame = std::regex(alternation, std::regex::ECMAScript | std::regex::optimize);
    if (rule.file_size() > 0) {
      out->file =
          std::regex(alternation_of(rule.file()), std::regex::ECMAScript | std::regex::optimize);
    }
    if (!rule.module().empty()) out->module = std::regex(rule.module(), std::regex::ECMAScript);
    if (rule.unless_frame_size() > 0) {
      out->unless = std::regex(alternation_of(rule.unless_frame()),
                               std::regex::ECMAScript | std::regex::optimize);
    }
  } catch (const std::regex_error& e) {
    *error = std::string(section) + " rule " + (rule.name().empty() ? "" : rule.name() + " ") +
             "has a bad regex: " + e.what();
    return false;
  }
  out->name = rule.name();
  out->reason = rule.reason();
  out->kinds.assign(rule.kind().begin(), rule.kind().end());
  out->max_depth = rule.max_depth();
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
  if (known == 0) known = std::regex_search(function, rule.frame) ? 2 : 1;
  return known == 2;
}

bool StackClassifier::frame_matches(const CompiledRule& rule, const StackFrame& frame) const {
  const bool named =
      function_matches(rule, frame.function) ||
      (rule.file && !frame.file.empty() && std::regex_search(frame.file, *rule.file));
  return named && (!rule.module || std::regex_search(frame.module, *rule.module));
}

// max_depth counts physical frames: the functions inlined into one (which the
// injected library, matching return addresses, cannot see) share its depth.
bool StackClassifier::matches(const CompiledRule& rule, std::string_view kind,
                              const std::vector<StackFrame>& stack) const {
  if (!rule.kinds.empty() &&
      std::find(rule.kinds.begin(), rule.kinds.end(), kind) == rule.kinds.end()) {
    return false;
  }
  uint32_t depth = 0;
  size_t physical = 0;        // index of the current frame's physical frame
  size_t counted = SIZE_MAX;  // the physical frame depth last counted
  bool matched = false;
  for (const StackFrame& frame : stack) {
    const size_t this_physical = physical;
    if (!frame.inlined) ++physical;
    if (rule.max_depth > 0) {
      if (is_system_frame(frame)) continue;
      if (counted != this_physical) {
        counted = this_physical;
        if (++depth > rule.max_depth) break;
      }
    }
    if (frame_matches(rule, frame)) {
      matched = true;
      break;
    }
  }
  if (!matched || !rule.unless) return matched;
  return std::none_of(stack.begin(), stack.end(), [&](const StackFrame& frame) {
    return std::regex_search(frame.function, *rule.unless);
  });
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
