// What agent_submit() costs a hooked thread: copying one Record (its used frames: 20 or 64 here)
// into the lock-free ring. Measured as submit + pop on one thread (the pop is the sender's side,
// included so the ring never fills), and as a submit that finds the ring full (the cost of a drop).
// Run: agent_submit_bench [--benchmark_min_time=0.5]
#include <benchmark/benchmark.h>

#include "interpose/transport/agent.h"
#include "interpose/transport/record_queue.h"

namespace blockwatch::interpose {
namespace {

Record record_with_frames(int frame_count) {
  Record record;
  record.kind = 1;
  record.frame_count = frame_count;
  for (int i = 0; i < frame_count; ++i) record.frames[i] = 0x400000 + i * 16;
  return record;
}

void BM_SubmitAndPop(benchmark::State& state) {
  const Record record = record_with_frames(static_cast<int>(state.range(0)));
  Record out;
  for (auto _ : state) {
    benchmark::DoNotOptimize(agent_submit(record));
    benchmark::DoNotOptimize(global_record_queue().try_pop(out));
  }
}
BENCHMARK(BM_SubmitAndPop)->Arg(20)->Arg(kMaxFrames);

// The drop path: the ring is full (sender stopped, collector too slow).
void BM_SubmitWhenFull(benchmark::State& state) {
  const Record record = record_with_frames(20);
  while (agent_submit(record)) {
  }
  for (auto _ : state) benchmark::DoNotOptimize(agent_submit(record));
  global_record_queue().reset();
}
BENCHMARK(BM_SubmitWhenFull);

}  // namespace
}  // namespace blockwatch::interpose

BENCHMARK_MAIN();
