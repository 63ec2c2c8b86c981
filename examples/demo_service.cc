// The demo a new user runs first (scripts/demo.sh): a small Boost.Asio "inference
// service" whose worker pool blocks in the ways real services do, so blockwatch has
// something true to report. Finishes by itself in about a second.
//
// Planted problems, each on a pool worker inside an Asio handler:
//   - a std::mutex contended with a non-worker "reloader" thread (model::Infer)
//   - an fsync of an audit log on the loop (pool::AppendAuditLog)
//   - a 5 ms sleep as a retry backoff (pool::BackoffBeforeRetry)
//   - a 40 ms CPU step (thread CPU time), a stall (model::Tokenize on long prompts)
// and one legitimate wait: the first request loads the vocabulary (a 3 ms sleep
// standing in for a file read) inside blockwatch::AllowBlocking, and
// examples/demo.bwconfig allows it by frame for the plain build.
// The reloader and main threads block too, but they are not workers: blockwatch
// must stay quiet about them.
//
// Two builds of this file (examples/CMakeLists.txt):
//   demo_service        blockwatch::asio handler tracking + run_workers: every
//                       handler is a task labelled with its source location
//   demo_service_plain  no blockwatch code at all (BLOCKWATCH_DEMO_PLAIN); its
//                       threads are named pool-K, for `blockwatch run --workers
//                       name:pool-.*`
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#ifndef BLOCKWATCH_DEMO_PLAIN
#include "blockwatch/asio.hpp"
#else
#define BLOCKWATCH_ASIO_LOCATION(name) (void)0
#endif

#ifndef BLOCKWATCH_DEMO_PLAIN
#define DEMO_ALLOW_BLOCKING(reason) blockwatch::AllowBlocking allow_blocking(reason)
#else
#define DEMO_ALLOW_BLOCKING(reason) (void)0
#endif

#define DEMO_NOINLINE __attribute__((noinline))

