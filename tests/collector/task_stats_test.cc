// Per-task statistics in the collector (issue 9 item 3): Counters.tasks lines
// merged per exe and task entry, the sampled over-1 ms estimate, /metrics and
// the JSON round trip, and a stall's task function named from its stack.
#include <gtest/gtest.h>

#include <sstream>

#include "collector/aggregate.h"
#include "collector/aggregate_tasks.h"
#include "collector/metrics.h"
#include "collector/report_json.h"
#include "common/task_histogram.h"
#include "tests/collector/aggregate_streams.h"
#include "tests/collector/wire_builder.h"

namespace blockwatch::collector {
namespace {

using testing::WireBuilder;

// The report of whole streams (tests/collector/aggregate_streams.h).
Report aggregate(const std::vector<std::string>& streams, const config::Config& rules = {}) {
  return testing::aggregate_streams(streams, rules);
}

}  // namespace

// Per-task statistics (Counters.tasks): the latest frame of a process counts
// (cumulative), processes of one exe add up, a probe line takes its function
// from the installed probes of its rule, a sampled over-1 ms count is scaled and marked
// as an estimate, an API line whose tasks were all timed is exact.
TEST(Aggregate, TaskStatsPerEntryWithSampledEstimates) {
  std::vector<std::string> streams;
  for (int pid : {30, 31}) {
    WireBuilder w;
    wire::Frame hello;
    auto* h = hello.mutable_hello();
    h->set_magic(0x42574348);
    h->set_protocol_version(1);
    h->set_pid(pid);
    h->set_exe("/usr/bin/svc");
    auto* refused = h->add_task_probes();
    refused->set_rule("tokio::runtime::task::raw::poll");
    refused->set_function("tokio::runtime::task::raw::poll<X>");
    refused->set_refused("no room");
    auto* probe = h->add_task_probes();
    probe->set_rule("boost::asio::detail::scheduler::do_run_one");
    probe->set_function("boost::asio::detail::scheduler::do_run_one()");
    probe->set_installed(true);
    w.frame(hello);
    for (uint64_t scale : {1, 2}) {  // the second frame replaces the first
      wire::Frame counters;
      auto* c = counters.mutable_counters();
      auto* t = c->add_tasks();
      t->set_rule("boost::asio::detail::scheduler::do_run_one");
      t->set_tasks_total(500 * scale);
      t->set_tasks_timed(30 * scale);
      t->set_timed_over_1ms(scale == 2 ? 3 : 1);
      t->set_max_timed_ns(3'400'000);
      t->set_sum_timed_ns(20'000'000);
      std::vector<uint64_t> buckets(task_histogram::kBuckets, 0);
      buckets[0] = 30 * scale - (scale == 2 ? 3 : 1);
      buckets[task_histogram::bucket_of(3'000'000)] = scale == 2 ? 3 : 1;
      for (uint64_t b : buckets) t->add_buckets(b);
      auto* api = c->add_tasks();
      api->set_label("parse");
      api->set_tasks_total(10);
      api->set_tasks_timed(10);
      api->set_timed_over_1ms(1);
      api->set_max_timed_ns(1'500'000);
      api->add_buckets(9);
      w.frame(counters);
    }
    streams.push_back(w.goodbye().bytes);
  }
  Report r = aggregate(streams);
  ASSERT_EQ(r.tasks.size(), 2u);
  const TaskStats& probe = r.tasks[0];  // most tasks over 1 ms first
  EXPECT_EQ(probe.source, "probe");
  EXPECT_EQ(probe.rule, "boost::asio::detail::scheduler::do_run_one");
  EXPECT_EQ(probe.function, "boost::asio::detail::scheduler::do_run_one()");
  EXPECT_EQ(probe.tasks_total, 2000u);
  EXPECT_EQ(probe.tasks_timed, 120u);
  EXPECT_EQ(probe.timed_over_1ms, 6u);
  EXPECT_EQ(probe.over_1ms, 100u);  // 6 * 2000 / 120
  EXPECT_FALSE(probe.over_1ms_exact);
  EXPECT_EQ(probe.max_ns, 3'400'000);
  EXPECT_EQ(probe.p50_ns, 1024);
  EXPECT_GE(probe.p99_ns, 3'000'000);
  EXPECT_EQ(probe.pids, (std::vector<int>{30, 31}));
  const TaskStats& api = r.tasks[1];
  EXPECT_EQ(api.source, "api");
  EXPECT_EQ(api.label, "parse");
  EXPECT_EQ(api.tasks_total, 20u);
  EXPECT_EQ(api.over_1ms, 2u);
  EXPECT_TRUE(api.over_1ms_exact);

  const std::string metrics = render_prometheus_metrics(r, 0);
  const std::string labels = "{exe=\"svc\",source=\"probe\",entry=\"boost::asio::detail::scheduler::do_run_one()\"";
  EXPECT_NE(metrics.find("blockwatch_tasks_total" + labels + "} 2000\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("blockwatch_task_duration_seconds_count" + labels + "} 120\n"),
            std::string::npos);
  EXPECT_NE(metrics.find("blockwatch_task_duration_seconds_bucket" + labels + ",le=\"+Inf\"} 120\n"),
            std::string::npos);
  EXPECT_NE(metrics.find("blockwatch_tasks_over_1ms" + labels + ",estimated=\"true\"} 100\n"),
            std::string::npos);

  std::stringstream json;
  write_json_report(r, json);
  Report back;
  std::string error;
  ASSERT_TRUE(read_json_report(json, &back, &error)) << error;
  ASSERT_EQ(back.tasks.size(), 2u);
  EXPECT_EQ(back.tasks[0].over_1ms, 100u);
  EXPECT_EQ(back.tasks[0].buckets, r.tasks[0].buckets);
}

// A stall's task function: the first frame inside the innermost entry that is
// not executor or runtime code.
TEST(Aggregate, TaskFunctionIsTheFirstNonExecutorFrameInsideTheEntry) {
  auto frames = [](std::vector<std::string> names) {
    std::vector<StackFrame> stack;
    for (std::string& name : names) stack.push_back(StackFrame{.function = std::move(name)});
    return stack;
  };
  const std::vector<std::string> rules = {"boost::asio::detail::scheduler::do_run_one",
                                          "tokio::runtime::task::raw::poll"};
  EXPECT_EQ(task_function_of(frames({"spin", "handler()", "boost::asio::asio_handler_invoke<F>(F&)",
                                     "boost::asio::detail::scheduler_operation::complete(void*)",
                                     "boost::asio::detail::scheduler::do_run_one(lock&)",
                                     "boost::asio::io_context::run()", "main"}),
                             rules),
            "handler()");
  // Nested entries (tokio's blocking pool runs the worker as a task): the innermost counts.
  EXPECT_EQ(task_function_of(frames({"app::work", "app::serve::{{closure}}",
                                     "<core::future::from_generator::GenFuture<T> as Future>::poll",
                                     "tokio::runtime::task::core::Core<T,S>::poll",
                                     "tokio::runtime::task::raw::poll", "tokio::worker::run",
                                     "tokio::runtime::task::raw::poll", "start_thread"}),
                             rules),
            "app::serve::{{closure}}");
  // Rust v0 names (libiberty): the entry with its generic arguments; a closure
  // inside the entry is not the entry.
  EXPECT_EQ(
      task_function_of(
          frames({"tokio_target::planted_long_task",
                  "tokio_target::spawn_and_wait::{closure#0}::{closure#0}::{closure#0}",
                  "<tokio::runtime::task::core::Core<T, S>>::poll",
                  "tokio::runtime::task::raw::poll::<T, S>::{closure#0}",
                  "tokio::runtime::task::raw::poll::<core::pin::Pin<alloc::boxed::Box<F>>, "
                  "alloc::sync::Arc<tokio::runtime::scheduler::multi_thread::handle::Handle>>",
                  "tokio::runtime::scheduler::multi_thread::worker::run"}),
          rules),
      "tokio_target::spawn_and_wait::{closure#0}::{closure#0}::{closure#0}");
  EXPECT_EQ(task_function_of(frames({"spin", "main"}), rules), "");  // no entry
  EXPECT_EQ(task_function_of(frames({"tokio::runtime::task::raw::poll"}), rules), "");
}

}  // namespace blockwatch::collector
