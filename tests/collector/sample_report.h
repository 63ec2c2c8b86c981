// Test helper: a small, fully populated Report for writer and rule tests.
#pragma once

#include "collector/report_model.h"

namespace blockwatch::testing {

inline collector::Hotspot sample_hotspot(const std::string& kind, int64_t max_ns,
                                         const std::string& function,
                                         const std::string& path = "") {
  collector::Hotspot h;
  h.kind = kind;
  h.count = 3;
  h.total_ns = 3 * max_ns / 2;
  h.max_ns = max_ns;
  h.p50_ns = max_ns / 2;
  h.p99_ns = max_ns;
  h.threads = {"worker-0", "worker-1"};
  h.holders = {"db-writer"};
  h.tasks = {"GET /api/items"};
  h.functions = {"pthread_mutex_lock"};
  h.fd_types = {"regular"};
  h.path = path;
  h.exe = "/usr/bin/demo";
  h.pids = {42};
  h.stack = {{"pthread_mutex_lock", "/lib/x86_64-linux-gnu/libc.so.6", 0x1234, 0x7f0000001234},
             {function, "/usr/bin/demo", 0x500, 0x555500000500},
             {"main", "/usr/bin/demo", 0x600, 0x555500000600}};
  h.occurrences = {{42, 43, "worker-0", 1'700'000'000'000'000'000, max_ns, "GET /api/items"}};
  return h;
}

inline collector::Report sample_report() {
  collector::Report r;
  collector::ProcessInfo p;
  p.pid = 42;
  p.ppid = 1;
  p.exe = "/usr/bin/demo";
  p.argv = {"demo", "--port=8080"};
  p.hostname = "ci-runner";
  p.said_goodbye = true;
  p.end_reason = "exit";
  p.events = 7;
  p.dropped = 2;
  p.threads_unwatched = 5;
  p.dropped_queue_full = 2;
  r.processes.push_back(p);
  r.hotspots.push_back(sample_hotspot("fsync", 12'000'000, "app::SaveState()", "model"));
  r.hotspots.push_back(sample_hotspot("mutex", 4'000'000, "app::Handler::operator()()"));
  r.hotspots.push_back(
      sample_hotspot("stall", 60'000'000, "model::Tokenize(std::string const&)", "model"));
  collector::Hotspot allowed = sample_hotspot("sleep", 90'000'000, "app::Backoff()");
  allowed.allowed = true;
  allowed.allow_reason = "retry backoff";
  r.hotspots.push_back(allowed);
  r.paths = {{"model", 3, 18'000'000, 3, 90'000'000}, {"", 3, 6'000'000, 0, 0}};
  r.blocking_events = 6;
  r.blocked_ns = 24'000'000;
  r.stalls = 3;
  r.stalled_ns = 90'000'000;
  r.allowed_events = 3;
  r.dropped = 2;
  r.threads_unwatched = 5;
  return r;
}

}  // namespace blockwatch::testing
