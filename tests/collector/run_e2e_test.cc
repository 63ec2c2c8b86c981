// End to end: `blockwatch run -- blocking_program` with the real preload library.
// Strict mode (--threshold 0), so a fast fsync counts too. Asserts the JSON report (the planted
// mutex and fsync, on the worker, with user frames), exit status forwarding, --fail-on turning
// success into 3, a forked child reported too, the .bwrec round trip through `blockwatch
// report`, and the planted call's source line in the JSON, text, folded and pprof
// reports (read back by the real `go tool pprof -list`).
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace {

struct RunResult {
  int status;
  nlohmann::json report;
};

std::string temp_dir() {
  char dir_template[] = "/tmp/bw-e2e-XXXXXX";
  return ::mkdtemp(dir_template);
}

RunResult run(const std::string& options, const std::string& program_args) {
  std::string dir = temp_dir();
  std::string json = dir + "/run.json";
  std::string command = "BLOCKWATCH_LIBRARY=" BLOCKWATCH_LIBRARY_PATH " " BLOCKWATCH_CLI_PATH
                        " run --workers main --threshold 0 --report " +
                        json + " " + options + " -- " BLOCKING_PROGRAM_PATH " " + program_args +
                        " 2>" + dir + "/err";
  int raw = std::system(command.c_str());
  RunResult result{WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, {}};
  std::ifstream in(json);
  if (in) result.report = nlohmann::json::parse(in);
  std::system(("rm -rf " + dir).c_str());
  return result;
}

const nlohmann::json* hotspot(const nlohmann::json& report, const std::string& kind) {
  for (const auto& h : report["hotspots"]) {
    if (h["kind"] == kind) return &h;
  }
  return nullptr;
}

bool stack_has(const nlohmann::json& h, const std::string& function_part) {
  for (const auto& f : h["stack"]) {
    if (f["function"].get<std::string>().find(function_part) != std::string::npos) return true;
  }
  return false;
}

TEST(RunEndToEnd, ReportsPlantedBlockingOnTheWorker) {
  RunResult r = run("", "0");
  EXPECT_EQ(r.status, 0);
  ASSERT_TRUE(r.report.is_object());
  ASSERT_EQ(r.report["processes"].size(), 1u);
  const auto* mutex = hotspot(r.report, "mutex");
  ASSERT_NE(mutex, nullptr) << r.report.dump(1);
  EXPECT_GE((*mutex)["max_ns"].get<int64_t>(), 20'000'000);
  EXPECT_TRUE(stack_has(*mutex, "contend_on_mutex")) << mutex->dump(1);
  const auto* fsync = hotspot(r.report, "fsync");
  ASSERT_NE(fsync, nullptr);
  EXPECT_TRUE(stack_has(*fsync, "sync_a_file"));
  EXPECT_EQ(r.report["verdict"]["failed"], false);
  // The holder thread is not a worker: its 40 ms sleep is not reported.
  for (const auto& h : r.report["hotspots"]) {
    for (const auto& t : h["threads"]) EXPECT_EQ(t, "blocking_progra");
  }
}

TEST(RunEndToEnd, ExitStatusAndFailOn) {
  EXPECT_EQ(run("", "7").status, 7);
  RunResult failed = run("--fail-on kind:fsync", "0");
  EXPECT_EQ(failed.status, 3);
  EXPECT_EQ(failed.report["verdict"]["failed"], true);
  EXPECT_EQ(run("--fail-on stall>=1s", "0").status, 0);
  EXPECT_EQ(run("--fail-on kind:fsync", "5").status, 5);  // CMD's failure wins
}

TEST(RunEndToEnd, ForkedChildIsReportedToo) {
  RunResult r = run("", "0 fork");
  ASSERT_TRUE(r.report.is_object());
  EXPECT_EQ(r.report["processes"].size(), 2u) << r.report["processes"].dump(1);
  const auto* fsync = hotspot(r.report, "fsync");
  ASSERT_NE(fsync, nullptr);
  EXPECT_EQ((*fsync)["count"], 2u);  // same exe and stack: merged across processes
}

TEST(RunEndToEnd, SavedStreamReRenders) {
  std::string dir = temp_dir();
  std::string run_cmd = "BLOCKWATCH_LIBRARY=" BLOCKWATCH_LIBRARY_PATH " " BLOCKWATCH_CLI_PATH
                        " run --workers main --report " +
                        dir + "/run.bwrec --report " + dir +
                        "/a.json -- " BLOCKING_PROGRAM_PATH " 0 2>/dev/null";
  ASSERT_EQ(std::system(run_cmd.c_str()), 0);
  std::string report_cmd =
      BLOCKWATCH_CLI_PATH " report " + dir + "/run.bwrec --report " + dir + "/b.json 2>/dev/null";
  ASSERT_EQ(std::system(report_cmd.c_str()), 0);
  nlohmann::json a = nlohmann::json::parse(std::ifstream(dir + "/a.json"));
  nlohmann::json b = nlohmann::json::parse(std::ifstream(dir + "/b.json"));
  EXPECT_EQ(a["hotspots"], b["hotspots"]);
  EXPECT_EQ(a["summary"], b["summary"]);
  std::system(("rm -rf " + dir).c_str());
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The 1-based line of blocking_program.cc holding `needle`.
unsigned source_line_of(const std::string& needle) {
  std::ifstream in(BLOCKING_PROGRAM_SOURCE);
  std::string line;
  for (unsigned number = 1; std::getline(in, line); ++number) {
    if (line.find(needle) != std::string::npos) return number;
  }
  return 0;
}

std::string command_output(const std::string& command) {
  std::string output;
  if (FILE* pipe = ::popen(command.c_str(), "r")) {
    char buffer[4096];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
    ::pclose(pipe);
  }
  return output;
}

TEST(RunEndToEnd, SourceLinesInEveryFormat) {
  const unsigned fsync_line = source_line_of("::fsync(fd);");
  ASSERT_GT(fsync_line, 0u);
  std::string dir = temp_dir();
  std::string run_cmd = "BLOCKWATCH_LIBRARY=" BLOCKWATCH_LIBRARY_PATH " " BLOCKWATCH_CLI_PATH
                        " run --workers main --threshold 0 --report " +
                        dir + "/r.json --report " + dir + "/r.txt --report " + dir +
                        "/r.folded --report " + dir +
                        "/r.pb.gz -- " BLOCKING_PROGRAM_PATH " 0 2>/dev/null";
  ASSERT_EQ(std::system(run_cmd.c_str()), 0);

  nlohmann::json report = nlohmann::json::parse(std::ifstream(dir + "/r.json"));
  const auto* fsync = hotspot(report, "fsync");
  ASSERT_NE(fsync, nullptr);
  const nlohmann::json* frame = nullptr;
  for (const auto& f : (*fsync)["stack"]) {
    if (f["function"].get<std::string>().find("sync_a_file") != std::string::npos) frame = &f;
  }
  ASSERT_NE(frame, nullptr) << fsync->dump(1);
  EXPECT_NE(frame->value("file", "").find("blocking_program.cc"), std::string::npos)
      << frame->dump();
  EXPECT_EQ(frame->value("file", "").substr(0, 1), "/") << "source paths are absolute";
  EXPECT_EQ(frame->value("line", 0u), fsync_line) << frame->dump();

  const std::string expected = "sync_a_file() blocking_program.cc:" + std::to_string(fsync_line);
  EXPECT_NE(read_file(dir + "/r.txt").find("::" + expected), std::string::npos)
      << read_file(dir + "/r.txt");
  EXPECT_NE(read_file(dir + "/r.folded").find("sync_a_file()"), std::string::npos);

  // pprof reads the Function's file name and line and prints the source. The
  // source directory is given as on another machine: the debug info may name a
  // build tree that is not this checkout (a shared compiler cache).
  const std::string source_dir = std::string(BLOCKING_PROGRAM_SOURCE)
                                     .substr(0, std::string(BLOCKING_PROGRAM_SOURCE).rfind('/'));
  const std::string listing =
      command_output(std::string(BLOCKWATCH_GO_EXECUTABLE) + " tool pprof -source_path " +
                     source_dir + " -list sync_a_file " + dir + "/r.pb.gz 2>&1");
  EXPECT_NE(listing.find("sync_a_file in "), std::string::npos) << listing;
  EXPECT_NE(listing.find(std::to_string(fsync_line) + ":  ::fsync(fd);"), std::string::npos)
      << listing;
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
