// The in-process observer's registration (see event_observer.h).
#include "interpose/transport/event_observer.h"

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "interpose/base/clock.h"
#include "interpose/base/futex.h"

namespace blockwatch::interpose {
namespace {

// Replaced as a whole (leaking the old pair: registrations are rare) so the
// sender never sees a callback with another callback's argument.
struct CallbackRegistration {
  bw_event_callback callback;
  void* arg;
  CallbackRegistration* retired_next;  // replaced ones stay reachable (not a leak)
};
constinit std::atomic<CallbackRegistration*> g_retired_callbacks{nullptr};
constinit std::atomic<CallbackRegistration*> g_callback{nullptr};
constinit std::atomic<uint32_t> g_in_callback{0};

}  // namespace

bool event_observer_registered() {
  return g_callback.load(std::memory_order_acquire) != nullptr;
}

void event_observer_call(const bw_event_info& info) {
  // Mark first, then read the registration again: a replacing thread either sees
  // us inside or we see its new registration (both seq_cst).
  g_in_callback.store(1, std::memory_order_seq_cst);
  CallbackRegistration* registration = g_callback.load(std::memory_order_seq_cst);
  if (registration && registration->callback) registration->callback(&info, registration->arg);
  g_in_callback.store(0, std::memory_order_seq_cst);
  futex_wake_all(g_in_callback);
}

int event_observer_set(bw_event_callback callback, void* arg, bool on_sender_thread) {
  auto* registration = callback ? new CallbackRegistration{callback, arg, nullptr} : nullptr;
  CallbackRegistration* old = g_callback.exchange(registration, std::memory_order_seq_cst);
  if (old) {
    old->retired_next = g_retired_callbacks.load(std::memory_order_relaxed);
    while (!g_retired_callbacks.compare_exchange_weak(old->retired_next, old)) {
    }
  }
  if (on_sender_thread) return 0;
  // Wait until a call of the previous callback returned (bounded).
  const int64_t deadline = monotonic_ns() + 1'000'000'000;
  for (int64_t now = monotonic_ns(); now < deadline; now = monotonic_ns()) {
    if (g_in_callback.load(std::memory_order_seq_cst) == 0) break;
    futex_wait_ns(g_in_callback, 1, std::min<int64_t>(deadline - now, 10'000'000));
  }
  return 0;
}

void event_observer_after_fork_child() { g_in_callback.store(0, std::memory_order_relaxed); }

}  // namespace blockwatch::interpose