namespace model {

std::mutex weights_mutex;
std::atomic<bool> first_reload_started{false};
std::atomic<bool> request_needs_weights{false};
std::atomic<bool> service_done{false};
volatile double weights_checksum = 0;

// The reloader (not a worker) swaps in new weights while holding the lock for
// 60 ms: any request arriving meanwhile blocks its worker on the mutex. The first
// reload holds on until a request needs the weights, so that every run, on a fast
// or a loaded machine, shows that contention (tests check for it).
DEMO_NOINLINE void ReloadWeights(bool wait_for_a_request) {
  std::lock_guard<std::mutex> lock(weights_mutex);
  first_reload_started = true;
  while (wait_for_a_request && !request_needs_weights && !service_done) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  weights_checksum = weights_checksum + 1;
}

void ReloaderMain() {
  pthread_setname_np(pthread_self(), "reloader");
  for (int i = 0; i < 3 && !service_done; ++i) {
    ReloadWeights(i == 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
  }
}

const std::string kPrompt = "tell me about blocking worker threads";

unsigned HashRounds(const std::string& prompt, long rounds, unsigned tokens) {
  for (long round = 0; round < rounds; ++round) {
    for (char c : prompt) tokens = tokens * 31 + static_cast<unsigned char>(c);
  }
  return tokens;
}

// How many hashing rounds make 40 ms of CPU on this machine, measured once at
// start in the thread's own CPU time, which does not depend on the machine's
// load. Tokenize then reads no clock: every stall sample lands in its own code,
// and on a loaded machine it is still 40 ms of work (in more wall time).
long g_rounds_per_40ms = 0;

void CalibrateTokenizer() {
  auto cpu_ns = [] {
    timespec now{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return now.tv_sec * 1'000'000'000LL + now.tv_nsec;
  };
  volatile unsigned sink = 0;
  long rounds = 0;
  const long long start = cpu_ns();
  long long spent = 0;
  while ((spent = cpu_ns() - start) < 10'000'000) {
    sink = HashRounds(kPrompt, 2000, sink);
    rounds += 2000;
  }
  g_rounds_per_40ms = static_cast<long>(static_cast<double>(rounds) * 40e6 / spent);
}

// A tokenizer that runs 40 ms on CPU for long prompts: a stall of its worker.
DEMO_NOINLINE int Tokenize(const std::string& prompt, bool long_prompt) {
  const unsigned tokens = HashRounds(prompt, long_prompt ? g_rounds_per_40ms : 2000, 0);
  return static_cast<int>(tokens % 1000);
}

std::once_flag vocabulary_loaded;

DEMO_NOINLINE void LoadVocabulary() {
  DEMO_ALLOW_BLOCKING("warm-up: vocabulary loads once on the first request");
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
}

DEMO_NOINLINE double Infer(int tokens) {
  request_needs_weights = true;
  std::lock_guard<std::mutex> lock(weights_mutex);  // contended with ReloadWeights
  return weights_checksum * tokens;
}

}  // namespace model

namespace pool {

int audit_fd = -1;
std::atomic<int> requests_served{0};

DEMO_NOINLINE void AppendAuditLog(int request_id) {
  char line[64];
  int length = std::snprintf(line, sizeof line, "request %d served\n", request_id);
  if (write(audit_fd, line, static_cast<size_t>(length)) < 0) std::perror("audit write");
  fsync(audit_fd);  // durable audit: an fsync on the event loop
}

DEMO_NOINLINE void BackoffBeforeRetry() {
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

DEMO_NOINLINE void HandleRequest(int request_id) {
  const bool long_prompt = request_id % 6 == 5;
  std::call_once(model::vocabulary_loaded, model::LoadVocabulary);
  int tokens = model::Tokenize(model::kPrompt, long_prompt);
  volatile double answer = model::Infer(tokens);
  (void)answer;
  if (request_id % 4 == 3) BackoffBeforeRetry();
  if (request_id % 3 == 0) AppendAuditLog(request_id);
  requests_served.fetch_add(1);
}

void SubmitRequests(boost::asio::io_context& io, int request_count) {
  for (int id = 0; id < request_count; ++id) {
    BLOCKWATCH_ASIO_LOCATION("pool::HandleRequest");
    boost::asio::post(io, [id] { HandleRequest(id); });
  }
}

// Runs io on `thread_count` workers named pool-K until the work runs out.
void RunWorkers(boost::asio::io_context& io, int thread_count) {
#ifndef BLOCKWATCH_DEMO_PLAIN
  blockwatch::asio::run_workers(io, thread_count, "pool");
#else
  std::vector<std::thread> threads;
  for (int i = 0; i < thread_count; ++i) {
    threads.emplace_back([&io, i] {
      char name[16];
      std::snprintf(name, sizeof name, "pool-%d", i);
      pthread_setname_np(pthread_self(), name);
      io.run();
    });
  }
  for (std::thread& t : threads) t.join();
#endif
}

}  // namespace pool

int main(int argc, char** argv) {
  const int request_count = argc > 1 ? std::atoi(argv[1]) : 24;
  char audit_path[] = "/tmp/blockwatch-demo-audit-XXXXXX";
  pool::audit_fd = mkstemp(audit_path);
  if (pool::audit_fd < 0) {
    std::perror("mkstemp");
    return 1;
  }
  model::CalibrateTokenizer();
  const auto start = std::chrono::steady_clock::now();

  std::thread reloader(model::ReloaderMain);
  while (!model::first_reload_started) std::this_thread::yield();

  boost::asio::io_context io;
  pool::SubmitRequests(io, request_count);
  pool::RunWorkers(io, 2);
  model::service_done = true;
  reloader.join();

  close(pool::audit_fd);
  unlink(audit_path);
  const auto elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  std::printf("demo_service: served %d requests in %lld ms\n", pool::requests_served.load(),
              static_cast<long long>(elapsed_ms.count()));
  return pool::requests_served.load() == request_count ? 0 : 1;
}
