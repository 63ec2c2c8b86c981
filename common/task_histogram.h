// The per-task duration histogram both sides agree on: the injected library
// counts timed tasks into these buckets (interpose/core/task_stats.h), the wire
// carries the bucket counts (proto TaskStats.buckets), and the collector turns
// them into percentiles and Prometheus buckets. One definition of the bucket
// bounds, here.
//
// Log-linear buckets: bucket 0 holds [0, 1024 ns); above that every power of two
// from 2^10 to 2^34 ns (~17 s) is split into 4 equal buckets (each at most 25%
// wide relative to its lower bound); the last bucket holds everything from 2^34
// ns up. Pure functions, no allocation, async-signal-safe.
#pragma once

#include <cstdint>

namespace blockwatch::task_histogram {

inline constexpr int kFirstOctave = 10;  // 2^10 ns: the top of bucket 0
inline constexpr int kLastOctave = 33;   // the octave [2^33, 2^34) is the last split one
inline constexpr int kSubBuckets = 4;
inline constexpr int kBuckets = 1 + (kLastOctave - kFirstOctave + 1) * kSubBuckets + 1;
inline constexpr int64_t kOneMillisecondNs = 1'000'000;  // "tasks over 1 ms"

// The bucket a duration falls in. Negative durations count as 0. Always
// inlined: a task-entry probe (compiled without vector registers) calls it, and
// an out-of-line copy from another object could be the one the linker keeps.
__attribute__((always_inline)) inline int bucket_of(int64_t ns) {
  if (ns < (int64_t{1} << kFirstOctave)) return 0;
  const int octave = 63 - __builtin_clzll(static_cast<uint64_t>(ns));
  if (octave > kLastOctave) return kBuckets - 1;
  const int sub = static_cast<int>((static_cast<uint64_t>(ns) >> (octave - 2)) & 3);
  return 1 + (octave - kFirstOctave) * kSubBuckets + sub;
}

// Lowest duration in bucket `index` (0 for bucket 0).
inline int64_t bucket_lower_ns(int index) {
  if (index <= 0) return 0;
  if (index >= kBuckets - 1) return int64_t{1} << (kLastOctave + 1);
  const int octave = kFirstOctave + (index - 1) / kSubBuckets;
  const int sub = (index - 1) % kSubBuckets;
  return static_cast<int64_t>(kSubBuckets + sub) << (octave - 2);
}

// One past the highest duration in bucket `index`; INT64_MAX for the last.
inline int64_t bucket_upper_ns(int index) {
  if (index >= kBuckets - 1) return INT64_MAX;
  return bucket_lower_ns(index + 1);
}

// The q-quantile (0 < q <= 1) of the durations counted in `counts[0..n)`, as
// the upper bound of the bucket that holds it, capped at `max_ns` (the largest
// duration counted, exact): an over-estimate by at most one bucket width. 0
// when nothing was counted.
inline int64_t quantile_ns(const uint64_t* counts, int n, double q, int64_t max_ns) {
  uint64_t total = 0;
  for (int i = 0; i < n; ++i) total += counts[i];
  if (total == 0) return 0;
  // The rank of the quantile, 1-based: the smallest r with r >= q * total.
  uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total));
  if (static_cast<double>(rank) < q * static_cast<double>(total)) ++rank;
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (int i = 0; i < n; ++i) {
    seen += counts[i];
    if (seen >= rank) {
      const int64_t upper = bucket_upper_ns(i);
      return upper < max_ns ? upper : max_ns;
    }
  }
  return max_ns;
}

}  // namespace blockwatch::task_histogram
