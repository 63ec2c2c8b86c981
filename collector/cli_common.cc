// Common flag parsing and the report pipeline of the CLI (see cli_common.h).
#include "collector/cli_common.h"

#include <cstdlib>
#include <iostream>

#include "collector/report_json.h"
#include "collector/report_text.h"
#include "collector/report_writers.h"

namespace blockwatch::collector {

bool take_flag_value(const std::vector<std::string>& args, size_t* index, const char* name,
                     std::string* value, std::string* error) {
  const std::string& arg = args[*index];
  std::string flag(name);
  if (arg == flag) {
    if (*index + 1 >= args.size()) {
      *error = flag + " needs a value";
      return true;
    }
    *value = args[++*index];
    return true;
  }
  if (arg.size() > flag.size() && arg.compare(0, flag.size(), flag) == 0 &&
      arg[flag.size()] == '=') {
    *value = arg.substr(flag.size() + 1);
    return true;
  }
  return false;
}

bool parse_common_flag(const std::vector<std::string>& args, size_t* index, FlagSettings* flags,
                       std::string* config_path, std::string* error) {
  std::string value;
  if (take_flag_value(args, index, "--workers", &value, error)) {
    flags->workers = value;
  } else if (take_flag_value(args, index, "--threshold", &value, error)) {
    flags->threshold = value;
  } else if (take_flag_value(args, index, "--stall-threshold", &value, error)) {
    flags->stall_threshold = value;
  } else if (take_flag_value(args, index, "--config", &value, error)) {
    *config_path = value;
  } else if (take_flag_value(args, index, "--report", &value, error)) {
    flags->reports.push_back(value);
  } else if (take_flag_value(args, index, "--fail-on", &value, error)) {
    flags->fail_on.push_back(value);
  } else if (take_flag_value(args, index, "--baseline", &value, error)) {
    flags->baseline = value;
  } else {
    return false;
  }
  return true;
}

bool prepare_pipeline(const FlagSettings& flags, const std::string& config_path, Pipeline* pipeline,
                      std::string* error) {
  config::Config file;
  if (!config_path.empty() && !load_config_file(config_path, &file, error)) return false;
  EnvLookup env = [](const char* name) { return std::getenv(name); };
  if (!resolve_settings(file, flags, env, &pipeline->settings, error)) return false;
  auto classifier = StackClassifier::create(pipeline->settings.rules, error);
  if (!classifier) return false;
  pipeline->classifier = std::move(classifier);
  if (!parse_fail_rules(pipeline->settings.fail_on, &pipeline->fail_rules, error)) return false;
  if (!pipeline->settings.baseline.empty()) {
    Report baseline;
    if (!read_json_report_file(pipeline->settings.baseline, &baseline, error)) {
      *error = "--baseline: " + *error;
      return false;
    }
    pipeline->baseline = std::move(baseline);
  }
  return true;
}

void finish_report(const Pipeline& pipeline, Report* report) {
  if (pipeline.baseline) apply_baseline(*pipeline.baseline, report);
  evaluate_rules(pipeline.fail_rules, report);
}

bool write_reports(const Pipeline& pipeline, const Report& report, const std::string* raw_streams) {
  bool ok = true;
  TextReportOptions text_options;
  ReportSources sources{raw_streams};
  for (const std::string& path : pipeline.settings.reports) {
    std::string error;
    if (write_report_file(path, report, sources, &error)) {
      text_options.written_reports.push_back(path);
    } else {
      std::cerr << "blockwatch: " << error << '\n';
      ok = false;
    }
  }
  write_text_report(report, std::cerr, text_options);
  return ok;
}

}  // namespace blockwatch::collector
