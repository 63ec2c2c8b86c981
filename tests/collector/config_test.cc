// Unit tests of config parsing (positioned errors), durations, settings precedence
// and the stack classifier's built-in and configured rules.
#include "collector/config.h"

#include <gtest/gtest.h>

#include <map>

namespace blockwatch::collector {
namespace {

TEST(Duration, ParsesUnits) {
  int64_t ns = -1;
  EXPECT_TRUE(parse_duration("0", &ns));
  EXPECT_EQ(ns, 0);
  EXPECT_TRUE(parse_duration("250us", &ns));
  EXPECT_EQ(ns, 250'000);
  EXPECT_TRUE(parse_duration("1.5ms", &ns));
  EXPECT_EQ(ns, 1'500'000);
  EXPECT_TRUE(parse_duration("2s", &ns));
  EXPECT_EQ(ns, 2'000'000'000);
  EXPECT_FALSE(parse_duration("5 ms", &ns));
  EXPECT_FALSE(parse_duration("ms", &ns));
  EXPECT_FALSE(parse_duration("1h", &ns));
  EXPECT_EQ(format_duration(1'500'000), "1.5ms");
  EXPECT_EQ(format_duration(999), "999ns");
}

TEST(Config, ParsesRules) {
  config::Config c;
  std::string error;
  ASSERT_TRUE(parse_config_text(R"(
    workers: "name:worker-.*"
    threshold: "2ms"
    fail_on: "blocking>=5ms"
    path { name: "model" frame: "^model::" }
    allow { frame: "Flush" kind: "fsync" reason: "on purpose" }
  )",
                                "test.conf", &c, &error))
      << error;
  EXPECT_EQ(c.workers(), "name:worker-.*");
  ASSERT_EQ(c.path_size(), 1);
  EXPECT_EQ(c.path(0).name(), "model");
  EXPECT_EQ(c.allow(0).reason(), "on purpose");
}

TEST(Config, ErrorsCarryFileLineAndColumn) {
  config::Config c;
  std::string error;
  EXPECT_FALSE(
      parse_config_text("workers: \"main\"\n\nthreshhold: \"1ms\"\n", "bw.conf", &c, &error));
  EXPECT_EQ(error.rfind("bw.conf:3:", 0), 0u) << error;
  EXPECT_NE(error.find("threshhold"), std::string::npos) << error;

  EXPECT_FALSE(parse_config_text("path { name: \"x\"\n frame: 12 }\n", "bw.conf", &c, &error));
  EXPECT_EQ(error.rfind("bw.conf:2:", 0), 0u) << error;
  EXPECT_NE(error.find("Expected string"), std::string::npos) << error;

  EXPECT_FALSE(parse_config_text("threshold: \"fast\"", "bw.conf", &c, &error));
  EXPECT_NE(error.find("bad duration"), std::string::npos);
  EXPECT_FALSE(parse_config_text("path { frame: \"x\" }", "bw.conf", &c, &error));
  EXPECT_NE(error.find("needs a name"), std::string::npos);
}

TEST(Settings, FlagsOverrideEnvironmentOverrideFile) {
  config::Config file;
  file.set_workers("main");
  file.set_threshold("5ms");
  file.set_stall_threshold("50ms");
  file.add_fail_on("any");
  std::map<std::string, std::string> env = {{"BLOCKWATCH_THRESHOLD", "3ms"},
                                            {"BLOCKWATCH_WORKERS", "name:env"},
                                            {"BLOCKWATCH_FAIL_ON", "kind:fsync,stall>=1ms"}};
  auto lookup = [&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  FlagSettings flags;
  flags.workers = "name:flag";
  Settings s;
  std::string error;
  ASSERT_TRUE(resolve_settings(file, flags, lookup, &s, &error)) << error;
  EXPECT_EQ(s.workers, "name:flag");            // flag
  EXPECT_EQ(s.threshold_ns, 3'000'000);         // environment
  EXPECT_EQ(s.stall_threshold_ns, 50'000'000);  // file
  EXPECT_EQ(s.fail_on, (std::vector<std::string>{"kind:fsync", "stall>=1ms"}));
  flags.threshold = "nope";
  EXPECT_FALSE(resolve_settings(file, flags, lookup, &s, &error));
  EXPECT_NE(error.find("bad threshold"), std::string::npos);
}

std::vector<StackFrame> stack(std::initializer_list<const char*> functions) {
  std::vector<StackFrame> frames;
  for (const char* f : functions) frames.push_back({f, "/usr/bin/app", 0, 0});
  return frames;
}

StackFrame libc(const char* function) {
  return {function, "/lib/x86_64-linux-gnu/libc.so.6", 0, 0};
}

TEST(Classifier, BuiltinIdleRulesRecogniseExecutorWaits) {
  std::string error;
  auto c = StackClassifier::create(config::Config{}, &error);
  ASSERT_NE(c, nullptr) << error;
  auto asio_epoll = stack({"boost::asio::detail::epoll_reactor::run(long, op_queue&)",
                           "boost::asio::detail::scheduler::do_run_one(...)"});
  asio_epoll.insert(asio_epoll.begin(), libc("epoll_wait"));
  EXPECT_TRUE(c->classify("poll", asio_epoll).idle);
  EXPECT_TRUE(
      c->classify("futex", stack({"tokio::runtime::park::Inner::park::h12ab",
                                  "tokio::runtime::scheduler::multi_thread::worker::Context::run"}))
          .idle);
  auto uv = stack({"uv__io_poll", "uv_run", "main"});
  uv.insert(uv.begin(), libc("epoll_wait"));
  EXPECT_TRUE(c->classify("poll", uv).idle);
  auto pool = stack({"std::condition_variable::wait(std::unique_lock<std::mutex>&)",
                     "blockwatch::ThreadPool::worker_main(char const*, int)"});
  pool.insert(pool.begin(), libc("pthread_cond_wait"));
  EXPECT_TRUE(c->classify("condvar", pool).idle);
  EXPECT_FALSE(c->classify("mutex", pool).idle);  // pool rule is for condvar waits only
}

TEST(Classifier, HandlerBlockingUnderTheSchedulerIsNotIdle) {
  std::string error;
  auto c = StackClassifier::create(config::Config{}, &error);
  ASSERT_NE(c, nullptr);
  // A handler that locks a mutex: do_run_one is below user frames, not the caller.
  auto handler =
      stack({"app::Handler::operator()()", "boost::asio::detail::executor_op::do_complete",
             "boost::asio::detail::scheduler::do_run_one(...)"});
  handler.insert(handler.begin(), libc("pthread_mutex_lock"));
  EXPECT_FALSE(c->classify("mutex", handler).idle);
  auto uv_callback = stack({"on_read", "uv__read", "uv__io_poll", "uv_run"});
  EXPECT_FALSE(c->classify("fsync", uv_callback).idle);
  // Node's execSync waits for its child on a private libuv loop: not idle.
  auto exec_sync = stack({"uv__io_poll", "uv_run",
                          "node::SyncProcessRunner::TryInitializeAndRunLoop(v8::Local<v8::Value>)",
                          "node::SyncProcessRunner::Run(v8::Local<v8::Value>)"});
  exec_sync.insert(exec_sync.begin(), libc("epoll_wait"));
  EXPECT_FALSE(c->classify("poll", exec_sync).idle);
  auto job = stack({"app::job()", "std::function<void()>::operator()",
                    "blockwatch::ThreadPool::worker_main(char const*, int)"});
  EXPECT_FALSE(c->classify("condvar", job).idle);
}

TEST(Classifier, TokioBlockingPoolIsNotWorkerBlocking) {
  std::string error;
  auto c = StackClassifier::create(config::Config{}, &error);
  ASSERT_NE(c, nullptr);
  auto blocking =
      stack({"std::fs::read", "app::load", "tokio::runtime::blocking::task::BlockingTask::poll",
             "tokio::runtime::blocking::pool::Inner::run::h1"});
  EXPECT_TRUE(c->classify("read", blocking).not_worker);
  // tokio runs its workers as pool jobs: a worker's blocking has the pool's loop
  // under its scheduler loop, and is the worker's own.
  auto on_worker = stack({"std::thread::sleep", "app::handler::{{closure}}",
                          "tokio::runtime::scheduler::multi_thread::worker::run",
                          "tokio::runtime::blocking::pool::Inner::run"});
  EXPECT_FALSE(c->classify("sleep", on_worker).not_worker);
  // ... unless the worker handed its scheduler away with block_in_place.
  auto in_place =
      stack({"std::thread::sleep", "tokio::task::blocking::block_in_place",
             "app::handler::{{closure}}", "tokio::runtime::scheduler::multi_thread::worker::run",
             "tokio::runtime::blocking::pool::Inner::run"});
  EXPECT_TRUE(c->classify("sleep", in_place).not_worker);
}

TEST(Classifier, UnlessFrameExcusesAStack) {
  config::Config rules;
  std::string error;
  ASSERT_TRUE(parse_config_text(R"(
    path { name: "db" frame: "^db::" unless_frame: "^db::cache::" }
  )",
                                "c", &rules, &error))
      << error;
  auto c = StackClassifier::create(rules, &error);
  ASSERT_NE(c, nullptr) << error;
  EXPECT_EQ(c->classify("read", stack({"read", "db::query"})).path, "db");
  EXPECT_EQ(c->classify("read", stack({"read", "db::query", "db::cache::fill"})).path, "");
}

TEST(Classifier, ConfiguredRulesComeFirst) {
  config::Config rules;
  std::string error;
  ASSERT_TRUE(parse_config_text(R"(
    path { name: "model" frame: "^model::" }
    path { name: "worker-pool" frame: "^pool::" }
    allow { frame: "Logger::Flush" kind: "fsync" reason: "log durability" }
    idle { frame: "MyLoop::Wait" max_depth: 1 }
  )",
                                "c", &rules, &error))
      << error;
  auto c = StackClassifier::create(rules, &error);
  ASSERT_NE(c, nullptr) << error;
  auto model = c->classify("mutex", stack({"model::Tokenize", "pool::Run"}));
  EXPECT_EQ(model.path, "model");
  EXPECT_FALSE(model.allowed);
  auto flush = c->classify("fsync", stack({"Logger::Flush", "pool::Run"}));
  EXPECT_TRUE(flush.allowed);
  EXPECT_EQ(flush.allow_reason, "log durability");
  EXPECT_EQ(flush.path, "worker-pool");
  EXPECT_FALSE(c->classify("write", stack({"Logger::Flush"})).allowed);  // kind filter
  EXPECT_TRUE(c->classify("poll", stack({"MyLoop::Wait", "main"})).idle);
  EXPECT_FALSE(c->classify("poll", stack({"cb", "MyLoop::Wait", "main"})).idle);

  config::Config bad;
  bad.add_allow()->add_frame("(unclosed");
  EXPECT_EQ(StackClassifier::create(bad, &error), nullptr);
  EXPECT_NE(error.find("bad regex"), std::string::npos);
}

StackFrame at_line(const char* function, const char* file, bool inlined = false) {
  StackFrame frame{function, "/usr/bin/app", 0, 0};
  frame.file = file;
  frame.line = 10;
  frame.inlined = inlined;
  return frame;
}

TEST(Classifier, FileRulesMatchSourceFiles) {
  config::Config rules;
  std::string error;
  ASSERT_TRUE(parse_config_text(R"(
    path { name: "model" file: "/src/model/" }
    allow { file: "logging\\.cc$" kind: "fsync" reason: "log durability" }
    idle { file: "event_loop\\.cc$" max_depth: 1 }
  )",
                                "c", &rules, &error))
      << error;
  auto c = StackClassifier::create(rules, &error);
  ASSERT_NE(c, nullptr) << error;
  std::vector<StackFrame> infer = {at_line("Infer", "/srv/app/src/model/infer.cc"),
                                   at_line("main", "/srv/app/src/main.cc")};
  EXPECT_EQ(c->classify("mutex", infer).path, "model");
  EXPECT_TRUE(c->classify("fsync", {at_line("Flush", "/srv/app/src/logging.cc")}).allowed);
  EXPECT_FALSE(c->classify("fsync", {at_line("Flush", "/srv/app/src/logging.cc.bak")}).allowed);
  // A frame without source information never matches a file rule.
  EXPECT_EQ(c->classify("mutex", stack({"Infer", "main"})).path, "");
  EXPECT_TRUE(c->classify("poll", {at_line("Loop::Wait", "/s/event_loop.cc")}).idle);
}

// Functions inlined into a frame are searched at that frame's depth: the injected
// library, which sees only return addresses, counts depth the same way.
TEST(Classifier, InlinedFramesShareTheirFramesDepth) {
  config::Config rules;
  std::string error;
  ASSERT_TRUE(
      parse_config_text(R"(idle { frame: "MyLoop::Run" max_depth: 1 })", "c", &rules, &error))
      << error;
  auto c = StackClassifier::create(rules, &error);
  ASSERT_NE(c, nullptr) << error;
  std::vector<StackFrame> inlined_wait = {
      libc("pthread_cond_wait"), at_line("MyLoop::WaitForWork", "/s/loop.h", true),
      at_line("MyLoop::Run", "/s/loop.cc"), at_line("main", "/s/main.cc")};
  EXPECT_TRUE(c->classify("condvar", inlined_wait).idle);
  // The same helper as a real call is a frame of its own: MyLoop::Run is at depth 2.
  inlined_wait[1].inlined = false;
  EXPECT_FALSE(c->classify("condvar", inlined_wait).idle);
}

}  // namespace
}  // namespace blockwatch::collector
