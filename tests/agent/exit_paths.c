/* A C program run under the preload by agent_preload_test: each mode ends the
 * process, or makes a child, in a way the agent must get right. The calling
 * thread is marked a worker, so each blocking_site() sleep (5 ms) is reported
 * (threshold 1 ms). Its own checks of the program's side (errno, fd numbers,
 * exit codes) end in exit code 90+ when they fail.
 *   main-return    main returns 3 (glibc calls exit past any exit shim)
 *   quick-exit     quick_exit(4)
 *   exit-group     syscall(SYS_exit_group, 5)
 *   exec-fails     an exec that fails (ENOENT), then more work: still watched
 *   low-fd         closes fds 3..1023 (the agent's too), reports, flushes: the
 *                  program's next open() must still get fd 3
 *   vfork-child    a vfork child sleeps in child_site() before _exit: never
 *                  reported (not in the parent's name)
 *   fork-child     a _Fork() child: must hold no fd of the agent's
 *   raw-exit       5000 threads claim a slot and end with syscall(SYS_exit);
 *                  a last thread must still be watched */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "blockwatch/blockwatch.h"

__attribute__((noinline)) void blocking_site(void) { usleep(5000); }
__attribute__((noinline)) void child_site(void) { usleep(5000); }

static int main_return(void) {
  blocking_site();
  return 3;
}

static int quick_exit_mode(void) {
  blocking_site();
  quick_exit(4);
}

static int exit_group_mode(void) {
  blocking_site();
  syscall(SYS_exit_group, 5);
  return 91;
}

static int exec_fails(void) {
  blocking_site();
  errno = 0;
  execl("/nonexistent/blockwatch-test", "x", (char*)NULL);
  if (errno != ENOENT) return 92;
  blocking_site();
  return blockwatch_flush(2000) == 0 ? 0 : 93;
}

static int low_fd(void) {
  blocking_site();
  if (blockwatch_flush(2000) != 0) return 94;
  for (int fd = 3; fd < 1024; ++fd) close(fd);
  blocking_site();
  if (blockwatch_flush(2000) != 0) return 95; /* the agent reopened its output */
  const int fd = open("/dev/null", O_RDONLY);
  return fd == 3 ? 0 : 96;
}

static int vfork_child(void) {
  blocking_site();
  const pid_t child = vfork();
  if (child == 0) {
    child_site();
    _exit(0);
  }
  int status = 0;
  if (child < 0 || waitpid(child, &status, 0) != child || status != 0) return 97;
  return blockwatch_flush(2000) == 0 ? 0 : 98;
}

/* Does this process hold an fd on a file whose path contains `needle`? */
static int holds_fd_on(const char* needle) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  int found = 0;
  for (struct dirent* entry; (entry = readdir(dir)) != NULL;) {
    char link[300], target[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%s", entry->d_name);
    const ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    if (strstr(target, needle)) found = 1;
  }
  closedir(dir);
  return found;
}

static int fork_child(const char* output) {
  blocking_site();
  if (blockwatch_flush(2000) != 0) return 99;
  if (holds_fd_on(output) != 1) return 100; /* the parent writes it */
  const pid_t child = _Fork();
  if (child == 0) {
    child_site();
    _exit(holds_fd_on(output) == 0 ? 0 : 1);
  }
  int status = 0;
  if (child < 0 || waitpid(child, &status, 0) != child) return 101;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 102;
}

static void* claim_slot_and_exit_raw(void* unused) {
  (void)unused;
  blockwatch_worker_begin(); /* claims a slot */
  syscall(SYS_exit, 0);
  return NULL;
}

static void* last_thread(void* unused) {
  (void)unused;
  blockwatch_worker_begin();
  blocking_site();
  return NULL;
}

static int raw_exit(void) {
  for (int i = 0; i < 5000; ++i) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, claim_slot_and_exit_raw, NULL) != 0) return 103;
    pthread_join(thread, NULL);
  }
  pthread_t thread;
  if (pthread_create(&thread, NULL, last_thread, NULL) != 0) return 104;
  pthread_join(thread, NULL);
  return blockwatch_flush(2000) == 0 ? 0 : 105;
}

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  blockwatch_worker_begin();
  const char* mode = argv[1];
  if (strcmp(mode, "main-return") == 0) return main_return();
  if (strcmp(mode, "quick-exit") == 0) return quick_exit_mode();
  if (strcmp(mode, "exit-group") == 0) return exit_group_mode();
  if (strcmp(mode, "exec-fails") == 0) return exec_fails();
  if (strcmp(mode, "low-fd") == 0) return low_fd();
  if (strcmp(mode, "vfork-child") == 0) return vfork_child();
  if (strcmp(mode, "fork-child") == 0 && argc == 3) return fork_child(argv[2]);
  if (strcmp(mode, "raw-exit") == 0) return raw_exit();
  return 2;
}
