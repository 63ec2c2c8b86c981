// blockwatch::gtest from the installed package: the listener installs itself and
// fails the test whose worker thread blocked (and only that one).
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "blockwatch/blockwatch.hpp"

namespace {

__attribute__((noinline)) void planted_gtest_blocking_call() {
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
}

TEST(Installed, WorkerBlocks) {
  std::thread worker([] {
    blockwatch::WorkerScope scope;
    planted_gtest_blocking_call();
  });
  worker.join();
}

TEST(Installed, QuietTestPasses) { SUCCEED(); }

}  // namespace
