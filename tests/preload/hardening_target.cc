// The program preload_hardening_test runs under LD_PRELOAD=libblockwatch.so, one
// scenario per run: `preload_hardening_target SCENARIO`. Each scenario is a way a
// new user's program could break under the preload (issue 10): a first hooked
// call inside a signal handler that interrupted malloc, a worker with almost no
// stack left, unbounded distinct labels, more live worker threads than slots.
// Each checks what the program itself sees (CHECK exits 3) and prints what the
// driver asserts on; alarm() turns a deadlock into death by SIGALRM.
#include <alloca.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>

#include "blockwatch/blockwatch.h"
#include "tests/preload/hardening_target.h"
#include "tests/preload/target_support.h"

namespace preload_target {
namespace {

// --- a thread's first hook inside a signal handler that interrupted malloc -------

std::atomic<int> g_handler_runs{0};
std::atomic<int> g_observed_tid{0};  // the callback saw a record of this tid
int g_devnull = -1;

// Async-signal-safe hooked calls only: what a crash or timer handler does.
void first_hook_handler(int) {
  const int saved_errno = errno;
  (void)syscall(SYS_gettid);        // hooked (syscall), as in a crash handler
  (void)!write(g_devnull, "x", 1);  // hooked (write)
  g_handler_runs.fetch_add(1);
  errno = saved_errno;
}

void observe_tid(const bw_event_info* event, void*) { g_observed_tid.store(event->tid); }

// The blocking call the driver expects once the thread's name verdict is learnt.
__attribute__((noinline)) void learnt_name_site() { usleep(15000); }

struct FirstHookThread {
  std::atomic<int> tid{0};
  std::atomic<bool> signalled{false};
};

// Allocates sizes that bypass the tcache and hold the arena lock most of the
// time, and makes no hooked call, until the handler ran; then blocks at
// learnt_name_site until the in-process observer saw one of its records.
void* first_hook_thread(void* arg) {
  auto* self = static_cast<FirstHookThread*>(arg);
  self->tid.store(static_cast<int>(gettid()));
  unsigned seed = static_cast<unsigned>(gettid());
  while (!self->signalled.load() || g_handler_runs.load() == 0) {
    void* block = malloc(2048 + rand_r(&seed) % 60000);
    static_cast<volatile char*>(block)[0] = 1;
    free(block);
  }
  if (!blockwatch_active()) return nullptr;
  for (int i = 0; i < 400 && g_observed_tid.load() != self->tid.load(); ++i) learnt_name_site();
  CHECK(g_observed_tid.load() == self->tid.load());
  return nullptr;
}

// Names the thread through /proc (no hook sees the name), so its first hook, in
// the handler, finds a name whose worker verdict nobody has learnt.
void name_through_proc(int tid, const char* name) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%d/comm", tid);
  const int fd = open(path, O_WRONLY);
  CHECK(fd >= 0);
  CHECK(write(fd, name, strlen(name)) == static_cast<ssize_t>(strlen(name)));
  close(fd);
}

void scenario_signal_first_hook() {
  g_devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
  CHECK(g_devnull >= 0);
  blockwatch_set_event_callback(observe_tid, nullptr);
  struct sigaction action = {};
  action.sa_handler = first_hook_handler;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  CHECK(sigaction(SIGUSR1, &action, nullptr) == 0);
  unsigned seed = 12345;
  for (int i = 0; i < kFirstHookThreads; ++i) {
    alarm(10);  // per thread: a deadlock ends as SIGALRM, not as a stuck suite
    FirstHookThread thread_state;
    g_handler_runs.store(0);
    pthread_t thread;
    CHECK(pthread_create(&thread, nullptr, first_hook_thread, &thread_state) == 0);
    while (thread_state.tid.load() == 0) sched_yield();
    char name[16];
    snprintf(name, sizeof name, "wq-%d", i);
    name_through_proc(thread_state.tid.load(), name);
    for (volatile int spin = rand_r(&seed) % 200000; spin > 0;) spin = spin - 1;
    thread_state.signalled.store(true);
    CHECK(pthread_kill(thread, SIGUSR1) == 0);
    CHECK(pthread_join(thread, nullptr) == 0);
  }
  alarm(0);
  printf("first hooks in a signal handler: %d threads\n", kFirstHookThreads);
}

// --- reported calls inside signal handlers that interrupted the loader or malloc -

std::atomic<int> g_reported_handler_runs{0};

// A blocking call over the threshold, made in a signal handler: it is reported,
// so its stack is unwound from inside the handler, through the signal frame.
__attribute__((noinline)) void handler_blocking_site() {
  const struct timespec two_ms = {0, 2'000'000};
  nanosleep(&two_ms, nullptr);
}

void reporting_handler(int) {
  const int saved_errno = errno;
  handler_blocking_site();
  g_reported_handler_runs.fetch_add(1);
  errno = saved_errno;
}

// Runs with the loader's lock held (dl_iterate_phdr takes it for the walk): a
// signal landing here finds the lock held by the very thread it interrupted.
__attribute__((noinline)) int loader_lock_held_callback(struct dl_phdr_info*, size_t, void*) {
  for (int spin = 0; spin < 2000; ++spin) __asm__ volatile("" ::: "memory");
  return 0;
}

// Takes the loader's lock and gives it back at once: a signal lands in
// pthread_mutex_lock/unlock of that lock far more often than with the callback
// above, at times where the lock word is taken but the owner not written yet.
int loader_lock_edges_callback(struct dl_phdr_info*, size_t, void*) { return 1; }

// A worker that spends its time inside dl_iterate_phdr and malloc, making no
// hooked call of its own, until it has taken `signals` signals whose handler
// makes a reported call.
void reported_in_handler(int (*callback)(struct dl_phdr_info*, size_t, void*), int signals) {
  struct sigaction action = {};
  action.sa_handler = reporting_handler;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  CHECK(sigaction(SIGUSR2, &action, nullptr) == 0);
  std::atomic<bool> done{false};
  std::atomic<pthread_t> worker{};
  std::thread thread([&] {
    pthread_setname_np(pthread_self(), "worker-signals");
    worker.store(pthread_self());
    unsigned seed = 7;
    while (!done.load()) {
      dl_iterate_phdr(callback, nullptr);
      void* block = malloc(2048 + rand_r(&seed) % 60000);
      static_cast<volatile char*>(block)[0] = 1;
      free(block);
    }
  });
  while (worker.load() == pthread_t{}) sched_yield();
  alarm(30);  // a deadlock ends as SIGALRM, not as a stuck suite
  for (int sent = 0; sent < signals; ++sent) {
    const int before = g_reported_handler_runs.load();
    CHECK(pthread_kill(worker.load(), SIGUSR2) == 0);
    while (g_reported_handler_runs.load() == before) sched_yield();
  }
  alarm(0);
  done.store(true);
  thread.join();
  printf("reported calls in signal handlers: %d\n", g_reported_handler_runs.load());
}

void scenario_reported_in_handler() {
  reported_in_handler(loader_lock_held_callback, kReportedHandlerSignals);
}

void scenario_reported_at_loader_lock_edges() {
  reported_in_handler(loader_lock_edges_callback, kLoaderLockEdgeSignals);
}

// A condvar wait that times out after `ms`, in the caller's frame (the call
// site the wait classifier names).
__attribute__((always_inline)) inline void condvar_wait_timing_out(int ms) {
  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
  pthread_mutex_lock(&mutex);
  timespec deadline = deadline_in_ms(CLOCK_REALTIME, ms);
  (void)pthread_cond_timedwait(&cond, &mutex, &deadline);
  pthread_mutex_unlock(&mutex);
}

// --- a worker with a small stack and little of it left ---------------------------

constexpr unsigned char kPaint = 0xA5;

// Paints the free stack below this frame, renames the thread (the worker rules
// run: regexec) and makes reported calls (a sleep over the threshold, and a
// condvar wait, which classifies its call site first), and returns how deep
// below this frame they wrote.
__attribute__((noinline)) size_t small_stack_site(char* low) {
  char* frame = static_cast<char*>(__builtin_frame_address(0));
  char* paint_end = frame - 256;  // this frame's callees (memset) stay above it
  memset(low, kPaint, static_cast<size_t>(paint_end - low));
  pthread_setname_np(pthread_self(), "worker-small");  // the rules run again (regexec)
  usleep(3000);                                        // over the 1 ms threshold: reported
  condvar_wait_timing_out(3);                          // reported
  char* deepest = low;
  while (deepest < paint_end && static_cast<unsigned char>(*deepest) == kPaint) ++deepest;
  return static_cast<size_t>(frame - deepest);
}

// Uses all but `left` bytes of the thread's stack, then calls the site there.
__attribute__((noinline)) size_t with_stack_left(char* low, size_t left) {
  char* frame = static_cast<char*>(__builtin_frame_address(0));
  const size_t eat = static_cast<size_t>(frame - low) - left;
  volatile char* eaten = static_cast<char*>(alloca(eat));
  eaten[0] = 0;
  eaten[eat - 1] = 0;
  return small_stack_site(low);
}

void* small_stack_thread(void*) {
  // Not a worker yet: these bind the PLT entries (the dynamic linker's lazy
  // resolver saves the vector registers on the stack, ~3 KB, with or without
  // the preload) and are not measured.
  usleep(1);
  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
  pthread_mutex_lock(&mutex);
  timespec deadline = deadline_in_ms(CLOCK_REALTIME, 0);
  (void)pthread_cond_timedwait(&cond, &mutex, &deadline);
  pthread_mutex_unlock(&mutex);
  pthread_setname_np(pthread_self(), "worker-small");
  pthread_attr_t attr;
  CHECK(pthread_getattr_np(pthread_self(), &attr) == 0);
  void* low = nullptr;
  size_t size = 0;
  CHECK(pthread_attr_getstack(&attr, &low, &size) == 0);
  pthread_attr_destroy(&attr);
  size_t deepest = 0;
  for (int i = 0; i < kSmallStackCalls; ++i) {  // the first is the thread's first unwind
    const size_t used = with_stack_left(static_cast<char*>(low), kSmallStackLeftBytes);
    if (used > deepest) deepest = used;
  }
  printf("stack used by a reported call: %zu bytes (of %zu left)\n", deepest, kSmallStackLeftBytes);
  return nullptr;
}

void scenario_small_stack() {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  CHECK(pthread_attr_setstacksize(&attr, kSmallStackBytes) == 0);
  pthread_t thread;
  CHECK(pthread_create(&thread, &attr, small_stack_thread, nullptr) == 0);
  pthread_attr_destroy(&attr);
  CHECK(pthread_join(thread, nullptr) == 0);
}

// --- a fork child of a program that shrank the default thread stack -------------

template <class T>
struct Nest {};

template <int Depth, class T>
struct Nested {
  using type = typename Nested<Depth - 1, Nest<T>>::type;
};
template <class T>
struct Nested<0, T> {
  using type = T;
};

// A call site whose name is long and deep (a 906-character mangled name):
// classifying its condvar wait demangles it on the watchdog thread, which takes
// over 64 KiB of that thread's stack. The watchdog, parked while no worker is
// busy, classifies a wait within its 250 ms safety net: the wait lasts longer.
template <class T>
__attribute__((noinline)) void deep_named_wait_site() {
  condvar_wait_timing_out(600);  // reported
}

void* deep_named_worker(void*) {
  pthread_setname_np(pthread_self(), "worker-deep");
  deep_named_wait_site<Nested<kDeepNameNesting, int>::type>();
  return nullptr;
}

// The program makes 64 KiB the default thread stack, then forks: the child's
// blockwatch threads start after that (atfork), and must not take the default.
void scenario_small_default_stack() {
  pthread_attr_t small;
  pthread_attr_init(&small);
  CHECK(pthread_attr_setstacksize(&small, kSmallStackBytes) == 0);
  CHECK(pthread_setattr_default_np(&small) == 0);
  pthread_attr_destroy(&small);
  const pid_t child = fork();
  CHECK(child >= 0);
  if (child == 0) {
    pthread_attr_t big;  // the worker itself has room
    pthread_attr_init(&big);
    CHECK(pthread_attr_setstacksize(&big, 1 << 20) == 0);
    pthread_t thread;
    CHECK(pthread_create(&thread, &big, deep_named_worker, nullptr) == 0);
    CHECK(pthread_join(thread, nullptr) == 0);
    exit(0);
  }
  int status = 0;
  CHECK(waitpid(child, &status, 0) == child);
  printf("child: %s %d\n", WIFEXITED(status) ? "exit" : "signal",
         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

// --- more live workers than thread slots; slots of threads that SYS_exit -------

// The blocking call every worker makes once; reported when it has a slot.
__attribute__((noinline)) void slot_site() { usleep(60000); }

pthread_barrier_t g_all_started;

void* live_worker(void* arg) {
  char name[16];
  snprintf(name, sizeof name, "worker-%d", static_cast<int>(reinterpret_cast<intptr_t>(arg)));
  pthread_setname_np(pthread_self(), name);
  slot_site();
  pthread_barrier_wait(&g_all_started);  // every thread alive at once (not hooked)
  return nullptr;
}

// Small stacks: thousands of threads at once.
pthread_t start_small_thread(void* (*body)(void*), void* arg) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  CHECK(pthread_attr_setstacksize(&attr, 64 * 1024) == 0);
  pthread_t thread;
  CHECK(pthread_create(&thread, &attr, body, arg) == 0);
  pthread_attr_destroy(&attr);
  return thread;
}

void scenario_more_threads_than_slots() {
  static pthread_t threads[kLiveWorkerThreads];
  CHECK(pthread_barrier_init(&g_all_started, nullptr, kLiveWorkerThreads) == 0);
  for (int i = 0; i < kLiveWorkerThreads; ++i) {
    threads[i] = start_small_thread(live_worker, reinterpret_cast<void*>(intptr_t{i}));
  }
  for (pthread_t thread : threads) CHECK(pthread_join(thread, nullptr) == 0);
  printf("live worker threads: %d\n", kLiveWorkerThreads);
}

void* raw_exit_thread(void*) {
  usleep(1);             // a hooked call: claims a slot
  syscall(SYS_exit, 0);  // no TLS destructors: the slot is never given back
  return nullptr;
}

void* last_worker(void*) {
  pthread_setname_np(pthread_self(), "worker-last");
  slot_site();
  return nullptr;
}

void scenario_raw_exit_threads() {
  for (int i = 0; i < kRawExitThreads; ++i) {
    CHECK(pthread_join(start_small_thread(raw_exit_thread, nullptr), nullptr) == 0);
  }
  CHECK(pthread_join(start_small_thread(last_worker, nullptr), nullptr) == 0);
  printf("threads ended by SYS_exit: %d\n", kRawExitThreads);
}

// --- distinct task labels without end ---------------------------------------------

long resident_kib() {
  FILE* statm = fopen("/proc/self/statm", "re");
  CHECK(statm != nullptr);
  long size = 0, resident = 0;
  CHECK(fscanf(statm, "%ld %ld", &size, &resident) == 2);
  fclose(statm);
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

__attribute__((noinline)) void labelled_site(pthread_mutex_t* mutex) {
  pthread_mutex_lock(mutex);  // reported in strict mode
  pthread_mutex_unlock(mutex);
}

void run_labelled_tasks(int first, int count) {
  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  char label[32];
  for (int i = first; i < first + count; ++i) {
    snprintf(label, sizeof label, "req-%d", i);
    blockwatch_task_begin(label);
    labelled_site(&mutex);
    blockwatch_task_end();
    // Paced, so the queue never fills and the sender interns every label.
    if (i % 1000 == 999) CHECK(blockwatch_flush(10000) == 0 || !blockwatch_active());
  }
  CHECK(blockwatch_flush(10000) == 0 || !blockwatch_active());
}

void scenario_unique_labels() {
  run_named_thread("worker-labels", [] {
    run_labelled_tasks(0, kWarmUpLabels);
    const long before = resident_kib();
    run_labelled_tasks(kWarmUpLabels, kUniqueLabels);
    const long after = resident_kib();
    printf("rss growth over %d unique labels: %ld KiB\n", kUniqueLabels, after - before);
  });
}

// --- a vfork() child's blocking calls ----------------------------------------------

__attribute__((noinline)) void vfork_child_site() { usleep(5000); }
__attribute__((noinline)) void vfork_parent_site() { usleep(5000); }

// A worker vforks; the child blocks before it exits. The child runs on the
// worker's thread and TLS, so its calls looked like the worker's.
void scenario_vfork_child() {
  run_named_thread("worker-vfork", [] {
    const pid_t child = vfork();
    if (child == 0) {
      vfork_child_site();
      _exit(0);
    }
    CHECK(child > 0);
    int status = 0;
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status));
    vfork_parent_site();
  });
}

}  // namespace

