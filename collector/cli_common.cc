// Common flag parsing and the report pipeline of the CLI (see cli_common.h).
#include "collector/cli_common.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
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
    // "--threshold -- CMD": the separator is not a value.
    if (*index + 1 >= args.size() || args[*index + 1] == "--") {
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

namespace {

// One report path: known format, and writable (see check_report_paths).
bool check_report_path(const std::string& path, bool raw_streams_available, std::string* error) {
  std::string format;
  for (const std::string& extension : report_extensions()) {
    if (path.size() > extension.size() && path.ends_with(extension)) format = extension;
  }
  if (format.empty()) {
    std::string known;
    for (const auto& extension : report_extensions()) known += " " + extension;
    *error = "--report " + path + ": unknown report format (known:" + known + ")";
    return false;
  }
  if (format == ".bwrec" && !raw_streams_available) {
    *error = "--report " + path +
             ": raw streams (.bwrec) are written by `blockwatch run` and `blockwatchd --save`";
    return false;
  }
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode)) {
      *error = "--report " + path + ": not a regular file";
      return false;
    }
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      *error = "--report " + path + ": cannot write: " + std::strerror(errno);
      return false;
    }
    ::close(fd);
    return true;
  }
  // A probe, not a permission guess: root, read-only file systems and ACLs all
  // answer the real question.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int open_errno = errno;
    *error = "--report " + path + ": cannot create: " + std::strerror(open_errno);
    const size_t slash = path.rfind('/');
    const std::string directory = slash == std::string::npos ? "." : path.substr(0, slash + 1);
    if (open_errno == ENOENT && ::stat(directory.c_str(), &st) != 0) {
      *error += " (directory " + directory + " does not exist)";
    }
    return false;
  }
  ::close(fd);
  ::unlink(path.c_str());
  return true;
}

}  // namespace

bool check_report_paths(const std::vector<std::string>& paths, bool raw_streams_available,
                        std::string* error) {
  for (const std::string& path : paths) {
    if (!check_report_path(path, raw_streams_available, error)) return false;
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
