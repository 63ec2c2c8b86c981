// The perf-map reader (collector/perf_map.h) and Symbolizer::symbolize_jit on
// real files in a temporary directory: names found, later lines winning over
// the code they replace, lines appended (and completed) after the first
// lookup, and every "unknown" case saying why.
#include "collector/perf_map.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>

#include "collector/symbolizer.h"

namespace blockwatch::collector {
namespace {

int64_t now_unix_ns() {
  using namespace std::chrono;
  return duration_cast<nanoseconds>(system_clock::now().time_since_epoch()).count();
}

class PerfMapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/bw-perfmap-XXXXXX";
    dir_ = ::mkdtemp(dir_template);
    path_ = dir_ + "/perf-4242.map";
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  void append(const std::string& text) { std::ofstream(path_, std::ios::app) << text; }

  std::string dir_;
  std::string path_;
};

TEST_F(PerfMapTest, NamesAddressesInsideAnEntry) {
  append("7f0000001000 100 JS:*handleRequest /srv/app.js:10:3\n7f0000002000 20 LuaJIT:trace#3\n");
  PerfMap map(path_, 0);
  auto hit = map.lookup(0x7f0000001000);
  EXPECT_EQ(hit.status, PerfMap::Status::kFound);
  EXPECT_EQ(hit.name, "JS:*handleRequest /srv/app.js:10:3");  // spaces kept
  EXPECT_EQ(map.lookup(0x7f00000010ff).name, "JS:*handleRequest /srv/app.js:10:3");
  EXPECT_EQ(map.lookup(0x7f0000001100).status, PerfMap::Status::kNoEntry);  // one past the end
  EXPECT_EQ(map.lookup(0x7f0000002010).name, "LuaJIT:trace#3");
  EXPECT_EQ(map.lookup(0x1000).status, PerfMap::Status::kNoEntry);
}

TEST_F(PerfMapTest, LaterLinesReplaceTheCodeTheyOverlap) {
  append("1000 100 old_a\n1100 100 old_b\n3000 10 kept\n");
  PerfMap map(path_, 0);
  EXPECT_EQ(map.lookup(0x1080).name, "old_a");
  // The engine reused 0x1080..0x1180 for new code: both old entries are gone.
  append("1080 100 new_code\n");
  EXPECT_EQ(map.lookup(0x1080).name, "new_code");
  EXPECT_EQ(map.lookup(0x1010).status, PerfMap::Status::kNoEntry);
  EXPECT_EQ(map.lookup(0x1190).status, PerfMap::Status::kNoEntry);
  EXPECT_EQ(map.lookup(0x3000).name, "kept");
  EXPECT_EQ(map.entry_count(), 2u);
}

TEST_F(PerfMapTest, ReadsLinesAppendedLaterAndWaitsForAnIncompleteOne) {
  append("1000 10 first\n2000 10 sec");  // the writer is mid-line
  PerfMap map(path_, 0);
  EXPECT_EQ(map.lookup(0x1000).name, "first");
  EXPECT_EQ(map.lookup(0x2000).status, PerfMap::Status::kNoEntry);
  append("ond\n");
  EXPECT_EQ(map.lookup(0x2000).name, "second");
  // Replaced by a shorter file (a new process reusing the pid wrote it): reread.
  std::ofstream(path_, std::ios::trunc) << "5000 10 fresh\n";
  EXPECT_EQ(map.lookup(0x5000).name, "fresh");
  EXPECT_EQ(map.lookup(0x1000).status, PerfMap::Status::kNoEntry);
}

TEST_F(PerfMapTest, SkipsMalformedLines) {
  append("not a line\n1000\n1000 0 empty\nzz 10 bad\n 1000 10 leading\n2000 10 good\n");
  PerfMap map(path_, 0);
  EXPECT_EQ(map.lookup(0x2000).name, "good");
  EXPECT_EQ(map.lookup(0x1000).status, PerfMap::Status::kNoEntry);
  EXPECT_EQ(map.entry_count(), 1u);
}

TEST_F(PerfMapTest, NoFileOrAFileOlderThanTheProcessIsNotRead) {
  PerfMap missing(path_, 0);
  EXPECT_EQ(missing.lookup(0x1000).status, PerfMap::Status::kNoMap);
  append("1000 10 from_an_earlier_process\n");
  const timespec old_times[2] = {{1'000'000, 0}, {1'000'000, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, path_.c_str(), old_times, 0), 0);
  PerfMap map(path_, now_unix_ns());
  EXPECT_EQ(map.lookup(0x1000).status, PerfMap::Status::kStale);
  // A FIFO at the path is not opened for reading (it would block the collector).
  ::unlink(path_.c_str());
  ASSERT_EQ(::mkfifo(path_.c_str(), 0600), 0);
  EXPECT_EQ(PerfMap(path_, 0).lookup(0x1000).status, PerfMap::Status::kNoMap);
}

std::string this_host() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return host;
}

TEST_F(PerfMapTest, SymbolizerNamesJitFramesOfThisHostOnly) {
  append("7f0000001000 100 JS:~runChild /srv/app.js:3:18\n");
  Symbolizer::Options options;
  options.perf_map_dir = dir_;
  options.use_debuginfod = false;
  Symbolizer symbolizer(options);
  const ProcessIdentity local{4242, this_host(), now_unix_ns() - 10'000'000'000};
  JitSymbol found = symbolizer.symbolize_jit(local, 0x7f0000001010);
  EXPECT_EQ(found.name, "JS:~runChild /srv/app.js:3:18");
  EXPECT_EQ(found.source, path_);
  JitSymbol miss = symbolizer.symbolize_jit(local, 0x7f0000009000);
  EXPECT_EQ(miss.name, "");
  EXPECT_EQ(miss.note, "JIT code, no entry in " + path_);
  JitSymbol no_map = symbolizer.symbolize_jit({4243, this_host(), 0}, 0x7f0000001010);
  EXPECT_EQ(no_map.note, "anonymous code, no " + dir_ + "/perf-4243.map");
  // A process of another host: its /tmp is not this one's.
  JitSymbol remote = symbolizer.symbolize_jit({4242, this_host() + "-elsewhere", 0}, 0x7f0000001010);
  EXPECT_EQ(remote.name, "");
  EXPECT_NE(remote.note.find("not read here"), std::string::npos) << remote.note;
}

}  // namespace
}  // namespace blockwatch::collector
