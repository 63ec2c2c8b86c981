// Runs lifecycle_program and exit_paths (a C program) under
// LD_PRELOAD=libblockwatch.so with BLOCKWATCH_OUTPUT and checks the agent's side
// of the process lifecycle in the files it wrote: exit() from a non-main thread,
// main returning, quick_exit and syscall(SYS_exit_group) all flush and say
// Goodbye with the status; a fork() child writes its own PATH.PID stream
// announcing forked_child and its parent; a program that closes every fd gets a
// second stream, not a write into whatever reuses the fd number, and its next
// open() still returns fd 3; a failed exec leaves the process watched; vfork and
// _Fork children record nothing in the parent's name and hold none of its fds;
// threads that end with a raw SYS_exit give their slot back; a dormant process
// maps no shared object but libc, the loader and the library itself.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test_collector.h"
#include "tests/preload/decode.h"

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
    return run_program(BW_PROGRAM_PATH, {mode}, pid_out);
  }

  int run_program(const char* program, std::vector<std::string> args, pid_t* pid_out,
                  const std::string& workers = "") {
    const std::string workers_env = "BLOCKWATCH_WORKERS=" + workers;
    const std::string output = "BLOCKWATCH_OUTPUT=" + dir_ + "/out.bw";
    const std::string preload = std::string("LD_PRELOAD=") + BW_LIBRARY_PATH;
    args.insert(args.begin(), program);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const pid_t pid = fork();
    if (pid == 0) {
      char* env[] = {const_cast<char*>(preload.c_str()), const_cast<char*>(output.c_str()),
                     const_cast<char*>("BLOCKWATCH_THRESHOLD=1ms"),
                     const_cast<char*>(workers_env.c_str()), nullptr};
      execve(program, argv.data(), env);
      _exit(127);
    }
    *pid_out = pid;
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::string dir_;
};

// A dormant process (no section selects it: BLOCKWATCH_EXE names another
// program) pays for loading libblockwatch.so only: what it needs in a watched
// process is dlopened there (libunwind) or linked in statically (libstdc++,
// libiberty's demangler). `cat /proc/self/maps` lists what the process mapped.
TEST_F(PreloadTest, DormantProcessMapsNoOtherSharedObject) {
  const std::string maps_path = dir_ + "/maps.txt";
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = open(maps_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || dup2(fd, 1) < 0) _exit(126);
    const std::string preload = std::string("LD_PRELOAD=") + BW_LIBRARY_PATH;
    char* argv[] = {const_cast<char*>("cat"), const_cast<char*>("/proc/self/maps"), nullptr};
    char* env[] = {const_cast<char*>(preload.c_str()), const_cast<char*>("BLOCKWATCH_WORKERS=main"),
                   const_cast<char*>("BLOCKWATCH_EXE=/nonexistent"), nullptr};
    execve("/bin/cat", argv, env);
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::ifstream in(maps_path);
  std::set<std::string> objects;  // base names of the mapped shared objects
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string range, perms, offset, device, inode, path;
    fields >> range >> perms >> offset >> device >> inode >> path;
    const std::string name = path.substr(path.rfind('/') + 1);
    if (name.find(".so") != std::string::npos) objects.insert(name);
  }
  EXPECT_TRUE(objects.count("libblockwatch.so")) << "not preloaded?";
  for (const std::string& name : objects) {
    const bool expected = name == "libblockwatch.so" || name.rfind("libc.so", 0) == 0 ||
                          name.rfind("ld-linux", 0) == 0;
    EXPECT_TRUE(expected) << "a dormant process mapped " << name;
  }
}

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

