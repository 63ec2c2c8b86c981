// Choosing the sampler and taking one stack (see thread_sampler.h).
#include "interpose/watchdog/thread_sampler.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "interpose/base/internal_thread.h"
#include "interpose/core/thread_state.h"
#include "interpose/watchdog/perf_sampler.h"
#include "interpose/watchdog/stack_unwinder.h"
#include "interpose/watchdog/stall_sampler.h"

namespace blockwatch::interpose {
namespace {

constinit SamplerMode g_mode = SamplerMode::kOff;
constinit StackCopy g_copy;  // watchdog thread only: 32 KiB, not on its stack

void prepare_new_worker(int slot_index) { stall_sampler_prepare_thread(slot_index); }

// perf_sample_thread's "keep waiting?": not once the thread sleeps in a syscall.
bool still_running(int32_t tid) { return !read_thread_syscall(tid).in_syscall; }

SamplerMode requested_mode() {
  const char* text = getenv("BLOCKWATCH_SAMPLER");
  if (!text || !*text || std::strcmp(text, "auto") == 0) return SamplerMode::kPerf;
  if (std::strcmp(text, "perf") == 0) return SamplerMode::kPerf;
  if (std::strcmp(text, "signal") == 0) return SamplerMode::kSignal;
  if (std::strcmp(text, "off") == 0) return SamplerMode::kOff;
  std::fprintf(stderr,
               "blockwatch: BLOCKWATCH_SAMPLER='%s' is not auto, perf, signal or off; "
               "using auto\n",
               text);
  return SamplerMode::kPerf;
}

}  // namespace

void thread_sampler_init(int signal) {
  const char* text = getenv("BLOCKWATCH_SAMPLER");
  const bool forced = text && (std::strcmp(text, "perf") == 0 || std::strcmp(text, "signal") == 0);
  g_mode = requested_mode();
  if (g_mode == SamplerMode::kPerf && !perf_sampler_available()) {
    g_mode = forced ? SamplerMode::kOff : SamplerMode::kSignal;
  }
  if (g_mode == SamplerMode::kSignal && !stall_sampler_kernel_is_safe()) g_mode = SamplerMode::kOff;
  if (g_mode == SamplerMode::kSignal) {
    stall_sampler_prepare(signal);
    g_on_thread_became_worker = prepare_new_worker;
  }
}

SamplerMode thread_sampler_mode() { return g_mode; }

// A thread of ours that only opens the keep-warm event and exits (the event
// stays open with its fd): opening it waits for an RCU grace period, which
// neither the program's start nor the watchdog's first ticks should.
void* keep_warm_main(void*) {
  mark_current_thread_internal();
  perf_sampler_keep_warm();
  return nullptr;
}

void thread_sampler_watchdog_started(bool stalls_on) {
  if (stalls_on && g_mode == SamplerMode::kPerf) start_internal_thread(keep_warm_main, nullptr);
}

const char* thread_sampler_mode_name() {
  switch (g_mode) {
    case SamplerMode::kPerf:
      return "perf";
    case SamplerMode::kSignal:
      return "signal";
    case SamplerMode::kOff:
      break;
  }
  return "off";
}

int sample_thread_stack(int32_t tid, const ThreadSlot* slot, int slot_index, uintptr_t* frames,
                        int max_frames, int64_t timeout_ns, const char** syscall_name) {
  const ThreadSyscall state = read_thread_syscall(tid);
  if (state.in_syscall) {
    *syscall_name = state.name;
    return 0;
  }
  // Inside a hooked blocking call (perhaps still on a CPU copying data): its
  // hook's record has the stack; neither sampler could add a user-mode one.
  if (slot && slot->blocked_in.load(std::memory_order_acquire) != nullptr) return 0;
  bool sampled = false;
  if (g_mode == SamplerMode::kPerf) {
    sampled =
        perf_sample_thread(tid, &g_copy, timeout_ns, still_running) == PerfSampleResult::kSampled;
  } else if (g_mode == SamplerMode::kSignal && slot) {
    sampled = stall_sampler_sample(tid, slot_index, &g_copy, timeout_ns) == 1;
  }
  return sampled ? unwind_stack_copy(g_copy, frames, max_frames) : 0;
}

void thread_sampler_after_fork_child() { stall_sampler_after_fork_child(); }

}  // namespace blockwatch::interpose
