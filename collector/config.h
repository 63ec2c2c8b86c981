// The collector's settings: the text-format config file (proto/config.proto), the
// BLOCKWATCH_* environment and command-line flags, merged with that precedence
// (flags > environment > file). Also the stack classifier that applies the idle,
// allow, path and not_worker rules, built-in and configured, to symbolized stacks.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "collector/report_model.h"
#include "proto/config.pb.h"

namespace blockwatch::collector {

// "0", "250us", "1ms", "1.5s", "100ns" (a bare number is nanoseconds).
bool parse_duration(std::string_view text, int64_t* ns);
// 1500000 -> "1.5ms"; for reports and messages.
std::string format_duration(int64_t ns);

// Parses config text. Errors: "FILE:LINE:COL: what was expected", one per line.
bool parse_config_text(const std::string& text, const std::string& file_name, config::Config* out,
                       std::string* error);
bool load_config_file(const std::string& path, config::Config* out, std::string* error);

// Values given on the command line; unset ones fall back to the environment, then
// to the config file.
struct FlagSettings {
  std::optional<std::string> workers;
  std::optional<std::string> threshold;
  std::optional<std::string> stall_threshold;
  std::vector<std::string> fail_on;  // non-empty replaces environment and file
  std::optional<std::string> baseline;
  std::vector<std::string> reports;
};

struct Settings {
  std::string workers;
  int64_t threshold_ns = 1'000'000;
  int64_t stall_threshold_ns = 0;
  std::vector<std::string> fail_on;
  std::string baseline;
  std::vector<std::string> reports;
  config::Config rules;  // idle/allow/path/not_worker/pool_wait from the file
};

// getenv by default; tests pass their own.
using EnvLookup = std::function<const char*(const char*)>;

// Merges file < environment (BLOCKWATCH_WORKERS, _THRESHOLD, _STALL_THRESHOLD,
// _FAIL_ON comma-separated, _BASELINE) < flags. False with *error on a bad duration.
bool resolve_settings(const config::Config& file, const FlagSettings& flags, const EnvLookup& env,
                      Settings* out, std::string* error);

// libc, pthread, the dynamic loader, libstdc++ and Rust std wait wrappers and
// blockwatch's own frames: what the text report skips to show the user's frame,
// and what max_depth rules do not count.
bool is_system_frame(const StackFrame& frame);

// What the rules say about one (kind, stack).
struct StackClass {
  bool idle = false;        // the executor's own wait: not reported
  bool not_worker = false;  // e.g. tokio's blocking pool: not reported
  bool allowed = false;
  std::string allow_reason;
  std::string path;  // first matching path rule, or ""
};

// Applies configured rules first, then the built-in ones. Regexes are compiled
// once; classify() is meant to run once per distinct (kind, stack) and be cached
// by the caller (the aggregator does). Which rules match a function name is
// itself cached, so a name shared by many stacks is matched once per rule.
// Not thread-safe (the cache): one classifier per thread, or a lock around it.
class StackClassifier {
 public:
  // False with *error naming the rule when a regex does not compile.
  static std::unique_ptr<StackClassifier> create(const config::Config& rules, std::string* error);
  StackClass classify(std::string_view kind, const std::vector<StackFrame>& stack) const;

 private:
  struct CompiledRule {
    std::string name;
    std::string reason;
    std::vector<std::string> kinds;
    std::regex frame;
    std::optional<std::regex> file;  // source-file regexes, an alternative to frame
    std::optional<std::regex> module;
    std::optional<std::regex> unless;  // unless_frame: the rule does not apply
    uint32_t max_depth = 0;
    size_t index = 0;  // position in match_cache_ entries
  };
  static bool compile(const config::Rule& rule, const char* section, CompiledRule* out,
                      std::string* error);
  bool matches(const CompiledRule& rule, std::string_view kind,
               const std::vector<StackFrame>& stack) const;
  bool function_matches(const CompiledRule& rule, const std::string& function) const;
  bool frame_matches(const CompiledRule& rule, const StackFrame& frame) const;

  std::vector<CompiledRule> idle_, allow_, path_, not_worker_;
  // function name -> per rule (by CompiledRule::index): 0 unknown, 1 no, 2 yes.
  mutable absl::flat_hash_map<std::string, std::vector<uint8_t>> match_cache_;
  size_t rule_count_ = 0;
};

// The built-in rules (documented in docs/config.md), as config text.
config::Config builtin_rules(const std::string& pool_wait_regex);
inline constexpr const char* kDefaultPoolWaitRegex =
    "ThreadPool::worker_main|ThreadPool::WorkerLoop|thread_pool.*worker|WorkerThread::Run|"
    "worker_loop";

}  // namespace blockwatch::collector
