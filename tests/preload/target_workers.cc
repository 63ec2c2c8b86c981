// preload_target scenarios about who is a worker and what gets reported: the
// bw_* API (task, allowed scope), the main thread as worker, a thread renamed
// from outside, the threshold, and strict mode.
#include <atomic>

#include "blockwatch/blockwatch.h"
#include "tests/preload/target_support.h"

namespace preload_target {
namespace {

// Marked through the API, in a task and an allowed scope.
__attribute__((noinline)) void api_site() {
  blockwatch_worker_begin();
  blockwatch_task_begin("handle_request");
  usleep(5000);  // in the task
  blockwatch_allow_begin("startup config read");
  usleep(5000);  // in the task, allowed
  blockwatch_allow_end();
  blockwatch_task_end();
  blockwatch_worker_end();
  usleep(5000);  // no longer a worker: not reported
}

void scenario_api() {
  std::thread t([] {
    pthread_setname_np(pthread_self(), "api-thread");
    CHECK(blockwatch_active() == 1);
    api_site();
  });
  t.join();
}

// The main thread as worker (BLOCKWATCH_WORKERS=main).
__attribute__((noinline)) void main_thread_site() { usleep(5000); }
void scenario_main() {
  main_thread_site();
  std::thread t([] { usleep(5000); });  // not main: not reported
  t.join();
}

// Named from outside after it started (and after its first hook).
void scenario_rename_from_outside() {
  std::atomic<int> phase{0};
  std::thread t([&] {
    usleep(100);  // first hook: classified as "not a worker" under its old name
    phase = 1;
    while (phase != 2) sched_yield();
    main_thread_site();
  });
  while (phase != 1) sched_yield();
  pthread_setname_np(t.native_handle(), "worker-ext");
  phase = 2;
  t.join();
}

void scenario_threshold() {
  run_named_thread("worker-1", [] {
    usleep(2000);    // under BLOCKWATCH_THRESHOLD=100ms, even on a loaded machine
    usleep(150000);  // over
  });
}

void scenario_strict() {
  run_named_thread("worker-1", [] {
    pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
    for (int i = 0; i < 3; ++i) {
      pthread_mutex_lock(&mutex);  // never contended: reported only in strict mode
      pthread_mutex_unlock(&mutex);
    }
    // The rwlock hooks take a free lock inline too: strict mode must still see it.
    pthread_rwlock_t rwlock = PTHREAD_RWLOCK_INITIALIZER;
    pthread_rwlock_rdlock(&rwlock);
    pthread_rwlock_unlock(&rwlock);
    pthread_rwlock_wrlock(&rwlock);
    pthread_rwlock_unlock(&rwlock);
  });
}

}  // namespace

void add_worker_scenarios(ScenarioTable& table) {
  table.insert({
      {"api", ignoring_self(scenario_api)},
      {"main", ignoring_self(scenario_main)},
      {"rename_from_outside", ignoring_self(scenario_rename_from_outside)},
      {"threshold", ignoring_self(scenario_threshold)},
      {"strict", ignoring_self(scenario_strict)},
  });
}

}  // namespace preload_target
