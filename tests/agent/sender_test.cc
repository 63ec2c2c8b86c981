// Integration tests of the sender against a real Unix-socket collector in the test
// (no preload): the stream's shape (Hello, Modules, definitions before use,
// Goodbye), the in-process callback and bw_flush, and the failure modes a target
// must never feel: collector absent, killed mid-stream, stopped (not reading), an
// fd dup2()'d over the socket, fork, and file output.
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "interpose/transport/agent.h"
#include "interpose/transport/record_queue.h"
#include "interpose/transport/sender.h"
#include "test_collector.h"

namespace blockwatch::interpose {
namespace {

using testing::TestCollector;
using Clock = std::chrono::steady_clock;

extern "C" __attribute__((noinline)) int stack_function_a(int x) {
  asm volatile("" ::: "memory");
  return x * 3 + 1;
}
extern "C" __attribute__((noinline)) int stack_function_b(int x) {
  asm volatile("" ::: "memory");
  return x * 5 + 2;
}

uint64_t pc_in(int (*function)(int)) { return reinterpret_cast<uint64_t>(function) + 2; }

Record make_record(uint8_t kind, const char* thread_name, uint64_t innermost_pc,
                   const char* task = "") {
  Record record;
  record.kind = kind;
  record.tid = gettid();
  record.duration_ns = 2'000'000;
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  record.start_mono_ns = int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
  record.function = "pthread_mutex_lock";
  record.address = 0x1000;
  strncpy(record.thread_name, thread_name, sizeof record.thread_name - 1);
  strncpy(record.task, task, sizeof record.task - 1);
  record.in_task = task[0] != 0;
  record.frame_count = 2;
  record.frames[0] = innermost_pc;
  record.frames[1] = pc_in(stack_function_b);
  return record;
}

// A decoded stream, checked for the contract: Hello first, every reference
// defined before use.
struct Stream {
  wire::Hello hello;
  std::vector<wire::Event> events;
  std::map<uint64_t, std::string> strings;
  std::map<uint64_t, wire::Symbol> symbols;
  std::map<uint64_t, std::vector<uint64_t>> stacks;
  int stack_definitions = 0;
  int modules_frames = 0;
  wire::Modules modules;
  wire::Counters counters;
  bool has_counters = false;
  bool has_goodbye = false;
  wire::Goodbye goodbye;
};

const wire::Module* module_of(const wire::Modules& modules, uint64_t pc) {
  for (const wire::Module& module : modules.modules()) {
    if (module.start() <= pc - 1 && pc - 1 < module.end()) return &module;
  }
  return nullptr;
}

Stream check_stream(const std::vector<wire::Frame>& frames) {
  Stream stream;
  EXPECT_FALSE(frames.empty());
  if (frames.empty()) return stream;
  EXPECT_TRUE(frames[0].has_hello());
  stream.hello = frames[0].hello();
  for (const wire::Frame& frame : frames) {
    if (frame.has_string()) stream.strings[frame.string().id()] = frame.string().text();
    if (frame.has_symbol()) stream.symbols[frame.symbol().pc()] = frame.symbol();
    if (frame.has_modules()) {
      ++stream.modules_frames;
      stream.modules = frame.modules();
    }
    if (frame.has_stack()) {
      ++stream.stack_definitions;
      // Every pc is defined before use: by a Symbol (code without a file) or
      // by an announced module the collector can symbolize.
      for (uint64_t pc : frame.stack().pcs()) {
        EXPECT_TRUE(stream.symbols.count(pc) || module_of(stream.modules, pc) != nullptr) << pc;
      }
      stream.stacks[frame.stack().id()].assign(frame.stack().pcs().begin(),
                                               frame.stack().pcs().end());
    }
    if (frame.has_event()) {
      const wire::Event& event = frame.event();
      EXPECT_TRUE(event.stack() == 0 || stream.stacks.count(event.stack()));
      for (uint64_t id : {event.thread_name(), event.task(), event.allow_reason()}) {
        EXPECT_TRUE(id == 0 || stream.strings.count(id)) << id;
      }
      stream.events.push_back(event);
    }
    if (frame.has_counters()) {
      stream.counters = frame.counters();
      stream.has_counters = true;
    }
    if (frame.has_goodbye()) {
      EXPECT_FALSE(stream.has_goodbye);
      stream.goodbye = frame.goodbye();
      stream.has_goodbye = true;
    }
  }
  return stream;
}

// For wait_for predicates: true once the connection's frames include a Goodbye.
// Asserts nothing, unlike check_stream: a predicate polled while the collector
// has accepted a connection but not yet read its bytes must not fail the test.
bool has_goodbye(TestCollector& collector, size_t connection) {
  for (const auto& frame : collector.frames(connection)) {
    if (frame.has_goodbye()) return true;
  }
  return false;
}

size_t event_count(TestCollector& collector, size_t connection) {
  size_t count = 0;
  for (const auto& frame : collector.frames(connection)) count += frame.has_event();
  return count;
}

class SenderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/bw-agent-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    socket_path_ = dir_ + "/collector.sock";
  }
  void TearDown() override {
    sender_shutdown("exit", 0, 1'000'000'000);
    sender_set_event_callback(nullptr, nullptr);
    std::filesystem::remove_all(dir_);
  }
  SenderOptions options() {
    SenderOptions options;
    options.collector = "unix:" + socket_path_;
    options.threshold_ns = 1'000'000;
    options.workers = "main";
    return options;
  }
  std::string dir_;
  std::string socket_path_;
};

struct Observed {
  std::vector<std::string> innermost;
  std::vector<std::string> tasks;
  int flush_from_callback = 0;
};

TEST_F(SenderTest, StreamsDefinitionsEventsCallbackAndGoodbye) {
  TestCollector collector(socket_path_);
  Observed observed;
  sender_set_event_callback(
      [](const bw_event_info* event, void* arg) {
        auto* seen = static_cast<Observed*>(arg);
        seen->innermost.push_back(event->frame_count ? event->frames[0] : "");
        seen->tasks.push_back(event->task ? event->task : "(none)");
        seen->flush_from_callback = sender_flush(1000);  // must not deadlock
      },
      &observed);
  ASSERT_TRUE(sender_start(options()));
  ASSERT_TRUE(agent_submit(make_record(1, "worker-1", pc_in(stack_function_a), "req-1")));
  ASSERT_TRUE(agent_submit(make_record(1, "worker-1", pc_in(stack_function_a))));
  ASSERT_TRUE(agent_submit(make_record(8, "worker-2", pc_in(stack_function_b))));
  EXPECT_EQ(sender_flush(5000), 0);
  ASSERT_EQ(observed.innermost.size(), 3u);  // callbacks ran before flush returned
  EXPECT_NE(observed.innermost[0].find("stack_function_a"), std::string::npos);
  EXPECT_NE(observed.innermost[2].find("stack_function_b"), std::string::npos);
  EXPECT_EQ(observed.tasks[0], "req-1");
  EXPECT_EQ(observed.tasks[1], "(none)");
  EXPECT_EQ(observed.flush_from_callback, -1);
  ASSERT_TRUE(TestCollector::wait_for([&] { return event_count(collector, 0) == 3; }, 5000));
  sender_shutdown("exit", 3, 1'000'000'000);
  ASSERT_TRUE(TestCollector::wait_for([&] { return has_goodbye(collector, 0); }, 5000));

  const Stream stream = check_stream(collector.frames(0));
  EXPECT_EQ(stream.hello.magic(), 0x42574348u);
  EXPECT_EQ(stream.hello.protocol_version(), 1u);
  EXPECT_EQ(stream.hello.pid(), getpid());
  EXPECT_EQ(stream.hello.ppid(), getppid());
  ASSERT_GE(stream.hello.argv_size(), 1);
  EXPECT_NE(stream.hello.argv(0).find("agent_sender_test"), std::string::npos);
  EXPECT_NE(stream.hello.exe().find("agent_sender_test"), std::string::npos);
  EXPECT_FALSE(stream.hello.forked_child());
  EXPECT_EQ(stream.hello.threshold_ns(), 1'000'000);
  EXPECT_EQ(stream.hello.workers(), "main");
  EXPECT_GE(stream.modules_frames, 1);
  EXPECT_GE(stream.modules.modules_size(), 2);
  ASSERT_EQ(stream.events.size(), 3u);
  // Two records share a stack: one Stack definition for them.
  EXPECT_EQ(stream.stack_definitions, 2);
  EXPECT_EQ(stream.events[0].stack(), stream.events[1].stack());
  const wire::Event& first = stream.events[0];
  EXPECT_EQ(first.kind(), wire::KIND_MUTEX);
  EXPECT_EQ(first.tid(), gettid());
  EXPECT_EQ(first.duration_ns(), 2'000'000);
  EXPECT_EQ(first.function(), "pthread_mutex_lock");
  EXPECT_EQ(stream.strings.at(first.thread_name()), "worker-1");
  EXPECT_EQ(stream.strings.at(first.task()), "req-1");
  EXPECT_TRUE(first.in_task());
  EXPECT_EQ(stream.events[1].task(), 0u);
  const int64_t unix_now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count();
  EXPECT_LT(std::abs(first.start_unix_ns() - unix_now_ns), 60'000'000'000);
  // The library names no frame of a file-backed object (the collector does, by
  // build-id): it ships the pc inside the announced test binary.
  const uint64_t innermost = stream.stacks.at(first.stack())[0];
  EXPECT_EQ(stream.symbols.count(innermost), 0u);
  const wire::Module* module = module_of(stream.modules, innermost);
  ASSERT_NE(module, nullptr);
  EXPECT_NE(module->path().find("agent_sender_test"), std::string::npos) << module->path();
  EXPECT_FALSE(module->build_id().empty());
  EXPECT_GT(innermost - module->base(), 0u);
  EXPECT_EQ(stream.strings.at(stream.events[2].thread_name()), "worker-2");
  ASSERT_TRUE(stream.has_counters);
  EXPECT_GE(stream.counters.events_recorded(), 3u);
  EXPECT_EQ(stream.goodbye.reason(), "exit");
  EXPECT_EQ(stream.goodbye.exit_status(), 3);
  EXPECT_FALSE(collector.malformed());
  // After shutdown the agent takes nothing.
  EXPECT_FALSE(agent_submit(make_record(1, "worker-1", pc_in(stack_function_a))));
}

// 10,000 submits with nobody listening: all complete at once, and every record is
// accounted for as a queue-full or no-collector drop.
TEST_F(SenderTest, AbsentCollectorCountsDropsAndNeverBlocks) {
  ASSERT_TRUE(sender_start(options()));
  const CountersInfo before = sender_counters();
  const auto start = Clock::now();
  int accepted = 0;
  for (int i = 0; i < 10'000; ++i)
    accepted += agent_submit(make_record(1, "w", pc_in(stack_function_a)));
  const auto elapsed = Clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::seconds(2));  // sanity bound: never waits
  EXPECT_EQ(sender_flush(5000), 0);
  const CountersInfo after = sender_counters();
  EXPECT_EQ(after.dropped_no_collector - before.dropped_no_collector, uint64_t(accepted));
  EXPECT_EQ(after.dropped_queue_full - before.dropped_queue_full, uint64_t(10'000 - accepted));
  const auto shutdown_start = Clock::now();
  sender_shutdown("exit", 0, 1'000'000'000);
  EXPECT_LT(Clock::now() - shutdown_start, std::chrono::milliseconds(1500));
}

TEST_F(SenderTest, KilledCollectorCostsDropsThenNewStreamRedefinesIds) {
  auto collector = std::make_unique<TestCollector>(socket_path_);
  ASSERT_TRUE(sender_start(options()));
  ASSERT_TRUE(agent_submit(make_record(1, "worker-1", pc_in(stack_function_a))));
  EXPECT_EQ(sender_flush(5000), 0);
  ASSERT_TRUE(TestCollector::wait_for([&] { return event_count(*collector, 0) == 1; }, 5000));

  collector->kill_connections();
  collector->stop_listening();
  const CountersInfo before = sender_counters();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(agent_submit(make_record(1, "worker-1", pc_in(stack_function_a))));
    EXPECT_EQ(sender_flush(5000), 0);
  }
  EXPECT_EQ(sender_counters().dropped_no_collector - before.dropped_no_collector, 5u);

  collector = std::make_unique<TestCollector>(socket_path_);  // the collector comes back
  ASSERT_TRUE(TestCollector::wait_for([&] { return !collector->frames(0).empty(); },
                                      5000));  // reconnected (backoff <= 1 s)
  ASSERT_TRUE(agent_submit(make_record(1, "worker-1", pc_in(stack_function_a))));
  EXPECT_EQ(sender_flush(5000), 0);
  ASSERT_TRUE(TestCollector::wait_for([&] { return event_count(*collector, 0) == 1; }, 5000));
  const Stream stream = check_stream(collector->frames(0));  // definitions repeated
  ASSERT_EQ(stream.events.size(), 1u);
  EXPECT_EQ(stream.strings.at(stream.events[0].thread_name()), "worker-1");
  ASSERT_TRUE(stream.has_counters);
  EXPECT_GE(stream.counters.dropped_no_collector(), 5u);
}

// A collector that stops reading (SIGSTOP): submits stay immediate, the sender's
// buffer stays bounded, drops are counted, and shutdown does not wait for it.
TEST_F(SenderTest, StoppedCollectorCostsDropsNotLatency) {
  TestCollector collector(socket_path_);
  collector.set_paused(true);
  SenderOptions opts = options();
  opts.max_pending_bytes = 64 << 10;
  ASSERT_TRUE(sender_start(opts));
  const CountersInfo before = sender_counters();
  const auto start = Clock::now();
  Clock::duration slowest{};
  // 20,000 events (~1 MB) against ~300 KB of socket buffer and 64 KiB of ours. The
  // pauses let the sender keep the queue from filling, so the drops are the
  // collector's (dropped_no_collector), not the queue's.
  for (int i = 0; i < 20'000; ++i) {
    const auto submit_start = Clock::now();
    agent_submit(make_record(1, "worker", pc_in(stack_function_a)));
    slowest = std::max(slowest, Clock::now() - submit_start);
    if (i % 2000 == 1999) std::this_thread::sleep_for(std::chrono::milliseconds(60));
  }
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_LT(slowest,
            std::chrono::seconds(1));  // loose: a loaded CI box preempts; waiting would be forever
  const auto flush_start = Clock::now();
  sender_flush(300);  // may time out: bytes are stuck in our bounded buffer
  EXPECT_LT(Clock::now() - flush_start, std::chrono::milliseconds(1000));
  EXPECT_GT(sender_counters().dropped_no_collector - before.dropped_no_collector, 0u);
  const auto shutdown_start = Clock::now();
  sender_shutdown("exit", 0, 1'000'000'000);
  EXPECT_LT(Clock::now() - shutdown_start, std::chrono::milliseconds(1500));
  collector.set_paused(false);  // what did arrive is a well-formed stream prefix
  ASSERT_TRUE(TestCollector::wait_for([&] { return !collector.frames(0).empty(); }, 5000));
  EXPECT_TRUE(collector.frames(0)[0].has_hello());
  EXPECT_FALSE(collector.malformed());
}

// Before an exec the queued records are flushed and the stream ends with
// Goodbye("exec"), the sender still running; when the exec fails, the next
// records go out on a new stream (a second Hello), and exit still says goodbye.
TEST_F(SenderTest, ExecFlushesSaysGoodbyeAndAFailedExecStartsANewStream) {
  TestCollector collector(socket_path_);
  ASSERT_TRUE(sender_start(options()));
  ASSERT_TRUE(agent_submit(make_record(1, "worker", pc_in(stack_function_a))));
  ASSERT_TRUE(sender_before_exec(1'000'000'000));
  ASSERT_TRUE(TestCollector::wait_for(
      [&] {
        const auto frames = collector.frames(0);
        return !frames.empty() && check_stream(frames).has_goodbye;
      },
      5000));
  const Stream before_exec = check_stream(collector.frames(0));
  EXPECT_EQ(before_exec.goodbye.reason(), "exec");
  EXPECT_EQ(before_exec.events.size(), 1u);
  sender_after_failed_exec();  // the exec returned: still watched
  ASSERT_TRUE(agent_submit(make_record(1, "worker", pc_in(stack_function_b))));
  EXPECT_EQ(sender_flush(5000), 0);
  ASSERT_TRUE(TestCollector::wait_for([&] { return event_count(collector, 1) == 1; }, 5000));
  sender_shutdown("exit", 0, 1'000'000'000);
  ASSERT_TRUE(
      TestCollector::wait_for([&] { return check_stream(collector.frames(1)).has_goodbye; }, 5000));
  const Stream after_exec = check_stream(collector.frames(1));
  EXPECT_EQ(after_exec.goodbye.reason(), "exit");
  EXPECT_TRUE(after_exec.hello.pid() == getpid());
}

// While the collector is stopped, what the sender holds stays bounded: its
// buffer near max_pending_bytes (Counters frames are not appended past it), and
// bw_flush's markers do not pile up one per loop turn (issue 10, defect 3).
TEST_F(SenderTest, StoppedCollectorKeepsTheSendersMemoryBounded) {
  TestCollector collector(socket_path_);
  collector.set_paused(true);
  SenderOptions opts = options();
  opts.max_pending_bytes = 64 << 10;
  ASSERT_TRUE(sender_start(opts));
  // Fill the socket and our buffer, then keep records coming for 1.5 s (the
  // sender turns every 5 ms while bytes wait: ~300 turns).
  const auto end = Clock::now() + std::chrono::milliseconds(1500);
  for (int i = 0; Clock::now() < end; ++i) {
    agent_submit(make_record(1, "worker", pc_in(stack_function_a)));
    if (i % 200 == 199) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(TestCollector::wait_for([] { return sender_memory_stats().done_markers > 0; }, 5000));
  const SenderMemoryStats held = sender_memory_stats();
  EXPECT_LE(held.done_markers, 4u);
  // std::string grows by doubling: at most twice the limit plus one frame.
  EXPECT_LE(held.pending_buffer_bytes, 2 * opts.max_pending_bytes + 4096);
  EXPECT_GT(sender_counters().dropped_no_collector, 0u);
  collector.set_paused(false);
}

// 20,000 distinct task labels and stacks: the interning tables stay at their
// bounds, and every event still names its own label and stack (a forgotten
// value seen again is defined again under a new id).
TEST_F(SenderTest, DistinctLabelsAndStacksBeyondTheTablesAreRedefinedNotKept) {
  TestCollector collector(socket_path_);
  ASSERT_TRUE(sender_start(options()));
  constexpr int kRecords = 20'000;
  for (int i = 0; i < kRecords; ++i) {
    const std::string label = "request-" + std::to_string(i % 10'000);  // each seen twice
    Record record = make_record(1, "worker", pc_in(stack_function_a), label.c_str());
    record.frames[1] = 0x100000 + static_cast<uint64_t>(i % 10'000) * 16;
    while (!agent_submit(record)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (i % 1000 == 999) {
      ASSERT_EQ(sender_flush(5000), 0);
    }
  }
  ASSERT_EQ(sender_flush(5000), 0);
  const SenderMemoryStats held = sender_memory_stats();
  EXPECT_LE(held.strings, 4096u);
  EXPECT_LE(held.stacks, 4096u);
  EXPECT_LE(held.symbols, 8192u);
  ASSERT_TRUE(
      TestCollector::wait_for([&] { return event_count(collector, 0) == kRecords; }, 10'000));
  const Stream stream = check_stream(collector.frames(0));
  ASSERT_EQ(stream.events.size(), static_cast<size_t>(kRecords));
  for (int i : {0, 4095, 4096, 9999, 10'000, 19'999}) {
    const wire::Event& event = stream.events[i];
    EXPECT_EQ(stream.strings.at(event.task()), "request-" + std::to_string(i % 10'000)) << i;
    EXPECT_EQ(stream.stacks.at(event.stack()).at(1),
              0x100000 + static_cast<uint64_t>(i % 10'000) * 16)
        << i;
  }
}

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
}  // namespace blockwatch::interpose
