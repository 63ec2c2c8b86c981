// `blockwatch report INPUT [--report FILE]... [--config FILE] [--fail-on RULE]...
// [--baseline FILE.json]`: re-renders a saved run. INPUT is a raw stream file
// (.bwrec: one or several streams back to back), a directory of them (what
// `blockwatchd --save` writes), or a JSON report (rules that need stacks —
// idle, allow, path — were applied when it was made; fail-on rules are re-applied).
// Input that holds no valid stream is an error, never an empty "ok" report; input
// that is valid and then damaged is reported up to the damage and says so.
// Exit status: 0; 3 when a --fail-on rule is broken; 4 when the input was damaged
// (and no rule broken); 2 on an error.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "collector/cli.h"
#include "collector/report_json.h"
#include "collector/symbolizer.h"

namespace blockwatch::collector {

namespace {

// Exit status of a report whose input was valid up to some damage.
constexpr int kExitInputDamaged = 4;

// What one saved stream file held.
enum class StreamFileState {
  kClean,     // streams only, to the end
  kDamaged,   // a valid stream, then garbage or a cut frame: what came before is kept
  kNoStream,  // not one valid frame (another file, empty, cut inside the first frame)
};

// Decodes one saved stream file into the aggregator. *problem is one line saying
// what was wrong (empty when kClean).
StreamFileState add_stream_file(const std::string& path, Aggregator* aggregator,
                                std::string* problem) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *problem = path + ": cannot open";
    return StreamFileState::kNoStream;
  }
  StreamHandler* sink = aggregator->begin_stream();
  StreamDecoder decoder(
      sink, StreamDecoder::Options{.allow_restart = true, .symbolizer = &Symbolizer::shared()});
  char chunk[64 * 1024];
  while (in) {
    in.read(chunk, sizeof chunk);
    if (in.gcount() > 0 && !decoder.feed(chunk, static_cast<size_t>(in.gcount()))) break;
  }
  const bool read_error = !decoder.failed() && in.bad();
  const bool decoded = decoder.finish() && !read_error;
  const std::string reason = read_error ? std::string("read error") : decoder.error();
  // "rejected", as a live collector marks a malformed stream (docs/report-schema.md).
  aggregator->end_stream(sink, decoded ? "disconnected" : "rejected");
  if (!decoder.saw_hello()) {
    *problem =
        path + ": not a blockwatch stream (" + (decoded ? std::string("empty file") : reason) + ")";
    return StreamFileState::kNoStream;
  }
  if (decoded) return StreamFileState::kClean;
  *problem = path + ": stream damaged (" + reason + "); kept the " +
             std::to_string(decoder.frames_accepted()) + " frames before it";
  return StreamFileState::kDamaged;
}

// The stream files INPUT names: itself, or the .bwrec files of a directory.
std::vector<std::string> stream_files(const std::string& input) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(input, ec)) return {input};
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(input, ec)) {
    if (entry.path().extension() == ".bwrec") files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Aggregates every stream file of `input`. Returns false (the reason printed) when
// no file held a valid stream; sets *damaged when some file was damaged or not a
// stream (each such file named on stderr).
bool read_streams(const std::string& input, Aggregator* aggregator, bool* damaged) {
  const std::vector<std::string> files = stream_files(input);
  if (files.empty()) {
    std::cerr << "blockwatch report: " << input << ": no .bwrec stream files in this directory\n";
    return false;
  }
  std::vector<std::string> problems;
  size_t valid_files = 0;
  for (const auto& file : files) {
    std::string problem;
    StreamFileState state = add_stream_file(file, aggregator, &problem);
    if (state != StreamFileState::kNoStream) ++valid_files;
    if (!problem.empty()) problems.push_back(problem);
  }
  if (valid_files == 0) {
    for (const auto& problem : problems) std::cerr << "blockwatch report: " << problem << '\n';
    return false;
  }
  for (const auto& problem : problems) {
    std::cerr << "blockwatch report: warning: " << problem << '\n';
  }
  *damaged = !problems.empty();
  return true;
}

void print_report_help() {
  std::cout << R"(usage: blockwatch report INPUT [--report FILE]... [--config FILE]
                         [--fail-on RULE]... [--baseline FILE.json]

Re-renders a saved run. INPUT: a raw stream (.bwrec, from --report X.bwrec), a
directory of them (blockwatchd --save DIR), or a JSON report. Without --report the
text report goes to stderr.

Exit status:
  0  the report was written, verdict ok
  3  a --fail-on rule is broken
  4  the input was damaged (a valid stream, then garbage or a cut frame; or, in a
     directory, a file that is no stream): the report covers what came before the
     damage, and each damaged file is named on stderr
  2  an error: bad option, config or report path, or INPUT holds no valid stream
     (an empty file, another kind of file, a header cut short)
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
  if (error.empty()) check_report_paths(pipeline.settings.reports, false, &error);
  if (!error.empty()) {
    std::cerr << "blockwatch report: " << error << '\n';
    return 2;
  }
  Report report;
  bool damaged = false;
  if (input.ends_with(".json")) {
    if (!read_json_report_file(input, &report, &error)) {
      std::cerr << "blockwatch report: " << error << '\n';
      return 2;
    }
  } else {
    Aggregator aggregator(pipeline.classifier);
    if (!read_streams(input, &aggregator, &damaged)) return 2;
    report = aggregator.report();
  }
  finish_report(pipeline, &report);
  bool written = write_reports(pipeline, report, nullptr);
  if (!written) return 2;
  if (damaged) {
    // Last, so that a log read from the bottom does not end at "verdict: ok".
    std::cerr << "blockwatch report: the input was damaged (named above): this report covers "
                 "only what came before the damage\n";
  }
  if (report.verdict.failed) return 3;  // more input could only add hotspots
  return damaged ? kExitInputDamaged : 0;
}

}  // namespace blockwatch::collector
