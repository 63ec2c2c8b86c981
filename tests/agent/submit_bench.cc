// What agent_submit() costs a hooked thread: copying one Record (64 frames) into
// the lock-free ring. Measured as submit + pop on one thread (the pop is the
// sender's side, included so the ring never fills), and as a submit that finds
// the ring full (the cost of a drop).
// Run: agent_submit_bench [--benchmark_min_time=0.5]
#include <benchmark/benchmark.h>

#include "interpose/agent.h"
#include "interpose/record_queue.h"

namespace blockwatch::interpose {
namespace {

Record deep_record() {
  Record record;
  record.kind = 1;
  record.frame_count = kMaxFrames;
  for (int i = 0; i < kMaxFrames; ++i) record.frames[i] = 0x400000 + i * 16;
  return record;
}

void BM_SubmitAndPop(benchmark::State& state) {
  const Record record = deep_record();
  Record out;
  for (auto _ : state) {
    benchmark::DoNotOptimize(agent_submit(record));
    benchmark::DoNotOptimize(global_record_queue().try_pop(out));
  }
}
BENCHMARK(BM_SubmitAndPop);

// The drop path: the ring is full (sender stopped, collector too slow).
void BM_SubmitWhenFull(benchmark::State& state) {
  const Record record = deep_record();
  while (agent_submit(record)) {
  }
  for (auto _ : state) benchmark::DoNotOptimize(agent_submit(record));
  global_record_queue().reset();
}
BENCHMARK(BM_SubmitWhenFull);

}  // namespace
}  // namespace blockwatch::interpose

BENCHMARK_MAIN();
