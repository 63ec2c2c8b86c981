// The watchdog's wake word (see watchdog_wake.h).
#include "interpose/core/watchdog_wake.h"

#include "interpose/base/futex.h"

namespace blockwatch::interpose {

constinit std::atomic<uint32_t> g_watchdog_wake_word{0};
constinit std::atomic<uint32_t> g_watchdog_parked{0};

void wake_watchdog() {
  g_watchdog_wake_word.fetch_add(1, std::memory_order_release);
  futex_wake(g_watchdog_wake_word, 1);
}

}  // namespace blockwatch::interpose
