// The hook clock's calibration and conversion (see timebase.h). The writer is
// the library constructor, then the sender thread; readers are the hook slow
// path, the watchdog and signal handlers. Nothing here allocates or locks.
#include "interpose/base/timebase.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include <fcntl.h>
#include <unistd.h>

#include <climits>
#include <cstring>

namespace blockwatch::interpose {

bool g_ticks_are_tsc = false;
std::atomic<int64_t> g_threshold_ticks{0};

namespace {

// A rate measured between two pairs is off by up to the sum of their
// uncertainties over the window between them. Every window is made at least
// kWindowPerUncertainty times that sum: ~1e-4 (0.1 us in 1 ms).
constexpr int64_t kWindowPerUncertainty = 10'000;
// First estimate, spun in the constructor: at least 250 us (a pair's rdtsc sits
// between two clock reads ~30 ns apart, so ~250-600 us on an idle machine), at
// most 20 ms on a very busy one (the sender refines it soon anyway).
constexpr int64_t kInitialCalibrationMinNs = 250'000;
constexpr int64_t kInitialCalibrationMaxNs = 20'000'000;
// The sender re-measures the rate over a window of at least 20 ms and starts a
// new window after 2 s, so a changed rate (VM migration) or a clock that NTP
// slews is followed within about that long.
constexpr int64_t kMinRateWindowNs = 20'000'000;
constexpr int64_t kMaxRateWindowNs = 2'000'000'000;
// A pair whose two clock reads lie further apart than this was preempted: skip.
constexpr int64_t kMaxPairSpanNs = 20'000;

struct Conversion {
  std::atomic<int64_t> anchor_ticks{0};
  std::atomic<int64_t> anchor_mono_ns{0};
  std::atomic<uint64_t> ns_per_tick_q32{0};
};

// The latch: readers use copy (sequence & 1); the writer updates the other copy
// first, flips the sequence, then updates the first. A reader retries only if
// the writer flipped during its read; it never waits for the writer.
std::atomic<uint32_t> g_latch_sequence{0};
Conversion g_latch_copies[2];

// Writer-only state (constructor, then sender thread; g_refining keeps a
// second sender, as after fork, from interleaving).
int64_t g_threshold_ns = 0;
ClockPair g_rate_window_start;
std::atomic<bool> g_refining{false};

struct ConversionValues {
  ClockPair anchor;
  uint64_t ns_per_tick_q32 = 0;
};

ConversionValues load_conversion() {
  for (;;) {
    const uint32_t sequence = g_latch_sequence.load(std::memory_order_acquire);
    const Conversion& copy = g_latch_copies[sequence & 1];
    ConversionValues values;
    values.anchor.ticks = copy.anchor_ticks.load(std::memory_order_relaxed);
    values.anchor.mono_ns = copy.anchor_mono_ns.load(std::memory_order_relaxed);
    values.ns_per_tick_q32 = copy.ns_per_tick_q32.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (g_latch_sequence.load(std::memory_order_relaxed) == sequence) return values;
  }
}

void store_copy(Conversion& copy, const ConversionValues& values) {
  copy.anchor_ticks.store(values.anchor.ticks, std::memory_order_relaxed);
  copy.anchor_mono_ns.store(values.anchor.mono_ns, std::memory_order_relaxed);
  copy.ns_per_tick_q32.store(values.ns_per_tick_q32, std::memory_order_relaxed);
}

void publish_conversion(const ConversionValues& values) {
  // Always even between publishes: readers use copy 0, then copy 1 while copy 0
  // is written, then copy 0 again while copy 1 is written.
  const uint32_t sequence = g_latch_sequence.load(std::memory_order_relaxed);
  g_latch_sequence.store(sequence + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  store_copy(g_latch_copies[0], values);
  g_latch_sequence.store(sequence + 2, std::memory_order_release);
  std::atomic_thread_fence(std::memory_order_release);
  store_copy(g_latch_copies[1], values);
}

int64_t rate_window_needed_ns(const ClockPair& earlier, const ClockPair& later) {
  return kWindowPerUncertainty * (earlier.uncertainty_ns + later.uncertainty_ns);
}

#if defined(__x86_64__)
// The kernel's current clocksource, read once at library start (the caller holds
// the recursion guard, so this read passes through our own hook).
bool kernel_clocksource_vouches_for_tsc() {
  const int fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource",
                      O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char name[64] = {};
  const ssize_t n = read(fd, name, sizeof name - 1);
  close(fd);
  return n > 0 && clocksource_vouches_for_tsc(name);
}

bool cpu_has_invariant_tsc() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(0x80000007, &eax, &ebx, &ecx, &edx)) return false;
  return (edx & (1u << 8)) != 0;
}

// The tightest of a few (clock, rdtsc, clock) brackets; mono_ns is its middle.
// Returns a pair with mono_ns 0 if every bracket was preempted.
ClockPair read_clock_pair() {
  ClockPair best;
  int64_t best_span_ns = kMaxPairSpanNs;
  for (int attempt = 0; attempt < 4; ++attempt) {
    const int64_t before_ns = monotonic_ns();
    const auto ticks = static_cast<int64_t>(__rdtsc());
    const int64_t after_ns = monotonic_ns();
    if (after_ns - before_ns < best_span_ns) {
      best_span_ns = after_ns - before_ns;
      best = {ticks, before_ns + best_span_ns / 2, best_span_ns / 2 + 1};
    }
  }
  return best;
}
#endif

}  // namespace

bool clocksource_vouches_for_tsc(const char* name) {
  const size_t length = std::strcspn(name, "\n");
  for (const char* vouching : {"tsc", "kvm-clock", "hyperv_clocksource_tsc_page"}) {
    if (length == std::strlen(vouching) && std::strncmp(name, vouching, length) == 0) return true;
  }
  return false;
}

