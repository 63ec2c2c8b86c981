// A program run under the preload by agent_preload_test: each mode exercises one
// way a process ends or changes under the agent. The calling thread is marked a
// worker, so its 5 ms sleeps are reported (threshold 1 ms).
//   thread-exit  a second thread sleeps, then calls exit(7) while main is joined
//   fork         sleep, fork; the child sleeps and exits; the parent sleeps again
//   close-fds    sleep, close every fd >= 3, sleep again (the agent must reopen)
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <thread>

#include "blockwatch/blockwatch.h"

namespace {

void blocking_sleep() { usleep(5000); }

int thread_exit() {
  std::thread exiting([] {
    blockwatch_worker_begin();
    blocking_sleep();
    exit(7);
  });
  exiting.join();
  return 1;  // not reached
}

int fork_child() {
  blockwatch_worker_begin();
  blocking_sleep();
  const pid_t child = fork();
  if (child == 0) {
    blocking_sleep();
    exit(0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  blocking_sleep();
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

int close_fds() {
  blockwatch_worker_begin();
  blocking_sleep();
  blockwatch_flush(2000);
  for (int fd = 3; fd < 1024; ++fd) close(fd);
  blocking_sleep();
  return blockwatch_flush(2000) == 0 ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  if (strcmp(argv[1], "thread-exit") == 0) return thread_exit();
  if (strcmp(argv[1], "fork") == 0) return fork_child();
  if (strcmp(argv[1], "close-fds") == 0) return close_fds();
  return 2;
}
