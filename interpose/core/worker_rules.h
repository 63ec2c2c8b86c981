// BLOCKWATCH_WORKERS: which threads are workers in a program that does not call
// the bw_* API. A comma-separated list of rules:
//   main         the process's first thread (Node, Redis, nginx, asyncio)
//   name:REGEX   a thread whose name fully matches the POSIX extended REGEX
// A comma separates rules only where another rule starts after it (`main`, or a
// lower-case keyword and a colon such as `name:`; spaces allowed); any other
// comma belongs to the regex, so `name:w{1,15},main` is the two rules
// `name:w{1,15}` and `main`.
// Linux keeps only the first 15 bytes of a thread name, so a rule whose literal
// start is longer ("name:tokio-runtime-worker", "name:my-long-pool-name-[0-9]+")
// also matches a name that is exactly those first 15 bytes.
// Patterns are compiled once, at startup. Matching runs only when a thread is
// classified (its first hook, or when it is renamed), never per blocking call:
// regexec may allocate.
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

}  // namespace blockwatch::interpose
