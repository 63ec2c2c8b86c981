// A hand-built Report shared by the report-format and HTTP tests: two processes,
// two config paths, each kind of interest (fsync on the loop, a contended mutex in
// the pool, a stall and an allowed sleep in the model step, a baseline hotspot) and
// frame names that need escaping in every format.
#pragma once

#include "collector/report_model.h"

namespace blockwatch::test {

inline collector::StackFrame frame(const char* function, const char* module, uint64_t offset) {
  return {function, module, offset, 0x7f0000000000 + offset};
}

// A frame with debug info: source file and line; `inlined` into the next frame.
inline collector::StackFrame frame_at(const char* function, const char* module, uint64_t offset,
                                      const char* file, uint32_t line, uint32_t function_line,
                                      bool inlined = false) {
  collector::StackFrame f = frame(function, module, offset);
  f.file = file;
  f.line = line;
  f.function_line = function_line;
  f.inlined = inlined;
  return f;
}

inline collector::Hotspot hotspot(const char* kind, uint64_t count, int64_t total_ns,
                                  int64_t max_ns) {
  collector::Hotspot hotspot;
  hotspot.kind = kind;
  hotspot.count = count;
  hotspot.total_ns = total_ns;
  hotspot.max_ns = max_ns;
  return hotspot;
}

inline collector::Report sample_report() {
  using namespace blockwatch::collector;
  Report report;
  ProcessInfo server;
  server.pid = 4242;
  server.ppid = 1;
  server.exe = "/usr/bin/demo_server";
  server.argv = {"demo_server", "--port=0"};
  server.hostname = "ci-host";
  server.start_unix_ns = 1700000000000000000;
  server.threshold_ns = 1000000;
  server.connected = true;
  server.events = 130;
  server.dropped = 7;
  server.dropped_queue_full = 5;
  server.dropped_no_collector = 2;
  ProcessInfo helper = server;
  helper.pid = 4243;
  helper.ppid = 4242;
  helper.exe = "/usr/bin/helper";
  helper.connected = false;
  helper.end_reason = "exit";
  helper.events = 2;
  helper.dropped = helper.dropped_queue_full = helper.dropped_no_collector = 0;
  report.processes = {server, helper};

  Hotspot stall = hotspot("stall", 2, 80000000, 50000000);
  stall.threads = {"model-0"};
  stall.path = "model";
  stall.exe = server.exe;
  stall.pids = {4242};
  stall.stack = {frame("model::tokenize(std::string_view)", "/usr/bin/demo_server", 0x4a10),
                 frame("model::infer(Request const&)", "/usr/bin/demo_server", 0x4c20),
                 frame("", "/usr/bin/demo_server", 0x5000),
                 frame("start_thread", "/usr/lib/x86_64-linux-gnu/libc.so.6", 0x89134)};

  Hotspot fsync = hotspot("fsync", 3, 45000000, 20000000);
  fsync.threads = {"main"};
  fsync.functions = {"fsync"};
  fsync.exe = server.exe;
  fsync.pids = {4242};
  // With source lines; Journal::sync_locked() was inlined into Journal::flush().
  fsync.stack = {
      frame("fsync", "/usr/lib/x86_64-linux-gnu/libc.so.6", 0xf7a20),
      frame_at("Journal::sync_locked()", "/usr/bin/demo_server", 0x3100, "/src/journal.h", 31, 29,
               true),
      frame_at("Journal::flush()", "/usr/bin/demo_server", 0x3100, "/src/journal.cc", 57, 50),
      frame_at("Loop::run_once()", "/usr/bin/demo_server", 0x2200, "/src/loop.cc", 12, 10),
      frame_at("main", "/usr/bin/demo_server", 0x1100, "/src/main.cc", 5, 3)};

  Hotspot mutex = hotspot("mutex", 120, 30000000, 900000);
  mutex.threads = {"pool-1", "pool-2"};
  mutex.holders = {"pool-3"};
  mutex.path = "worker-pool";
  mutex.exe = server.exe;
  mutex.pids = {4242};
  mutex.stack = {frame("pthread_mutex_lock", "/usr/lib/x86_64-linux-gnu/libc.so.6", 0x8f0a0),
                 frame("pool::Cache<int; \"k\" & <v>>::get()", "/usr/bin/demo_server", 0x6100),
                 frame("pool::Worker::run()", "/usr/bin/demo_server", 0x6300),
                 frame("start_thread", "/usr/lib/x86_64-linux-gnu/libc.so.6", 0x89134)};

  Hotspot sleep = hotspot("sleep", 4, 8000000, 2000000);
  sleep.threads = {"model-0"};
  sleep.path = "model";
  sleep.allowed = true;
  sleep.allow_reason = "retry backoff";
  sleep.exe = server.exe;
  sleep.pids = {4242};
  sleep.stack = {frame("nanosleep", "/usr/lib/x86_64-linux-gnu/libc.so.6", 0xd1230),
                 frame("model::retry()", "/usr/bin/demo_server", 0x4e00)};

  Hotspot old_read = hotspot("read", 1, 2000000, 2000000);
  old_read.threads = {"helper\x01main"};
  old_read.path = "worker-pool";
  old_read.exe = helper.exe;
  old_read.pids = {4243};
  old_read.is_new = false;
  old_read.stack = {frame("read", "/usr/lib/x86_64-linux-gnu/libc.so.6", 0x10e000)};

  report.hotspots = {stall, fsync, mutex, sleep, old_read};
  report.paths = {{"", 3, 45000000, 0, 0},
                  {"model", 4, 8000000, 2, 80000000},
                  {"worker-pool", 121, 32000000, 0, 0}};
  report.blocking_events = 128;
  report.blocked_ns = 85000000;
  report.stalls = 2;
  report.stalled_ns = 80000000;
  report.allowed_events = 4;
  report.dropped = 7;
  report.verdict.failed = true;
  report.verdict.reasons = {"blocking>=10ms: fsync on main blocked 20.00ms",
                            "path:model>=50ms: model stalled 80.00ms"};
  return report;
}

}  // namespace blockwatch::test
