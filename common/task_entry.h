// What a task-entry rule names (config.proto's task_entry, builtin_rules.h's
// kTaskEntries), decided once for the injected library, which probes every
// function whose demangled name a rule names (interpose/probes/task_probes.h),
// and the collector, which finds that function in a stall's stack to name the
// task (collector/aggregate_tasks.h). Header only; no allocation, no lock.
#pragma once

#include <cstddef>
#include <string_view>

namespace blockwatch::task_entry {

// Does the rule "boost::asio::detail::scheduler::do_run_one" name the function
// `demangled`? Yes when equal, or when the rule is followed by the function's
// own template arguments ("<...>", C++) or generic arguments ("::<...>", Rust
// v0: "tokio::runtime::task::raw::poll::<...>"), then by nothing, its
// parameters ("(...)") or a note after a space (" [clone .cold]"). No for a
// longer name ("do_run_one_more"), a member of a class template the rule names
// ("Pool<int>::run" for "Pool") or a closure inside the function
// ("poll::<T>::{closure#0}").
inline bool names_function(std::string_view rule, std::string_view demangled) {
  if (rule.empty() || demangled.substr(0, rule.size()) != rule) return false;
  std::string_view rest = demangled.substr(rule.size());
  if (rest.substr(0, 3) == "::<") rest.remove_prefix(2);
  if (!rest.empty() && rest[0] == '<') {
    size_t depth = 0;
    size_t i = 0;
    do {
      if (rest[i] == '<') ++depth;
      if (rest[i] == '>') --depth;
      ++i;
    } while (i < rest.size() && depth > 0);
    if (depth > 0) return false;
    rest.remove_prefix(i);
  }
  return rest.empty() || rest[0] == '(' || rest[0] == ' ';
}

}  // namespace blockwatch::task_entry
