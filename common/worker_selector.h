// The grammar of a worker selector (BLOCKWATCH_WORKERS, `--workers`, the config's
// `workers`), owned here so that the injected library, which applies it, and the
// CLI, which rejects a bad one before CMD starts, read it the same way:
//   main         the process's first thread (Node, Redis, nginx, asyncio)
//   name:REGEX   a thread whose name fully matches the POSIX extended REGEX
//   exe:REGEX    starts a section for processes whose executable (its path or
//                base name) fully matches REGEX; the thread rules after it, up
//                to the next exe:, apply there (none: the rules before the
//                first exe:)
// Rules are comma-separated. A comma separates rules only where another rule
// starts after it (spaces allowed): a lower-case word followed by a colon, a
// comma or the end. Any other comma belongs to a regex, so `name:w{1,15},main`
// is two rules, and an exe: pattern ends at the first comma outside (), [], {}.
//
// Allocates (std::string, regcomp): never on a hook path; the library runs it in
// its constructor only.
#pragma once

#include <regex.h>

#include <string>
#include <string_view>
#include <vector>

namespace blockwatch::worker_selector {

// Linux keeps 15 bytes of a thread's name (TASK_COMM_LEN - 1).
inline constexpr size_t kKeptNameBytes = 15;

struct ExeSection {
  std::string_view pattern;       // the exe: regex (empty: malformed `exe:`)
  std::string_view thread_rules;  // empty: the default rules apply
};

struct Sections {
  std::string_view default_rules;  // the rules before the first exe:
  std::vector<ExeSection> exe_sections;
};

// Splits a selector into its default rules and its exe: sections. Never fails;
// check() says what is wrong in one.
Sections split_sections(std::string_view text);

struct ThreadRule {
  bool main = false;     // `main`
  std::string regex;     // `name:REGEX`: REGEX as written
  std::string cut_name;  // its literal start when that fills a kept name, else empty
};

// Parses one section's thread rules. On a malformed rule returns false with a
// one-line `error` and still returns the rules that parsed (a typo in one does
// not disable all). Does not compile the regexes (compile_full_match does).
bool parse_thread_rules(std::string_view text, std::vector<ThreadRule>* rules,
                        std::string* error);

// Compiles `regex` anchored at both ends (a full match), REG_EXTENDED|REG_NOSUB.
// On failure returns false with a one-line `error` naming `rule` (e.g. "name:x(").
bool compile_full_match(std::string_view regex, std::string_view rule, regex_t* out,
                        std::string* error);

// The whole selector: every rule well-formed, every regex compiles. On the
// first problem returns false with a one-line `error`.
bool check(std::string_view text, std::string* error);

}  // namespace blockwatch::worker_selector
