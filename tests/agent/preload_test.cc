// Runs lifecycle_program under LD_PRELOAD=libblockwatch.so with BLOCKWATCH_OUTPUT
// and checks the agent's side of the process lifecycle in the files it wrote:
// exit() from a non-main thread still flushes and says Goodbye with the status;
// a fork() child writes its own PATH.PID stream announcing forked_child and its
// parent; a program that closes every fd gets a second stream, not a write into
// whatever reuses the fd number.
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "test_collector.h"

namespace blockwatch::testing {
namespace {

struct RunResult {
  int exit_status = -1;
  std::vector<wire::Frame> frames;  // of the file the process wrote
};

std::vector<wire::Frame> read_frames(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<wire::Frame> frames;
  EXPECT_TRUE(take_frames(bytes, frames)) << path;
  EXPECT_TRUE(bytes.empty()) << path << ": trailing partial frame";
  return frames;
}

class PreloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/bw-agent-preload-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  int run(const char* mode, pid_t* pid_out) {
    const std::string output = "BLOCKWATCH_OUTPUT=" + dir_ + "/out.bw";
    const std::string preload = std::string("LD_PRELOAD=") + BW_LIBRARY_PATH;
    const pid_t pid = fork();
    if (pid == 0) {
      char* env[] = {const_cast<char*>(preload.c_str()), const_cast<char*>(output.c_str()),
                     const_cast<char*>("BLOCKWATCH_THRESHOLD=1ms"), nullptr};
      char* args[] = {const_cast<char*>(BW_PROGRAM_PATH), const_cast<char*>(mode), nullptr};
      execve(BW_PROGRAM_PATH, args, env);
      _exit(127);
    }
    *pid_out = pid;
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::string dir_;
};

int count(const std::vector<wire::Frame>& frames, bool (wire::Frame::*has)() const) {
  int n = 0;
  for (const auto& frame : frames) n += (frame.*has)();
  return n;
}

TEST_F(PreloadTest, ExitFromNonMainThreadFlushesAndSaysGoodbye) {
  pid_t pid = 0;
  ASSERT_EQ(run("thread-exit", &pid), 7);
  const auto frames = read_frames(dir_ + "/out.bw");
  ASSERT_FALSE(frames.empty());
  ASSERT_TRUE(frames[0].has_hello());
  EXPECT_EQ(frames[0].hello().pid(), pid);
  EXPECT_GE(count(frames, &wire::Frame::has_event), 1);
  ASSERT_TRUE(frames.back().has_goodbye());
  EXPECT_EQ(frames.back().goodbye().reason(), "exit");
  EXPECT_EQ(frames.back().goodbye().exit_status(), 7);
}

TEST_F(PreloadTest, ForkChildWritesItsOwnStream) {
  pid_t pid = 0;
  ASSERT_EQ(run("fork", &pid), 0);
  const auto parent = read_frames(dir_ + "/out.bw");
  ASSERT_FALSE(parent.empty());
  EXPECT_EQ(parent[0].hello().pid(), pid);
  EXPECT_FALSE(parent[0].hello().forked_child());
  EXPECT_GE(count(parent, &wire::Frame::has_event), 2);
  EXPECT_TRUE(parent.back().has_goodbye());
  std::string child_file;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    if (entry.path().filename() != "out.bw") child_file = entry.path();
  }
  ASSERT_FALSE(child_file.empty());
  const auto child = read_frames(child_file);
  ASSERT_FALSE(child.empty());
  EXPECT_TRUE(child[0].hello().forked_child());
  EXPECT_EQ(child[0].hello().ppid(), pid);
  EXPECT_EQ(child_file, dir_ + "/out.bw." + std::to_string(child[0].hello().pid()));
  EXPECT_EQ(count(child, &wire::Frame::has_event), 1);  // the child's, not the parent's
  EXPECT_TRUE(child.back().has_goodbye());
}

TEST_F(PreloadTest, ClosedFdsStartASecondStream) {
  pid_t pid = 0;
  ASSERT_EQ(run("close-fds", &pid), 0);
  const auto frames = read_frames(dir_ + "/out.bw");
  EXPECT_EQ(count(frames, &wire::Frame::has_hello), 2);
  EXPECT_GE(count(frames, &wire::Frame::has_event), 2);
  ASSERT_FALSE(frames.empty());
  EXPECT_TRUE(frames.back().has_goodbye());
}

}  // namespace
}  // namespace blockwatch::testing
