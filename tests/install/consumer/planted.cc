// A program built against the installed package (blockwatch::asio): one Asio
// worker runs a handler that sleeps 50 ms in planted_blocking_call. Run under the
// installed `blockwatch run`, that sleep must be reported with this function on
// its stack and the handler's task label.
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstdio>
#include <thread>

#include "blockwatch/asio.hpp"
#include "blockwatch/blockwatch.hpp"

__attribute__((noinline)) void planted_blocking_call() {
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
}

int main() {
  boost::asio::io_context io;
  boost::asio::post(io, [] { planted_blocking_call(); });
  blockwatch::asio::run_workers(io, 1, "planted");
  std::puts(blockwatch::Active() ? "planted: preloaded" : "planted: not preloaded");
  return 0;
}
