// Unit tests of aggregation: hotspot keys, exact counts, percentile accuracy,
// merging across processes of one exe, idle/allowed handling, summary and drops.
#include "collector/aggregate.h"

#include <gtest/gtest.h>

#include <random>

#include "tests/collector/wire_builder.h"

namespace blockwatch::collector {
namespace {

using testing::WireBuilder;

Report aggregate(const std::vector<std::string>& streams, const config::Config& rules = {}) {
  std::string error;
  std::shared_ptr<const StackClassifier> classifier = StackClassifier::create(rules, &error);
  Aggregator aggregator(classifier);
  for (const auto& bytes : streams) {
    StreamHandler* sink = aggregator.begin_stream();
    StreamDecoder decoder(sink);
    EXPECT_TRUE(decoder.feed(bytes.data(), bytes.size())) << decoder.error();
    EXPECT_TRUE(decoder.finish());
    aggregator.end_stream(sink, "disconnected");
  }
  return aggregator.report();
}

WireBuilder process(int pid, const std::string& exe = "/usr/bin/svc") {
  // Each process maps the same code at its own address: same offsets, other pcs.
  uint64_t base = uint64_t{0x1000000} * pid;
  WireBuilder w;
  w.hello(pid, exe)
      .string(1, "worker-" + std::to_string(pid))
      .string(2, "holder")
      .string(3, "task-a")
      .symbol(base + 0x100, "pthread_mutex_lock", "/lib/x86_64-linux-gnu/libc.so.6")
      .symbol(base + 0x200, "app::handle()", exe)
      .symbol(base + 0x300, "app::flush()", exe)
      .stack(1, {base + 0x100, base + 0x200})
      .stack(2, {base + 0x300});
  return w;
}

TEST(LogHistogram, PercentilesWithinAFewPercent) {
  LogHistogram h;
  std::vector<int64_t> values;
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(13.0, 1.5);  // ~0.4ms median, wide tail
  for (int i = 0; i < 100'000; ++i) {
    auto v = static_cast<int64_t>(dist(rng)) + 1;
    values.push_back(v);
    h.add(v);
  }
  std::sort(values.begin(), values.end());
  for (double q : {0.5, 0.99}) {
    double exact = values[static_cast<size_t>(q * values.size()) - 1];
    EXPECT_NEAR(h.quantile(q) / exact, 1.0, 0.04) << "q=" << q;
  }
  EXPECT_LT(h.bucket_count(), 700u);  // bounded by the spread of values, not their number
  LogHistogram one;
  one.add(8'817'000);
  EXPECT_EQ(one.quantile(0.5), 8'817'000);  // a single sample is exact
  EXPECT_EQ(one.quantile(0.99), 8'817'000);
  LogHistogram empty;
  EXPECT_EQ(empty.quantile(0.5), 0);
}

TEST(Aggregator, CountsExactlyPerKindAndStack) {
  WireBuilder w = process(10);
  for (int i = 1; i <= 100; ++i) w.event(wire::KIND_MUTEX, i * 1000, 1, 1, 11, 3, 0, 2);
  w.event(wire::KIND_FSYNC, 7'000'000, 2, 1).counters(101, 4).goodbye();
  Report r = aggregate({w.bytes});
  ASSERT_EQ(r.hotspots.size(), 2u);
  const Hotspot& mutex = r.hotspots[1];  // fsync has the larger total
  EXPECT_EQ(r.hotspots[0].kind, "fsync");
  EXPECT_EQ(mutex.kind, "mutex");
  EXPECT_EQ(mutex.count, 100u);
  EXPECT_EQ(mutex.total_ns, 5050 * 1000);
  EXPECT_EQ(mutex.max_ns, 100'000);
  EXPECT_NEAR(mutex.p50_ns, 50'000, 2'000);
  EXPECT_NEAR(mutex.p99_ns, 99'000, 3'000);
  EXPECT_EQ(mutex.threads, std::vector<std::string>{"worker-10"});
  EXPECT_EQ(mutex.holders, std::vector<std::string>{"holder"});
  EXPECT_EQ(mutex.tasks, std::vector<std::string>{"task-a"});
  ASSERT_EQ(mutex.stack.size(), 2u);
  EXPECT_EQ(mutex.stack[1].function, "app::handle()");
  EXPECT_EQ(mutex.occurrences.size(), 100u);
  EXPECT_EQ(r.blocking_events, 101u);
  EXPECT_EQ(r.blocked_ns, 5050 * 1000 + 7'000'000);
  EXPECT_EQ(r.dropped, 4u);
  ASSERT_EQ(r.processes.size(), 1u);
  EXPECT_TRUE(r.processes[0].said_goodbye);
  EXPECT_EQ(r.processes[0].end_reason, "exit");
  EXPECT_FALSE(r.processes[0].connected);
}

TEST(Aggregator, MergesProcessesOfOneExeAndCapsOccurrences) {
  WireBuilder a = process(1), b = process(2), other = process(3, "/usr/bin/other");
  for (int i = 0; i < 150; ++i) {
    a.event(wire::KIND_MUTEX, 1000, 1, 1);
    b.event(wire::KIND_MUTEX, 2000, 1, 1);
    other.event(wire::KIND_MUTEX, 1000, 1, 1);
  }
  Report r = aggregate({a.bytes, b.bytes + std::string(), other.bytes});
  ASSERT_EQ(r.hotspots.size(), 2u);  // svc merged (different pcs, same frames), other apart
  const Hotspot& svc = r.hotspots[0];
  EXPECT_EQ(svc.exe, "/usr/bin/svc");
  EXPECT_EQ(svc.count, 300u);
  EXPECT_EQ(svc.pids, (std::vector<int>{1, 2}));
  EXPECT_EQ(svc.threads.size(), 2u);
  EXPECT_EQ(svc.occurrences.size(), kMaxOccurrences);
  EXPECT_EQ(r.processes.size(), 3u);
  EXPECT_EQ(r.processes[0].end_reason, "disconnected");  // no Goodbye
}

TEST(Aggregator, IdleIsDroppedAllowedIsKeptApartPathsTotalled) {
  config::Config rules;
  rules.add_path()->set_name("handlers");
  rules.mutable_path(0)->add_frame("^app::handle");
  WireBuilder w = process(5);
  w.string(9, "startup is fine")
      .symbol(0x900, "boost::asio::detail::epoll_reactor::run(long)")
      .stack(3, {0x900})
      .event(wire::KIND_POLL, 50'000'000, 3, 1)           // idle: executor wait
      .event(wire::KIND_MUTEX, 2'000'000, 1, 1)           // path handlers
      .event(wire::KIND_MUTEX, 3'000'000, 1, 1, 5, 0, 9)  // allowed by scope
      .event(wire::KIND_STALL, 40'000'000, 2, 1);
  Report r = aggregate({w.bytes}, rules);
  ASSERT_EQ(r.hotspots.size(), 3u);
  for (const Hotspot& h : r.hotspots) EXPECT_NE(h.kind, "poll");
  EXPECT_EQ(r.blocking_events, 1u);
  EXPECT_EQ(r.blocked_ns, 2'000'000);
  EXPECT_EQ(r.allowed_events, 1u);
  EXPECT_EQ(r.stalls, 1u);
  EXPECT_EQ(r.stalled_ns, 40'000'000);
  auto allowed = std::find_if(r.hotspots.begin(), r.hotspots.end(),
                              [](const Hotspot& h) { return h.allowed; });
  ASSERT_NE(allowed, r.hotspots.end());
  EXPECT_EQ(allowed->allow_reason, "startup is fine");
  bool saw_handlers = false;
  for (const PathTotals& p : r.paths) {
    if (p.path == "handlers") {
      saw_handlers = true;
      EXPECT_EQ(p.blocking_events, 1u);
      EXPECT_EQ(p.blocked_ns, 2'000'000);
    }
  }
  EXPECT_TRUE(saw_handlers);
}

}  // namespace
}  // namespace blockwatch::collector
