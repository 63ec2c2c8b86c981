// What every preload_target scenario file (target_*.cc) shares: the CHECK that
// turns a changed return value or errno into exit status 3, small timing
// helpers, the named-thread runner, and the scenario table main() dispatches on.
// Each scenario family registers itself through one add_*_scenarios function.
#pragma once
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <thread>

#define CHECK(cond)                                                                               \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      fprintf(stderr, "preload_target: %s:%d: CHECK(%s) failed (errno %d)\n", __FILE__, __LINE__, \
              #cond, errno);                                                                      \
      _exit(3);                                                                                   \
    }                                                                                             \
  } while (0)

namespace preload_target {

// A scenario gets the program's own path, for those that exec themselves.
using Scenario = std::function<void(const char* self)>;
using ScenarioTable = std::map<std::string, Scenario>;

inline Scenario ignoring_self(void (*scenario)()) {
  return [scenario](const char*) { scenario(); };
}

inline void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

inline timespec deadline_in_ms(clockid_t clock, int ms) {
  timespec t;
  clock_gettime(clock, &t);
  t.tv_nsec += static_cast<long>(ms) * 1'000'000;
  t.tv_sec += t.tv_nsec / 1'000'000'000;
  t.tv_nsec %= 1'000'000'000;
  return t;
}

// Runs `body` on a thread named `name` (named from inside, as most pools do).
inline void run_named_thread(const char* name, const std::function<void()>& body) {
  std::thread t([&] {
    pthread_setname_np(pthread_self(), name);
    body();
  });
  t.join();
}

// One per file: target_locks.cc, target_io.cc, target_workers.cc,
// target_lifecycle.cc.
void add_lock_scenarios(ScenarioTable& table);
void add_io_scenarios(ScenarioTable& table);
void add_worker_scenarios(ScenarioTable& table);
void add_lifecycle_scenarios(ScenarioTable& table);
// preload_hardening_target's own table (hardening_target.cc).
void add_hardening_scenarios(ScenarioTable& table);

}  // namespace preload_target
