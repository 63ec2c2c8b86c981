// Pieces shared by the `blockwatch` subcommands and `blockwatchd`: option parsing
// for the common flags, and the pipeline that turns settings into a classifier,
// fail rules and a baseline, then finishes a Report and writes every requested
// report file.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "collector/aggregate.h"
#include "collector/config.h"
#include "collector/rules.h"

namespace blockwatch::collector {

inline constexpr const char* kBlockwatchVersion = "0.1.0";

// Parses the flags common to run/report/blockwatchd from args[*index] onward:
// --workers --threshold --stall-threshold --config --report --fail-on --baseline,
// as "--flag VALUE" or "--flag=VALUE". Returns true and advances *index when
// args[*index] was one of them; false when it is not a common flag. Sets *error
// on a flag missing its value.
bool parse_common_flag(const std::vector<std::string>& args, size_t* index, FlagSettings* flags,
                       std::string* config_path, std::string* error);

// Splits "--name=value" / "--name value"; true when args[*index] is `name`.
bool take_flag_value(const std::vector<std::string>& args, size_t* index, const char* name,
                     std::string* value, std::string* error);

struct Pipeline {
  Settings settings;
  std::shared_ptr<const StackClassifier> classifier;
  std::vector<FailRule> fail_rules;
  std::optional<Report> baseline;
};

// Loads the config file (if any), merges environment and flags, compiles rules,
// reads the baseline. False with *error (file:line:col for config errors).
bool prepare_pipeline(const FlagSettings& flags, const std::string& config_path, Pipeline* pipeline,
                      std::string* error);

// Applies the baseline and the fail rules to `report` (sets is_new and verdict).
void finish_report(const Pipeline& pipeline, Report* report);

// Checks, before any work starts, that every report path can be written: its
// extension names a format this build writes (.bwrec only where the raw streams
// exist: `raw_streams_available`), and it is a regular file that can be opened, or
// created in an existing writable directory (a probe file is created and removed).
// False with *error naming the first bad path, in one line.
bool check_report_paths(const std::vector<std::string>& paths, bool raw_streams_available,
                        std::string* error);

// Writes each requested report, then the text report to stderr listing them.
// Returns false if any file could not be written (each error printed).
bool write_reports(const Pipeline& pipeline, const Report& report, const std::string* raw_streams);

}  // namespace blockwatch::collector
