// Collector throughput and memory (Google Benchmark): records per second decoded
// and aggregated from an interned stream (target >= 1,000,000/s on one core), also
// with every pc symbolized by libdw (warm caches: the stream's 30k pcs are real
// addresses of libstdc++); the cost of symbolizing a module cold (open, find its
// debug info, first address); and the collector's resident memory after 1M
// records over 10k distinct stacks.
// Run: build-*/tests/collector/collector_bench
#include <benchmark/benchmark.h>
#include <elf.h>
#include <link.h>
#include <unistd.h>

#include <fstream>
#include <random>

#include <sys/socket.h>
#include <sys/un.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <thread>

#include "collector/aggregate.h"
#include "collector/ingest.h"
#include "collector/symbolizer.h"
#include "tests/collector/wire_builder.h"

namespace {

using blockwatch::testing::WireBuilder;
namespace wire = blockwatch::wire;
namespace bc = blockwatch::collector;

constexpr int kStacks = 10'000;
constexpr int kDepth = 12;

// A loaded object with code: the module the symbolized streams point into.
struct LoadedModule {
  std::string path;
  uint64_t bias = 0, start = 0, size = 0;
  std::string build_id;
};

LoadedModule loaded_module(const char* name_part) {
  struct Search {
    const char* name_part;
    LoadedModule found;
  } search{name_part, {}};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto* s = static_cast<Search*>(data);
        if (std::string_view(info->dlpi_name).find(s->name_part) == std::string_view::npos)
          return 0;
        s->found.path = info->dlpi_name;
        s->found.bias = info->dlpi_addr;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) && ph.p_memsz > s->found.size) {
            s->found.start = info->dlpi_addr + ph.p_vaddr;
            s->found.size = ph.p_memsz;
          }
          if (ph.p_type != PT_NOTE) continue;
          const char* p = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
          for (const char* end = p + ph.p_memsz; p + sizeof(ElfW(Nhdr)) <= end;) {
            const auto* note = reinterpret_cast<const ElfW(Nhdr)*>(p);
            const char* desc = p + sizeof(ElfW(Nhdr)) + ((note->n_namesz + 3) & ~3u);
            if (note->n_type == NT_GNU_BUILD_ID) s->found.build_id.assign(desc, note->n_descsz);
            p = desc + ((note->n_descsz + 3) & ~3u);
          }
        }
        return 1;
      },
      &search);
  return search.found;
}

const LoadedModule& libstdcxx() {
  static const LoadedModule module = loaded_module("libstdc++");
  return module;
}

// One stream: definitions of 10k stacks (12 frames over a pool of 30k symbols),
// then `events` events spread over them. With `real_module`, the pcs are return
// addresses spread over libstdc++'s code and a Modules frame announces it, so a
// symbolizing decoder resolves every one.
std::string make_stream(int events, int event_stacks = kStacks, bool real_module = false) {
  WireBuilder w;
  w.hello(1, "/usr/bin/bench");
  constexpr int kSymbols = 30'000;
  uint64_t first_pc = 0x400000, stride = 16;
  if (real_module) {
    const LoadedModule& m = libstdcxx();
    wire::Frame modules;
    wire::Module* module = modules.mutable_modules()->add_modules();
    module->set_path(m.path);
    module->set_base(m.bias);
    module->set_start(m.start);
    module->set_end(m.start + m.size);
    module->set_build_id(m.build_id);
    w.frame(modules);
    first_pc = m.start + 1;
    stride = (m.size - 2) / kSymbols;
  }
  for (int t = 1; t <= 16; ++t) w.string(t, "worker-" + std::to_string(t));
  for (int s = 0; s < kSymbols; ++s) {
    w.symbol(first_pc + s * stride, "app::module" + std::to_string(s % 50) + "::function" +
                                        std::to_string(s) + "(int, std::string const&)");
  }
  std::mt19937 rng(1);
  for (int id = 1; id <= kStacks; ++id) {
    std::vector<uint64_t> pcs;
    for (int d = 0; d < kDepth; ++d) pcs.push_back(first_pc + (rng() % kSymbols) * stride);
    w.stack(id, pcs);
  }
  for (int i = 0; i < events; ++i) {
    w.event(wire::KIND_MUTEX, 1'000 + rng() % 5'000'000, 1 + rng() % event_stacks, 1 + rng() % 16,
            1000 + rng() % 16);
  }
  return w.bytes;
}

