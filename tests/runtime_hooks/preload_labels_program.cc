// Run under the preload by preload_check_test.cc: plants one sleep per way of
// naming a task, on worker threads, plus sleeps on non-worker threads that must
// not be reported. Every planted sleep is 20+ ms, far over the test's threshold.
#include <pthread.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <thread>

#include "blockwatch/asio.hpp"
#include "blockwatch/blockwatch.hpp"
#include "blockwatch/thread_pool.hpp"

namespace {

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace

int main() {
  std::thread bystander([] {  // not a worker: silent
    pthread_setname_np(pthread_self(), "bystander");
    sleep_ms(30);
  });

  boost::asio::io_context io;
  {
    BLOCKWATCH_ASIO_LOCATION("located_sleep");
    boost::asio::post(io, [] { sleep_ms(20); });
  }
  boost::asio::post(io, [] { sleep_ms(21); });  // labelled by operation
  boost::asio::post(io, [] {
    blockwatch::AllowBlocking allow("planned wait");
    sleep_ms(22);
  });
  blockwatch::asio::run_workers(io, 1, "asioworker");

  std::thread manual([] {
    pthread_setname_np(pthread_self(), "manual");
    blockwatch::WorkerScope worker;
    blockwatch::TaskScope task("manual task");
    sleep_ms(23);
  });
  manual.join();

  {
    blockwatch::ThreadPool pool(1, "tpool");
    pool.submit("tpool job", [] { sleep_ms(24); });
    pool.wait_idle();
  }
  bystander.join();
  sleep_ms(25);  // the main thread is not a worker either
  return 0;
}
