// `blockwatch report INPUT [--report FILE]... [--config FILE] [--fail-on RULE]...
// [--baseline FILE.json]`: re-renders a saved run. INPUT is a raw stream file
// (.bwrec: one or several streams back to back), a directory of them (what
// `blockwatchd --save DIR` writes), or a JSON report (rules that need stacks —
// idle, allow, path — were applied when it was made; fail-on rules are re-applied).
// Exit status: 0, 3 when a --fail-on rule is broken, 2 on an error.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "collector/cli.h"
#include "collector/report_json.h"
#include "collector/symbolizer.h"

namespace blockwatch::collector {

namespace {

// Decodes one saved stream file into the aggregator. A malformed tail is reported
// and what came before it is kept.
bool add_stream_file(const std::string& path, Aggregator* aggregator) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::cerr << "blockwatch report: " << path << ": cannot open\n";
    return false;
  }
  StreamHandler* sink = aggregator->begin_stream();
  StreamDecoder decoder(
      sink, StreamDecoder::Options{.allow_restart = true, .symbolizer = &Symbolizer::shared()});
  char chunk[64 * 1024];
  while (in) {
    in.read(chunk, sizeof chunk);
    if (in.gcount() > 0 && !decoder.feed(chunk, static_cast<size_t>(in.gcount()))) break;
  }
  bool ok = decoder.finish();
  if (!ok)
    std::cerr << "blockwatch report: " << path << ": " << decoder.error()
              << " (kept what came before)\n";
  aggregator->end_stream(sink, "disconnected");
  return ok;
}

void print_report_help() {
  std::cout << R"(usage: blockwatch report INPUT [--report FILE]... [--config FILE]
                         [--fail-on RULE]... [--baseline FILE.json]

Re-renders a saved run. INPUT: a raw stream (.bwrec, from --report X.bwrec), a
directory of them (blockwatchd --save DIR), or a JSON report. Without --report the
text report goes to stderr. Exit status 3 when a --fail-on rule is broken.
)";
}

}  // namespace

int report_command(const std::vector<std::string>& args) {
  FlagSettings flags;
  std::string config_path, input, error;
  for (size_t i = 0; i < args.size() && error.empty(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      print_report_help();
      return 0;
    }
    if (parse_common_flag(args, &i, &flags, &config_path, &error)) continue;
    if (args[i].rfind("--", 0) == 0 || !input.empty()) {
      error = "unexpected argument " + args[i];
    } else {
      input = args[i];
    }
  }
  if (error.empty() && input.empty()) error = "no input given (blockwatch report FILE)";
  Pipeline pipeline;
  if (error.empty()) prepare_pipeline(flags, config_path, &pipeline, &error);
  if (!error.empty()) {
    std::cerr << "blockwatch report: " << error << '\n';
    return 2;
  }
  Report report;
  namespace fs = std::filesystem;
  if (input.ends_with(".json")) {
    if (!read_json_report_file(input, &report, &error)) {
      std::cerr << "blockwatch report: " << error << '\n';
      return 2;
    }
  } else {
    Aggregator aggregator(pipeline.classifier);
    std::error_code ec;
    if (fs::is_directory(input, ec)) {
      std::vector<std::string> files;
      for (const auto& entry : fs::directory_iterator(input, ec)) {
        if (entry.path().extension() == ".bwrec") files.push_back(entry.path().string());
      }
      std::sort(files.begin(), files.end());
      for (const auto& file : files) add_stream_file(file, &aggregator);
    } else if (!add_stream_file(input, &aggregator) && aggregator.events() == 0 &&
               !fs::exists(input, ec)) {
      return 2;
    }
    report = aggregator.report();
  }
  finish_report(pipeline, &report);
  bool written = write_reports(pipeline, report, nullptr);
  if (!written) return 2;
  return report.verdict.failed ? 3 : 0;
}

}  // namespace blockwatch::collector