uint64_t ns_per_tick_q32_between(const ClockPair& earlier, const ClockPair& later) {
  const int64_t elapsed_ticks = later.ticks - earlier.ticks;
  const int64_t elapsed_ns = later.mono_ns - earlier.mono_ns;
  if (elapsed_ticks <= 0 || elapsed_ns <= 0) return 0;
  const auto q32 = static_cast<uint64_t>((static_cast<unsigned __int128>(elapsed_ns) << 32) /
                                         static_cast<uint64_t>(elapsed_ticks));
  // 20 GHz .. 50 MHz: anything else is a broken counter, not a clock.
  constexpr uint64_t kMinQ32 = (uint64_t{1} << 32) / 20;
  constexpr uint64_t kMaxQ32 = (uint64_t{1} << 32) * 20;
  return q32 >= kMinQ32 && q32 <= kMaxQ32 ? q32 : 0;
}

int64_t convert_ticks(int64_t ticks, const ClockPair& anchor, uint64_t ns_per_tick_q32) {
  const __int128 delta_ticks = static_cast<__int128>(ticks) - anchor.ticks;
  const __int128 delta_ns = (delta_ticks * static_cast<__int128>(ns_per_tick_q32)) >> 32;
  return anchor.mono_ns + static_cast<int64_t>(delta_ns);
}

int64_t timebase_threshold_ticks(int64_t threshold_ns, uint64_t ns_per_tick_q32) {
  if (threshold_ns <= 0) return INT64_MIN;  // strict mode
  if (ns_per_tick_q32 == 0) return threshold_ns;
  const unsigned __int128 exact =
      (static_cast<unsigned __int128>(threshold_ns) << 32) / ns_per_tick_q32;
  const unsigned __int128 lowered = exact - (exact >> 10);
  return lowered > INT64_MAX ? INT64_MAX : static_cast<int64_t>(lowered);
}

int64_t ticks_to_mono_ns(int64_t ticks) {
  if (ticks == 0 || !g_ticks_are_tsc) return ticks;
  const ConversionValues values = load_conversion();
  return convert_ticks(ticks, values.anchor, values.ns_per_tick_q32);
}

int64_t ticks_to_ns(int64_t elapsed_ticks) {
  if (!g_ticks_are_tsc) return elapsed_ticks;
  return convert_ticks(elapsed_ticks, ClockPair{}, load_conversion().ns_per_tick_q32);
}

void timebase_init(int64_t threshold_ns, bool allow_tsc) {
  g_threshold_ns = threshold_ns;
  g_ticks_are_tsc = false;
  g_threshold_ticks.store(timebase_threshold_ticks(threshold_ns, 0), std::memory_order_relaxed);
#if defined(__x86_64__)
  if (!allow_tsc || !cpu_has_invariant_tsc() || !kernel_clocksource_vouches_for_tsc()) return;
  ClockPair first;
  for (int attempt = 0; attempt < 8 && first.mono_ns == 0; ++attempt) first = read_clock_pair();
  if (first.mono_ns == 0) return;
  ClockPair second;
  for (;;) {
    const ClockPair candidate = read_clock_pair();
    if (candidate.mono_ns != 0) second = candidate;
    const int64_t window_ns = second.mono_ns - first.mono_ns;
    if (window_ns >= kInitialCalibrationMinNs &&
        window_ns >= rate_window_needed_ns(first, second)) {
      break;
    }
    if (monotonic_ns() - first.mono_ns >= kInitialCalibrationMaxNs) break;
  }
  const uint64_t q32 = ns_per_tick_q32_between(first, second);  // 0 if `second` is unset
  if (q32 == 0) return;
  g_rate_window_start = first;
  publish_conversion({second, q32});
  g_threshold_ticks.store(timebase_threshold_ticks(threshold_ns, q32), std::memory_order_relaxed);
  g_ticks_are_tsc = true;
#else
  (void)allow_tsc;
#endif
}

void timebase_after_fork_child() {
  // The parent's sender may have been half way through publish_conversion:
  // then the sequence is odd and copy 0 torn, copy 1 whole. Single-threaded here.
  const uint32_t sequence = g_latch_sequence.load(std::memory_order_relaxed);
  if (sequence & 1) {
    const Conversion& whole = g_latch_copies[1];
    store_copy(g_latch_copies[0], {{whole.anchor_ticks.load(std::memory_order_relaxed),
                                    whole.anchor_mono_ns.load(std::memory_order_relaxed)},
                                   whole.ns_per_tick_q32.load(std::memory_order_relaxed)});
    g_latch_sequence.store(sequence + 1, std::memory_order_release);
  }
  g_refining.store(false, std::memory_order_relaxed);
}

void timebase_refine() {
#if defined(__x86_64__)
  if (!g_ticks_are_tsc || g_refining.exchange(true, std::memory_order_acquire)) return;
  const ClockPair now = read_clock_pair();
  if (now.mono_ns != 0) {
    uint64_t q32 = load_conversion().ns_per_tick_q32;
    const int64_t window_ns = now.mono_ns - g_rate_window_start.mono_ns;
    if (window_ns >= kMinRateWindowNs &&
        window_ns >= rate_window_needed_ns(g_rate_window_start, now)) {
      if (const uint64_t measured = ns_per_tick_q32_between(g_rate_window_start, now)) {
        q32 = measured;
      }
      if (window_ns >= kMaxRateWindowNs) g_rate_window_start = now;
    }
    publish_conversion({now, q32});
    g_threshold_ticks.store(timebase_threshold_ticks(g_threshold_ns, q32),
                            std::memory_order_relaxed);
  }
  g_refining.store(false, std::memory_order_release);
#endif
}

}  // namespace blockwatch::interpose
