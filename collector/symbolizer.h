// The collector's symbolizer: turns (module, offset) into function, source file,
// line and the chain of functions inlined at that address, with elfutils' libdwfl.
// Debug information comes from the module's file, its .gnu_debugdata
// (MiniDebugInfo), a separate debug file found by build-id or debuglink under
// /usr/lib/debug, or a debuginfod server (only when DEBUGINFOD_URLS is set; each
// download is bounded by kDebuginfodDeadlineMs). A file whose build-id differs
// from the module's is never used to name a function: the answer says so.
//
// Results are cached per (build-id, or path when there is none; offset); a module
// costs its debug-info lookup once (including a failed one). Addresses in no
// loaded object (JIT code) are named from the process's perf map (perf_map.h).
//
// Thread-safety: symbolize() may be called from several threads (the collector
// decodes each connection on its own strand). The module table takes one
// mutex briefly; each module has a mutex of its own, held while its debug info
// is found (maybe a debuginfod download, up to the deadline) and while one of
// its addresses is resolved: a slow lookup blocks only the callers that need
// that same module. Cheap on a warm cache (the decoder calls it once per new pc
// per stream, never per event).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "collector/perf_map.h"
#include "collector/symbolization.h"

namespace blockwatch::collector {

inline constexpr int64_t kDebuginfodDeadlineMs = 10'000;

class Symbolizer final : public FrameSymbolizer {
 public:
  struct Options {
    // Root of separate debug files ("/usr/lib/debug"); libdwfl looks under
    // ROOT/.build-id/xx/yyyy.debug and for the module's .gnu_debuglink there.
    std::string debug_root = "/usr/lib/debug";
    // Ask debuginfod servers (DEBUGINFOD_URLS) for what is not on this host.
    bool use_debuginfod = true;
    int64_t debuginfod_deadline_ms = kDebuginfodDeadlineMs;
    // Where JIT engines write perf maps (perf-PID.map), on this host.
    std::string perf_map_dir = "/tmp";
  };

  Symbolizer();
  explicit Symbolizer(Options options);
  ~Symbolizer();
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  // The frames at `address`, an offset from the module's load bias (a file
  // virtual address). Callers pass a return address minus one, so the line is
  // the call's, not the next statement's.
  Symbolization symbolize(const ModuleIdentity& module, uint64_t address) override;

  // From PERF_MAP_DIR/perf-PID.map (perf_map.h), only for a process of this host
  // (a perf map is a file in the target's /tmp: a collector on another host, or
  // in another PID or mount namespace, cannot read the right one).
  JitSymbol symbolize_jit(const ProcessIdentity& process, uint64_t address) override;

  // Counters for benchmarks and logs.
  struct Stats {
    uint64_t modules_opened = 0;  // debug-info lookups done (one per module)
    uint64_t lookups = 0;         // symbolize() calls
    uint64_t cache_hits = 0;
    uint64_t debuginfod_queries = 0;
  };
  Stats stats() const;

  // One symbolizer for the whole collector process (its caches are shared by
  // every stream).
  static Symbolizer& shared();

  struct ModuleState;

 private:
  std::shared_ptr<ModuleState> module_entry(const ModuleIdentity& module);
  void open_module(ModuleState* state, const ModuleIdentity& module);
  int64_t debuginfod_deadline_ms() const;  // for a lookup starting now
  Options options_;
  std::mutex mutex_;  // modules_ only
  // Shared: a table flush (kMaxModules) must not free a state another thread uses.
  absl::flat_hash_map<std::string, std::shared_ptr<ModuleState>> modules_;
  std::atomic<uint64_t> modules_opened_{0}, lookups_{0}, cache_hits_{0}, debuginfod_queries_{0};
  std::mutex perf_maps_mutex_;  // perf_maps_ (never held with mutex_)
  // Per (pid, start time): a pid reused by another process gets another map.
  absl::flat_hash_map<std::pair<int, int64_t>, std::unique_ptr<PerfMap>> perf_maps_;
  std::string hostname_;  // set in the constructor
};

// Lower-case hex of a build-id's bytes ("" for none).
std::string build_id_hex(std::string_view build_id);

}  // namespace blockwatch::collector
