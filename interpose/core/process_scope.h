// Which process this is, and whether blockwatch watches it at all (README
// "Process scoping"). BLOCKWATCH_WORKERS may name executables:
//   exe:REGEX    starts a section for processes whose executable (the path of
//                /proc/self/exe, or its base name) fully matches REGEX; the thread
//                rules after it, up to the next exe:, apply there (none: the rules
//                before the first exe:).
// Rules before the first exe: apply to CMD's own executable (BLOCKWATCH_EXE, set
// by `blockwatch run`) and its fork children, and to whatever image the process
// `blockwatch run` started runs (BLOCKWATCH_CMD_PID: `env X=1 prog`, `nice
// prog`, a script's `exec prog`); without BLOCKWATCH_EXE to every process. A process that no section selects stays dormant: every hook passes
// through, no thread, no socket, the bw_* API does nothing.
//
// The scope is decided once, in the library constructor, before any thread of
// ours exists; what the hooks read afterwards is plain loads (async-signal-safe).
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace blockwatch::interpose {

struct ScopeDecision {
  bool watched = false;      // false: dormant
  std::string thread_rules;  // BLOCKWATCH_WORKERS thread rules for this process
  std::string error;         // a malformed exe: selector (one line), else empty
};

// Pure: which rules apply to a process running `exe_path`, given the rule text
// and CMD's executable (`cmd_exe`, empty: every process is CMD's). `is_cmd_process`:
// this is the very process `blockwatch run` started, whatever it execs.
ScopeDecision decide_process_scope(std::string_view rules, std::string_view exe_path,
                                   std::string_view cmd_exe, bool is_cmd_process = false);

// Decide for this process (constructor): reads /proc/self/exe and BLOCKWATCH_EXE.
ScopeDecision decide_own_scope(const char* rules);

// Remember that this process is the one being watched (constructor, fork child).
void set_watched_process(pid_t pid);

// True in the process the library was set up for (or a fork() child it was set
// up again for); false in a vfork() or _Fork() child, which shares or copied the
// parent's state without running our atfork handler, and before the constructor.
// One getpid() syscall. Async-signal-safe.
bool is_original_process();

}  // namespace blockwatch::interpose
