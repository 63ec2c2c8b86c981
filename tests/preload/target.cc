// The program preload_test runs under LD_PRELOAD=libblockwatch.so, one scenario
// per run: `preload_target SCENARIO`. Each scenario blocks in a known way in a
// function with a known name (so the test can find it in the recorded stack) and
// checks, itself, that every return value and errno is what the real call gives:
// it exits non-zero (with a message) when one differs. Runs correctly without the
// preload too, which is how the test compares.
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <threads.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "blockwatch/blockwatch.h"
#include "tests/preload/early_hooks.h"

extern char** environ;

namespace {

#define CHECK(cond)                                                                               \
  do {                                                                                            \
    if (!(cond)) {                                                                                \
      fprintf(stderr, "preload_target: %s:%d: CHECK(%s) failed (errno %d)\n", __FILE__, __LINE__, \
              #cond, errno);                                                                      \
      _exit(3);                                                                                   \
    }                                                                                             \
  } while (0)

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

timespec deadline_in_ms(clockid_t clock, int ms) {
  timespec t;
  clock_gettime(clock, &t);
  t.tv_nsec += static_cast<long>(ms) * 1'000'000;
  t.tv_sec += t.tv_nsec / 1'000'000'000;
  t.tv_nsec %= 1'000'000'000;
  return t;
}

// Runs `body` on a thread named `name` (named from inside, as most pools do).
void run_named_thread(const char* name, const std::function<void()>& body) {
  std::thread t([&] {
    pthread_setname_np(pthread_self(), name);
    body();
  });
  t.join();
}

pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
std::atomic<int> g_holder_tid{0};

// Holds g_mutex for `hold_ms` on another thread while `body` runs.
void with_mutex_held(int hold_ms, const std::function<void()>& body) {
  std::atomic<bool> locked{false};
  std::thread holder([&] {
    pthread_mutex_lock(&g_mutex);
    g_holder_tid = gettid();
    locked = true;
    sleep_ms(hold_ms);
    pthread_mutex_unlock(&g_mutex);
  });
  while (!locked) sched_yield();
  body();
  holder.join();
}

__attribute__((noinline)) void contended_lock_site() {
  CHECK(pthread_mutex_lock(&g_mutex) == 0);
  CHECK(pthread_mutex_unlock(&g_mutex) == 0);
  printf("holder %d\n", g_holder_tid.load());
}

// A worker (by name rule) and a non-worker each contend once.
void scenario_mutex() {
  run_named_thread("worker-1", [] { with_mutex_held(30, contended_lock_site); });
  run_named_thread("other-1", [] { with_mutex_held(30, contended_lock_site); });
}

__attribute__((noinline)) void timed_lock_site() {
  // Held elsewhere for 100 ms; a 10 ms deadline must time out exactly as without
  // the preload.
  with_mutex_held(100, [] {
    timespec deadline = deadline_in_ms(CLOCK_REALTIME, 10);
    CHECK(pthread_mutex_timedlock(&g_mutex, &deadline) == ETIMEDOUT);
    deadline = deadline_in_ms(CLOCK_MONOTONIC, 10);
    CHECK(pthread_mutex_clocklock(&g_mutex, CLOCK_MONOTONIC, &deadline) == ETIMEDOUT);
  });
}

void scenario_mutex_timed() { run_named_thread("worker-1", timed_lock_site); }

mtx_t g_c11_mutex;
__attribute__((noinline)) void c11_lock_site() {
  std::atomic<bool> locked{false};
  std::thread holder([&] {
    mtx_lock(&g_c11_mutex);
    locked = true;
    sleep_ms(30);
    mtx_unlock(&g_c11_mutex);
  });
  while (!locked) sched_yield();
  CHECK(mtx_lock(&g_c11_mutex) == thrd_success);
  mtx_unlock(&g_c11_mutex);
  holder.join();
}

void scenario_c11_mutex() {
  mtx_init(&g_c11_mutex, mtx_plain);
  run_named_thread("worker-1", c11_lock_site);
}

pthread_rwlock_t g_rwlock = PTHREAD_RWLOCK_INITIALIZER;
__attribute__((noinline)) void rwlock_site() {
  std::atomic<int> phase{0};
  std::thread writer([&] {
    pthread_rwlock_wrlock(&g_rwlock);
    phase = 1;
    sleep_ms(30);
    pthread_rwlock_unlock(&g_rwlock);
    while (phase != 2) sched_yield();
    pthread_rwlock_rdlock(&g_rwlock);  // a reader blocks the worker's write lock
    phase = 3;
    sleep_ms(30);
    pthread_rwlock_unlock(&g_rwlock);
  });
  while (phase != 1) sched_yield();
  CHECK(pthread_rwlock_rdlock(&g_rwlock) == 0);
  CHECK(pthread_rwlock_unlock(&g_rwlock) == 0);
  phase = 2;
  while (phase != 3) sched_yield();
  CHECK(pthread_rwlock_wrlock(&g_rwlock) == 0);
  CHECK(pthread_rwlock_unlock(&g_rwlock) == 0);
  writer.join();
}

void scenario_rwlock() { run_named_thread("worker-1", rwlock_site); }

__attribute__((noinline)) void condvar_site() {
  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
  pthread_mutex_lock(&mutex);
  timespec deadline = deadline_in_ms(CLOCK_REALTIME, 10);
  CHECK(pthread_cond_timedwait(&cond, &mutex, &deadline) == ETIMEDOUT);
  deadline = deadline_in_ms(CLOCK_MONOTONIC, 10);
  CHECK(pthread_cond_clockwait(&cond, &mutex, CLOCK_MONOTONIC, &deadline) == ETIMEDOUT);
  pthread_mutex_unlock(&mutex);
}

void scenario_condvar() { run_named_thread("worker-1", condvar_site); }

// Old binaries bind pthread_cond_* @GLIBC_2.2.5 (a different object layout):
// they must reach the old implementation, through blockwatch's versioned shim.
void scenario_condvar_old_abi() {
  using Init = int (*)(pthread_cond_t*, const pthread_condattr_t*);
  using TimedWait = int (*)(pthread_cond_t*, pthread_mutex_t*, const timespec*);
  auto init = reinterpret_cast<Init>(dlvsym(RTLD_DEFAULT, "pthread_cond_init", "GLIBC_2.2.5"));
  auto timedwait =
      reinterpret_cast<TimedWait>(dlvsym(RTLD_DEFAULT, "pthread_cond_timedwait", "GLIBC_2.2.5"));
  CHECK(init && timedwait);
  Dl_info info;
  CHECK(dladdr(reinterpret_cast<void*>(timedwait), &info) != 0);
  printf("old timedwait in %s\n", info.dli_fname);
  run_named_thread("worker-1", [&] {
    alignas(16) char storage[sizeof(pthread_cond_t) * 2] = {};
    auto* cond = reinterpret_cast<pthread_cond_t*>(storage);
    pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
    CHECK(init(cond, nullptr) == 0);
    pthread_mutex_lock(&mutex);
    timespec deadline = deadline_in_ms(CLOCK_REALTIME, 10);
    CHECK(timedwait(cond, &mutex, &deadline) == ETIMEDOUT);
    pthread_mutex_unlock(&mutex);
  });
}

__attribute__((noinline)) void semaphore_site() {
  sem_t sem;
  sem_init(&sem, 0, 0);
  timespec deadline = deadline_in_ms(CLOCK_REALTIME, 10);
  errno = 0;
  CHECK(sem_timedwait(&sem, &deadline) == -1 && errno == ETIMEDOUT);
  sem_post(&sem);
  errno = 1234;
  CHECK(sem_wait(&sem) == 0 && errno == 1234);  // trywait's EAGAIN must not leak
  sem_destroy(&sem);
}

void scenario_semaphore() { run_named_thread("worker-1", semaphore_site); }

// Direct futex use, the way Rust's std and parking_lot block.
__attribute__((noinline)) void futex_site() {
  std::atomic<int> word{0};
  timespec timeout{0, 10'000'000};
  errno = 0;
  const long rc = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &timeout, nullptr, 0);
  CHECK(rc == -1 && errno == ETIMEDOUT);
  CHECK(syscall(SYS_getpid) == getpid());  // not a futex: straight through
}

// A Rust-std-like mutex: 0 unlocked, 1 locked, 2 locked with waiters.
struct FutexMutex {
  std::atomic<int> state{0};
  __attribute__((noinline)) void lock() {
    int expected = 0;
    if (state.compare_exchange_strong(expected, 1)) return;
    while (state.exchange(2) != 0) {
      syscall(SYS_futex, &state, FUTEX_WAIT_PRIVATE, 2, nullptr, nullptr, 0);
    }
  }
  void unlock() {
    if (state.exchange(0) == 2)
      syscall(SYS_futex, &state, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  }
};
FutexMutex g_futex_mutex;

__attribute__((noinline)) void rust_like_lock_site() {
  std::atomic<bool> locked{false};
  std::thread holder([&] {
    g_futex_mutex.lock();
    locked = true;
    sleep_ms(30);
    g_futex_mutex.unlock();
  });
  while (!locked) sched_yield();
  g_futex_mutex.lock();
  g_futex_mutex.unlock();
  holder.join();
}

// libstdc++ blocks std::atomic::wait and std::future::wait with syscall(SYS_futex).
__attribute__((noinline)) void atomic_wait_site() {
  std::atomic<int> flag{0};
  std::thread notifier([&] {
    sleep_ms(30);
    flag = 1;
    flag.notify_one();
  });
  flag.wait(0);
  notifier.join();
}

__attribute__((noinline)) void future_wait_site() {
  std::promise<int> promise;
  std::future<int> future = promise.get_future();
  std::thread fulfiller([&] {
    sleep_ms(30);
    promise.set_value(42);
  });
  CHECK(future.get() == 42);
  fulfiller.join();
}

void scenario_futex() {
  run_named_thread("worker-1", [] {
    futex_site();
    rust_like_lock_site();
    atomic_wait_site();
    future_wait_site();
  });
}

__attribute__((noinline)) void pipe_read_site(int read_fd) {
  char byte = 0;
  CHECK(read(read_fd, &byte, 1) == 1 && byte == 'x');
}

__attribute__((noinline)) void file_fsync_site() {
  char path[] = "/tmp/bw_preload_fsyncXXXXXX";
  const int fd = mkstemp(path);
  CHECK(fd >= 0);
  unlink(path);
  CHECK(write(fd, "data", 4) == 4);
  CHECK(fsync(fd) == 0);
  CHECK(fdatasync(fd) == 0);
  errno = 0;
  CHECK(read(-1, nullptr, 0) == -1 && errno == EBADF);
  CHECK(fsync(-1) == -1 && errno == EBADF);
  close(fd);
}

void scenario_io() {
  run_named_thread("worker-1", [] {
    int fds[2];
    CHECK(pipe(fds) == 0);
    std::thread writer([&] {
      sleep_ms(20);
      CHECK(write(fds[1], "x", 1) == 1);
    });
    pipe_read_site(fds[0]);
    writer.join();
    close(fds[0]);
    close(fds[1]);
    file_fsync_site();
  });
}

__attribute__((noinline)) void sleep_site() {
  CHECK(usleep(5000) == 0);
  timespec duration{0, 5'000'000};
  CHECK(nanosleep(&duration, nullptr) == 0);
  CHECK(clock_nanosleep(CLOCK_MONOTONIC, 0, &duration, nullptr) == 0);
  int fds[2];
  CHECK(pipe(fds) == 0);
  pollfd waiting{fds[0], POLLIN, 0};
  CHECK(poll(&waiting, 1, 5) == 0);
  CHECK(poll(&waiting, 1, 0) == 0);  // zero timeout: a check, never reported
  fd_set readable;
  FD_ZERO(&readable);
  FD_SET(fds[0], &readable);
  timeval five_ms{0, 5000};
  CHECK(select(fds[0] + 1, &readable, nullptr, nullptr, &five_ms) == 0);
  // epoll_wait is the executor's idle wait: never reported.
  const int epfd = epoll_create1(0);
  epoll_event event{};
  event.events = EPOLLIN;
  epoll_ctl(epfd, EPOLL_CTL_ADD, fds[0], &event);
  CHECK(epoll_wait(epfd, &event, 1, 5) == 0);
  close(epfd);
  close(fds[0]);
  close(fds[1]);
}

void scenario_sleep() { run_named_thread("worker-1", sleep_site); }

// EINTR must reach the program unchanged.
void on_alarm(int) {
  // A hook inside a signal handler on a worker: passes through.
  const char message[] = "";
  (void)!write(1, message, 0);
}

__attribute__((noinline)) void interrupted_sleep_site() {
  struct sigaction action {};
  action.sa_handler = on_alarm;
  sigaction(SIGALRM, &action, nullptr);
  const pthread_t self = pthread_self();
  std::thread interrupter([self] {
    sleep_ms(10);
    pthread_kill(self, SIGALRM);
  });
  timespec long_sleep{2, 0};
  timespec remaining{};
  errno = 0;
  CHECK(nanosleep(&long_sleep, &remaining) == -1 && errno == EINTR);
  CHECK(remaining.tv_sec >= 1);
  int fds[2];
  CHECK(pipe(fds) == 0);
  std::thread interrupter2([self] {
    sleep_ms(10);
    pthread_kill(self, SIGALRM);
  });
  char byte;
  errno = 0;
  CHECK(read(fds[0], &byte, 1) == -1 && errno == EINTR);
  interrupter.join();
  interrupter2.join();
  close(fds[0]);
  close(fds[1]);
}

void scenario_eintr() { run_named_thread("worker-1", interrupted_sleep_site); }

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
  });
}

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

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: preload_target SCENARIO\n");
    return 2;
  }
  const std::string scenario = argv[1];
  const std::map<std::string, std::function<void()>> scenarios = {
      {"mutex", scenario_mutex},
      {"mutex_timed", scenario_mutex_timed},
      {"c11_mutex", scenario_c11_mutex},
      {"rwlock", scenario_rwlock},
      {"condvar", scenario_condvar},
      {"condvar_old_abi", scenario_condvar_old_abi},
      {"semaphore", scenario_semaphore},
      {"futex", scenario_futex},
      {"io", scenario_io},
      {"sleep", scenario_sleep},
      {"eintr", scenario_eintr},
      {"api", scenario_api},
      {"main", scenario_main},
      {"rename_from_outside", scenario_rename_from_outside},
      {"threshold", scenario_threshold},
      {"strict", scenario_strict},
      {"early_hooks", scenario_early_hooks},
      {"fork", scenario_fork},
      {"spawn", [&] { scenario_spawn(argv[0]); }},
      {"child", scenario_child},
      {"exec", [&] { scenario_exec(argv[0]); }},
      {"close_fds", scenario_close_fds},
      {"many_threads", scenario_many_threads},
      {"exit_thread", scenario_exit_thread},
      {"underscore_exit", scenario_underscore_exit},
      {"abort", scenario_abort},
      {"abort_on_blocking", scenario_abort_on_blocking},
  };
  const auto found = scenarios.find(scenario);
  if (found == scenarios.end()) {
    fprintf(stderr, "preload_target: unknown scenario '%s'\n", scenario.c_str());
    return 2;
  }
  found->second();
  return 0;
}
