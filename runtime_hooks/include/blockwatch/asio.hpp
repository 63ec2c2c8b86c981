// Boost.Asio helpers: run an io_context on N worker threads that blockwatch knows
// are workers, with readable thread names. Handler invocations become tasks when
// the program is compiled with blockwatch's handler tracking (see
// blockwatch/asio_tracking.hpp and the CMake target blockwatch::asio); this header
// works with or without it.
//
//   boost::asio::io_context io;
//   ... post work ...
//   blockwatch::asio::run_workers(io, 4, "pool");   // threads pool-0 .. pool-3
#pragma once

#include <pthread.h>

#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "blockwatch/blockwatch.hpp"

namespace blockwatch::asio {

// Names the calling thread "name-index" (truncated to the kernel's 15 characters).
inline void name_worker_thread(const char* name, int index) noexcept {
  char thread_name[16];
  std::snprintf(thread_name, sizeof thread_name, "%s-%d", name, index);
  pthread_setname_np(pthread_self(), thread_name);
}

// Threads running io_context::run(), each named and marked as a blockwatch
// worker. The destructor joins them (call io.stop() first to end early).
class WorkerThreads {
 public:
  WorkerThreads(boost::asio::io_context& io, int thread_count, const char* name) {
    threads_.reserve(thread_count > 0 ? thread_count : 0);
    for (int i = 0; i < thread_count; ++i) {
      threads_.emplace_back([this, &io, name, i] {
        name_worker_thread(name, i);
        WorkerScope worker;
        try {
          io.run();
        } catch (...) {
          std::lock_guard<std::mutex> lock(error_mutex_);
          if (!first_error_) first_error_ = std::current_exception();
        }
      });
    }
  }
  ~WorkerThreads() { join_threads(); }
  WorkerThreads(const WorkerThreads&) = delete;
  WorkerThreads& operator=(const WorkerThreads&) = delete;

  // Waits for every thread; rethrows the first exception a handler let escape.
  void join() {
    join_threads();
    std::exception_ptr error;
    {
      std::lock_guard<std::mutex> lock(error_mutex_);
      error = std::exchange(first_error_, nullptr);
    }
    if (error) std::rethrow_exception(error);
  }

 private:
  void join_threads() noexcept {
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  std::vector<std::thread> threads_;
  std::mutex error_mutex_;
  std::exception_ptr first_error_;
};

// Runs io.run() on `thread_count` threads named "name-K" and marked as workers;
// returns when all of them have returned from run().
inline void run_workers(boost::asio::io_context& io, int thread_count, const char* name) {
  WorkerThreads workers(io, thread_count, name);
  workers.join();
}

}  // namespace blockwatch::asio