void add_hardening_scenarios(ScenarioTable& table) {
  table.insert({
      {"signal_first_hook", ignoring_self(scenario_signal_first_hook)},
      {"small_stack", ignoring_self(scenario_small_stack)},
      {"small_default_stack", ignoring_self(scenario_small_default_stack)},
      {"more_threads_than_slots", ignoring_self(scenario_more_threads_than_slots)},
      {"raw_exit_threads", ignoring_self(scenario_raw_exit_threads)},
      {"unique_labels", ignoring_self(scenario_unique_labels)},
      {"vfork_child", ignoring_self(scenario_vfork_child)},
      {"reported_in_handler", ignoring_self(scenario_reported_in_handler)},
      {"reported_at_loader_lock_edges", ignoring_self(scenario_reported_at_loader_lock_edges)},
  });
}

}  // namespace preload_target

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: preload_hardening_target SCENARIO\n");
    return 2;
  }
  preload_target::ScenarioTable scenarios;
  preload_target::add_hardening_scenarios(scenarios);
  const auto found = scenarios.find(argv[1]);
  if (found == scenarios.end()) {
    fprintf(stderr, "preload_hardening_target: unknown scenario '%s'\n", argv[1]);
    return 2;
  }
  found->second(argv[0]);
  return 0;
}
