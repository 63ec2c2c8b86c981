// For collector unit tests: the report an Aggregator makes of whole wire
// streams, each decoded to its end as one connection would be.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "collector/aggregate.h"
#include "collector/stream_decoder.h"

namespace blockwatch::testing {

inline collector::Report aggregate_streams(const std::vector<std::string>& streams,
                                           const config::Config& rules = {}) {
  std::string error;
  std::shared_ptr<const collector::StackClassifier> classifier =
      collector::StackClassifier::create(rules, &error);
  collector::Aggregator aggregator(classifier);
  for (const auto& bytes : streams) {
    collector::StreamHandler* sink = aggregator.begin_stream();
    collector::StreamDecoder decoder(sink);
    EXPECT_TRUE(decoder.feed(bytes.data(), bytes.size())) << decoder.error();
    EXPECT_TRUE(decoder.finish());
    aggregator.end_stream(sink, "disconnected");
  }
  return aggregator.report();
}

}  // namespace blockwatch::testing
