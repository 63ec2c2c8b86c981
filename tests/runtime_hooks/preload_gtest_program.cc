// A GoogleTest suite linked with blockwatch::gtest (the listener installs itself).
// preload_check_test.cc runs it under the preload and checks that exactly the test
// that blocks a worker fails, and that the test thread becomes a worker only with
// BLOCKWATCH_GTEST_WORKER=main.
#include <gtest/gtest.h>
#include <pthread.h>
#include <time.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <cstdint>
#include <thread>

#include "blockwatch/asio.hpp"
#include "blockwatch/blockwatch.hpp"

namespace {

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

void SleepOnWorker(const char* allow_reason) {
  std::thread worker([allow_reason] {
    pthread_setname_np(pthread_self(), "gtworker");
    blockwatch::WorkerScope scope;
    if (allow_reason != nullptr) {
      blockwatch::AllowBlocking allow(allow_reason);
      sleep_ms(15);
    } else {
      sleep_ms(15);
    }
  });
  worker.join();
}

TEST(Listener, BlocksOnWorker) { SleepOnWorker(nullptr); }

TEST(Listener, AllowedBlockingPasses) { SleepOnWorker("expected in this test"); }

TEST(Listener, QuietTestPasses) { SUCCEED(); }

// Asio workers park in the scheduler between handlers: idle, never a failure.
TEST(Listener, IdleAsioWorkersPass) {
  boost::asio::io_context io;
  for (int i = 0; i < 4; ++i) {
    boost::asio::post(io, [] {});
  }
  blockwatch::asio::run_workers(io, 2, "gtidle");
}

int64_t thread_cpu_ns() {
  timespec now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

// A worker task spinning 80 ms on CPU: a stall when BLOCKWATCH_STALL_THRESHOLD is
// set (the checker runs this test alone, with a 20 ms threshold). 80 ms of the
// thread's own CPU time: on a loaded machine that is longer in wall time, so the
// watchdog, itself waiting for a CPU, still sees the task running.
TEST(Listener, StallsOnWorker) {
  std::thread worker([] {
    pthread_setname_np(pthread_self(), "gtstall");
    blockwatch::WorkerScope scope;
    blockwatch::TaskScope task("spin task");
    const int64_t until_ns = thread_cpu_ns() + 80'000'000;
    volatile unsigned spins = 0;
    while (thread_cpu_ns() < until_ns) {
      for (int i = 0; i < 10000; ++i) spins = spins + 1;
    }
  });
  worker.join();
}

// Sleeps on the test body's thread: a failure only with BLOCKWATCH_GTEST_WORKER=main.
TEST(Listener, MainThreadSleeps) { sleep_ms(15); }

}  // namespace
