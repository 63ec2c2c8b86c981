// The built-in rules' patterns, checked on realistic frame names and near misses:
// each pattern, and each rule's alternation as the matchers build it, compiles
// with glibc's regcomp (POSIX ERE, the library's dialect) and matches at least
// one sample, so none goes untested; and `\b` stops at `_`. Both sides apply
// them with one matcher (stack_rule.h), so no second dialect needs checking.
#include "common/builtin_rules.h"

#include <gtest/gtest.h>
#include <regex.h>

#include <string>
#include <utility>
#include <vector>

namespace blockwatch::builtin_rules {
namespace {

// Frame names as the symbolizers print them, and names one character away.
const char* const kSamples[] = {
    "boost::asio::detail::epoll_reactor::run(long, boost::asio::detail::op_queue<>&)",
    "boost::asio::detail::conditionally_enabled_event::wait<>()",
    "boost::asio::detail::posix_event::wait<>()",
    "boost::asio::detail::scheduler::do_wait_one()",
    "boost::asio::detail::scheduler::do_run_one()",
    "boost::asio::detail::scheduler::run(boost::system::error_code&)",
    "boost::asio::detail::scheduler::run",
    "boost::asio::detail::scheduler::run_one()",
    "boost::asio::detail::scheduler::runner()",
    "tokio::runtime::park::CachedParkThread::park",
    "tokio::runtime::scheduler::multi_thread::worker::Context::park_timeout",
    "tokio::runtime::scheduler::multi_thread::park::Parker::park",
    "tokio::runtime::scheduler::current_thread::Context::park",
    "tokio::runtime::io::driver::Driver::turn",
    "tokio::runtime::time::Driver::park_internal",
    "mio::poll::Poll::poll",
    "uv__io_poll",
    "uv_run",
    "uv_run_once",
    "my_uv_run",
    "uv__epoll_ctl",
    "node::SyncProcessRunner::TryInitializeAndRunLoop(v8::Local<v8::Value>)",
    "ThreadPool::worker_main()",
    "my::thread_pool<int>::worker()",
    "WorkerThread::Run()",
    "WorkerThread::RunTask()",
    "worker_loop",
    "tokio::runtime::blocking::pool::Inner::run",
    "tokio::runtime::scheduler::multi_thread::worker::run",
    "tokio::runtime::scheduler::multi_thread::worker::run_task",
    "tokio::runtime::scheduler::multi_thread::worker::block_in_place",
    "tokio::task::blocking::block_in_place",
    "std::condition_variable::wait(std::unique_lock<std::mutex>&)",
    "handle_request(int)",
    "main",
    "",
};

// Joined as wait_classifier.cc and collector/classifier.cc join a rule's patterns.
std::string alternation(const char* const* patterns, int count) {
  std::string joined;
  for (int i = 0; i < count; ++i) {
    if (i > 0) joined += '|';
    joined += patterns[i];
  }
  return joined;
}

// Every sample `ere` matches (glibc regcomp, REG_EXTENDED: the library's dialect).
std::vector<std::string> ere_matches(const std::string& pattern) {
  regex_t ere;
  const int rc = regcomp(&ere, pattern.c_str(), REG_EXTENDED | REG_NOSUB);
  EXPECT_EQ(rc, 0) << "regcomp rejects " << pattern;
  std::vector<std::string> matched;
  if (rc != 0) return matched;
  for (const char* sample : kSamples) {
    if (regexec(&ere, sample, 0, nullptr, 0) == 0) matched.emplace_back(sample);
  }
  regfree(&ere);
  return matched;
}

// Every rule's patterns, one by one and as the alternation the matchers build.
std::vector<std::string> all_patterns() {
  std::vector<std::string> patterns;
  for (const Rule& rule : kRules) {
    for (int i = 0; i < rule.pattern_count; ++i) patterns.emplace_back(rule.patterns[i]);
    for (int i = 0; i < rule.unless_count; ++i) patterns.emplace_back(rule.unless[i]);
    patterns.push_back(alternation(rule.patterns, rule.pattern_count));
    if (rule.unless_count > 0) patterns.push_back(alternation(rule.unless, rule.unless_count));
  }
  return patterns;
}

TEST(BuiltinRules, EveryPatternCompilesAndMatchesASample) {
  for (const std::string& pattern : all_patterns()) {
    EXPECT_FALSE(ere_matches(pattern).empty()) << "no sample exercises " << pattern;
  }
}

// The rule (index into kRules) whose alternation matches `function`, or -1.
int matching_rule(const std::string& function) {
  for (int i = 0; i < count_of(kRules); ++i) {
    regex_t ere;
    const std::string pattern = alternation(kRules[i].patterns, kRules[i].pattern_count);
    if (regcomp(&ere, pattern.c_str(), REG_EXTENDED | REG_NOSUB) != 0) continue;
    const bool found = regexec(&ere, function.c_str(), 0, nullptr, 0) == 0;
    regfree(&ere);
    if (found) return i;
  }
  return -1;
}

// Rust's v0 mangling (a newer toolchain's default, and its std's) names a
// method `<Type>::method` and keeps generic arguments: the rules take both
// schemes alike. The v0 names are libiberty's output for symbols of the tokio
// 1.24 test program (tests/tokio) built with -Csymbol-mangling-version=v0.
TEST(BuiltinRules, RustV0NamesMatchLikeLegacyNames) {
  const std::pair<const char*, const char*> kLegacyAndV0[] = {
      {"tokio::runtime::park::CachedParkThread::park",
       "<tokio::runtime::park::CachedParkThread>::park"},
      {"tokio::runtime::scheduler::multi_thread::worker::Context::park",
       "<tokio::runtime::scheduler::multi_thread::worker::Context>::park"},
      {"tokio::runtime::scheduler::multi_thread::park::Parker::park",
       "<tokio::runtime::scheduler::multi_thread::park::Parker>::park"},
      {"tokio::runtime::scheduler::current_thread::Context::park",
       "<tokio::runtime::scheduler::current_thread::Context>::park"},
      {"tokio::runtime::io::driver::Driver::turn", "<tokio::runtime::io::driver::Driver>::turn"},
      {"tokio::runtime::time::Driver::park_internal",
       "<tokio::runtime::time::Driver>::park_internal"},
      {"mio::poll::Poll::poll", "<mio::poll::Poll>::poll"},
      {"tokio::runtime::blocking::pool::Inner::run",
       "<tokio::runtime::blocking::pool::Inner>::run"},
      {"tokio::runtime::scheduler::multi_thread::worker::run",
       "tokio::runtime::scheduler::multi_thread::worker::run"},
      {"tokio::task::blocking::block_in_place",
       "tokio::task::blocking::block_in_place::<tokio_target::blocking_pool_in_place_job, ()>"},
      {"tokio::runtime::scheduler::multi_thread::worker::run_task",
       "<tokio::runtime::scheduler::multi_thread::worker::Context>::run_task"},
  };
  for (const auto& [legacy, v0] : kLegacyAndV0) {
    EXPECT_EQ(matching_rule(v0), matching_rule(legacy)) << legacy << " / " << v0;
  }
  EXPECT_EQ(matching_rule("<tokio::runtime::scheduler::multi_thread::worker::Context>::run_task"),
            -1);
}

TEST(BuiltinRules, SystemFramesInBothRustManglings) {
  EXPECT_TRUE(is_system_frame("parking_lot::raw_mutex::RawMutex::lock_slow", "app"));
  EXPECT_TRUE(is_system_frame("<parking_lot::raw_mutex::RawMutex>::lock_slow", "app"));
  EXPECT_TRUE(is_system_frame("<std::sys::sync::condvar::futex::Condvar>::wait", "app"));
  EXPECT_FALSE(is_system_frame("<app::Pool as parking_lot::Lock>::lock", "app"));
  EXPECT_FALSE(is_system_frame("<alloc::sync::Arc<app::Pool>>::drop_slow", "app"));
}

TEST(BuiltinRules, WordBoundaryStopsAtUnderscore) {
  // `run\b` must not take run_one or run_task: glibc's ERE supports \b.
  EXPECT_EQ(
      ere_matches("boost::asio::detail::scheduler::run\\b"),
      (std::vector<std::string>{"boost::asio::detail::scheduler::run(boost::system::error_code&)",
                                "boost::asio::detail::scheduler::run"}));
  EXPECT_EQ(ere_matches("tokio::runtime::scheduler::multi_thread::worker::run\\b"),
            (std::vector<std::string>{"tokio::runtime::scheduler::multi_thread::worker::run"}));
}

}  // namespace
}  // namespace blockwatch::builtin_rules
