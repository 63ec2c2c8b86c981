// preload_target scenarios for the lock families: pthread mutexes (plain, timed,
// clock), C11 mtx, rwlocks, condition variables (both glibc ABIs), semaphores,
// and futex waits made through syscall() (direct, a Rust-std-like lock,
// libstdc++'s atomic::wait and future). Each blocks in a *_site function the
// test looks for in the recorded stack, and CHECKs every result.
#include <dlfcn.h>
#include <linux/futex.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/syscall.h>
#include <threads.h>

#include <atomic>
#include <future>

#include "tests/preload/target_support.h"

namespace preload_target {
namespace {

pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
std::atomic<int> g_holder_tid{0};

// Holds g_mutex on another thread while `body` runs: until body's thread blocks
// on it, then `hold_ms` more.
void with_mutex_held(int hold_ms, const std::function<void()>& body) {
  std::atomic<bool> locked{false};
  const pid_t waiter = gettid();
  std::thread holder([&] {
    pthread_mutex_lock(&g_mutex);
    g_holder_tid = gettid();
    locked = true;
    wait_until_in_futex(waiter);
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
  const pid_t waiter = gettid();
  std::thread holder([&] {
    mtx_lock(&g_c11_mutex);
    locked = true;
    wait_until_in_futex(waiter);
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
  const pid_t worker = gettid();
  std::thread writer([&] {
    pthread_rwlock_wrlock(&g_rwlock);
    phase = 1;
    wait_until_in_futex(worker);
    sleep_ms(30);
    pthread_rwlock_unlock(&g_rwlock);
    while (phase != 2) sched_yield();
    pthread_rwlock_rdlock(&g_rwlock);  // a reader blocks the worker's write lock
    phase = 3;
    wait_until_in_futex(worker);
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

// A worker's condvar wait outside a task first has its call site classified
// (idle wait or not), and a thread's first unwind costs libunwind a few ms. The
// waits below have absolute deadlines, so that cost would come out of the wait
// itself: one wait that times out at once takes it first.
template <typename TimedWait>
void warm_up_wait_classification(TimedWait&& timedwait) {
  const timespec past = {0, 0};
  CHECK(timedwait(&past) == ETIMEDOUT);
}

__attribute__((noinline)) void condvar_site() {
  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
  pthread_mutex_lock(&mutex);
  warm_up_wait_classification(
      [&](const timespec* at) { return pthread_cond_timedwait(&cond, &mutex, at); });
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
    warm_up_wait_classification([&](const timespec* at) { return timedwait(cond, &mutex, at); });
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
  const pid_t waiter = gettid();
  std::thread holder([&] {
    g_futex_mutex.lock();
    locked = true;
    wait_until_in_futex(waiter);
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
  const pid_t waiter = gettid();
  std::thread notifier([&] {
    wait_until_in_futex(waiter);
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
  const pid_t waiter = gettid();
  std::thread fulfiller([&] {
    wait_until_in_futex(waiter);
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

}  // namespace

void add_lock_scenarios(ScenarioTable& table) {
  table.insert({
      {"mutex", ignoring_self(scenario_mutex)},
      {"mutex_timed", ignoring_self(scenario_mutex_timed)},
      {"c11_mutex", ignoring_self(scenario_c11_mutex)},
      {"rwlock", ignoring_self(scenario_rwlock)},
      {"condvar", ignoring_self(scenario_condvar)},
      {"condvar_old_abi", ignoring_self(scenario_condvar_old_abi)},
      {"semaphore", ignoring_self(scenario_semaphore)},
      {"futex", ignoring_self(scenario_futex)},
  });
}

}  // namespace preload_target
