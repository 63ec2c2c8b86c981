// An unmodified Boost.Asio program with one worker thread ("pool-0"), for the
// task-boundary tests of unmodified_test.py (issue 9). No blockwatch code: task
// boundaries come only from the task-entry probe on the scheduler's do_run_one.
//   burst  idle, then 200 handlers of 0.5 ms CPU posted at once, idle again:
//          a 100 ms loop turn made of short tasks, never a task stall (100 ms
//          against a 30 ms threshold: a starved watchdog still sees the turn)
//   busy   idle, then 20 short handlers, one 120 ms CPU handler and 20 short
//          handlers posted at once (a busy queue: no idle wait between them):
//          exactly one task stall, in planted_long_handler
//   custom not Asio: the worker runs its own loop over 100 short jobs, one
//          120 ms job and 20 short jobs, calling custom_run_one once per job,
//          and never waits: only a task_entry rule naming custom_run_one gives
//          it task boundaries (then: one task stall); without one, no stall
//   mix    idle, then 2000 empty handlers and 50 handlers of 3 ms CPU,
//          interleaved and posted at once, idle again: the per-task statistics
//          count 2000 + 50 tasks exactly and time a sample of them
//   posts  (benchmark) argv[2] empty handlers posted and run in batches of
//          1000, timed; prints "ns_per_handler=N"
#include <pthread.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace {

using Clock = std::chrono::steady_clock;
std::atomic<int> g_done{0};

// Reads the clock rarely (every ~20 us), so a stall sample lands in the
// handler's own code, not in clock_gettime (whose caller a frame-pointer walk
// loses).
void spin_for(std::chrono::microseconds duration) {
  const auto end = Clock::now() + duration;
  volatile uint64_t spins = 0;
  do {
    for (int i = 0; i < 20'000; ++i) spins = spins + 1;
  } while (Clock::now() < end);
}

extern "C" __attribute__((noinline)) void planted_short_handler() {
  spin_for(std::chrono::microseconds(500));
  g_done.fetch_add(1);
}

extern "C" __attribute__((noinline)) void planted_long_handler() {
  spin_for(std::chrono::milliseconds(120));
  g_done.fetch_add(1);
}

extern "C" __attribute__((noinline)) void empty_handler() { g_done.fetch_add(1); }

extern "C" __attribute__((noinline)) void planted_3ms_handler() {
  spin_for(std::chrono::milliseconds(3));
  g_done.fetch_add(1);
}

std::atomic<int> g_jobs_started{0};

// The custom executor's once-per-job function: what a task_entry rule names. It
// starts with a rip-relative atomic add (the probe moves and re-targets it); a
// compare-and-branch first would make the probe refuse the function.
extern "C" __attribute__((noinline)) void custom_run_one(int job) {
  g_jobs_started.fetch_add(1, std::memory_order_relaxed);
  if (job == 100) {
    planted_long_handler();
  } else {
    planted_short_handler();
  }
}

int run_custom_loop() {
  std::thread worker([] {
    pthread_setname_np(pthread_self(), "pool-0");
    for (int job = 0; job < 121; ++job) custom_run_one(job);
  });
  worker.join();
  std::printf("handlers=%d\n", g_done.load());
  return 0;
}

void pause_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

void wait_for(int count) {
  while (g_done.load() < count) pause_ms(1);
}

int run_posts(boost::asio::io_context& io, long count) {
  // Posted from this thread, run by the worker: measures the whole path of a
  // handler (queue, wake-up, do_run_one, the handler), as a service pays it.
  const auto start = Clock::now();
  for (long done = 0; done < count; done += 1000) {
    for (int i = 0; i < 1000; ++i) boost::asio::post(io, empty_handler);
    wait_for(static_cast<int>(done + 1000));
  }
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start);
  std::printf("ns_per_handler=%.1f\n", static_cast<double>(ns.count()) / count);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "burst";
  if (std::strcmp(mode, "custom") == 0) return run_custom_loop();
  boost::asio::io_context io(1);
  auto work = boost::asio::make_work_guard(io);
  std::thread worker([&io] {
    pthread_setname_np(pthread_self(), "pool-0");
    io.run();
  });
  pause_ms(100);  // idle
  int expected = 0;
  if (std::strcmp(mode, "burst") == 0) {
    for (int i = 0; i < 200; ++i) boost::asio::post(io, planted_short_handler);
    expected = 200;
  } else if (std::strcmp(mode, "busy") == 0) {
    for (int i = 0; i < 20; ++i) boost::asio::post(io, planted_short_handler);
    boost::asio::post(io, planted_long_handler);
    for (int i = 0; i < 20; ++i) boost::asio::post(io, planted_short_handler);
    expected = 41;
  } else if (std::strcmp(mode, "mix") == 0) {
    for (int i = 0; i < 2050; ++i) {
      boost::asio::post(io, i % 41 == 40 ? planted_3ms_handler : empty_handler);
    }
    expected = 2050;
  } else if (std::strcmp(mode, "posts") == 0) {
    run_posts(io, argc > 2 ? std::atol(argv[2]) : 1'000'000);
  }
  wait_for(expected);
  pause_ms(100);  // idle again
  work.reset();
  io.stop();
  worker.join();
  std::printf("handlers=%d\n", g_done.load());
  return 0;
}
