// Config file parsing (protobuf text format with positioned errors), settings
// precedence, durations, and the rule classifier with its built-in idle rules for
// Boost.Asio, tokio, libuv and condition-variable pools.
#include "collector/config.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/builtin_rules.h"
#include "common/worker_selector.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace blockwatch::collector {

bool parse_duration(std::string_view text, int64_t* ns) {
  const std::optional<int64_t> parsed = duration::parse_duration_ns(text);
  if (!parsed) return false;
  *ns = *parsed;
  return true;
}

namespace {

class PositionedErrors : public google::protobuf::io::ErrorCollector {
 public:
  explicit PositionedErrors(std::string file_name) : file_name_(std::move(file_name)) {}
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    add("", line, column, message);
  }
  void AddWarning(int line, google::protobuf::io::ColumnNumber column,
                  const std::string& message) override {
    add("warning: ", line, column, message);
  }
  std::string text;

 private:
  void add(const char* prefix, int line, int column, const std::string& message) {
    // The tokenizer counts from 0; editors count from 1.
    text += file_name_ + ":" + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " +
            prefix + message + "\n";
  }
  std::string file_name_;
};

}  // namespace

bool parse_config_text(const std::string& text, const std::string& file_name, config::Config* out,
                       std::string* error) {
  google::protobuf::TextFormat::Parser parser;
  PositionedErrors errors(file_name);
  parser.RecordErrorsTo(&errors);
  config::Config parsed;
  if (!parser.ParseFromString(text, &parsed)) {
    *error = errors.text.empty() ? file_name + ": invalid config" : errors.text;
    if (!error->empty() && error->back() == '\n') error->pop_back();
    return false;
  }
  int64_t ignored;
  for (const auto* field : {&parsed.threshold(), &parsed.stall_threshold()}) {
    if (!field->empty() && !parse_duration(*field, &ignored)) {
      *error = file_name + ": bad duration \"" + *field + "\" (expected e.g. 0, 250us, 1ms, 2s)";
      return false;
    }
  }
  for (const auto& rule : parsed.path()) {
    if (rule.name().empty()) {
      *error = file_name + ": a path rule needs a name";
      return false;
    }
  }
  *out = std::move(parsed);
  return true;
}

bool load_config_file(const std::string& path, config::Config* out, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = path + ": cannot open config file";
    return false;
  }
  std::stringstream text;
  text << in.rdbuf();
  return parse_config_text(text.str(), path, out, error);
}

namespace {

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, ',')) {
    if (!part.empty()) parts.push_back(part);
  }
  return parts;
}

// flag > env > file, for one string setting.
std::string pick(const std::optional<std::string>& flag, const char* env_value,
                 const std::string& file_value) {
  if (flag) return *flag;
  if (env_value != nullptr && *env_value != '\0') return env_value;
  return file_value;
}

}  // namespace

bool resolve_settings(const config::Config& file, const FlagSettings& flags, const EnvLookup& env,
                      Settings* out, std::string* error) {
  Settings s;
  s.rules = file;
  s.workers = pick(flags.workers, env("BLOCKWATCH_WORKERS"), file.workers());
  // Checked here, before CMD starts: the library would only warn and watch less.
  if (std::string why; !worker_selector::check(s.workers, &why)) {
    *error = "bad workers \"" + s.workers + "\": " + why;
    return false;
  }
  struct DurationSetting {
    std::string text;
    int64_t* ns;
    const char* what;
  } durations[] = {
      {pick(flags.threshold, env("BLOCKWATCH_THRESHOLD"), file.threshold()), &s.threshold_ns,
       "threshold"},
      {pick(flags.stall_threshold, env("BLOCKWATCH_STALL_THRESHOLD"), file.stall_threshold()),
       &s.stall_threshold_ns, "stall threshold"},
  };
  for (const auto& d : durations) {
    if (!d.text.empty() && !parse_duration(d.text, d.ns)) {
      *error = std::string("bad ") + d.what + " \"" + d.text + "\" (expected e.g. 0, 250us, 1ms)";
      return false;
    }
  }
  if (!flags.fail_on.empty()) {
    s.fail_on = flags.fail_on;
  } else if (const char* v = env("BLOCKWATCH_FAIL_ON"); v != nullptr && *v != '\0') {
    s.fail_on = split_commas(v);
  } else {
    s.fail_on.assign(file.fail_on().begin(), file.fail_on().end());
  }
  s.baseline = pick(flags.baseline, env("BLOCKWATCH_BASELINE"), file.baseline());
  if (!flags.reports.empty()) {
    s.reports = flags.reports;
  } else {
    s.reports.assign(file.report().begin(), file.report().end());
  }
  *out = std::move(s);
  return true;
}

bool is_system_frame(const StackFrame& frame) {
  return ::blockwatch::builtin_rules::is_system_frame(frame.function, frame.module);
}

}  // namespace blockwatch::collector
