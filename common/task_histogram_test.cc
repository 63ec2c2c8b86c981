// The task-duration histogram's bucket bounds and percentiles
// (common/task_histogram.h), which the library and the collector share.
#include "common/task_histogram.h"

#include <gtest/gtest.h>

#include <vector>

namespace blockwatch::task_histogram {
namespace {

TEST(TaskHistogram, BucketBoundsAreLogLinear) {
  EXPECT_EQ(bucket_of(-5), 0);
  EXPECT_EQ(bucket_of(0), 0);
  EXPECT_EQ(bucket_of(1023), 0);
  EXPECT_EQ(bucket_of(1024), 1);  // [1024, 1280)
  EXPECT_EQ(bucket_of(1279), 1);
  EXPECT_EQ(bucket_of(1280), 2);
  EXPECT_EQ(bucket_of(2047), 4);
  EXPECT_EQ(bucket_of(2048), 5);  // the next power of two: 4 buckets further
  EXPECT_EQ(bucket_of(int64_t{1} << 34), kBuckets - 1);
  EXPECT_EQ(bucket_of(INT64_MAX), kBuckets - 1);
  EXPECT_EQ(bucket_upper_ns(kBuckets - 1), INT64_MAX);
}

TEST(TaskHistogram, EveryBucketHoldsItsOwnBounds) {
  for (int i = 0; i < kBuckets; ++i) {
    EXPECT_EQ(bucket_of(bucket_lower_ns(i)), i) << i;
    if (i < kBuckets - 1) {
      EXPECT_EQ(bucket_of(bucket_upper_ns(i) - 1), i) << i;
      EXPECT_EQ(bucket_upper_ns(i), bucket_lower_ns(i + 1)) << i;
      // At most 25% wide, relative to its lower bound (above bucket 0).
      if (i > 0) EXPECT_LE(bucket_upper_ns(i) - bucket_lower_ns(i), bucket_lower_ns(i) / 4) << i;
    }
  }
}

TEST(TaskHistogram, QuantileIsTheBucketUpperBoundCappedAtMax) {
  std::vector<uint64_t> counts(kBuckets, 0);
  EXPECT_EQ(quantile_ns(counts.data(), kBuckets, 0.5, 0), 0);  // nothing counted
  // 98 tasks of ~500 ns, 2 of 3 ms: p50 in bucket 0, p99 in the 3 ms bucket.
  counts[bucket_of(500)] = 98;
  counts[bucket_of(3'000'000)] = 2;
  const int64_t max_ns = 3'100'000;
  EXPECT_EQ(quantile_ns(counts.data(), kBuckets, 0.50, max_ns), 1024);
  EXPECT_EQ(quantile_ns(counts.data(), kBuckets, 0.98, max_ns), 1024);  // rank 98 of 100
  const int64_t p99 = quantile_ns(counts.data(), kBuckets, 0.99, max_ns);
  EXPECT_GE(p99, 3'000'000);
  EXPECT_LE(p99, max_ns);  // the bucket reaches 3.14 ms: capped at the exact max
  EXPECT_EQ(quantile_ns(counts.data(), kBuckets, 1.0, max_ns), max_ns);
}

TEST(TaskHistogram, QuantileOfOneTask) {
  std::vector<uint64_t> counts(kBuckets, 0);
  counts[bucket_of(5'000)] = 1;
  EXPECT_EQ(quantile_ns(counts.data(), kBuckets, 0.5, 5'000), 5'000);
  EXPECT_EQ(quantile_ns(counts.data(), kBuckets, 0.01, 5'000), 5'000);
}

}  // namespace
}  // namespace blockwatch::task_histogram
