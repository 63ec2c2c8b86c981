// The built-in rules' patterns mean the same to both engines that run them: the
// collector's std::regex (ECMAScript) and the injected library's regcomp (POSIX
// ERE). Each pattern, and each rule's alternation as both sides build it, is
// compiled both ways and searched in realistic frame names and near misses;
// every pattern must match at least one sample, so no pattern goes untested.
#include "common/builtin_rules.h"

#include <gtest/gtest.h>
#include <regex.h>

#include <regex>
#include <string>
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

// Searches every sample with `pattern` in both engines; returns how many matched.
int expect_engines_agree(const std::string& pattern) {
  const std::regex ecmascript(pattern, std::regex::ECMAScript);
  regex_t ere;
  const int rc = regcomp(&ere, pattern.c_str(), REG_EXTENDED | REG_NOSUB);
  EXPECT_EQ(rc, 0) << "regcomp rejects " << pattern;
  if (rc != 0) return 0;
  int matched = 0;
  for (const char* sample : kSamples) {
    const bool by_ecmascript = std::regex_search(sample, ecmascript);
    const bool by_ere = regexec(&ere, sample, 0, nullptr, 0) == 0;
    EXPECT_EQ(by_ecmascript, by_ere) << "pattern " << pattern << " on " << sample;
    matched += by_ecmascript ? 1 : 0;
  }
  regfree(&ere);
  return matched;
}

TEST(BuiltinRules, EveryPatternMeansTheSameInBothEngines) {
  for (const Rule& rule : kRules) {
    for (int i = 0; i < rule.pattern_count; ++i) {
      EXPECT_GT(expect_engines_agree(rule.patterns[i]), 0)
          << "no sample exercises " << rule.patterns[i];
    }
    for (int i = 0; i < rule.unless_count; ++i) {
      EXPECT_GT(expect_engines_agree(rule.unless[i]), 0)
          << "no sample exercises " << rule.unless[i];
    }
    expect_engines_agree(alternation(rule.patterns, rule.pattern_count));
    if (rule.unless_count > 0) expect_engines_agree(alternation(rule.unless, rule.unless_count));
  }
}

TEST(BuiltinRules, WordBoundaryStopsAtUnderscoreInBothEngines) {
  // `run\b` must not take run_one: the near miss both engines have to agree on.
  EXPECT_EQ(expect_engines_agree("boost::asio::detail::scheduler::run\\b"), 2);
  EXPECT_EQ(expect_engines_agree("tokio::runtime::scheduler::multi_thread::worker::run\\b"), 1);
}

}  // namespace
}  // namespace blockwatch::builtin_rules
