/* A C program run under the preload by agent_preload_test with
 * BLOCKWATCH_WORKERS=name:(pool|loop|task)-w: which threads a name rule selects
 * when names are inherited (Linux copies the creator's name into a new thread).
 * Each *_site sleeps 5 ms (threshold 1 ms).
 *   - a launcher names itself "pool-w" and starts two threads that never
 *     rename: a plain pool named from its parent. Reported (inherited_pool_site).
 *   - "loop-w", an event loop (one epoll_wait turn), starts a helper inside its
 *     turn; the helper sleeps, renames itself "helper", sleeps again: neither
 *     sleep is reported (helper_before_rename_site, helper_after_rename_site).
 *   - "task-w" starts a helper inside a task (bw_task_begin): not reported
 *     (task_helper_site).
 *   - main starts a thread and names it "pool-w" from outside: reported
 *     (named_from_outside_site). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "blockwatch/blockwatch.h"

__attribute__((noinline)) void inherited_pool_site(void) { usleep(5000); }
__attribute__((noinline)) void helper_before_rename_site(void) { usleep(5000); }
__attribute__((noinline)) void helper_after_rename_site(void) { usleep(5000); }
__attribute__((noinline)) void task_helper_site(void) { usleep(5000); }
__attribute__((noinline)) void named_from_outside_site(void) { usleep(5000); }

static void* pool_thread(void* unused) {
  (void)unused;
  inherited_pool_site();
  return NULL;
}

static void* launcher(void* unused) {
  (void)unused;
  prctl(PR_SET_NAME, "pool-w", 0, 0, 0);
  pthread_t threads[2];
  for (int i = 0; i < 2; ++i) pthread_create(&threads[i], NULL, pool_thread, NULL);
  for (int i = 0; i < 2; ++i) pthread_join(threads[i], NULL);
  return NULL;
}

static void* helper(void* unused) {
  (void)unused;
  helper_before_rename_site();
  pthread_setname_np(pthread_self(), "helper");
  helper_after_rename_site();
  return NULL;
}

static void* event_loop(void* unused) {
  (void)unused;
  pthread_setname_np(pthread_self(), "loop-w");
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event event;
  epoll_wait(epoll_fd, &event, 1, 1); /* one idle wait: a loop turn starts after it */
  pthread_t thread;
  pthread_create(&thread, NULL, helper, NULL); /* inside the turn, as a handler would */
  pthread_join(thread, NULL);
  close(epoll_fd);
  return NULL;
}

static void* task_helper(void* unused) {
  (void)unused;
  task_helper_site();
  return NULL;
}

static void* task_worker(void* unused) {
  (void)unused;
  pthread_setname_np(pthread_self(), "task-w");
  blockwatch_task_begin("job");
  pthread_t thread;
  pthread_create(&thread, NULL, task_helper, NULL);
  pthread_join(thread, NULL);
  blockwatch_task_end();
  return NULL;
}

static atomic_int g_named;

static void* named_later(void* unused) {
  (void)unused;
  while (!atomic_load(&g_named)) usleep(100);
  named_from_outside_site();
  return NULL;
}

int main(void) {
  pthread_t threads[3];
  pthread_create(&threads[0], NULL, launcher, NULL);
  pthread_create(&threads[1], NULL, event_loop, NULL);
  pthread_create(&threads[2], NULL, task_worker, NULL);
  pthread_t outside;
  pthread_create(&outside, NULL, named_later, NULL);
  pthread_setname_np(outside, "pool-w");
  atomic_store(&g_named, 1);
  for (int i = 0; i < 3; ++i) pthread_join(threads[i], NULL);
  pthread_join(outside, NULL);
  return blockwatch_flush(2000) == 0 ? 0 : 90;
}
