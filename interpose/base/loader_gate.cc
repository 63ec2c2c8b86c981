// The loader gate (see loader_gate.h): an entry count and a closed flag, both
// 32-bit futex words; the forking thread closes the flag and waits for the
// count to drop to zero, our threads wait while it is closed.
#include "interpose/base/loader_gate.h"

#include <pthread.h>

#include <atomic>
#include <cstdint>

#include "interpose/base/clock.h"
#include "interpose/base/futex.h"

namespace blockwatch::interpose {
namespace {

constexpr int64_t kForkWaitNs = 200'000'000;
constinit std::atomic<uint32_t> g_inside{0};
constinit std::atomic<uint32_t> g_closed{0};
constinit std::atomic<bool> g_installed{false};

void close_before_fork() {
  g_closed.store(1, std::memory_order_seq_cst);
  const int64_t deadline = monotonic_ns() + kForkWaitNs;
  for (uint32_t inside = g_inside.load(std::memory_order_seq_cst); inside != 0;
       inside = g_inside.load(std::memory_order_seq_cst)) {
    const int64_t now = monotonic_ns();
    if (now >= deadline) return;
    futex_wait_ns(g_inside, inside, deadline - now);
  }
}

void open_after_fork_parent() {
  g_closed.store(0, std::memory_order_seq_cst);
  futex_wake_all(g_closed);
}

void open_after_fork_child() {
  // Only the forking thread exists here; none of ours was inside (or the wait
  // gave up, and then nothing helps).
  g_inside.store(0, std::memory_order_relaxed);
  g_closed.store(0, std::memory_order_seq_cst);
  futex_wake_all(g_closed);  // a thread our child handler started may be waiting
}

}  // namespace

void loader_gate_install() {
  if (g_installed.exchange(true)) return;
  pthread_atfork(close_before_fork, open_after_fork_parent, open_after_fork_child);
}

LoaderSection::LoaderSection() {
  for (;;) {
    g_inside.fetch_add(1, std::memory_order_seq_cst);
    if (g_closed.load(std::memory_order_seq_cst) == 0) return;
    if (g_inside.fetch_sub(1, std::memory_order_seq_cst) == 1) futex_wake_all(g_inside);
    futex_wait_ns(g_closed, 1, 10'000'000);
  }
}

LoaderSection::~LoaderSection() {
  if (g_inside.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
      g_closed.load(std::memory_order_seq_cst) != 0) {
    futex_wake_all(g_inside);
  }
}

}  // namespace blockwatch::interpose
