// GoogleTest integration: a listener that fails the test during which a worker
// thread blocked or stalled, with a readable list of what blocked where.
//
// Install it with one line before RUN_ALL_TESTS (or link the CMake target
// blockwatch::gtest, which installs it automatically):
//   blockwatch::InstallGTestListener();
//
// How it works: the listener registers bw_set_event_callback, so libblockwatch.so
// hands it every record on blockwatch's sender thread. Records arriving between
// OnTestStart and OnTestEnd belong to the running test; OnTestEnd first calls
// bw_flush so that nothing taken during the test is still queued, then fails the
// test if any record was not inside a blockwatch::AllowBlocking scope.
//
// Which threads are checked: only workers, as chosen by the API (WorkerScope,
// blockwatch::asio::run_workers, ThreadPool) or by the --workers / BLOCKWATCH_WORKERS
// rules. The thread running the test body is not a worker, unless the environment
// says BLOCKWATCH_GTEST_WORKER=main (then it is one for the duration of each test)
// or the test opens a blockwatch::WorkerScope itself.
//
// Without the preload the listener registers nothing and does nothing.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "blockwatch/blockwatch.h"

namespace blockwatch {

namespace gtest_detail {

inline constexpr size_t kFramesKept = 16;  // idle-wait detection looks this deep
inline constexpr size_t kFramesPrinted = 6;
inline constexpr int kFlushTimeoutMs = 5000;

// Kind names come from the library (one list, common/kinds.h); the listener only
// runs where the library is loaded.
inline const char* kind_name(int kind) { return blockwatch_kind_name(kind); }

// A record copied out of the callback (its pointers die with the callback).
struct SeenRecord {
  int kind = 0;
  int64_t duration_ns = 0;
  int tid = 0;
  std::string thread_name;
  std::string task;
  std::string function;
  std::string allow_reason;
  std::vector<std::string> frames;  // innermost first, at most kFramesKept
};

inline std::string describe(const SeenRecord& r) {
  char head[160];
  std::snprintf(head, sizeof head, "  %s %.3f ms on thread \"%s\" (tid %d)", kind_name(r.kind),
                static_cast<double>(r.duration_ns) / 1e6, r.thread_name.c_str(), r.tid);
  std::string text = head;
  if (!r.function.empty()) text += " in " + r.function;
  if (!r.task.empty()) text += ", task \"" + r.task + "\"";
  text += "\n";
  for (size_t i = 0; i < r.frames.size() && i < kFramesPrinted; ++i) {
    text += "      at " + r.frames[i] + "\n";
  }
  return text;
}

// The executor's own wait for work, seen outside any task: Asio's scheduler
// parking a worker, blockwatch::ThreadPool waiting for a job. Not blocking (the
// collector's built-in idle rules agree); the listener must not fail tests on it.
inline bool is_idle_wait(const SeenRecord& r) {
  if (!r.task.empty()) return false;
  if (r.kind != BW_KIND_CONDVAR && r.kind != BW_KIND_FUTEX && r.kind != BW_KIND_POLL) {
    return false;
  }
  for (const std::string& frame : r.frames) {
    if (frame.find("boost::asio::detail::scheduler::") != std::string::npos ||
        frame.find("boost::asio::detail::epoll_reactor::run") != std::string::npos ||
        frame.find("blockwatch::ThreadPool::worker_main") != std::string::npos) {
      return true;
    }
  }
  return false;
}

// One stall is sampled at 1x, 2x and 4x its threshold, one record each: fold a
// later sample of the same thread and task into the earlier one (the longest
// duration wins; the first sample's stack is kept when the later has none).
inline bool merge_stall_sample(std::vector<SeenRecord>* failing, SeenRecord* r) {
  if (r->kind != BW_KIND_STALL) return false;
  for (auto it = failing->rbegin(); it != failing->rend(); ++it) {
    if (it->kind != BW_KIND_STALL || it->tid != r->tid) continue;
    if (it->task != r->task || it->duration_ns > r->duration_ns) return false;
    if (r->frames.empty()) r->frames = std::move(it->frames);
    *it = std::move(*r);
    return true;
  }
  return false;
}

}  // namespace gtest_detail

class GTestListener : public testing::EmptyTestEventListener {
 public:
  GTestListener() {
    const char* worker = std::getenv("BLOCKWATCH_GTEST_WORKER");
    test_thread_is_worker_ = worker != nullptr && std::strcmp(worker, "main") == 0;
  }
  ~GTestListener() override {
    if (registered_) blockwatch_set_event_callback(nullptr, nullptr);
  }

