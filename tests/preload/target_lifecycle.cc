// preload_target scenarios for a process's life: hooks before blockwatch's
// constructor, fork, vfork / posix_spawn / system() / exec children, every fd
// closed or overwritten, 2,000 short-lived threads, and the exit paths (exit
// from a non-main thread, _exit, abort, BLOCKWATCH_ON_BLOCKING=abort).
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cstdlib>
#include <vector>

#include "tests/preload/early_hooks.h"
#include "tests/preload/target_support.h"

extern char** environ;

namespace preload_target {
namespace {

void scenario_early_hooks() {
  CHECK(early_hooks_ran() == 1);
  run_named_thread("worker-1", [] { usleep(5000); });
}

__attribute__((noinline)) void fork_child_site() { usleep(5000); }

void scenario_fork() {
  run_named_thread("worker-1", [] {
    usleep(5000);
    const pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
      fork_child_site();
      pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
      pthread_mutex_lock(&mutex);  // the parent's other threads are gone: no deadlock
      pthread_mutex_unlock(&mutex);
      exit(7);
    }
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);
  });
}

int wait_status(pid_t pid) {
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  return status;
}

// vfork + exec, posix_spawn, system(): no atfork handlers run in any of them.
void scenario_spawn(const char* self) {
  run_named_thread("worker-1", [self] {
    usleep(5000);
    const pid_t vforked = vfork();
    if (vforked == 0) {
      execl(self, self, "child", nullptr);
      _exit(127);
    }
    CHECK(vforked > 0);
    int status = wait_status(vforked);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    pid_t spawned = 0;
    char* argv[] = {const_cast<char*>(self), const_cast<char*>("child"), nullptr};
    CHECK(posix_spawn(&spawned, self, nullptr, nullptr, argv, environ) == 0);
    status = wait_status(spawned);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    const std::string command = std::string(self) + " child";
    status = system(command.c_str());
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  });
}

// The exec'd child of `spawn` and `exec`: a worker (main) that blocks once.
__attribute__((noinline)) void exec_child_site() { usleep(5000); }
void scenario_child() { run_named_thread("worker-child", exec_child_site); }

void scenario_exec(const char* self) {
  usleep(5000);  // main is a worker here: reported, and flushed before exec
  execl(self, self, "child", nullptr);
  CHECK(false);
}

// Every descriptor closed or overwritten (including blockwatch's output): the
// program keeps running; blockwatch loses records, never the program.
void scenario_close_fds() {
  run_named_thread("worker-1", [] { usleep(5000); });
  for (int fd = 3; fd < 1024; ++fd) close(fd);
  run_named_thread("worker-1", [] { usleep(5000); });
  const int null_fd = open("/dev/null", O_RDWR);
  CHECK(null_fd >= 0);
  for (int fd = 3; fd < 64; ++fd) {
    if (fd != null_fd) dup2(null_fd, fd);
  }
  run_named_thread("worker-1", [] { usleep(5000); });
  printf("still running\n");
}

void scenario_many_threads() {
  constexpr int kThreads = 2000;
  constexpr int kBatch = 50;
  for (int started = 0; started < kThreads; started += kBatch) {
    std::vector<std::thread> batch;
    for (int i = 0; i < kBatch; ++i) {
      batch.emplace_back([] {
        pthread_setname_np(pthread_self(), "worker-short");
        timespec duration{0, 100'000};
        nanosleep(&duration, nullptr);
      });
    }
    for (auto& t : batch) t.join();
  }
}

void scenario_exit_thread() {
  std::thread t([] {
    pthread_setname_np(pthread_self(), "worker-1");
    usleep(5000);
    exit(5);  // from a non-main thread, while main waits
  });
  t.join();
}

void scenario_underscore_exit() {
  run_named_thread("worker-1", [] { usleep(5000); });
  _exit(6);
}

void scenario_abort() {
  run_named_thread("worker-1", [] { usleep(5000); });
  abort();
}

// BLOCKWATCH_ON_BLOCKING=abort: the first report aborts, at the site.
__attribute__((noinline)) void abort_site() { usleep(5000); }
void scenario_abort_on_blocking() {
  run_named_thread("worker-1", abort_site);
  printf("not reached\n");
}

}  // namespace

void add_lifecycle_scenarios(ScenarioTable& table) {
  table.insert({
      {"early_hooks", ignoring_self(scenario_early_hooks)},
      {"fork", ignoring_self(scenario_fork)},
      {"spawn", scenario_spawn},
      {"child", ignoring_self(scenario_child)},
      {"exec", scenario_exec},
      {"close_fds", ignoring_self(scenario_close_fds)},
      {"many_threads", ignoring_self(scenario_many_threads)},
      {"exit_thread", ignoring_self(scenario_exit_thread)},
      {"underscore_exit", ignoring_self(scenario_underscore_exit)},
      {"abort", ignoring_self(scenario_abort)},
      {"abort_on_blocking", ignoring_self(scenario_abort_on_blocking)},
  });
}

}  // namespace preload_target
