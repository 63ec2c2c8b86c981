// Unit tests of aggregation: hotspot keys, exact counts, percentile accuracy,
// merging across processes of one exe, idle/allowed handling, summary and drops,
// and one count per stall across its 1x/2x/4x watchdog samples.
#include "collector/aggregate.h"

#include <gtest/gtest.h>

#include <random>

#include "tests/collector/aggregate_streams.h"
#include "tests/collector/wire_builder.h"

namespace blockwatch::collector {
namespace {

using testing::WireBuilder;

// The report of whole streams (tests/collector/aggregate_streams.h).
Report aggregate(const std::vector<std::string>& streams, const config::Config& rules = {}) {
  return testing::aggregate_streams(streams, rules);
}

WireBuilder process(int pid, const std::string& exe = "/usr/bin/svc",
                    int64_t stall_threshold_ns = 0) {
  // Each process maps the same code at its own address: same offsets, other pcs.
  uint64_t base = uint64_t{0x1000000} * pid;
  WireBuilder w;
  w.hello(pid, exe, 1, 0x42574348, stall_threshold_ns)
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

// An event of thread `tid` (named worker-<pid>, running task-a: strings 1 and 3
// of process()) on no fd, as the library sends it; stack_id 0: no stack.
wire::Frame worker_event(wire::Kind kind, int64_t start_unix_ns, int64_t duration_ns,
                         uint64_t stack_id, int tid) {
  wire::Frame f;
  auto* e = f.mutable_event();
  e->set_kind(kind);
  e->set_start_unix_ns(start_unix_ns);
  e->set_duration_ns(duration_ns);
  e->set_tid(tid);
  e->set_thread_name(1);
  e->set_stack(stack_id);
  e->set_task(3);
  e->set_fd(-1);
  return f;
}

// One watchdog stall sample: every sample of a stall has its stall id, tid and
// start time; duration and the cpu/runqueue/offcpu split grow with each sample.
void stall_sample(WireBuilder* w, uint64_t stall_id, int64_t duration_ns, uint64_t stack_id,
                  int tid = 100) {
  wire::Frame f = worker_event(
      wire::KIND_STALL, 1'700'000'000'000'000'000 + static_cast<int64_t>(stall_id) * 1'000'000'000,
      duration_ns, stack_id, tid);
  auto* e = f.mutable_event();
  e->set_stall_id(stall_id);
  e->set_cpu_ns(duration_ns / 2);
  e->set_runqueue_ns(duration_ns / 4);
  e->set_offcpu_ns(duration_ns / 4);
  w->frame(f);
}

TEST(LogHistogram, RemoveTakesBackOneAdd) {
  LogHistogram h;
  h.add(1'000'000);
  h.remove(1'000'000);
  h.add(4'000'000);
  EXPECT_EQ(h.quantile(0.5), 4'000'000);  // emptied, then one sample: exact again
  h.add(1'000'000);
  h.add(8'000'000);
  h.remove(1'000'000);
  EXPECT_NEAR(h.quantile(0.5), 4'000'000, 4'000'000 * 0.04);
  EXPECT_NEAR(h.quantile(0.99), 8'000'000, 8'000'000 * 0.04);
  h.remove(123);  // never added: ignored
  EXPECT_NEAR(h.quantile(0.5), 4'000'000, 4'000'000 * 0.04);
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
  EXPECT_EQ(r.threads_unwatched, 0u);
  ASSERT_EQ(r.processes.size(), 1u);
  EXPECT_TRUE(r.processes[0].said_goodbye);
  EXPECT_EQ(r.processes[0].end_reason, "exit");
  EXPECT_FALSE(r.processes[0].connected);
}

// Up to kMaxOccurrences events the occurrences stand in for the histogram; past
// that a real histogram takes over: percentiles are right on both sides.
TEST(Aggregator, PercentilesBeforeAndPastTheOccurrenceCap) {
  for (int events : {100, 1000}) {
    WireBuilder w = process(10);
    for (int i = 1; i <= events; ++i) w.event(wire::KIND_MUTEX, i * 1000, 1, 1);
    Report r = aggregate({w.bytes});
    ASSERT_EQ(r.hotspots.size(), 1u);
    const Hotspot& h = r.hotspots[0];
    EXPECT_EQ(h.count, static_cast<uint64_t>(events));
    EXPECT_NEAR(h.p50_ns, events * 500, events * 500 * 0.04) << events;
    EXPECT_NEAR(h.p99_ns, events * 990, events * 990 * 0.04) << events;
    EXPECT_EQ(h.max_ns, events * 1000);
    EXPECT_EQ(h.occurrences.size(), std::min<size_t>(events, kMaxOccurrences));
  }
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

TEST(Aggregator, ThreeSamplesOfOneStallCountOnceWithTheLatest) {
  config::Config rules;
  rules.add_path()->set_name("flush");
  rules.mutable_path(0)->add_frame("^app::flush");
  WireBuilder w = process(7);
  stall_sample(&w, 1, 10'000'000, 2);
  stall_sample(&w, 1, 20'000'000, 2);
  stall_sample(&w, 1, 40'000'000, 2);
  Report r = aggregate({w.bytes}, rules);
  ASSERT_EQ(r.hotspots.size(), 1u);
  const Hotspot& h = r.hotspots[0];
  EXPECT_EQ(h.kind, "stall");
  EXPECT_EQ(h.count, 1u);
  EXPECT_EQ(h.total_ns, 40'000'000);
  EXPECT_EQ(h.max_ns, 40'000'000);
  EXPECT_EQ(h.p50_ns, 40'000'000);
  EXPECT_EQ(h.p99_ns, 40'000'000);
  EXPECT_EQ(h.cpu_ns, 20'000'000);
  EXPECT_EQ(h.runqueue_ns, 10'000'000);
  EXPECT_EQ(h.offcpu_ns, 10'000'000);
  ASSERT_EQ(h.occurrences.size(), 1u);
  EXPECT_EQ(h.occurrences[0].duration_ns, 40'000'000);
  EXPECT_EQ(r.stalls, 1u);
  EXPECT_EQ(r.stalled_ns, 40'000'000);
  ASSERT_EQ(r.paths.size(), 1u);
  EXPECT_EQ(r.paths[0].path, "flush");
  EXPECT_EQ(r.paths[0].stalls, 1u);
  EXPECT_EQ(r.paths[0].stalled_ns, 40'000'000);
  EXPECT_EQ(r.processes[0].events, 3u);  // records received stay per record
}

// Two stalls sampled at different instructions of one loop are one hotspot;
// blocking calls from two call sites in one function stay two.
TEST(Aggregator, StallsSampledAnywhereInOneFunctionAreOneHotspot) {
  WireBuilder w = process(7);
  w.symbol(0x800, "app::tokenize()")
      .symbol(0x804, "app::tokenize()")
      .symbol(0x810, "app::handle()")
      .stack(5, {0x800, 0x810})
      .stack(6, {0x804, 0x810});
  stall_sample(&w, 1, 30'000'000, 5);
  stall_sample(&w, 2, 50'000'000, 6);
  w.event(wire::KIND_SLEEP, 2'000'000, 5).event(wire::KIND_SLEEP, 2'000'000, 6);
  Report r = aggregate({w.bytes});
  size_t stall_hotspots = 0;
  size_t sleep_hotspots = 0;
  for (const Hotspot& h : r.hotspots) {
    if (h.kind == "stall") {
      ++stall_hotspots;
      EXPECT_EQ(h.count, 2u);
      EXPECT_EQ(h.total_ns, 80'000'000);
    }
    if (h.kind == "sleep") ++sleep_hotspots;
  }
  EXPECT_EQ(stall_hotspots, 1u);
  EXPECT_EQ(sleep_hotspots, 2u);
}

TEST(Aggregator, StallMovesToTheFirstSampleWithAStack) {
  WireBuilder w = process(7);
  stall_sample(&w, 5, 10'000'000, 0);  // 1x: the stack could not be sampled
  stall_sample(&w, 5, 20'000'000, 2);  // 2x: homes the stall
  stall_sample(&w, 5, 40'000'000, 1);  // 4x: another stack, same stall, same hotspot
  stall_sample(&w, 6, 30'000'000, 0);  // a stall that never got a stack stays apart
  Report r = aggregate({w.bytes});
  ASSERT_EQ(r.hotspots.size(), 2u);
  const Hotspot& h = r.hotspots[0];
  EXPECT_EQ(h.kind, "stall");
  ASSERT_EQ(h.stack.size(), 1u);
  EXPECT_EQ(h.stack[0].function, "app::flush()");
  EXPECT_EQ(h.count, 1u);
  EXPECT_EQ(h.total_ns, 40'000'000);
  EXPECT_EQ(h.max_ns, 40'000'000);
  EXPECT_EQ(h.cpu_ns, 20'000'000);
  ASSERT_EQ(h.occurrences.size(), 1u);
  EXPECT_EQ(h.occurrences[0].duration_ns, 40'000'000);
  const Hotspot& no_stack = r.hotspots[1];
  EXPECT_TRUE(no_stack.stack.empty());
  EXPECT_EQ(no_stack.count, 1u);  // stall 6 only: stall 5's 1x sample was taken back
  EXPECT_EQ(no_stack.total_ns, 30'000'000);
  EXPECT_EQ(no_stack.max_ns, 30'000'000);
  EXPECT_EQ(no_stack.cpu_ns, 15'000'000);
  ASSERT_EQ(no_stack.occurrences.size(), 1u);
  EXPECT_EQ(r.stalls, 2u);
  EXPECT_EQ(r.stalled_ns, 70'000'000);
}

TEST(Aggregator, DistinctStallIdsCountApartAndIdZeroCountsEachRecord) {
  WireBuilder w = process(7);
  stall_sample(&w, 1, 10'000'000, 2);
  stall_sample(&w, 2, 10'000'000, 2, 101);
  stall_sample(&w, 1, 20'000'000, 2);
  stall_sample(&w, 2, 20'000'000, 2, 101);
  Report r = aggregate({w.bytes});
  ASSERT_EQ(r.hotspots.size(), 1u);
  EXPECT_EQ(r.hotspots[0].count, 2u);
  EXPECT_EQ(r.hotspots[0].total_ns, 40'000'000);
  EXPECT_EQ(r.hotspots[0].occurrences.size(), 2u);
  EXPECT_EQ(r.stalls, 2u);

  // Older streams (stall_id 0): each record is a stall, as before.
  WireBuilder old = process(8);
  old.event(wire::KIND_STALL, 10'000'000, 2, 1).event(wire::KIND_STALL, 20'000'000, 2, 1);
  Report r_old = aggregate({old.bytes});
  EXPECT_EQ(r_old.stalls, 2u);
  EXPECT_EQ(r_old.stalled_ns, 30'000'000);

  // The same stall id in two processes is two stalls.
  WireBuilder a = process(1), b = process(2);
  stall_sample(&a, 1, 10'000'000, 2);
  stall_sample(&b, 1, 10'000'000, 2);
  Report r_two = aggregate({a.bytes, b.bytes});
  ASSERT_EQ(r_two.hotspots.size(), 1u);  // merged: one exe
  EXPECT_EQ(r_two.hotspots[0].count, 2u);
}

TEST(Aggregator, StallIdsRememberedAreBounded) {
  WireBuilder w = process(7);
  const uint64_t stalls = kMaxTrackedStalls + 10;
  for (uint64_t id = 1; id <= stalls; ++id) stall_sample(&w, id, 10'000'000, 2);
  stall_sample(&w, stalls, 20'000'000, 2);  // still remembered: replaces
  stall_sample(&w, 1, 20'000'000, 2);       // forgotten long ago: counted anew
  Report r = aggregate({w.bytes});
  EXPECT_EQ(r.stalls, stalls + 1);
  EXPECT_EQ(r.stalled_ns, static_cast<int64_t>(stalls - 1) * 10'000'000 + 2 * 20'000'000);
}

// --- Stack-less stalls take the stack of the blocking call they were inside ---

constexpr int64_t kStallStartNs = 1'700'000'000'000'000'000 + 500'000'000;

// A stall sample taken while the thread sat in a call (its name in blocked_in):
// without a stack, as the watchdog sends it for an EINTR-able call, or with a
// frame-pointer walk that stopped early (`stack_id`).
void sample_in_call(WireBuilder* w, uint64_t stall_id, int64_t duration_ns, uint64_t stack_id,
                    int tid = 100, const std::string& blocked_in = "nanosleep") {
  wire::Frame f = worker_event(wire::KIND_STALL, kStallStartNs, duration_ns, stack_id, tid);
  auto* e = f.mutable_event();
  e->set_stall_id(stall_id);
  e->set_offcpu_ns(duration_ns);
  e->set_blocked_in(blocked_in);
  e->set_blocked_ns(duration_ns);
  w->frame(f);
}

void stackless_sample(WireBuilder* w, uint64_t stall_id, int64_t duration_ns, int tid = 100,
                      const std::string& blocked_in = "nanosleep") {
  sample_in_call(w, stall_id, duration_ns, 0, tid, blocked_in);
}

// A blocking call's record (sent when the call returned), with its own stack.
void blocking_call(WireBuilder* w, int64_t start_unix_ns, int64_t duration_ns, uint64_t stack_id,
                   int tid = 100, const std::string& function = "nanosleep") {
  wire::Frame f = worker_event(wire::KIND_SLEEP, start_unix_ns, duration_ns, stack_id, tid);
  f.mutable_event()->set_function(function);
  w->frame(f);
}

// process() plus a sleep stack (nanosleep <- app::wait_for_disk) as stack 3.
WireBuilder sleeping_process(int pid) {
  WireBuilder w = process(pid, "/usr/bin/svc", 20'000'000);
  w.symbol(0x700, "nanosleep", "/lib/x86_64-linux-gnu/libc.so.6")
      .symbol(0x710, "app::wait_for_disk()")
      .stack(3, {0x700, 0x710});
  return w;
}

const Hotspot* find_hotspot(const Report& r, const std::string& kind) {
  for (const Hotspot& h : r.hotspots) {
    if (h.kind == kind) return &h;
  }
  return nullptr;
}

void expect_stall_shows_the_sleep(const Report& r) {
  ASSERT_EQ(r.hotspots.size(), 2u);  // the sleep and the stall; no stack-less stall left
  const Hotspot* stall = find_hotspot(r, "stall");
  const Hotspot* sleep = find_hotspot(r, "sleep");
  ASSERT_TRUE(stall != nullptr && sleep != nullptr);
  EXPECT_EQ(stall->stack_source, "blocking_call");
  EXPECT_EQ(stall->caused_by.kind, "sleep");
  EXPECT_EQ(stall->caused_by.function, "nanosleep");
  ASSERT_EQ(stall->stack.size(), 2u);
  EXPECT_EQ(stall->stack[1].function, "app::wait_for_disk()");
  EXPECT_EQ(stall->count, 1u);  // one stall, its latest (4x) sample
  EXPECT_EQ(stall->total_ns, 80'000'000);
  EXPECT_EQ(stall->offcpu_ns, 80'000'000);
  EXPECT_EQ(stall->tasks, std::vector<std::string>{"task-a"});
  ASSERT_EQ(stall->occurrences.size(), 1u);
  EXPECT_EQ(stall->occurrences[0].duration_ns, 80'000'000);
  EXPECT_EQ(stall->occurrences[0].thread, "worker-7");
  EXPECT_EQ(sleep->stack_source, "own");
  ASSERT_EQ(sleep->stack.size(), stall->stack.size());
  for (size_t i = 0; i < stall->stack.size(); ++i) {
    EXPECT_EQ(sleep->stack[i].pc, stall->stack[i].pc);
  }
  EXPECT_EQ(r.stalls, 1u);
  EXPECT_EQ(r.stalled_ns, 80'000'000);
  EXPECT_EQ(r.blocking_events, 1u);
}

TEST(StallStack, StacklessStallTakesTheStackOfTheLaterCoveringCall) {
  WireBuilder w = sleeping_process(7);
  stackless_sample(&w, 1, 20'000'000);
  stackless_sample(&w, 1, 40'000'000);
  stackless_sample(&w, 1, 80'000'000);
  blocking_call(&w, kStallStartNs + 1'000'000, 100'000'000, 3);  // returned after the samples
  expect_stall_shows_the_sleep(aggregate({w.bytes}));
}

TEST(StallStack, StacklessStallTakesTheStackOfAnEarlierDeliveredCall) {
  WireBuilder w = sleeping_process(7);
  blocking_call(&w, kStallStartNs + 1'000'000, 100'000'000, 3);  // its queue was drained first
  stackless_sample(&w, 1, 20'000'000);
  stackless_sample(&w, 1, 40'000'000);
  stackless_sample(&w, 1, 80'000'000);
  expect_stall_shows_the_sleep(aggregate({w.bytes}));
}

TEST(StallStack, SampleInsideACallShowsTheCallsFullStack) {
  WireBuilder w = sleeping_process(7);
  w.stack(4, {0x700});
  sample_in_call(&w, 1, 20'000'000, 4);
  sample_in_call(&w, 1, 40'000'000, 4);
  sample_in_call(&w, 1, 80'000'000, 4);
  blocking_call(&w, kStallStartNs + 1'000'000, 100'000'000, 3);
  expect_stall_shows_the_sleep(aggregate({w.bytes}));
}

TEST(StallStack, SampleInsideAnUnreportedCallKeepsItsOwnStack) {
  WireBuilder w = sleeping_process(7);
  w.stack(4, {0x700});
  sample_in_call(&w, 1, 20'000'000, 4);  // the call stayed under the threshold
  Report r = aggregate({w.bytes});
  const Hotspot* stall = find_hotspot(r, "stall");
  ASSERT_NE(stall, nullptr);
  EXPECT_EQ(stall->stack_source, "own");
  ASSERT_EQ(stall->stack.size(), 1u);
  EXPECT_EQ(stall->stack[0].function, "nanosleep");
  EXPECT_EQ(stall->count, 1u);
}

TEST(StallStack, CallsThatDoNotCoverTheSampleLendNothing) {
  WireBuilder w = sleeping_process(7);
  blocking_call(&w, kStallStartNs - 50'000'000, 30'000'000, 3);  // ended before the stall
  stackless_sample(&w, 1, 20'000'000);
  blocking_call(&w, kStallStartNs, 100'000'000, 3, 101);        // another thread
  blocking_call(&w, kStallStartNs + 30'000'000, 5'000'000, 3);  // after the sample
  // Covers the sample, but comes after a later call of the same thread (which a
  // thread's calls never do): the stall was let go and stays without a stack.
  blocking_call(&w, kStallStartNs + 10'000'000, 100'000'000, 3);
  Report r = aggregate({w.bytes});
  const Hotspot* stall = find_hotspot(r, "stall");
  ASSERT_NE(stall, nullptr);
  EXPECT_TRUE(stall->stack.empty());
  EXPECT_EQ(stall->stack_source, "none");
  EXPECT_EQ(stall->caused_by.kind, "");
  EXPECT_EQ(stall->count, 1u);
  EXPECT_EQ(r.stalls, 1u);
}

TEST(StallStack, ASampledStackWinsOverABorrowedOne) {
  WireBuilder w = sleeping_process(7);
  stackless_sample(&w, 1, 20'000'000);  // 1x: asleep
  blocking_call(&w, kStallStartNs + 1'000'000, 30'000'000, 3);
  stall_sample(&w, 1, 80'000'000, 2);  // 4x: back on CPU in app::flush, sampled
  Report r = aggregate({w.bytes});
  ASSERT_EQ(r.hotspots.size(), 2u);
  const Hotspot* stall = find_hotspot(r, "stall");
  ASSERT_NE(stall, nullptr);
  EXPECT_EQ(stall->stack_source, "own");
  ASSERT_EQ(stall->stack.size(), 1u);
  EXPECT_EQ(stall->stack[0].function, "app::flush()");
  EXPECT_EQ(stall->count, 1u);
  EXPECT_EQ(stall->total_ns, 80'000'000);
  EXPECT_EQ(r.stalls, 1u);
}

TEST(StallStack, BorrowedStacksAreClassifiedAsStallsAndMergeAcrossProcesses) {
  config::Config rules;
  rules.add_path()->set_name("disk");
  rules.mutable_path(0)->add_frame("^app::wait_for_disk");
  WireBuilder a = sleeping_process(7), b = sleeping_process(8);
  for (WireBuilder* w : {&a, &b}) {
    stackless_sample(w, 1, 20'000'000);
    blocking_call(w, kStallStartNs, 30'000'000, 3);
  }
  Report r = aggregate({a.bytes, b.bytes}, rules);
  const Hotspot* stall = find_hotspot(r, "stall");
  ASSERT_NE(stall, nullptr);
  EXPECT_EQ(stall->count, 2u);
  EXPECT_EQ(stall->pids, (std::vector<int>{7, 8}));
  EXPECT_EQ(stall->path, "disk");
  EXPECT_EQ(stall->functions, std::vector<std::string>{"nanosleep"});
  ASSERT_EQ(r.paths.size(), 1u);
  EXPECT_EQ(r.paths[0].stalls, 2u);
}

TEST(StallStack, WaitingStallsAndRememberedCallsAreBounded) {
  WireBuilder w = sleeping_process(7);
  // Many stack-less stalls on threads that never block again, then many calls.
  const int stalls = static_cast<int>(kMaxPendingStalls) + 50;
  for (int i = 1; i <= stalls; ++i) stackless_sample(&w, i, 20'000'000, 1000 + i);
  for (size_t i = 0; i < kRecentBlockingCalls + 10; ++i) {
    blocking_call(&w, kStallStartNs - 1'000'000'000, 1'000, 3, 5);
  }
  // The newest waiting stall still links; the oldest was let go.
  blocking_call(&w, kStallStartNs, 30'000'000, 3, 1000 + stalls);
  blocking_call(&w, kStallStartNs, 30'000'000, 3, 1001);
  Report r = aggregate({w.bytes});
  EXPECT_EQ(r.stalls, static_cast<uint64_t>(stalls));
  uint64_t borrowed = 0;
  for (const Hotspot& h : r.hotspots) {
    if (h.kind == "stall" && h.stack_source == "blocking_call") borrowed += h.count;
  }
  EXPECT_EQ(borrowed, 1u);
}

// A stall homed in an idle hotspot counts nothing, whichever sample homes it:
// one whose own stack is idle, and a stack-less one that takes the stack of a
// blocking call where only stalls are idle (the call itself is still reported).
TEST(Aggregator, StallsInIdleHotspotsCountNothing) {
  config::Config rules;
  rules.add_idle()->add_frame("^app::flush");  // stack 2
  config::Rule* stall_only = rules.add_idle();
  stall_only->add_frame("^app::wait_for_disk");  // stack 3
  stall_only->add_kind("stall");
  WireBuilder w = sleeping_process(9);
  stall_sample(&w, 1, 10'000'000, 2);
  stall_sample(&w, 1, 20'000'000, 2);
  stackless_sample(&w, 2, 20'000'000);
  blocking_call(&w, kStallStartNs + 1'000'000, 100'000'000, 3);
  stackless_sample(&w, 2, 40'000'000);
  Report r = aggregate({w.bytes}, rules);
  EXPECT_EQ(r.stalls, 0u);
  EXPECT_EQ(r.stalled_ns, 0);
  EXPECT_EQ(r.blocking_events, 1u);
  EXPECT_EQ(r.blocked_ns, 100'000'000);
  ASSERT_EQ(r.hotspots.size(), 1u);
  EXPECT_EQ(r.hotspots[0].kind, "sleep");
}

}  // namespace
// Threads that found every slot of the library taken are counted by the library
// (Counters.threads_unwatched): per process, and summed in the report.
TEST(Aggregate, UnwatchedThreadsAreCountedPerProcessAndInTotal) {
  std::vector<std::string> streams;
  for (int pid : {20, 21}) {
    WireBuilder w = process(pid);
    wire::Frame counters;
    counters.mutable_counters()->set_threads_unwatched(pid == 20 ? 3 : 4);
    streams.push_back(w.frame(counters).goodbye().bytes);
  }
  Report r = aggregate(streams);
  ASSERT_EQ(r.processes.size(), 2u);
  EXPECT_EQ(r.processes[0].threads_unwatched + r.processes[1].threads_unwatched, 7u);
  EXPECT_EQ(r.threads_unwatched, 7u);
  EXPECT_EQ(r.dropped, 0u);  // not records: whole threads
}

}  // namespace blockwatch::collector