// Function names of each event's stack, in stream order: named from the module
// map by the collector's symbolizer, as in a report (tests/preload/decode.h).
std::vector<std::vector<std::string>> event_stacks(const std::vector<wire::Frame>& frames) {
  std::map<uint64_t, std::string> functions;
  std::map<uint64_t, std::vector<uint64_t>> stacks;
  std::vector<wire::Module> modules;
  std::vector<std::vector<std::string>> out;
  for (const auto& frame : frames) {
    if (frame.has_symbol()) functions[frame.symbol().pc()] = frame.symbol().function();
    if (frame.has_modules()) {
      modules.insert(modules.end(), frame.modules().modules().begin(),
                     frame.modules().modules().end());
    }
    if (frame.has_stack()) {
      stacks[frame.stack().id()].assign(frame.stack().pcs().begin(), frame.stack().pcs().end());
    }
    if (!frame.has_event()) continue;
    std::vector<std::string> names;
    for (uint64_t pc : stacks[frame.event().stack()]) {
      for (std::string& name : ::blockwatch::preload_test::functions_at(pc, functions, modules)) {
        names.push_back(std::move(name));
      }
    }
    out.push_back(names);
  }
  return out;
}

bool contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

void expect_goodbye(const std::vector<wire::Frame>& frames, const char* reason, int status) {
  ASSERT_FALSE(frames.empty());
  ASSERT_TRUE(frames.back().has_goodbye());
  EXPECT_EQ(frames.back().goodbye().reason(), reason);
  EXPECT_EQ(frames.back().goodbye().exit_status(), status);
}

// glibc calls exit() from __libc_start_call_main through an internal alias: the
// status must come from somewhere that sees that call too.
TEST_F(PreloadTest, MainReturningGivesItsStatusToGoodbye) {
  pid_t pid = 0;
  ASSERT_EQ(run_program(BW_EXIT_PATHS_PATH, {"main-return"}, &pid), 3);
  const auto frames = read_frames(dir_ + "/out.bw");
  EXPECT_EQ(count(frames, &wire::Frame::has_event), 1);
  expect_goodbye(frames, "exit", 3);
}

TEST_F(PreloadTest, QuickExitFlushesAndSaysGoodbye) {
  pid_t pid = 0;
  ASSERT_EQ(run_program(BW_EXIT_PATHS_PATH, {"quick-exit"}, &pid), 4);
  const auto frames = read_frames(dir_ + "/out.bw");
  EXPECT_EQ(count(frames, &wire::Frame::has_event), 1);
  expect_goodbye(frames, "exit", 4);
}

TEST_F(PreloadTest, RawExitGroupFlushesAndSaysGoodbye) {
  pid_t pid = 0;
  ASSERT_EQ(run_program(BW_EXIT_PATHS_PATH, {"exit-group"}, &pid), 5);
  const auto frames = read_frames(dir_ + "/out.bw");
  EXPECT_EQ(count(frames, &wire::Frame::has_event), 1);
  expect_goodbye(frames, "exit", 5);
}

// The exec's flush says Goodbye("exec"); when the exec fails the process goes on
// watched, on a second stream in the same file, and its later call is reported.
TEST_F(PreloadTest, FailedExecLeavesTheProcessWatched) {
  pid_t pid = 0;
  ASSERT_EQ(run_program(BW_EXIT_PATHS_PATH, {"exec-fails"}, &pid), 0);
  const auto frames = read_frames(dir_ + "/out.bw");
  EXPECT_EQ(count(frames, &wire::Frame::has_hello), 2);
  EXPECT_EQ(count(frames, &wire::Frame::has_event), 2);
  int exec_goodbyes = 0;
  bool event_after_second_hello = false;
  int hellos = 0;
  for (const auto& frame : frames) {
    hellos += frame.has_hello();
    exec_goodbyes += frame.has_goodbye() && frame.goodbye().reason() == "exec";
    event_after_second_hello |= hellos == 2 && frame.has_event();
  }
  EXPECT_EQ(exec_goodbyes, 1);
  EXPECT_TRUE(event_after_second_hello);
  expect_goodbye(frames, "exit", 0);
}

