// An unmodified condvar thread pool: no blockwatch code. Three threads named
// "pool-worker-N" run worker_loop(), which parks on a std::condition_variable
// until a job is queued (the pool's idle wait, recognised by the built-in
// pool_wait rule). Jobs every 30 ms are short; one planted job spins 150 ms on
// the CPU (the only stall) and one sleeps 15 ms (the only blocking call). One
// job starts a helper thread, which inherits the worker's name and sleeps
// before it renames itself: a helper, not a worker, never reported. The
// submitting main thread sleeps and locks too, and must not appear. Run by
// unmodified_test.py under `blockwatch run --workers name:pool-worker-.*`.
#include <pthread.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

class Pool {
 public:
  explicit Pool(int threads) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this, i] { worker_loop(i); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wakeup_.notify_all();
    for (auto& thread : threads_) thread.join();
  }
  void submit(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back(std::move(job));
    }
    wakeup_.notify_one();
  }

 private:
  __attribute__((noinline)) void worker_loop(int index) {
    char name[16];
    std::snprintf(name, sizeof name, "pool-worker-%d", index);
    pthread_setname_np(pthread_self(), name);
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wakeup_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  std::mutex mutex_;
  std::condition_variable wakeup_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

extern "C" __attribute__((noinline)) void planted_pool_cpu_job() {
  const auto end = Clock::now() + std::chrono::milliseconds(150);
  volatile uint64_t spins = 0;
  do {
    for (int i = 0; i < 100'000; ++i) spins = spins + 1;
  } while (Clock::now() < end);
}

extern "C" __attribute__((noinline)) void planted_pool_sleep_job() {
  usleep(15'000);
  __asm__ volatile("" ::: "memory");
}

extern "C" __attribute__((noinline)) void helper_sleep_before_rename() {
  usleep(15'000);
  __asm__ volatile("" ::: "memory");
}

std::thread g_helper;

// Inside a job: the helper carries "pool-worker-N" until it renames itself.
void planted_helper_spawning_job() {
  g_helper = std::thread([] {
    helper_sleep_before_rename();
    pthread_setname_np(pthread_self(), "pool-helper");
    usleep(15'000);
  });
}

void short_job() {
  volatile int sum = 0;
  for (int i = 0; i < 1000; ++i) sum = sum + i;
}

void pause_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace

int main() {
  Pool pool(3);
  for (int round = 0; round < 24; ++round) {
    pool.submit(short_job);
    if (round == 6) pool.submit(planted_pool_sleep_job);
    if (round == 12) pool.submit(planted_pool_cpu_job);
    if (round == 18) pool.submit(planted_helper_spawning_job);
    pause_ms(30);
  }
  pause_ms(100);
  if (g_helper.joinable()) g_helper.join();
  std::printf("rounds=24\n");
  return 0;
}
