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
// report, tests assert behaviour).
#include <dirent.h>
#include <pthread.h>
#include <sys/epoll.h>
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
  const double before = thread_cpu_seconds(watchdog_tid);
  timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const double after = thread_cpu_seconds(watchdog_tid);
  clock_gettime(CLOCK_MONOTONIC, &end);
  g_stop = true;
  for (std::thread& t : threads) t.join();
  const double wall_s =
      double(end.tv_sec - start.tv_sec) + double(end.tv_nsec - start.tv_nsec) / 1e9;
  const double cpu_s = after - before;
  std::printf("workers=%d mode=%s seconds=%.2f watchdog_cpu_s=%.3f\n", workers,
              g_busy ? "busy" : "idle", wall_s, cpu_s);
  std::printf("watchdog_cpu_percent_of_one_core=%.3f\n", 100.0 * cpu_s / wall_s);
  return 0;
}