  void OnTestProgramEnd(const testing::UnitTest&) override {
    if (registered_) blockwatch_set_event_callback(nullptr, nullptr);
    registered_ = false;
  }

  void OnTestStart(const testing::TestInfo&) override {
    if (!blockwatch_active()) return;
    if (!registered_) registered_ = blockwatch_set_event_callback(&on_record, this) == 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      records_.clear();
      collecting_ = true;
    }
    if (test_thread_is_worker_) blockwatch_worker_begin();
  }

  void OnTestEnd(const testing::TestInfo& test) override {
    if (!registered_) return;
    if (test_thread_is_worker_) blockwatch_worker_end();
    blockwatch_flush(gtest_detail::kFlushTimeoutMs);
    std::vector<gtest_detail::SeenRecord> seen;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      collecting_ = false;
      seen.swap(records_);
    }
    size_t allowed = 0;
    std::vector<gtest_detail::SeenRecord> failing;
    for (gtest_detail::SeenRecord& r : seen) {
      if (gtest_detail::is_idle_wait(r)) continue;
      if (!r.allow_reason.empty()) {
        ++allowed;
        continue;
      }
      if (!gtest_detail::merge_stall_sample(&failing, &r)) failing.push_back(std::move(r));
    }
    std::string failures;
    for (const gtest_detail::SeenRecord& r : failing) failures += gtest_detail::describe(r);
    if (failing.empty()) return;
    ADD_FAILURE_AT(test.file(), test.line())
        << "blockwatch: " << failing.size()
        << " blocking or stall record(s) on worker threads during " << test.test_suite_name() << "."
        << test.name() << " (" << allowed << " allowed not counted):\n"
        << failures;
  }

 private:
  // Runs on blockwatch's sender thread.
  static void on_record(const bw_event_info* event, void* arg) {
    auto* self = static_cast<GTestListener*>(arg);
    gtest_detail::SeenRecord r;
    r.kind = event->kind;
    r.duration_ns = event->duration_ns;
    r.tid = event->tid;
    r.thread_name = event->thread_name != nullptr ? event->thread_name : "";
    r.task = event->task != nullptr ? event->task : "";
    r.function = event->function != nullptr ? event->function : "";
    r.allow_reason = event->allow_reason != nullptr ? event->allow_reason : "";
    for (size_t i = 0; i < event->frame_count && i < gtest_detail::kFramesKept; ++i) {
      const char* frame = event->frames[i];
      r.frames.emplace_back(frame != nullptr && frame[0] != '\0' ? frame : "<unknown>");
    }
    std::lock_guard<std::mutex> lock(self->mutex_);
    if (self->collecting_) self->records_.push_back(std::move(r));
  }

  bool test_thread_is_worker_ = false;
  bool registered_ = false;
  std::mutex mutex_;
  bool collecting_ = false;
  std::vector<gtest_detail::SeenRecord> records_;
};

// Appends one GTestListener to GoogleTest's listeners (once per process; later
// calls do nothing). GoogleTest owns and deletes it.
inline void InstallGTestListener() {
  static bool installed = false;
  if (installed) return;
  installed = true;
  testing::UnitTest::GetInstance()->listeners().Append(new GTestListener);
}

}  // namespace blockwatch
