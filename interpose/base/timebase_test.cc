// The hook clock (timebase.h): the fixed-point arithmetic on made-up pairs, and
// the real calibration on this machine against clock_gettime(CLOCK_MONOTONIC)
// over 50 ms, both right after timebase_init and after timebase_refine.
#include "interpose/base/timebase.h"

#include <gtest/gtest.h>
#include <time.h>

#include <climits>
#include <cstdlib>

namespace blockwatch::interpose {
namespace {

constexpr uint64_t kOneNsPerTickQ32 = uint64_t{1} << 32;

TEST(TimebaseArithmetic, RateBetweenPairs) {
  // 3 GHz: 3e9 ticks in 1e9 ns.
  const uint64_t q32 =
      ns_per_tick_q32_between({1000, 5'000}, {1000 + 3'000'000'000, 1'000'005'000});
  EXPECT_NEAR(static_cast<double>(q32) / kOneNsPerTickQ32, 1.0 / 3.0, 1e-9);
  EXPECT_EQ(ns_per_tick_q32_between({100, 100}, {100, 200}), 0u);  // ticks did not move
  EXPECT_EQ(ns_per_tick_q32_between({200, 100}, {100, 200}), 0u);  // ticks went back
  EXPECT_EQ(ns_per_tick_q32_between({0, 0}, {1'000'000, 1}), 0u);  // 1 THz: not a clock
  EXPECT_EQ(ns_per_tick_q32_between({0, 0}, {1, 1'000}), 0u);      // 1 MHz: not a TSC
}

TEST(TimebaseArithmetic, ClocksourcesThatVouchForTheTsc) {
  EXPECT_TRUE(clocksource_vouches_for_tsc("tsc\n"));
  EXPECT_TRUE(clocksource_vouches_for_tsc("kvm-clock\n"));
  EXPECT_TRUE(clocksource_vouches_for_tsc("hyperv_clocksource_tsc_page"));
  EXPECT_FALSE(clocksource_vouches_for_tsc("hpet\n"));
  EXPECT_FALSE(clocksource_vouches_for_tsc("acpi_pm\n"));
  EXPECT_FALSE(clocksource_vouches_for_tsc("tsc-early\n"));
  EXPECT_FALSE(clocksource_vouches_for_tsc(""));
}

TEST(TimebaseArithmetic, ConvertsAlongTheLineThroughTheAnchor) {
  const ClockPair anchor{1'000'000, 50'000'000'000};
  const uint64_t half_ns_per_tick = kOneNsPerTickQ32 / 2;  // 2 GHz
  EXPECT_EQ(convert_ticks(1'000'000, anchor, half_ns_per_tick), 50'000'000'000);
  EXPECT_EQ(convert_ticks(3'000'000, anchor, half_ns_per_tick), 50'001'000'000);
  EXPECT_EQ(convert_ticks(0, anchor, half_ns_per_tick), 49'999'500'000);  // before the anchor
  // A large tick count (a machine up for a year at 4 GHz) does not overflow.
  const int64_t year_ticks = int64_t{4'000'000'000} * 86'400 * 365;
  EXPECT_EQ(convert_ticks(year_ticks, ClockPair{}, kOneNsPerTickQ32 / 4), year_ticks / 4);
}

TEST(TimebaseArithmetic, ThresholdInTicksIsSlightlyLow) {
  const uint64_t half_ns_per_tick = kOneNsPerTickQ32 / 2;
  const int64_t ticks = timebase_threshold_ticks(1'000'000, half_ns_per_tick);  // 2e6 exact
  EXPECT_LT(ticks, 2'000'000);
  EXPECT_GT(ticks, 1'996'000);                                          // within ~0.2%
  EXPECT_EQ(timebase_threshold_ticks(0, half_ns_per_tick), INT64_MIN);  // strict: everything
  EXPECT_EQ(timebase_threshold_ticks(5'000, 0), 5'000);                 // ticks are ns
}

// clock_gettime and hook_clock_ticks at nearly the same moment: the tightest of
// a few brackets (a preempted bracket is useless on a busy machine).
struct Sample {
  int64_t ticks;
  int64_t mono_ns;
  int64_t bracket_ns;
};
Sample take_sample() {
  Sample best{0, 0, INT64_MAX};
  for (int attempt = 0; attempt < 50; ++attempt) {
    const int64_t before = monotonic_ns();
    const int64_t ticks = hook_clock_ticks();
    const int64_t after = monotonic_ns();
    if (after - before < best.bracket_ns)
      best = {ticks, before + (after - before) / 2, after - before};
  }
  return best;
}

void sleep_ns(int64_t ns) {
  const timespec duration{0, static_cast<long>(ns)};
  nanosleep(&duration, nullptr);
}

// Over 50 ms the converted ticks agree with CLOCK_MONOTONIC within 0.05% of
// the interval (25 us) plus the two samples' brackets, both as a duration and
// as absolute CLOCK_MONOTONIC times.
void expect_agrees_over_50ms() {
  const Sample first = take_sample();
  sleep_ns(50'000'000);
  const Sample second = take_sample();
  const int64_t slack_ns = 25'000 + first.bracket_ns + second.bracket_ns;
  const int64_t clock_elapsed_ns = second.mono_ns - first.mono_ns;
  EXPECT_NEAR(static_cast<double>(ticks_to_ns(second.ticks - first.ticks)),
              static_cast<double>(clock_elapsed_ns), static_cast<double>(slack_ns));
  EXPECT_NEAR(static_cast<double>(ticks_to_mono_ns(first.ticks)),
              static_cast<double>(first.mono_ns), static_cast<double>(slack_ns));
  EXPECT_NEAR(static_cast<double>(ticks_to_mono_ns(second.ticks)),
              static_cast<double>(second.mono_ns), static_cast<double>(slack_ns));
}

TEST(Timebase, AgreesWithClockMonotonicAfterInitAndAfterRefine) {
  timebase_init(1'000'000, /*allow_tsc=*/true);
#if defined(__x86_64__)
  // This test's machines have an invariant TSC; say so if one does not.
  if (!g_ticks_are_tsc) GTEST_SKIP() << "no invariant TSC here: ticks are CLOCK_MONOTONIC ns";
#endif
  expect_agrees_over_50ms();
  sleep_ns(30'000'000);
  timebase_refine();  // a 20 ms+ window: the rate is re-measured
  expect_agrees_over_50ms();
  // The threshold in ticks converts back to just under 1 ms.
  const int64_t threshold_ns = ticks_to_ns(g_threshold_ticks.load());
  EXPECT_LE(threshold_ns, 1'000'000);
  EXPECT_GE(threshold_ns, 997'000);
}

TEST(Timebase, ClockFallbackIsClockMonotonic) {
  timebase_init(2'000'000, /*allow_tsc=*/false);
  EXPECT_FALSE(g_ticks_are_tsc);
  EXPECT_EQ(g_threshold_ticks.load(), 2'000'000);
  const Sample sample = take_sample();
  EXPECT_NEAR(static_cast<double>(sample.ticks), static_cast<double>(sample.mono_ns),
              static_cast<double>(sample.bracket_ns));
  EXPECT_EQ(ticks_to_mono_ns(12345), 12345);
  EXPECT_EQ(ticks_to_ns(678), 678);
  timebase_refine();  // a no-op
  EXPECT_FALSE(g_ticks_are_tsc);
}

TEST(Timebase, StrictModeThresholdPassesEveryCall) {
  timebase_init(0, /*allow_tsc=*/true);
  EXPECT_EQ(g_threshold_ticks.load(), INT64_MIN);
  timebase_refine();
  EXPECT_EQ(g_threshold_ticks.load(), INT64_MIN);
}

TEST(Timebase, UnsetStaysZero) {
  timebase_init(1'000'000, /*allow_tsc=*/true);
  EXPECT_EQ(ticks_to_mono_ns(0), 0);  // ThreadSlot::blocked_since_ticks "not blocked"
}

}  // namespace
}  // namespace blockwatch::interpose
