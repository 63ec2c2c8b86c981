// C++ RAII over blockwatch's C API (blockwatch/blockwatch.h): mark a scope as a
// worker, a task, or a place where blocking is allowed.
//
// Header-only and noexcept. Every constructor and destructor is one load of a weak
// symbol and one branch when libblockwatch.so is not preloaded; with it, one call
// into the library that never blocks, locks or allocates. Label and reason strings
// must outlive the scope (string literals are the usual case).
//
//   void Handle(Request& r) {
//     blockwatch::TaskScope task("handle_request");
//     ...
//     { blockwatch::AllowBlocking allow("startup config read"); ReadConfig(); }
//   }
#pragma once

#include <utility>

#include "blockwatch/blockwatch.h"

namespace blockwatch {

// True when the injected library is loaded and active in this process.
inline bool Active() noexcept { return blockwatch_active() != 0; }

// The calling thread is an executor worker (must not block) for this scope.
class WorkerScope {
 public:
  WorkerScope() noexcept { blockwatch_worker_begin(); }
  ~WorkerScope() { blockwatch_worker_end(); }
  WorkerScope(const WorkerScope&) = delete;
  WorkerScope& operator=(const WorkerScope&) = delete;
};

// One task (handler, job) on the calling thread; `label` names it in reports.
class TaskScope {
 public:
  explicit TaskScope(const char* label) noexcept { blockwatch_task_begin(label); }
  ~TaskScope() { blockwatch_task_end(); }
  TaskScope(const TaskScope&) = delete;
  TaskScope& operator=(const TaskScope&) = delete;
};

// Blocking in this scope is legitimate: still recorded, marked allowed with
// `reason`, and never fails a run or a test.
class AllowBlocking {
 public:
  explicit AllowBlocking(const char* reason) noexcept { blockwatch_allow_begin(reason); }
  ~AllowBlocking() { blockwatch_allow_end(); }
  AllowBlocking(const AllowBlocking&) = delete;
  AllowBlocking& operator=(const AllowBlocking&) = delete;
};

// Wrap a callable so that each call runs as a task labelled `label` (for pools
// that are not ours: `pool.submit(blockwatch::wrap_task("resize", job))`). The
// label must be a string with static storage duration.
template <typename F>
auto wrap_task(const char* label, F&& f) {
  return [label, f = std::forward<F>(f)](auto&&... args) mutable -> decltype(auto) {
    TaskScope task(label);
    return f(std::forward<decltype(args)>(args)...);
  };
}

}  // namespace blockwatch
