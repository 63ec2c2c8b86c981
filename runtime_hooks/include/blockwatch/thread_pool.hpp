// A small fixed-size thread pool whose threads are blockwatch workers and whose
// jobs are blockwatch tasks, for code that has no executor of its own. Pools that
// exist already can label their jobs with blockwatch::wrap_task (blockwatch.hpp).
//
//   blockwatch::ThreadPool pool(4, "render");      // threads render-0 .. render-3
//   pool.submit("resize", [&] { Resize(image); });
//   pool.wait_idle();
//
// A worker's wait for the next job is the pool's own idle wait (a condition
// variable park), which blockwatch's built-in idle rules do not report.
#pragma once

#include <pthread.h>

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "blockwatch/blockwatch.hpp"

namespace blockwatch {

class ThreadPool {
 public:
  ThreadPool(int thread_count, const char* name) {
    for (int i = 0; i < thread_count; ++i) {
      threads_.emplace_back([this, name, i] { worker_main(name, i); });
    }
  }
  // Runs the jobs already submitted, then joins.
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    job_ready_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Queues `job` to run as a task labelled `label` (static storage duration).
  void submit(const char* label, std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back(Job{label, std::move(job)});
      ++jobs_unfinished_;
    }
    job_ready_.notify_one();
  }

  // Blocks until every submitted job has finished. Not for a worker thread.
  void wait_idle() {
    std::unique_lock<std::mutex> lock(mutex_);
    all_done_.wait(lock, [this] { return jobs_unfinished_ == 0; });
  }

 private:
  struct Job {
    const char* label;
    std::function<void()> run;
  };

  void worker_main(const char* name, int index) {
    char thread_name[16];
    std::snprintf(thread_name, sizeof thread_name, "%s-%d", name, index);
    pthread_setname_np(pthread_self(), thread_name);
    WorkerScope worker;
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        job_ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping and drained
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      {
        TaskScope task(job.label);
        try {
          job.run();
        } catch (...) {
          // A job's exception must not take the pool down; the job owns its errors.
        }
      }
      finish_job();
    }
  }

  void finish_job() {
    bool idle = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      idle = --jobs_unfinished_ == 0;
    }
    if (idle) all_done_.notify_all();
  }

  std::mutex mutex_;
  std::condition_variable job_ready_;
  std::condition_variable all_done_;
  std::deque<Job> jobs_;
  size_t jobs_unfinished_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace blockwatch
