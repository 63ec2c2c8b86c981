// Unit tests of the JSON report (exact schema keys, round trip) and the text
// report (100 columns, user frames, verdict).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "collector/report_json.h"
#include "collector/report_text.h"
#include "tests/collector/sample_report.h"

namespace blockwatch::collector {
namespace {

TEST(JsonReport, HasTheDocumentedShape) {
  Report r = testing::sample_report();
  r.verdict = {true, {"any: 3 hotspots"}};
  std::stringstream out;
  write_json_report(r, out);
  auto j = nlohmann::json::parse(out.str());
  EXPECT_EQ(j["version"], 1);
  EXPECT_EQ(j["processes"][0]["exe"], "/usr/bin/demo");
  EXPECT_EQ(j["processes"][0]["dropped"], 2);
  EXPECT_EQ(j["processes"][0]["threads_unwatched"], 5);
  const auto& h = j["hotspots"][0];
  for (const char* key :
       {"kind", "count", "total_ns", "max_ns", "p50_ns", "p99_ns", "threads", "holders", "tasks",
        "path", "allowed", "allow_reason", "stack", "occurrences", "is_new", "pids", "exe"}) {
    EXPECT_TRUE(h.contains(key)) << key;
  }
  EXPECT_EQ(h["stack"][1]["function"], "app::SaveState()");
  EXPECT_EQ(h["stack"][1]["offset"], 0x500);
  EXPECT_TRUE(h["stack"][1].contains("pc"));
  EXPECT_EQ(h["occurrences"][0]["thread"], "worker-0");
  EXPECT_EQ(j["paths"][0]["path"], "model");
  EXPECT_EQ(j["summary"]["blocking_events"], 6);
  EXPECT_EQ(j["summary"]["stalled_ns"], 90'000'000);
  EXPECT_EQ(j["summary"]["dropped"], 2);
  EXPECT_EQ(j["summary"]["threads_unwatched"], 5);
  EXPECT_EQ(j["verdict"]["failed"], true);
  EXPECT_EQ(j["verdict"]["reasons"][0], "any: 3 hotspots");
}

TEST(JsonReport, RoundTrips) {
  Report r = testing::sample_report();
  r.verdict = {true, {"why"}};
  std::stringstream first;
  write_json_report(r, first);
  Report back;
  std::string error;
  ASSERT_TRUE(read_json_report(first, &back, &error)) << error;
  std::stringstream second;
  write_json_report(back, second);
  EXPECT_EQ(first.str(), second.str());
  EXPECT_EQ(back.hotspots[3].allow_reason, "retry backoff");
  std::stringstream bad("{\"version\": 7}");
  EXPECT_FALSE(read_json_report(bad, &back, &error));
  std::stringstream garbage("not json");
  EXPECT_FALSE(read_json_report(garbage, &back, &error));
}

TEST(TextReport, FitsOneHundredColumnsAndShowsUserFrames) {
  Report r = testing::sample_report();
  r.hotspots[0].stack[1].function = "app::" + std::string(300, 'x') + "()";
  r.hotspots[1].threads.push_back(std::string(150, 't'));
  r.verdict = {true, {"kind:fsync: 1 hotspot, worst fsync 12ms in app::SaveState()"}};
  std::stringstream out;
  TextReportOptions options;
  options.written_reports = {"out/run.json"};
  write_text_report(r, out, options);
  std::string text = out.str(), line;
  std::stringstream lines(text);
  int count = 0;
  while (std::getline(lines, line)) {
    EXPECT_LE(line.size(), kTextReportColumns) << line;
    ++count;
  }
  EXPECT_GT(count, 10);
  EXPECT_NE(text.find("at app::Handler::operator()()  (demo)"), std::string::npos) << text;
  EXPECT_EQ(text.find("at pthread_mutex_lock"), std::string::npos) << "libc frame not skipped";
  EXPECT_NE(text.find("held by: db-writer"), std::string::npos);
  EXPECT_NE(text.find("allowed: retry backoff"), std::string::npos);
  EXPECT_NE(text.find("model: 3 blocking (18ms), 3 stalls (90ms)"), std::string::npos) << text;
  EXPECT_NE(text.find("dropped: 2"), std::string::npos);
  EXPECT_NE(text.find("unwatched: 5 threads found every blockwatch thread slot taken"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("verdict: FAILED"), std::string::npos);
  EXPECT_NE(text.find("report: out/run.json"), std::string::npos);
  // Allowed hotspots come after the others even with a larger total.
  EXPECT_LT(text.find("#3 stall"), text.find("#4 sleep"));
}

// A stall shown with the stack of the blocking call it was inside: JSON says where
// the stack comes from and which call, the text report says so above the frames.
TEST(Reports, StallWithABlockingCallsStackSaysSo) {
  Report r = testing::sample_report();
  Hotspot& stall = r.hotspots[2];
  ASSERT_EQ(stall.kind, "stall");
  stall.stack_source = "blocking_call";
  stall.caused_by = {"sleep", "nanosleep"};
  std::stringstream json_text;
  write_json_report(r, json_text);
  auto j = nlohmann::json::parse(json_text.str());
  EXPECT_EQ(j["hotspots"][2]["stack_source"], "blocking_call");
  EXPECT_EQ(j["hotspots"][2]["caused_by"]["kind"], "sleep");
  EXPECT_EQ(j["hotspots"][2]["caused_by"]["function"], "nanosleep");
  Report back;
  std::string error;
  ASSERT_TRUE(read_json_report(json_text, &back, &error)) << error;
  EXPECT_EQ(back.hotspots[2].stack_source, "blocking_call");
  EXPECT_EQ(back.hotspots[2].caused_by.function, "nanosleep");

  std::stringstream text;
  write_text_report(r, text, TextReportOptions{});
  const std::string out = text.str();
  const size_t note = out.find("stack of the blocking call it was in (nanosleep, sleep):");
  ASSERT_NE(note, std::string::npos) << out;
  EXPECT_GT(out.find("#4"), note) << "the note belongs to the stall (#3)";
  EXPECT_LT(out.find("#3 stall"), note);
  // A stall without any stack still says so.
  r.hotspots[2].stack.clear();
  r.hotspots[2].stack_source = "none";
  r.hotspots[2].caused_by = {};
  std::stringstream bare;
  write_text_report(r, bare, TextReportOptions{});
  EXPECT_NE(bare.str().find("(no stack)"), std::string::npos);
  EXPECT_EQ(bare.str().find("stack of the blocking call"), std::string::npos);
  // A stall that mostly waited for a CPU says where its time went and why it
  // has no stack (an overloaded machine, not the task's code).
  r.hotspots[2].cpu_ns = 2'000'000;
  r.hotspots[2].runqueue_ns = 30'000'000;
  r.hotspots[2].offcpu_ns = 0;
  std::stringstream starved;
  write_text_report(r, starved, TextReportOptions{});
  EXPECT_NE(starved.str().find("time: on CPU 2ms, waiting for a CPU 30ms, blocked 0"),
            std::string::npos)
      << starved.str();
  EXPECT_NE(starved.str().find("(no stack: the thread was mostly waiting for a CPU"),
            std::string::npos)
      << starved.str();
}

// Source positions: the text report prints "at f() file.cc:LINE" and marks
// inlined functions; the JSON carries the fields only when set, and reads them
// back.
TEST(Reports, FramesWithSourceLines) {
  Report r = testing::sample_report();
  std::vector<StackFrame>& stack = r.hotspots[0].stack;
  StackFrame inlined = stack[1];
  inlined.function = "app::Cache::lookup()";
  inlined.file = "/src/app/cache.h";
  inlined.line = 31;
  inlined.inlined = true;
  stack[1].file = "/src/app/handler.cc";
  stack[1].line = 88;
  stack[1].function_line = 80;
  stack.insert(stack.begin() + 1, inlined);

  std::stringstream text;
  write_text_report(r, text, TextReportOptions{});
  EXPECT_NE(text.str().find("at app::Cache::lookup() cache.h:31  [inlined]\n"), std::string::npos)
      << text.str();
  EXPECT_NE(text.str().find("at app::SaveState() handler.cc:88\n"), std::string::npos)
      << text.str();

  std::stringstream json_text;
  write_json_report(r, json_text);
  nlohmann::json j = nlohmann::json::parse(json_text.str());
  const auto& frames = j["hotspots"][0]["stack"];
  EXPECT_EQ(frames[1]["inlined"], true);
  EXPECT_EQ(frames[2]["file"], "/src/app/handler.cc");
  EXPECT_EQ(frames[2]["line"], 88);
  EXPECT_EQ(frames[2]["function_line"], 80);
  EXPECT_FALSE(frames[2].contains("inlined")) << "unset source fields are left out";
  EXPECT_FALSE(frames[0].contains("file"));
  Report back;
  std::string error;
  ASSERT_TRUE(read_json_report(json_text, &back, &error)) << error;
  EXPECT_TRUE(back.hotspots[0].stack[1].inlined);
  EXPECT_EQ(back.hotspots[0].stack[2].line, 88u);
  EXPECT_EQ(back.hotspots[0].stack[2].file, "/src/app/handler.cc");
}

// Frames of a module without debug info: the JSON flags them, the text report
// names the module once and says what would bring file:line; a report whose
// frames all have debug info says nothing.
TEST(Reports, ModulesWithoutDebugInfoAreNamed) {
  Report r = testing::sample_report();
  std::stringstream clean;
  write_text_report(r, clean, TextReportOptions{});
  EXPECT_EQ(clean.str().find("no debug info"), std::string::npos) << clean.str();

  for (Hotspot& h : r.hotspots) {
    for (StackFrame& f : h.stack) {
      if (!f.module.empty()) {
        f.module = "/usr/bin/redis-check-rdb";
        f.no_debug_info = true;
        break;
      }
    }
  }
  std::stringstream text;
  write_text_report(r, text, TextReportOptions{});
  EXPECT_NE(text.str().find("no debug info: redis-check-rdb (no file:line"), std::string::npos)
      << text.str();
  std::stringstream json_text;
  write_json_report(r, json_text);
  Report back;
  std::string error;
  ASSERT_TRUE(read_json_report(json_text, &back, &error)) << error;
  bool flagged = false;
  for (const StackFrame& f : back.hotspots[0].stack) flagged |= f.no_debug_info;
  EXPECT_TRUE(flagged);
}

}  // namespace
}  // namespace blockwatch::collector
