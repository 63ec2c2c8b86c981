// End to end: `blockwatch run -- blocking_program` with the real preload library.
// Strict mode (--threshold 0), so a fast fsync counts too. Asserts the JSON report (the planted
// mutex and fsync, on the worker, with user frames), exit status forwarding, --fail-on turning
// success into 3, a forked child reported too, the .bwrec round trip through `blockwatch
// report`, and the planted call's source line in the JSON, text, folded and pprof
// reports (read back by the real `go tool pprof -list`). Process scoping: rules
// apply to CMD's executable and its forks; other programs CMD runs stay dormant
// unless an exe: section names them.
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

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

// `blockwatch run --workers WORKERS --threshold 0 -- sh -c SCRIPT`, in a fresh
// directory that holds a file `f`.
RunResult run_command(const std::string& workers, const std::string& command_line,
                      const std::string& threshold = "0");

RunResult run_shell(const std::string& workers, const std::string& script) {
  return run_command(workers, "sh -c '" + script + "'");
}

RunResult run_command(const std::string& workers, const std::string& command_line,
                      const std::string& threshold) {
  std::string dir = temp_dir();
  std::ofstream(dir + "/f") << "hello\n";
  std::string json = dir + "/run.json";
  std::string command = "cd " + dir + " && BLOCKWATCH_LIBRARY=" BLOCKWATCH_LIBRARY_PATH
                        " " BLOCKWATCH_CLI_PATH " run --workers '" + workers +
                        "' --threshold " + threshold + " --report " + json + " -- " + command_line +
                        " >/dev/null 2>" + dir + "/err";
  int raw = std::system(command.c_str());
  RunResult result{WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, {}};
  std::ifstream in(json);
  if (in) result.report = nlohmann::json::parse(in);
  std::system(("rm -rf " + dir).c_str());
  return result;
}

std::vector<std::string> process_exes(const nlohmann::json& report) {
  std::vector<std::string> exes;
  for (const auto& p : report["processes"]) exes.push_back(p["exe"].get<std::string>());
  return exes;
}

bool any_hotspot_in(const nlohmann::json& report, const std::string& exe_suffix) {
  for (const auto& h : report["hotspots"]) {
    if (h["exe"].get<std::string>().ends_with(exe_suffix)) return true;
  }
  return false;
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
  EXPECT_EQ(run("--fail-on 'stall>=1s'", "0").status, 0);  // quoted: a shell runs it
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

// `--workers main` is about CMD (here the shell), not every program it runs: sleep
// and cat stay dormant (no stream at all) and report nothing.
TEST(RunEndToEnd, RulesApplyToCmdNotToTheProgramsItRuns) {
  RunResult r = run_shell("main", "sleep 0.05; cat f");
  EXPECT_EQ(r.status, 0);
  ASSERT_TRUE(r.report.is_object());
  const auto exes = process_exes(r.report);
  ASSERT_EQ(exes.size(), 1u);
  EXPECT_TRUE(exes[0].ends_with("sh")) << exes[0];
  EXPECT_FALSE(any_hotspot_in(r.report, "/sleep"));
  EXPECT_FALSE(any_hotspot_in(r.report, "/cat"));
}

// An exe: section names them: both are watched with the rules before it (main).
TEST(RunEndToEnd, ExeSelectorWatchesTheProgramsItNames) {
  RunResult r = run_shell("main,exe:sleep|cat", "sleep 0.05; cat f");
  EXPECT_EQ(r.status, 0);
  ASSERT_TRUE(r.report.is_object());
  EXPECT_EQ(r.report["processes"].size(), 3u);
  const nlohmann::json* sleep_hotspot = hotspot(r.report, "sleep");
  ASSERT_NE(sleep_hotspot, nullptr);
  EXPECT_TRUE(sleep_hotspot->at("exe").get<std::string>().ends_with("/sleep"));
  EXPECT_TRUE(any_hotspot_in(r.report, "/cat"));
}

// A section with rules of its own: cat's main thread only; sleep stays dormant.
TEST(RunEndToEnd, ExeSectionHasItsOwnRules) {
  RunResult r = run_shell("name:nothing-matches,exe:cat,main", "sleep 0.05; cat f");
  ASSERT_TRUE(r.report.is_object());
  EXPECT_FALSE(any_hotspot_in(r.report, "/sleep"));
  EXPECT_TRUE(any_hotspot_in(r.report, "/cat"));
  EXPECT_EQ(r.report["processes"].size(), 2u);  // sh (CMD) and cat
}

// A Node service's execSync('sleep 0.02') runs /bin/sh and sleep: with
// `--workers main` only node's main thread is watched, not theirs.
TEST(RunEndToEnd, NodeExecSyncChildrenStayDormant) {
  if (std::system("command -v node >/dev/null 2>&1") != 0) GTEST_SKIP() << "node not installed";
  const std::string script =
      "node -e \"const cp = require('child_process'); for (let i = 0; i < 3; i++) "
      "cp.execSync('sleep 0.02');\"";
  // 1ms, not strict: node's own start-up would be thousands of events.
  RunResult r = run_command("main", script, "1ms");
  EXPECT_EQ(r.status, 0);
  ASSERT_TRUE(r.report.is_object());
  EXPECT_FALSE(any_hotspot_in(r.report, "/sleep"));
  for (const std::string& exe : process_exes(r.report)) EXPECT_FALSE(exe.ends_with("/sleep"));
  RunResult named = run_command("main,exe:sleep", script, "1ms");
  ASSERT_TRUE(named.report.is_object());
  EXPECT_TRUE(any_hotspot_in(named.report, "/sleep"));
}

// A wrapper that execs in place (`env X=1 prog`) keeps the process CMD: the
// program it runs gets the rules, while sleep, which it does not exec in place,
// stays dormant.
TEST(RunEndToEnd, ProgramAWrapperExecsInPlaceIsCmd) {
  RunResult r = run_command("main", "env BW_E2E=1 sh -c 'sleep 0.05; cat f'");
  ASSERT_TRUE(r.report.is_object());
  const auto exes = process_exes(r.report);
  bool shell_watched = false;
  for (const std::string& exe : exes) shell_watched |= exe.ends_with("sh");
  EXPECT_TRUE(shell_watched);
  EXPECT_FALSE(any_hotspot_in(r.report, "/sleep"));
}

}  // namespace
