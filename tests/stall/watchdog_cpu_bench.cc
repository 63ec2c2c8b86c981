// Measures what the stall watchdog costs while nothing stalls: N worker threads
// (default 64) sit idle in epoll_wait, as an executor's idle loop does, for a few
// seconds under LD_PRELOAD=libblockwatch.so; then the CPU time of the thread named
// "bw-watchdog" (found in /proc/self/task/*/comm, read from its CPU clock) is
// printed as a share of one core. `busy` mode: the workers run short tasks back to back instead
// (the watchdog's worst case: a new task key at every tick on every worker).
//
//   LD_PRELOAD=libblockwatch.so BLOCKWATCH_STALL_THRESHOLD=20ms
//       watchdog_cpu_bench [seconds=5] [workers=64] [idle|busy]
//
// Prints "watchdog_cpu_percent_of_one_core=X"; no assertion on X (benchmarks
// report, tests assert behaviour). Also prints the watchdog's wake-ups per second
// (its context switches) and, measured in the same window, the CPU of a bare
// thread that only sleeps on a futex with a timeout at that same rate: the
// floor any tick-based watchdog pays here, so the ratio is the tick's own work.
#include <dirent.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "blockwatch/blockwatch.h"

namespace {

std::atomic<bool> g_stop{false};
bool g_busy = false;

void idle_worker() {
  blockwatch_worker_begin();
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  epoll_event events[1];
  while (!g_stop.load(std::memory_order_relaxed)) epoll_wait(epoll_fd, events, 1, 100);
  close(epoll_fd);
  blockwatch_worker_end();
}

void busy_worker() {
  blockwatch_worker_begin();
  volatile uint64_t sink = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
    blockwatch_task_begin("short");
    for (int i = 0; i < 10'000; ++i) sink = sink + static_cast<uint64_t>(i);
    blockwatch_task_end();
    std::this_thread::sleep_for(std::chrono::microseconds(200));  // a pool's park
  }
  blockwatch_worker_end();
}

// The tid of our thread called `name`, or 0.
int thread_named(const char* name) {
  DIR* tasks = opendir("/proc/self/task");
  if (!tasks) return 0;
  int tid = 0;
  while (dirent* entry = readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream comm(std::string("/proc/self/task/") + entry->d_name + "/comm");
    std::string text;
    std::getline(comm, text);
    if (text == name) tid = std::atoi(entry->d_name);
  }
  closedir(tasks);
  return tid;
}

// A thread's CPU time in ns, from the kernel's per-thread CPU clock of its tid
// (what pthread_getcpuclockid computes): precise, unlike /proc's clock ticks.
double thread_cpu_seconds(int tid) {
  const clockid_t clock = static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | 6);
  timespec cpu;
  if (clock_gettime(clock, &cpu) != 0) return -1;
  return double(cpu.tv_sec) + double(cpu.tv_nsec) / 1e9;
}

// Voluntary plus involuntary context switches of our thread `tid`: one per
// futex sleep of the watchdog (and a few from preemption).
long context_switches(int tid) {
  std::ifstream status("/proc/self/task/" + std::to_string(tid) + "/status");
  long total = 0;
  for (std::string line; std::getline(status, line);) {
    if (line.find("ctxt_switches:") != std::string::npos) {
      total += std::atol(line.c_str() + line.find(':') + 1);
    }
  }
  return total;
}

// The floor: a thread that does nothing but sleep `period_ns` on a futex with a
// timeout (as the watchdog does between ticks) until told to stop.
std::atomic<bool> g_floor_stop{false};
std::atomic<int> g_floor_tid{0};
uint32_t g_floor_word = 0;

void floor_thread(int64_t period_ns) {
  g_floor_tid = static_cast<int>(syscall(SYS_gettid));
  while (!g_floor_stop.load(std::memory_order_relaxed)) {
    const timespec timeout = {static_cast<time_t>(period_ns / 1'000'000'000),
                              static_cast<long>(period_ns % 1'000'000'000)};
    syscall(SYS_futex, &g_floor_word, FUTEX_WAIT_PRIVATE, 0, &timeout, nullptr, 0);
  }
}

double monotonic_seconds() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return double(now.tv_sec) + double(now.tv_nsec) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 5.0;
  const int workers = argc > 2 ? std::atoi(argv[2]) : 64;
  g_busy = argc > 3 && std::strcmp(argv[3], "busy") == 0;
  if (!blockwatch_active()) {
    std::fprintf(stderr, "run under LD_PRELOAD=libblockwatch.so\n");
    return 2;
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < workers; ++i) threads.emplace_back(g_busy ? busy_worker : idle_worker);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // all started
  const int watchdog_tid = thread_named("bw-watchdog");
  if (watchdog_tid == 0) {
    std::printf("no bw-watchdog thread (watchdog off?)\n");
    g_stop = true;
    for (std::thread& t : threads) t.join();
    return 1;
  }
  // A short first window gives the watchdog's wake-up rate, so the floor
  // thread can sleep at the same rate during the measured window.
  const double probe_start = monotonic_seconds();
  const long probe_switches = context_switches(watchdog_tid);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const double wakes_per_s =
      double(context_switches(watchdog_tid) - probe_switches) / (monotonic_seconds() - probe_start);
  std::thread floor(floor_thread, static_cast<int64_t>(1e9 / (wakes_per_s > 1 ? wakes_per_s : 1)));
  while (g_floor_tid.load() == 0) std::this_thread::yield();

  const double before = thread_cpu_seconds(watchdog_tid);
  const double floor_before = thread_cpu_seconds(g_floor_tid);
  const long switches_before = context_switches(watchdog_tid);
  const long floor_switches_before = context_switches(g_floor_tid);
  const double start = monotonic_seconds();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const double after = thread_cpu_seconds(watchdog_tid);
  const double floor_after = thread_cpu_seconds(g_floor_tid);
  const long switches = context_switches(watchdog_tid) - switches_before;
  const long floor_switches = context_switches(g_floor_tid) - floor_switches_before;
  const double wall_s = monotonic_seconds() - start;
  g_floor_stop = true;
  floor.join();
  g_stop = true;
  for (std::thread& t : threads) t.join();
  const double cpu_s = after - before;
  const double floor_cpu_s = floor_after - floor_before;
  std::printf("workers=%d mode=%s seconds=%.2f watchdog_cpu_s=%.3f\n", workers,
              g_busy ? "busy" : "idle", wall_s, cpu_s);
  std::printf("watchdog_wakeups_per_s=%.0f watchdog_us_per_wakeup=%.1f\n", switches / wall_s,
              switches > 0 ? 1e6 * cpu_s / double(switches) : 0.0);
  std::printf("floor_wakeups_per_s=%.0f floor_us_per_wakeup=%.1f floor_cpu_percent=%.3f\n",
              floor_switches / wall_s,
              floor_switches > 0 ? 1e6 * floor_cpu_s / double(floor_switches) : 0.0,
              100.0 * floor_cpu_s / wall_s);
  std::printf("watchdog_cpu_over_floor=%.2f\n", floor_cpu_s > 0 ? cpu_s / floor_cpu_s : 0.0);
  std::printf("watchdog_cpu_percent_of_one_core=%.3f\n", 100.0 * cpu_s / wall_s);
  return 0;
}