// Feeds in 64 KiB pieces, like socket reads.
void decode_into(bc::Aggregator* aggregator, const std::string& bytes,
                 bc::FrameSymbolizer* symbolizer = nullptr) {
  bc::StreamHandler* sink = aggregator->begin_stream();
  bc::StreamDecoder decoder(sink, bc::StreamDecoder::Options{.symbolizer = symbolizer});
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

// As BM_DecodeAndAggregate, every pc symbolized by libdw with warm caches (a
// collector that has seen the program before: each stream still resolves its 30k
// pcs once, through the symbolizer's cache).
void BM_DecodeAndAggregateSymbolizedWarm(benchmark::State& state) {
  static const std::string stream = make_stream(1'000'000, kStacks, true);
  auto classifier = builtin_classifier();
  bc::Symbolizer symbolizer(bc::Symbolizer::Options{.use_debuginfod = false});
  {
    bc::Aggregator warm_up(classifier);
    decode_into(&warm_up, stream, &symbolizer);
  }
  for (auto _ : state) {
    bc::Aggregator aggregator(classifier);
    decode_into(&aggregator, stream, &symbolizer);
    benchmark::DoNotOptimize(aggregator.events());
  }
  state.SetItemsProcessed(state.iterations() * 1'000'000);
  state.counters["symbolizer_cache_hits"] = static_cast<double>(symbolizer.stats().cache_hits);
}
BENCHMARK(BM_DecodeAndAggregateSymbolizedWarm)->Unit(benchmark::kMillisecond)->Iterations(3);

// The whole ingestion path: the stream of BM_DecodeAndAggregateSymbolizedWarm
// written into a real Unix socket of an IngestServer (Boost.Asio reading,
// decoding on its decode threads), wall time from the first byte sent until the
// stream has ended in the Aggregator.
void BM_IngestOverUnixSocketSymbolizedWarm(benchmark::State& state) {
  static const std::string stream = make_stream(1'000'000, kStacks, true);
  auto classifier = builtin_classifier();
  bc::Symbolizer symbolizer(bc::Symbolizer::Options{.use_debuginfod = false});
  {
    bc::Aggregator warm_up(classifier);
    decode_into(&warm_up, stream, &symbolizer);
  }
  const std::string dir =
      std::filesystem::temp_directory_path() / ("bw-bench-" + std::to_string(getpid()));
  for (auto _ : state) {
    bc::Aggregator aggregator(classifier);
    boost::asio::io_context io;
    auto work = boost::asio::make_work_guard(io);
    bc::IngestOptions options;
    options.symbolizer = &symbolizer;
    bc::IngestServer server(io, aggregator, options);
    std::string error;
    if (!server.listen_unix(dir + "/collector.sock", &error)) {
      state.SkipWithError(error.c_str());
      break;
    }
    std::thread io_thread([&io] { io.run(); });
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof address.sun_path, "%s/collector.sock", dir.c_str());
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      state.SkipWithError("connect");
      break;
    }
    for (size_t sent = 0; sent < stream.size();) {
      const ssize_t n = send(fd, stream.data() + sent, stream.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    close(fd);
    while (server.total_connections() == 0 || server.open_connections() > 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    work.reset();
    io.stop();
    io_thread.join();
    benchmark::DoNotOptimize(aggregator.events());
  }
  std::filesystem::remove_all(dir);
  state.SetItemsProcessed(state.iterations() * 1'000'000);
}
BENCHMARK(BM_IngestOverUnixSocketSymbolizedWarm)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3)
    ->UseRealTime();

// Cold: a new symbolizer opens the module (and finds its separate debug file
// when one is installed: Debian's libc6-dbg for libc), then resolves
// `state.range(0)` distinct addresses spread over its code.
void symbolize_module_cold(benchmark::State& state, const LoadedModule& m) {
  const auto addresses = static_cast<uint64_t>(state.range(0));
  const uint64_t stride = m.size / (addresses + 1);  // the first address is one stride in
  size_t frames = 0;
  for (auto _ : state) {
    bc::Symbolizer symbolizer(bc::Symbolizer::Options{.use_debuginfod = false});
    for (uint64_t i = 0; i < addresses; ++i) {
      frames += symbolizer.symbolize({m.path, m.build_id}, m.start - m.bias + (i + 1) * stride)
                    .frames.size();
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(addresses));
  state.counters["frames_per_address"] =
      static_cast<double>(frames) / static_cast<double>(state.iterations() * addresses);
}
void BM_SymbolizeModuleCold_libstdcxx(benchmark::State& state) {
  symbolize_module_cold(state, libstdcxx());
}
void BM_SymbolizeModuleCold_libc(benchmark::State& state) {
  static const LoadedModule libc = loaded_module("libc.so");
  symbolize_module_cold(state, libc);
}
BENCHMARK(BM_SymbolizeModuleCold_libstdcxx)
    ->Arg(1)
    ->Arg(1000)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);
BENCHMARK(BM_SymbolizeModuleCold_libc)
    ->Arg(1)
    ->Arg(1000)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);

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
