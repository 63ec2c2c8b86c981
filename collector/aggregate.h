// Aggregation of decoded events into hotspots: keyed by (kind, stack) per process,
// merged across processes of one executable when a Report is built. Memory grows
// with distinct stacks, not with events: each hotspot keeps exact count/total/max,
// a sparse log-bucket histogram for percentiles (about 3% error), small capped
// sets of thread, holder and task names, and at most kMaxOccurrences occurrences.
//
// Stalls: the watchdog sends up to three samples (1x, 2x, 4x the threshold) of one
// stall with one stall_id. They count as ONE stall: homed in the hotspot of the
// first sample that has a stack, each later sample replacing the earlier one's
// duration, cpu/runqueue/offcpu split and occurrence. Per process the last
// kMaxTrackedStalls stall ids are remembered (older ones have sent all samples).
// A stall none of whose samples had a stack (the watchdog does not signal a
// thread inside an EINTR-able call) takes the stack of the blocking call of the
// same thread that spans one of its samples, whichever arrives first; the
// hotspot says so (stack_source "blocking_call", caused_by). Without such a
// call it stays in the stack-less hotspot (stack_source "none").
//
// Threading: an Aggregator is not internally synchronised. The ingestion server
// feeds it from its I/O thread and takes lock() around feeding and snapshots.
#pragma once

#include <climits>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "collector/config.h"
#include "collector/report_model.h"
#include "collector/stream_decoder.h"

namespace blockwatch::collector {

// Percentiles from a fixed-precision log histogram: 16 sub-buckets per power of
// two (bucket midpoints are within 1/32 of any value they hold). Dense between the
// lowest and highest bucket used, so its size follows the spread of durations
// (1us..5ms: about 200 buckets), never the number of events.
class LogHistogram {
 public:
  void add(int64_t value_ns, uint64_t count = 1);
  void merge(const LogHistogram& other);
  // Takes back one earlier add(value_ns) (a stall's sample replaced by a later
  // one). The min/max clamp keeps the removed value until the histogram empties,
  // so it may be looser than exact afterwards; bucket accuracy is unchanged.
  void remove(int64_t value_ns);
  // The q-quantile (0 < q <= 1) of what was added, clamped to the smallest and
  // largest value added (so one sample is exact); 0 when empty.
  int64_t quantile(double q) const;
  size_t bucket_count() const { return counts_.size(); }

 private:
  static uint32_t bucket_of(int64_t value_ns);
  static int64_t midpoint_of(uint32_t bucket);
  std::vector<uint32_t> counts_;  // counts_[i]: bucket first_bucket_ + i (saturating)
  uint32_t first_bucket_ = 0;
  uint64_t total_ = 0;
  int64_t min_ns_ = INT64_MAX;
  int64_t max_ns_ = INT64_MIN;
};

// Small sets of names, bounded: the report lists at most this many per hotspot.
inline constexpr size_t kMaxNamesPerHotspot = 16;

// Blocking calls with a stack remembered per process (while stall detection is on)
// for stack-less stall samples that arrive after the call's record; and stack-less
// stalls waiting for the call that covers them (usually the call comes later).
inline constexpr size_t kRecentBlockingCalls = 1024;
inline constexpr size_t kMaxPendingStalls = 256;

// Stall ids remembered per process for merging samples: about 17 minutes at the
// injected library's stall budget of 60 per minute; a stall's samples span seconds.
inline constexpr size_t kMaxTrackedStalls = 1024;

class Aggregator {
 public:
  // The classifier applies idle/allow/path/not_worker rules (may be null: none).
  explicit Aggregator(std::shared_ptr<const StackClassifier> classifier);
  ~Aggregator();

  // One handler per stream (connection or saved file). The returned handler stays
  // owned by the Aggregator; call end_stream() when its stream ends.
  // `allow_restart` streams may hold several processes (a later Hello starts one).
  StreamHandler* begin_stream();
  // The stream ended; `end_reason` is used when it said no Goodbye ("disconnected").
  void end_stream(StreamHandler* stream, const std::string& end_reason);

  // Builds the report: hotspots merged per (exe, kind, frames), sorted by total
  // time; summary and per-path totals. The verdict is left to rules.h.
  Report report() const;

  std::mutex& mutex() { return mutex_; }
  uint64_t events() const { return events_; }
  uint64_t idle_events() const { return idle_events_; }
  size_t hotspot_count() const;  // per-process hotspots currently held

  struct ProcessState;
  struct HotspotAccumulator;

 private:
  class Sink;
  static Hotspot with_names(const HotspotAccumulator& acc, const ProcessState& process);
  std::shared_ptr<const StackClassifier> classifier_;
  std::vector<std::unique_ptr<ProcessState>> processes_;
  std::vector<std::unique_ptr<Sink>> sinks_;
  uint64_t events_ = 0;
  uint64_t idle_events_ = 0;
  std::mutex mutex_;
};

}  // namespace blockwatch::collector
