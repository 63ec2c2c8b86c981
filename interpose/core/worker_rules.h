// BLOCKWATCH_WORKERS: which threads are workers in a program that does not call
// the bw_* API: `main` and `name:REGEX` rules, whose grammar (commas inside a
// regex, the 15 bytes Linux keeps of a name) is common/worker_selector.h.
// Patterns are compiled once, at startup. regexec allocates (glibc builds DFA
// states as it goes), so it never runs on the hook path: a hook only looks the
// thread's name up in a lock-free table of verdicts (worker_rules_cached_verdict).
// The table is filled off the hook path: for the process's name at start-up, for
// every name given through pthread_setname_np/prctl by the renaming thread, and
// for names seen only by a hook (written to /proc/.../comm, set before we were
// loaded) by the sender thread (thread_state_classify_pending).
#pragma once

#include <regex.h>

#include <string>
#include <vector>

namespace blockwatch::interpose {

class WorkerRules {
 public:
  WorkerRules() = default;
  ~WorkerRules();
  WorkerRules(const WorkerRules&) = delete;
  WorkerRules& operator=(const WorkerRules&) = delete;

  // Replaces the rules. On a malformed rule returns false with a one-line
  // `error`; the rules that parsed are kept (a typo in one does not disable all).
  bool parse(const char* text, std::string* error);

  // Does a thread named `thread_name` (main thread or not) count as a worker?
  // Allocates (regexec); not async-signal-safe.
  bool matches(const char* thread_name, bool is_main_thread) const;

  bool empty() const { return !match_main_ && patterns_.empty(); }
  bool has_name_rules() const { return !patterns_.empty() || !cut_names_.empty(); }
  bool matches_main() const { return match_main_; }

 private:
  void clear();
  bool match_main_ = false;
  std::vector<regex_t> patterns_;
  std::vector<std::string> cut_names_;  // 15-byte starts of long literal rules
};

// The process-wide rules the hooks use. install_worker_rules runs in the library
// constructor (single-threaded); worker_rules_match may run on any thread after.
bool install_worker_rules(const char* text, std::string* error);
bool worker_rules_match(const char* thread_name, bool is_main_thread);

// Verdicts of the process's rules by thread name, as learnt so far.
enum class NameVerdict : int { kUnknown = -1, kNotWorker = 0, kWorker = 1 };

// The verdict for a thread named `thread_name` (kThreadNameBytes, NUL-terminated
// or full) without running a regex: `main`, rule-less processes, and names the
// table has learnt. kUnknown when the name was not learnt yet (or was evicted).
// Hook path: async-signal-safe, no allocation, no lock.
NameVerdict worker_rules_cached_verdict(const char* thread_name, bool is_main_thread);

// Runs the rules on `thread_name` and remembers the verdict for its name (the
// table holds kNameVerdictEntries names; a full probe window evicts one, which
// is learnt again when seen). Allocates (regexec): never from a hook; the
// renaming thread, the library constructor and the sender call it.
bool worker_rules_learn(const char* thread_name, bool is_main_thread);
inline constexpr int kNameVerdictEntries = 4096;  // 32 KiB

}  // namespace blockwatch::interpose
