// The report files read by the real consumers: `go tool pprof` (-top and -raw) on
// the pprof file, and Python's xml.etree on the JUnit file. Label "integration":
// it runs other programs. Paths of go and python3 come from CMake.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>

#include "collector/report_junit.h"
#include "collector/report_pprof.h"
#include "tests/reports/sample_report.h"

namespace blockwatch::collector {
namespace {

std::string run(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return "popen failed";
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  int status = pclose(pipe);
  EXPECT_EQ(status, 0) << command << "\n" << output;
  return output;
}

class ReportTools : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("blockwatch-report-tools-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    setenv("PPROF_TMPDIR", dir_.c_str(), 1);  // where pprof saves fetched profiles
    setenv("HOME", dir_.c_str(), 1);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, void (*writer)(const Report&, std::ostream&)) {
    std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary);
    writer(test::sample_report(), out);
    return path;
  }
  std::string go_pprof(const std::string& args) {
    return run(std::string("'") + BLOCKWATCH_GO_EXECUTABLE + "' tool pprof " + args);
  }

  std::filesystem::path dir_;
};

TEST_F(ReportTools, GoPprofTopShowsDelayByFunction) {
  std::string file = write("block.pb.gz", write_pprof_report);
  std::string top = go_pprof("-top " + file);
  EXPECT_NE(top.find("Type: delay"), std::string::npos) << top;
  // Values in pprof's units: the stall's 80 ms is the largest flat entry.
  EXPECT_TRUE(std::regex_search(
      top, std::regex(R"(\n\s*80ms\s+[0-9.]+%\s+[0-9.]+%\s+80ms\s.*model::tokenize)")))
      << top;
  EXPECT_TRUE(std::regex_search(top, std::regex(R"(\n\s*45ms\s.*\sfsync\n)"))) << top;
  EXPECT_NE(top.find("Journal::flush"), std::string::npos) << top;
  std::string contentions = go_pprof("-top -sample_index=contentions " + file);
  EXPECT_TRUE(std::regex_search(contentions, std::regex(R"(\n\s*120\s.*pthread_mutex_lock)")))
      << contentions;
}

TEST_F(ReportTools, GoPprofRawShowsSamplesAndLabels) {
  std::string raw = go_pprof("-raw " + write("block.pb.gz", write_pprof_report));
  EXPECT_NE(raw.find("contentions/count delay/nanoseconds"), std::string::npos) << raw;
  EXPECT_TRUE(std::regex_search(raw, std::regex(R"(\n\s*2\s+80000000: )"))) << raw;
  EXPECT_TRUE(std::regex_search(raw, std::regex(R"(\n\s*120\s+30000000: )"))) << raw;
  EXPECT_NE(raw.find("kind:[stall]"), std::string::npos) << raw;
  EXPECT_NE(raw.find("path:[worker-pool]"), std::string::npos) << raw;
  EXPECT_NE(raw.find("allowed:[true]"), std::string::npos) << raw;
  EXPECT_NE(raw.find("/usr/bin/demo_server"), std::string::npos) << raw;
}

TEST_F(ReportTools, GoPprofTagFocusSelectsAPath) {
  std::string top =
      go_pprof("-top -tagfocus=path=model " + write("block.pb.gz", write_pprof_report));
  EXPECT_NE(top.find("model::tokenize"), std::string::npos) << top;
  EXPECT_EQ(top.find("Journal::flush"), std::string::npos) << top;
}

TEST_F(ReportTools, PythonParsesTheJunitXml) {
  std::string file = write("blockwatch.xml", write_junit_report);
  std::string script = (dir_ / "check.py").string();
  std::ofstream(script) << R"PY(import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
cases = root.findall("./testsuite/testcase")
names = [c.get("name") for c in cases]
assert names == ["verdict", "(no path)", "model", "worker-pool"], names
failed = [c.get("name") for c in cases if c.find("failure") is not None]
assert failed == names, failed
pool = cases[3].find("failure").text
assert "mutex: 120 times, 30ms total" in pool, pool
assert 'pool::Cache<int; "k" & <v>>::get()' in pool, pool
assert "read:" not in pool, "baseline hotspot must not fail"
print("ok", len(cases))
)PY";
  EXPECT_NE(run(std::string("'") + BLOCKWATCH_PYTHON3 + "' " + script + " " + file).find("ok 4"),
            std::string::npos);
}

}  // namespace
}  // namespace blockwatch::collector
