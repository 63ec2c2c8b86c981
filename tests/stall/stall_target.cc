// The program the stall tests run under LD_PRELOAD=libblockwatch.so, one scenario
// per run (argv[1]). Each scenario plants a known stall (or none) and prints what
// the program itself saw, so the test can check blockwatch changed nothing
// (errno, sleep results, its own signal handler).
//
// The *_site functions are what the tests look for in sampled stacks: extern "C",
// never inlined, built with frame pointers, exported for symbolization.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "blockwatch/blockwatch.h"

namespace {

int64_t mono_ns() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

std::atomic<int> g_program_signals{0};
void program_signal_handler(int) { g_program_signals.fetch_add(1); }

}  // namespace

extern "C" {

int64_t thread_cpu_ns() {
  timespec now;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

// One slice of work plus a clock read. Its own frame, so that a sample taken
// while in clock_gettime (libc has no frame pointers; a pending signal is often
// delivered at that syscall's exit) loses this frame, not the one tests look for.
__attribute__((noinline)) uint64_t cpu_spin_step(int64_t* cpu_now_ns) {
  uint64_t sum = 0;
  for (int i = 0; i < 20'000; ++i) sum += static_cast<uint64_t>(i) * 2654435761u;
  *cpu_now_ns = thread_cpu_ns();
  return sum;
}

// Burns `cpu_ns` of this thread's CPU time (on a busy machine the task lasts
// longer in wall time, never shorter). Returns a value so it is not elided.
__attribute__((noinline)) uint64_t stall_cpu_loop_site(int64_t cpu_ns) {
  int64_t now_ns = thread_cpu_ns();
  const int64_t end_ns = now_ns + cpu_ns;
  uint64_t sum = 0;
  while (now_ns < end_ns) sum += cpu_spin_step(&now_ns);
  return sum;
}

__attribute__((noinline)) uint64_t stall_loop_turn_site(int64_t duration_ns) {
  return stall_cpu_loop_site(duration_ns) + 1;
}

// Spins for `duration_ns` of wall time (a hang is a wall-clock matter).
// Spins for `duration_ns` of wall time (a hang is a wall-clock matter).
__attribute__((noinline)) uint64_t hang_spin_site(int64_t duration_ns) {
  const int64_t end_ns = mono_ns() + duration_ns;
  uint64_t sum = 0;
  while (mono_ns() < end_ns) sum += stall_cpu_loop_site(200'000);
  return sum;
}

__attribute__((noinline)) int stall_sleep_site(int64_t duration_ns) {
  timespec pause = {static_cast<time_t>(duration_ns / 1'000'000'000),
                    static_cast<long>(duration_ns % 1'000'000'000)};
  return nanosleep(&pause, nullptr);
}

// A CPU loop that reads the clock: the sample usually lands in clock_gettime
// (vDSO, called through libc, neither with frame pointers). Built without frame
// pointers too in stall_target_nofp: only DWARF unwinding finds this function
// right below the clock frames, and its caller below it.
__attribute__((noinline)) uint64_t clock_loop_site(int64_t cpu_ns) {
  // Runs until this thread used `cpu_ns` of CPU (a loaded machine stretches the
  // wall time, never shortens the work), checked every 4096 clock reads.
  const int64_t end_cpu_ns = thread_cpu_ns() + cpu_ns;
  timespec now;
  uint64_t reads = 0;
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    ++reads;
    if ((reads & 4095) == 0 && thread_cpu_ns() >= end_cpu_ns) return reads;
  }
}

__attribute__((noinline)) uint64_t clock_loop_caller(int64_t duration_ns) {
  return clock_loop_site(duration_ns) * 3 + 1;
}

}  // extern "C"

namespace {

void* clock_loop_worker(void*) {
  blockwatch_worker_begin();
  blockwatch_task_begin("clock_loop");
  const uint64_t reads = clock_loop_caller(100'000'000);
  blockwatch_task_end();
  blockwatch_worker_end();
  std::printf("reads=%llu\n", static_cast<unsigned long long>(reads));
  return nullptr;
}

// One worker task that burns CPU for 50 ms; errno must survive the sampling signal.
void* cpu_task_worker(void*) {
  blockwatch_worker_begin();
  blockwatch_task_begin("cpu_task");
  errno = 4242;
  const uint64_t sum = stall_cpu_loop_site(50'000'000);
  const int errno_after = errno;
  blockwatch_task_end();
  blockwatch_worker_end();
  std::printf("sum=%llu errno_after=%d\n", static_cast<unsigned long long>(sum), errno_after);
  return nullptr;
}

void* sleep_task_worker(void*) {
  blockwatch_worker_begin();
  blockwatch_task_begin("sleep_task");
  // 100 ms: on a loaded machine the first samples may still be dominated by the
  // wait for a CPU before the sleep began; the 4x sample is not.
  const int result = stall_sleep_site(100'000'000);
  const int error = result == 0 ? 0 : errno;
  blockwatch_task_end();
  blockwatch_worker_end();
  std::printf("nanosleep=%d errno=%d\n", result, error);
  return nullptr;
}

void* three_stalls_worker(void*) {
  blockwatch_worker_begin();
  for (int i = 0; i < 3; ++i) {
    blockwatch_task_begin("stall_each");
    stall_cpu_loop_site(60'000'000);  // 3x the 20 ms threshold: clear of tick jitter
    blockwatch_task_end();
  }
  blockwatch_worker_end();
  return nullptr;
}

void* short_tasks_worker(void*) {
  blockwatch_worker_begin();
  for (int i = 0; i < 500; ++i) {
    blockwatch_task_begin("tiny");
    stall_cpu_loop_site(2'000);
    blockwatch_task_end();
  }
  for (int i = 0; i < 20; ++i) {
    blockwatch_task_begin("short");
    stall_cpu_loop_site(1'000'000);
    blockwatch_task_end();
  }
  blockwatch_worker_end();
  return nullptr;
}

std::atomic<int> g_hang_worker_tid{0}, g_helper_tid{0};

void* hang_worker(void*) {
  g_hang_worker_tid = gettid();
  blockwatch_worker_begin();
  blockwatch_task_begin("hang_task");
  hang_spin_site(1'500'000'000);
  blockwatch_task_end();
  blockwatch_worker_end();
  return nullptr;
}

void* helper_thread(void*) {
  g_helper_tid = gettid();
  stall_sleep_site(1'600'000'000);
  return nullptr;
}

int run_in_thread(void* (*body)(void*)) {
  pthread_t thread;
  if (pthread_create(&thread, nullptr, body, nullptr) != 0) return 2;
  pthread_join(thread, nullptr);
  return 0;
}

// An unmodified epoll loop on the main thread: one turn spins 50 ms (a stall),
// then the loop waits idle in epoll_wait for 200 ms (not a stall).
int epoll_loop() {
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  const int event_fd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);  // readable at once
  epoll_event interest = {};
  interest.events = EPOLLIN;
  epoll_ctl(epoll_fd, EPOLL_CTL_ADD, event_fd, &interest);
  epoll_event ready[4];
  int turns = 0;
  for (int round = 0; round < 3; ++round) {
    const int n = epoll_wait(epoll_fd, ready, 4, 200);
    ++turns;
    if (n > 0) {
      uint64_t value;
      if (read(event_fd, &value, sizeof value) != sizeof value) return 3;
      stall_loop_turn_site(50'000'000);
    }
  }
  std::printf("turns=%d\n", turns);
  return 0;
}

// The watchdog restarts in a fork() child (as the agent does): the child's stall
// is in the child's own stream.
int fork_child_stall() {
  const pid_t child = fork();
  if (child == 0) exit(run_in_thread(cpu_task_worker));
  int status = 0;
  waitpid(child, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int hang(bool kill_self) {
  pthread_t worker, helper;
  pthread_create(&helper, nullptr, helper_thread, nullptr);
  pthread_create(&worker, nullptr, hang_worker, nullptr);
  while (g_hang_worker_tid == 0 || g_helper_tid == 0) usleep(1000);
  std::printf("main=%d worker=%d helper=%d\n", static_cast<int>(gettid()), g_hang_worker_tid.load(),
              g_helper_tid.load());
  std::fflush(stdout);
  pthread_join(worker, nullptr);
  // Dying without exit(): only what the hang dump flushed is in the stream.
  if (kill_self) kill(getpid(), SIGKILL);
  pthread_join(helper, nullptr);
  return 0;
}

// The program owns the default stall signal: blockwatch must not take it (and
// so never sends it) even though the program installs its handler after us.
int program_owns_signal() {
  struct sigaction action = {};
  action.sa_handler = program_signal_handler;
  sigaction(SIGRTMIN + 7, &action, nullptr);
  const int status = run_in_thread(cpu_task_worker);
  std::printf("program_signals=%d\n", g_program_signals.load());
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string scenario = argc > 1 ? argv[1] : "";
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (scenario == "cpu_task") return run_in_thread(cpu_task_worker);
  if (scenario == "clock_loop") return run_in_thread(clock_loop_worker);
  if (scenario == "sleep_task") return run_in_thread(sleep_task_worker);
  if (scenario == "three_stalls") return run_in_thread(three_stalls_worker);
  if (scenario == "short_tasks") return run_in_thread(short_tasks_worker);
  if (scenario == "epoll_loop") return epoll_loop();
  if (scenario == "fork_child_stall") return fork_child_stall();
  if (scenario == "hang") return hang(false);
  if (scenario == "hang_killed") return hang(true);
  if (scenario == "program_owns_signal") return program_owns_signal();
  std::fprintf(stderr, "unknown scenario '%s'\n", scenario.c_str());
  return 64;
}
