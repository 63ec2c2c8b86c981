// Collector throughput and memory (Google Benchmark): records per second decoded
// and aggregated from an interned stream (target >= 1,000,000/s on one core), and
// the collector's resident memory after 1M records over 10k distinct stacks.
// Run: build-*/tests/collector/collector_bench
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <fstream>
#include <random>

#include "collector/aggregate.h"
#include "tests/collector/wire_builder.h"

namespace {

using blockwatch::testing::WireBuilder;
namespace wire = blockwatch::wire;
namespace bc = blockwatch::collector;

constexpr int kStacks = 10'000;
constexpr int kDepth = 12;

// One stream: definitions of 10k stacks (12 frames over a pool of 30k symbols),
// then `events` events spread over them.
std::string make_stream(int events, int event_stacks = kStacks) {
  WireBuilder w;
  w.hello(1, "/usr/bin/bench");
  for (int t = 1; t <= 16; ++t) w.string(t, "worker-" + std::to_string(t));
  constexpr int kSymbols = 30'000;
  for (int s = 0; s < kSymbols; ++s) {
    w.symbol(0x400000 + s * 16, "app::module" + std::to_string(s % 50) + "::function" +
                                    std::to_string(s) + "(int, std::string const&)");
  }
  std::mt19937 rng(1);
  for (int id = 1; id <= kStacks; ++id) {
    std::vector<uint64_t> pcs;
    for (int d = 0; d < kDepth; ++d) pcs.push_back(0x400000 + (rng() % kSymbols) * 16);
    w.stack(id, pcs);
  }
  for (int i = 0; i < events; ++i) {
    w.event(wire::KIND_MUTEX, 1'000 + rng() % 5'000'000, 1 + rng() % event_stacks, 1 + rng() % 16,
            1000 + rng() % 16);
  }
  return w.bytes;
}

// Feeds in 64 KiB pieces, like socket reads.
void decode_into(bc::Aggregator* aggregator, const std::string& bytes) {
  bc::StreamHandler* sink = aggregator->begin_stream();
  bc::StreamDecoder decoder(sink);
  for (size_t offset = 0; offset < bytes.size(); offset += 65536) {
    decoder.feed(bytes.data() + offset, std::min<size_t>(65536, bytes.size() - offset));
  }
  decoder.finish();
  aggregator->end_stream(sink, "disconnected");
}

std::shared_ptr<const bc::StackClassifier> builtin_classifier() {
  std::string error;
  return bc::StackClassifier::create(blockwatch::config::Config{}, &error);
}

void BM_DecodeAndAggregate(benchmark::State& state) {
  static const std::string stream = make_stream(1'000'000);
  auto classifier = builtin_classifier();
  for (auto _ : state) {
    bc::Aggregator aggregator(classifier);
    decode_into(&aggregator, stream);
    benchmark::DoNotOptimize(aggregator.events());
  }
  state.SetItemsProcessed(state.iterations() * 1'000'000);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(stream.size()));
}
BENCHMARK(BM_DecodeAndAggregate)->Unit(benchmark::kMillisecond)->Iterations(3);

// The same with events concentrated on 100 of the 10k stacks (a real run's
// hotspots are few): the per-event cost without cache misses on 10k hotspots.
void BM_DecodeAndAggregateHotStacks(benchmark::State& state) {
  static const std::string stream = make_stream(1'000'000, 100);
  auto classifier = builtin_classifier();
  for (auto _ : state) {
    bc::Aggregator aggregator(classifier);
    decode_into(&aggregator, stream);
    benchmark::DoNotOptimize(aggregator.events());
  }
  state.SetItemsProcessed(state.iterations() * 1'000'000);
}
BENCHMARK(BM_DecodeAndAggregateHotStacks)->Unit(benchmark::kMillisecond)->Iterations(3);

size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  size_t pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return pages_resident * static_cast<size_t>(::sysconf(_SC_PAGESIZE));
}

// Memory held by the aggregator (and one decoder's interning tables) after 1M
// records over 10k stacks, then the cost of building the Report.
void BM_MemoryFor1MRecords10kStacks(benchmark::State& state) {
  static const std::string stream = make_stream(1'000'000);
  auto classifier = builtin_classifier();
  for (auto _ : state) {
    size_t before = resident_bytes();
    auto aggregator = std::make_unique<bc::Aggregator>(classifier);
    decode_into(aggregator.get(), stream);
    size_t after = resident_bytes();
    bc::Report report = aggregator->report();
    state.counters["aggregator_MiB"] = static_cast<double>(after - before) / (1 << 20);
    state.counters["hotspots"] = static_cast<double>(report.hotspots.size());
    state.counters["stream_MiB"] = static_cast<double>(stream.size()) / (1 << 20);
  }
}
BENCHMARK(BM_MemoryFor1MRecords10kStacks)->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();
