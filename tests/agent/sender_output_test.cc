// Integration tests of the sender's stream beyond one plain connection: an fd
// dup2()'d over the socket, a forked child's own stream, Modules re-sent after a
// dlopen, and file output (the %p pattern, a file another writer holds).
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "interpose/transport/agent.h"
#include "interpose/transport/record_queue.h"
#include "interpose/transport/sender.h"
#include "sender_test_support.h"
#include "test_collector.h"

namespace blockwatch::interpose::sender_test {
namespace {

// The sender's connected fd: the client socket whose peer is our collector path.
int find_sender_fd(const std::string& socket_path) {
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    const int fd = std::stoi(entry.path().filename());
    sockaddr_un peer{};
    socklen_t length = sizeof peer;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) == 0 &&
        peer.sun_family == AF_UNIX && socket_path == peer.sun_path) {
      return fd;
    }
  }
  return -1;
}

TEST_F(SenderTest, FdDup2OverTheSocketIsNeverWrittenAndReconnects) {
  TestCollector collector(socket_path_);
  ASSERT_TRUE(sender_start(options()));
  ASSERT_TRUE(agent_submit(make_record(1, "worker-1", pc_in(stack_function_a))));
  EXPECT_EQ(sender_flush(5000), 0);
  ASSERT_TRUE(TestCollector::wait_for([&] { return event_count(collector, 0) == 1; }, 5000));
  const int sender_fd = find_sender_fd(socket_path_);
  ASSERT_GE(sender_fd, 0);
  int program_pipe[2];
  ASSERT_EQ(pipe2(program_pipe, O_NONBLOCK | O_CLOEXEC), 0);
  ASSERT_EQ(dup2(program_pipe[1], sender_fd), sender_fd);  // the program takes the fd number

  ASSERT_TRUE(agent_submit(make_record(1, "worker-1", pc_in(stack_function_a))));
  EXPECT_EQ(sender_flush(5000), 0);
  ASSERT_TRUE(TestCollector::wait_for([&] { return collector.connection_count() == 2; }, 5000));
  ASSERT_TRUE(agent_submit(make_record(1, "worker-1", pc_in(stack_function_a))));
  EXPECT_EQ(sender_flush(5000), 0);
  ASSERT_TRUE(TestCollector::wait_for([&] { return event_count(collector, 1) >= 1; }, 5000));
  char byte;
  EXPECT_EQ(read(program_pipe[0], &byte, 1), -1) << "the agent wrote into the program's fd";
  EXPECT_EQ(errno, EAGAIN);
  struct stat st {};
  ASSERT_EQ(fstat(sender_fd, &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));  // still the program's pipe: not closed by the agent
  close(sender_fd);
  close(program_pipe[0]);
  close(program_pipe[1]);
}

