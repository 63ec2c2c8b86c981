// The hook path's clock. A worker's timed call reads the clock twice; through
// the vDSO, CLOCK_MONOTONIC costs ~28 ns on a KVM guest (kvm-clock) and a raw
// rdtsc ~12 ns, so where the CPU's time-stamp counter is invariant (CPUID
// 0x80000007 EDX bit 8: constant rate, runs in every C-state) hooks read raw
// TSC "ticks" and compare them with a threshold converted to ticks once. Ticks
// become CLOCK_MONOTONIC ns only for a call that is reported, or when the
// watchdog reads a slot's blocked_since_ticks. Elsewhere (no invariant TSC,
// not x86-64, BLOCKWATCH_TIMEBASE=clock) a tick is simply a CLOCK_MONOTONIC ns.
//
// The tick rate is measured against CLOCK_MONOTONIC at library start (a
// ~250 us spin in the constructor) and refined by the sender thread
// (timebase_refine), which also re-anchors the conversion regularly so that
// converted times follow CLOCK_MONOTONIC (NTP slewing) and a changed TSC rate
// (a VM moved to another host) is picked up within about a second.
//
// Hook-path code: every function here is async-signal-safe, allocates nothing
// and takes no lock. The conversion parameters are published as a "latch" (two
// copies and a sequence): a reader never waits for the writer.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "interpose/base/clock.h"

namespace blockwatch::interpose {

// True once timebase_init chose the TSC. Written only by timebase_init (the
// library constructor, before any thread is classified as a worker).
extern bool g_ticks_are_tsc;

// The threshold in ticks, a little below the exact value (see
// timebase_threshold_ticks): a call at least this long is converted and checked
// in ns. INT64_MIN in strict mode (threshold 0), so every call passes even if
// two CPUs' TSCs disagree by a few ticks. Written by timebase_init and
// timebase_refine.
extern std::atomic<int64_t> g_threshold_ticks;

// Now, in ticks. Async-signal-safe; no ordering fence (an rdtsc that executes a
// few cycles early or late is noise next to a blocking call).
inline int64_t hook_clock_ticks() {
#if defined(__x86_64__)
  if (__builtin_expect(g_ticks_are_tsc, 1)) return static_cast<int64_t>(__rdtsc());
#endif
  return monotonic_ns();
}

// A tick count taken by hook_clock_ticks as CLOCK_MONOTONIC ns; 0 stays 0 ("not
// set", as ThreadSlot::blocked_since_ticks uses it). Async-signal-safe.
int64_t ticks_to_mono_ns(int64_t ticks);

// A difference of two tick counts as ns (negative stays negative).
// Async-signal-safe.
int64_t ticks_to_ns(int64_t elapsed_ticks);

// Choose the clock (TSC only if `allow_tsc`, the CPU says it is invariant, the
// kernel's clocksource is one built on a synchronised TSC, and the measured
// rate is plausible), calibrate it, and set g_threshold_ticks from
// `threshold_ns`. Library constructor; spins ~250 us when the TSC is used.
void timebase_init(int64_t threshold_ns, bool allow_tsc);

// Re-measure the tick rate (over windows of 20 ms to 2 s) and re-anchor the
// conversion at now. Sender thread only, any number of times (cheap: about
// 12 clock reads). Does nothing when ticks are ns.
void timebase_refine();

// In the child after fork(): a refinement the parent's sender was in the middle
// of never finishes here; let the child's sender refine again.
void timebase_after_fork_child();

// ---- the arithmetic, exposed for unit tests ----------------------------------

// Does the kernel clocksource `name` (as in /sys/devices/system/clocksource/
// clocksource0/current_clocksource, trailing newline allowed) vouch for a TSC
// that agrees across CPUs? "tsc", and the paravirtual clocks that are the TSC
// scaled by the hypervisor (kvm-clock, Hyper-V's TSC page). A kernel that found
// the TSCs of its CPUs out of step falls back to hpet or acpi_pm instead.
bool clocksource_vouches_for_tsc(const char* name);

// A CLOCK_MONOTONIC reading and a tick reading taken at (nearly) the same time.
struct ClockPair {
  int64_t ticks = 0;
  int64_t mono_ns = 0;
  int64_t uncertainty_ns = 0;  // mono_ns is within +-this of the tick reading
};

// ns per tick as a 32.32 fixed-point number, from two pairs; 0 if the pairs
// are unusable (ticks not increasing, or a rate outside 50 MHz..20 GHz).
uint64_t ns_per_tick_q32_between(const ClockPair& earlier, const ClockPair& later);

// `ticks` converted along the line through `anchor` with slope `ns_per_tick_q32`.
int64_t convert_ticks(int64_t ticks, const ClockPair& anchor, uint64_t ns_per_tick_q32);

// The tick threshold for `threshold_ns` at `ns_per_tick_q32`: ~0.1% low, so a
// rate estimate that is slightly off never hides a call that lasted the threshold
// (the ns re-check in the report path drops the few that fall short).
int64_t timebase_threshold_ticks(int64_t threshold_ns, uint64_t ns_per_tick_q32);

}  // namespace blockwatch::interpose
