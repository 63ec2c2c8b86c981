// What the sender's integration tests share (sender_test.cc,
// sender_output_test.cc): records carrying pcs of this executable, a decoded
// stream checked for the wire contract (Hello first, every reference defined
// before use), and the fixture that owns a collector socket path.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "interpose/transport/sender.h"
#include "test_collector.h"

namespace blockwatch::interpose::sender_test {

using testing::TestCollector;

// Two functions of this executable whose pcs the test records carry (defined in
// sender_test_support.cc: the executable exports them, ENABLE_EXPORTS).
extern "C" int stack_function_a(int x);
extern "C" int stack_function_b(int x);

inline uint64_t pc_in(int (*function)(int)) { return reinterpret_cast<uint64_t>(function) + 2; }

inline Record make_record(uint8_t kind, const char* thread_name, uint64_t innermost_pc,
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

inline const wire::Module* module_of(const wire::Modules& modules, uint64_t pc) {
  for (const wire::Module& module : modules.modules()) {
    if (module.start() <= pc - 1 && pc - 1 < module.end()) return &module;
  }
  return nullptr;
}

inline Stream check_stream(const std::vector<wire::Frame>& frames) {
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
inline bool has_goodbye(TestCollector& collector, size_t connection) {
  for (const auto& frame : collector.frames(connection)) {
    if (frame.has_goodbye()) return true;
  }
  return false;
}

inline size_t event_count(TestCollector& collector, size_t connection) {
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

}  // namespace blockwatch::interpose::sender_test
