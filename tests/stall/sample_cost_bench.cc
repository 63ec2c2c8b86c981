// What one stack sample costs the watchdog: a thread spins in a clock-reading
// loop 12 calls deep (built without frame pointers), and this program, playing
// the watchdog, samples it N times with each sampler (perf_event_open, and the
// CPU-timer signal fallback) and unwinds every copy with DWARF. Printed per
// sample: wall time until the copy was there (mostly waiting for the target to
// run: a sample is taken after 20 us / one tick of its CPU time), the
// watchdog's own CPU time for taking it, and the unwind's time and depth.
// Links the library's core directly (no preload); no assertions.
//
//   sample_cost_bench [samples=200]
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "interpose/core/record.h"
#include "interpose/watchdog/perf_sampler.h"
#include "interpose/watchdog/stack_unwinder.h"
#include "interpose/watchdog/stall_sampler.h"

namespace {

using namespace blockwatch::interpose;

std::atomic<bool> g_stop{false};
std::atomic<int> g_tid{0};

int64_t clock_ns(clockid_t clock) {
  timespec now;
  clock_gettime(clock, &now);
  return int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

extern "C" __attribute__((noinline)) uint64_t spin_leaf() {
  uint64_t sum = 0;
  while (!g_stop.load(std::memory_order_relaxed))
    sum += static_cast<uint64_t>(clock_ns(CLOCK_MONOTONIC));
  return sum;
}

extern "C" __attribute__((noinline)) uint64_t spin_at_depth(int depth) {
  volatile int keep = depth;  // a frame per level: no tail call, no loop
  const uint64_t result = depth == 0 ? spin_leaf() : spin_at_depth(depth - 1);
  return result + static_cast<uint64_t>(keep);
}

struct Cost {
  int64_t wall_ns = 0, watchdog_cpu_ns = 0, unwind_ns = 0, frames = 0;
  int taken = 0;
};

void print(const char* name, const Cost& cost, int asked) {
  if (cost.taken == 0) {
    std::printf("%s: no sample taken (of %d)\n", name, asked);
    return;
  }
  std::printf(
      "%s: samples=%d/%d wall_us_per_sample=%.1f watchdog_cpu_us_per_sample=%.1f "
      "unwind_us_per_sample=%.1f frames_per_sample=%.1f\n",
      name, cost.taken, asked, cost.wall_ns / 1e3 / cost.taken,
      cost.watchdog_cpu_ns / 1e3 / cost.taken, cost.unwind_ns / 1e3 / cost.taken,
      double(cost.frames) / cost.taken);
}

template <typename Sample>
Cost measure(int samples, Sample sample) {
  static StackCopy copy;
  Cost cost;
  for (int i = 0; i < samples; ++i) {
    const int64_t wall0 = clock_ns(CLOCK_MONOTONIC), cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    const bool ok = sample(&copy);
    const int64_t wall1 = clock_ns(CLOCK_MONOTONIC), cpu1 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    if (!ok) continue;
    uintptr_t frames[kMaxFrames];
    const int count = unwind_stack_copy(copy, frames, kMaxFrames, false);
    if (getenv("SAMPLE_COST_BENCH_SHOW") && i == 0) {
      for (int f = 0; f < count; ++f) {
        Dl_info info;
        const bool named = dladdr(reinterpret_cast<void*>(frames[f] - 1), &info) && info.dli_sname;
        std::printf("  #%d %s (%s)\n", f, named ? info.dli_sname : "?", info.dli_fname);
      }
    }
    const int64_t cpu2 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    cost.wall_ns += wall1 - wall0;
    cost.watchdog_cpu_ns += cpu1 - cpu0;
    cost.unwind_ns += cpu2 - cpu1;
    cost.frames += count;
    ++cost.taken;
  }
  return cost;
}

}  // namespace

int main(int argc, char** argv) {
  const int samples = argc > 1 ? std::atoi(argv[1]) : 200;
  std::thread spinner([] {
    stall_sampler_prepare_thread(0);
    g_tid = gettid();
    spin_at_depth(10);
  });
  while (g_tid == 0) std::this_thread::yield();
  const int32_t tid = g_tid;
  if (perf_sampler_available()) {
    // Open + mmap + enable + disable + munmap + close, with no sample to wait for.
    static StackCopy copy;
    const int64_t cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    for (int i = 0; i < samples; ++i) perf_sample_thread(tid, &copy, 0);
    std::printf("perf: open_and_close_us=%.1f\n",
                (clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0) / 1e3 / samples);
    print("perf",
          measure(samples,
                  [&](StackCopy* out) {
                    return perf_sample_thread(tid, out, 100'000'000) == PerfSampleResult::kSampled;
                  }),
          samples);
  } else {
    std::printf("perf: refused by this kernel\n");
  }
  if (stall_sampler_kernel_is_safe() && stall_sampler_install(SIGRTMIN + 7)) {
    print("signal",
          measure(
              samples,
              [&](StackCopy* out) { return stall_sampler_sample(tid, 0, out, 100'000'000) == 1; }),
          samples);
  } else {
    std::printf("signal: fallback off on this kernel\n");
  }
  g_stop = true;
  spinner.join();
  return 0;
}
