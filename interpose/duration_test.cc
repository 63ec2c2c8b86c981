// parse_duration_ns: the forms BLOCKWATCH_THRESHOLD documents, and rejection of
// everything else (the caller then prints one line and keeps the default).
#include "interpose/duration.h"

#include <gtest/gtest.h>

namespace blockwatch::interpose {
namespace {

TEST(ParseDuration, AcceptsDocumentedForms) {
  EXPECT_EQ(parse_duration_ns("0"), 0);
  EXPECT_EQ(parse_duration_ns("500ns"), 500);
  EXPECT_EQ(parse_duration_ns("250us"), 250'000);
  EXPECT_EQ(parse_duration_ns("1ms"), 1'000'000);
  EXPECT_EQ(parse_duration_ns("1.5ms"), 1'500'000);
  EXPECT_EQ(parse_duration_ns("2s"), 2'000'000'000);
  EXPECT_EQ(parse_duration_ns("0.25s"), 250'000'000);
  EXPECT_EQ(parse_duration_ns("0ms"), 0);
  EXPECT_EQ(parse_duration_ns(" 3ms "), 3'000'000);
}

TEST(ParseDuration, RejectsGarbage) {
  for (const char* bad : {"", "abc", "ms", "1", "5 ms", "1msx", "1m", "1h", "-1ms", "1.ms", ".5ms",
                          "1.5.2ms", "1e3ns", "ms1", "1.0000000001s"}) {
    EXPECT_FALSE(parse_duration_ns(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(ParseDuration, RejectsOverflow) {
  EXPECT_FALSE(parse_duration_ns("99999999999999999999s").has_value());
  EXPECT_FALSE(parse_duration_ns("10000000000s").has_value());  // > INT64_MAX ns
  EXPECT_EQ(parse_duration_ns("9000000000s"), 9'000'000'000'000'000'000);
}

}  // namespace
}  // namespace blockwatch::interpose
