// An unmodified Boost.Asio service: no blockwatch code, no handler tracking.
// Three threads run io_context::run() under the names "svc-worker-N"; a timer
// fires every 35 ms with an empty handler, so between handlers the threads park
// in Asio's own idle waits (one in epoll, the others on the scheduler's condvar)
// far longer than the stall threshold. Planted on the workers: one handler
// blocked on a contended std::mutex (the main thread holds it until the handler
// is about to lock, then ~25 ms more), one that sleeps (~15 ms), and one
// 150 ms CPU loop (the only stall). A non-worker thread blocks too and must not
// appear, and so must a helper thread a handler starts: it inherits the
// worker's name and sleeps before it renames itself. Run by unmodified_test.py under `blockwatch run --workers name:...`.
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
std::mutex g_contended;
std::atomic<int> g_timer_handlers{0};
std::atomic<bool> g_stop_timer{false};
std::atomic<bool> g_handler_locking{false};

extern "C" __attribute__((noinline)) void planted_mutex_handler() {
  g_handler_locking.store(true);
  std::lock_guard<std::mutex> lock(g_contended);  // held 25 ms more by the main thread
  __asm__ volatile("" ::: "memory");
}

extern "C" __attribute__((noinline)) void planted_sleep_handler() {
  usleep(15'000);
  __asm__ volatile("" ::: "memory");
}

// Reads the clock rarely, so the stall sample lands in this function's own code.
extern "C" __attribute__((noinline)) void planted_cpu_loop_handler() {
  const auto end = Clock::now() + std::chrono::milliseconds(150);
  volatile uint64_t spins = 0;
  do {
    for (int i = 0; i < 100'000; ++i) spins = spins + 1;
  } while (Clock::now() < end);
}

extern "C" __attribute__((noinline)) void helper_sleep_before_rename() {
  usleep(15'000);
  __asm__ volatile("" ::: "memory");
}

std::thread g_helper;

// A handler that starts a helper: "svc-worker-N" until the helper renames itself.
void planted_helper_spawning_handler() {
  g_helper = std::thread([] {
    helper_sleep_before_rename();
    pthread_setname_np(pthread_self(), "svc-helper");
    usleep(15'000);
  });
}

void arm_timer(boost::asio::steady_timer& timer) {
  timer.expires_after(std::chrono::milliseconds(35));
  timer.async_wait([&timer](const boost::system::error_code& error) {
    if (error || g_stop_timer.load()) return;
    g_timer_handlers.fetch_add(1);
    arm_timer(timer);
  });
}

// Blocks in every way a worker must not, on a thread that is no worker.
void non_worker_main() {
  pthread_setname_np(pthread_self(), "svc-other");
  for (int i = 0; i < 3; ++i) {
    usleep(30'000);
    std::lock_guard<std::mutex> lock(g_contended);
  }
}

void pause_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace

int main() {
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  boost::asio::steady_timer timer(io);
  arm_timer(timer);
  std::vector<std::thread> workers;
  for (int i = 0; i < 3; ++i) {
    workers.emplace_back([&io, i] {
      char name[16];
      std::snprintf(name, sizeof name, "svc-worker-%d", i);
      pthread_setname_np(pthread_self(), name);
      io.run();
    });
  }
  std::thread other(non_worker_main);
  pause_ms(150);  // idle: timers only
  {
    // Held until the handler is about to lock, then 25 ms more: the contention
    // does not depend on how soon a loaded machine runs the handler.
    std::unique_lock<std::mutex> hold(g_contended);
    boost::asio::post(io, planted_mutex_handler);
    while (!g_handler_locking.load()) pause_ms(1);
    pause_ms(25);
  }
  pause_ms(150);
  boost::asio::post(io, planted_sleep_handler);
  pause_ms(150);
  boost::asio::post(io, planted_cpu_loop_handler);
  pause_ms(250);
  boost::asio::post(io, planted_helper_spawning_handler);
  pause_ms(100);
  g_stop_timer.store(true);
  work.reset();
  timer.cancel();
  io.stop();
  for (auto& worker : workers) worker.join();
  other.join();
  if (g_helper.joinable()) g_helper.join();
  std::printf("timer_handlers=%d\n", g_timer_handlers.load());
  return 0;
}