// The program closed every fd (ours too); the agent's reopened file must not take
// the lowest free number: the program's next open() gets fd 3 (checked by the
// program: exit 96 otherwise).
TEST_F(PreloadTest, ReopenedOutputStaysOutOfTheProgramsLowFds) {
  pid_t pid = 0;
  ASSERT_EQ(run_program(BW_EXIT_PATHS_PATH, {"low-fd"}, &pid), 0);
  const auto frames = read_frames(dir_ + "/out.bw");
  EXPECT_EQ(count(frames, &wire::Frame::has_hello), 2);
  EXPECT_EQ(count(frames, &wire::Frame::has_event), 2);
}

// A vfork child runs on its parent's thread, TLS and record queue: its blocking
// call is not the parent's and must not be reported.
TEST_F(PreloadTest, VforkChildRecordsNothingInTheParentsName) {
  pid_t pid = 0;
  ASSERT_EQ(run_program(BW_EXIT_PATHS_PATH, {"vfork-child"}, &pid), 0);
  const auto frames = read_frames(dir_ + "/out.bw");
  const auto stacks = event_stacks(frames);
  ASSERT_EQ(stacks.size(), 1u);
  EXPECT_TRUE(contains(stacks[0], "blocking_site"));
  for (const auto& stack : stacks) EXPECT_FALSE(contains(stack, "child_site"));
}

// A _Fork child (no atfork handler) is left unwatched: no fd of the agent's stays
// open in it (checked by the child through /proc/self/fd), nothing of its is
// reported, and no stream of its own appears.
TEST_F(PreloadTest, UnderscoreForkChildHoldsNoAgentFdAndRecordsNothing) {
  pid_t pid = 0;
  ASSERT_EQ(run_program(BW_EXIT_PATHS_PATH, {"fork-child", dir_ + "/out.bw"}, &pid), 0);
  const auto frames = read_frames(dir_ + "/out.bw");
  for (const auto& stack : event_stacks(frames)) EXPECT_FALSE(contains(stack, "child_site"));
  int files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir_)) ++files;
  EXPECT_EQ(files, 1);
}

// 5000 threads (more than the 4096 slots) end through syscall(SYS_exit), past
// their key destructors; a last thread must still get a slot and be reported.
TEST_F(PreloadTest, ThreadsEndingWithRawExitGiveTheirSlotBack) {
  pid_t pid = 0;
  ASSERT_EQ(run_program(BW_EXIT_PATHS_PATH, {"raw-exit"}, &pid), 0);
  const auto frames = read_frames(dir_ + "/out.bw");
  const auto stacks = event_stacks(frames);
  ASSERT_EQ(stacks.size(), 1u);
  EXPECT_TRUE(contains(stacks[0], "last_thread"));
}

// Name rules and inherited names (thread_names.c): a pool started by a named
// launcher and a thread named from outside are workers; helpers started inside a
// loop turn or a task carry their creator's name but are not, before or after
// they rename themselves.
TEST_F(PreloadTest, NameRulesFollowGivenNamesNotNamesInheritedInsideWork) {
  pid_t pid = 0;
  ASSERT_EQ(run_program(BW_THREAD_NAMES_PATH, {}, &pid, "name:(pool|loop|task)-w"), 0);
  std::map<std::string, int> sites;
  for (const auto& stack : event_stacks(read_frames(dir_ + "/out.bw"))) {
    for (const std::string& name : stack) {
      if (name.ends_with("_site")) ++sites[name];
    }
  }
  EXPECT_EQ(sites["inherited_pool_site"], 2);
  EXPECT_EQ(sites["named_from_outside_site"], 1);
  EXPECT_EQ(sites["helper_before_rename_site"], 0);
  EXPECT_EQ(sites["helper_after_rename_site"], 0);
  EXPECT_EQ(sites["task_helper_site"], 0);
}

}  // namespace
}  // namespace blockwatch::testing