TEST_F(SenderTest, ForkedChildAnnouncesItselfOnItsOwnStream) {
  TestCollector collector(socket_path_);
  ASSERT_TRUE(sender_start(options()));
  ASSERT_TRUE(agent_submit(make_record(1, "parent", pc_in(stack_function_a))));
  EXPECT_EQ(sender_flush(5000), 0);
  ASSERT_TRUE(TestCollector::wait_for([&] { return event_count(collector, 0) == 1; }, 5000));
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    agent_after_fork_child();  // what the library's atfork child handler does
    const bool ok =
        agent_submit(make_record(7, "child", pc_in(stack_function_b))) && sender_flush(5000) == 0;
    sender_shutdown("exit", 0, 1'000'000'000);
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_TRUE(TestCollector::wait_for([&] { return collector.connection_count() == 2; }, 5000));
  // The child's connection may be accepted before its first frame arrives.
  ASSERT_TRUE(TestCollector::wait_for(
      [&] {
        const auto frames = collector.frames(1);
        return !frames.empty() && check_stream(frames).has_goodbye;
      },
      5000));
  const Stream child_stream = check_stream(collector.frames(1));
  EXPECT_TRUE(child_stream.hello.forked_child());
  EXPECT_EQ(child_stream.hello.pid(), child);
  EXPECT_EQ(child_stream.hello.ppid(), getpid());
  ASSERT_EQ(child_stream.events.size(), 1u);  // not the parent's queued records
  EXPECT_EQ(child_stream.strings.at(child_stream.events[0].thread_name()), "child");
  // The parent's stream goes on.
  ASSERT_TRUE(agent_submit(make_record(1, "parent", pc_in(stack_function_a))));
  EXPECT_EQ(sender_flush(5000), 0);
  ASSERT_TRUE(TestCollector::wait_for([&] { return event_count(collector, 0) == 2; }, 5000));
}

// Modules are re-sent (complete list, higher generation) after a dlopen, seen by
// the sender itself, and after an explicit agent_modules_changed().
TEST_F(SenderTest, ModulesResentAfterDlopenAndOnRequest) {
  TestCollector collector(socket_path_);
  ASSERT_TRUE(sender_start(options()));
  ASSERT_TRUE(agent_submit(make_record(1, "worker", pc_in(stack_function_a))));
  EXPECT_EQ(sender_flush(5000), 0);
  ASSERT_TRUE(TestCollector::wait_for([&] { return event_count(collector, 0) == 1; }, 5000));
  const uint32_t first_generation = check_stream(collector.frames(0)).modules.generation();

  void* library = dlopen("libresolv.so.2", RTLD_NOW);
  ASSERT_NE(library, nullptr) << dlerror();
  ASSERT_TRUE(agent_submit(make_record(1, "worker", pc_in(stack_function_a))));
  EXPECT_EQ(sender_flush(5000), 0);
  ASSERT_TRUE(TestCollector::wait_for([&] { return event_count(collector, 0) == 2; }, 5000));
  Stream stream = check_stream(collector.frames(0));
  EXPECT_GT(stream.modules.generation(), first_generation);
  bool found = false;
  for (const auto& module : stream.modules.modules()) {
    found |= module.path().find("libresolv.so.2") != std::string::npos;
  }
  EXPECT_TRUE(found);

  const uint32_t second_generation = stream.modules.generation();
  agent_modules_changed();
  ASSERT_TRUE(agent_submit(make_record(1, "worker", pc_in(stack_function_a))));
  EXPECT_EQ(sender_flush(5000), 0);
  ASSERT_TRUE(TestCollector::wait_for([&] { return event_count(collector, 0) == 3; }, 5000));
  EXPECT_GT(check_stream(collector.frames(0)).modules.generation(), second_generation);
  dlclose(library);
}

std::vector<wire::Frame> read_file_frames(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<wire::Frame> frames;
  EXPECT_TRUE(testing::take_frames(bytes, frames));
  EXPECT_TRUE(bytes.empty()) << "trailing partial frame";
  return frames;
}

TEST_F(SenderTest, FileOutputWithPidPattern) {
  SenderOptions opts = options();
  opts.collector.clear();
  opts.output = dir_ + "/out-%p.bw";
  ASSERT_TRUE(sender_start(opts));
  ASSERT_TRUE(agent_submit(make_record(9, "worker", pc_in(stack_function_a))));
  ASSERT_TRUE(agent_submit(make_record(10, "worker", pc_in(stack_function_b))));
  EXPECT_EQ(sender_flush(5000), 0);
  sender_shutdown("exit", 0, 1'000'000'000);
  const Stream stream =
      check_stream(read_file_frames(dir_ + "/out-" + std::to_string(getpid()) + ".bw"));
  ASSERT_EQ(stream.events.size(), 2u);
  EXPECT_EQ(stream.events[0].kind(), wire::KIND_FSYNC);
  EXPECT_EQ(stream.events[1].kind(), wire::KIND_SLEEP);
  EXPECT_TRUE(stream.has_goodbye);

  // The same pid starting again is an exec() without fork: the new image appends
  // a second stream rather than truncating the first.
  ASSERT_TRUE(sender_start(opts));
  ASSERT_TRUE(agent_submit(make_record(1, "worker", pc_in(stack_function_a))));
  EXPECT_EQ(sender_flush(5000), 0);
  sender_shutdown("exit", 0, 1'000'000'000);
  const auto frames = read_file_frames(dir_ + "/out-" + std::to_string(getpid()) + ".bw");
  int hellos = 0, events = 0;
  for (const auto& frame : frames) {
    hellos += frame.has_hello();
    events += frame.has_event();
  }
  EXPECT_EQ(hellos, 2);
  EXPECT_EQ(events, 3);
}

// Without %p, a second writer of the same path (an exec'd child while the parent
// still writes) gets PATH.PID instead of truncating the first one's stream.
TEST_F(SenderTest, FileOutputHeldByAnotherWriterGetsPidSuffix) {
  const std::string path = dir_ + "/out.bw";
  const int other_writer = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(other_writer, 0);
  ASSERT_EQ(write(other_writer, "X", 1), 1);
  // The holder says when it has the lock: a fixed wait for it was a race on a
  // loaded machine (the sender could open and lock the file first).
  int locked_pipe[2];
  ASSERT_EQ(pipe2(locked_pipe, O_CLOEXEC), 0);
  const pid_t holder = fork();
  if (holder == 0) {  // hold the lock from another process, as a parent would
    ::flock(other_writer, LOCK_EX);
    const char locked = 'L';
    (void)!write(locked_pipe[1], &locked, 1);
    sleep(30);
    _exit(0);
  }
  close(locked_pipe[1]);
  char locked = 0;
  ASSERT_EQ(read(locked_pipe[0], &locked, 1), 1);
  close(locked_pipe[0]);
  SenderOptions opts = options();
  opts.collector.clear();
  opts.output = path;
  ASSERT_TRUE(sender_start(opts));
  ASSERT_TRUE(agent_submit(make_record(1, "worker", pc_in(stack_function_a))));
  EXPECT_EQ(sender_flush(5000), 0);
  sender_shutdown("exit", 0, 1'000'000'000);
  kill(holder, SIGKILL);
  waitpid(holder, nullptr, 0);
  close(other_writer);
  std::ifstream untouched(path);
  std::string content((std::istreambuf_iterator<char>(untouched)),
                      std::istreambuf_iterator<char>());
  EXPECT_EQ(content, "X");
  const Stream stream = check_stream(read_file_frames(path + "." + std::to_string(getpid())));
  EXPECT_EQ(stream.events.size(), 1u);
}

}  // namespace
}  // namespace blockwatch::interpose::sender_test
