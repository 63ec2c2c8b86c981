// How a worker that becomes busy wakes the stall watchdog from its park.
//
// The watchdog ticks while some worker is busy (in a task or a loop turn). When
// a tick finds none busy it parks: no stall can start until a thread becomes
// busy, and every way a thread becomes busy calls note_worker_busy() right
// after the change that made it so (leaving an idle wait, beginning a task, a
// first probe entry, becoming a worker). So an idle service costs the watchdog
// no wake-ups, and a stall's start is seen as if it had never slept.
//
// The handshake is Dekker's: the thread's change is a seq_cst read-modify-write
// or store, then it loads `parked` (seq_cst); the watchdog stores `parked`
// (seq_cst), then looks at every slot again before it sleeps. One of the two
// sees the other. The park also times out (kWatchdogParkNs), a safety net only.
#pragma once

#include <atomic>
#include <cstdint>

namespace blockwatch::interpose {

// The word the watchdog sleeps on (FUTEX_WAIT), between ticks and parked.
extern std::atomic<uint32_t> g_watchdog_wake_word;
// 1 while the watchdog is parked because no worker was busy.
extern std::atomic<uint32_t> g_watchdog_parked;

inline constexpr int64_t kWatchdogParkNs = 250'000'000;

// Bumps the wake word and wakes the watchdog. One futex syscall. No allocation,
// no lock, async-signal-safe, no vector register (compiled -mgeneral-regs-only:
// a probe calls it at a function's entry, where xmm0-7 hold its arguments).
void wake_watchdog();

// Call right after the seq_cst change that may have made this thread busy.
// One load while the watchdog is awake; async-signal-safe.
inline void note_worker_busy() {
  if (__builtin_expect(g_watchdog_parked.load(std::memory_order_seq_cst) != 0, 0)) {
    if (g_watchdog_parked.exchange(0, std::memory_order_seq_cst) != 0) wake_watchdog();
  }
}

}  // namespace blockwatch::interpose
