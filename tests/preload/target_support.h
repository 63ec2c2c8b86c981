// What every preload_target scenario file (target_*.cc) shares: the CHECK that
// turns a changed return value or errno into exit status 3, small timing
// helpers, a wait for another thread to block, the named-thread runner, and the scenario table
// main() dispatches on. Each scenario family registers itself through one add_*_scenarios function.
#pragma once
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
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

// Returns once thread `tid` of this process sits in the futex syscall (the
// number /proc/self/task/TID/syscall starts with), or after 10 s. A helper that
// holds a lock or owes a wake-up waits for this before its planted delay, so the
// waiter really blocks: a fixed head start is a guess a loaded machine breaks
// (libstdc++'s atomic::wait first spins with sched_yield, and each yield may
// hand a busy neighbour a whole time slice).
inline void wait_until_in_futex(pid_t tid) {
  const std::string path = "/proc/self/task/" + std::to_string(tid) + "/syscall";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    long number = -1;
    if (FILE* file = fopen(path.c_str(), "re")) {
      if (fscanf(file, "%ld", &number) != 1) number = -1;
      fclose(file);
    }
    if (number == SYS_futex) return;
    sched_yield();
  }
}

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
