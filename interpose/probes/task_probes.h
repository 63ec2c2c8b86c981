// Task-entry probes: at library start, every function named by a task-entry
// rule (built-in: common/builtin_rules.h kTaskEntries; the user's:
// BLOCKWATCH_TASK_ENTRY) in the executable and the libraries loaded with it gets
// a jump at its entry to a trampoline that tells the thread state "a task starts
// here" (probe_hook.h). That gives unmodified executors exact task boundaries:
// a task ends at the next entry or at the thread's idle wait.
//
// Only at start, and only while the process has one thread: then no other
// thread can be executing the bytes being replaced. Libraries dlopen'ed later
// are not probed (another thread may already run their code; nothing proves
// it does not), and that is said once in the report.
#pragma once

#include <string>
#include <vector>

namespace blockwatch::interpose {

// One function a rule matched, or one refusal.
struct TaskProbeStatus {
  std::string rule;      // the task-entry rule text
  std::string function;  // demangled symbol, empty for a rule-level note
  std::string module;    // object path
  bool installed = false;
  std::string refused;  // why not, when !installed
};

// Library constructor, before agent_start (no thread of ours exists yet):
// resolves and patches. BLOCKWATCH_PROBES=off: nothing. Allocates.
void task_probes_install_at_start();

// What task_probes_install_at_start did; complete before agent_start, read-only
// afterwards (the sender puts it in Hello).
const std::vector<TaskProbeStatus>& task_probe_statuses();

// The task-entry rules in force (built-in first), complete before agent_start:
// a probe's hook gets its rule's index here as its id (probe_hook.h), so
// per-task counts are per rule, whatever number of functions it matched.
const std::vector<std::string>& task_probe_rules();

// One line on the probes as a whole ("off: BLOCKWATCH_PROBES=off", "not
// installed: 3 threads were running at start", ...); empty when they are on.
const std::string& task_probes_note();

// Does `rule` name the function with these names? An exact mangled name, or
// as common/task_entry.h says for the demangled name (demangle::readable_name):
// "boost::asio::detail::scheduler::do_run_one(...)",
// "tokio::runtime::task::raw::poll::<...>". Pure.
bool task_entry_rule_matches(const std::string& rule, const char* mangled,
                             const std::string& demangled);

}  // namespace blockwatch::interpose
