// The shared duration grammar and format: the forms BLOCKWATCH_THRESHOLD and the
// collector's flags document, rejection of everything else, and the format the
// reports print, independent of the process's locale.
#include "common/duration.h"

#include <gtest/gtest.h>

namespace blockwatch::duration {
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

TEST(FormatDuration, ThreeSignificantDigitsInTheLargestUnit) {
  EXPECT_EQ(format_duration(0), "0ns");
  EXPECT_EQ(format_duration(950), "950ns");
  EXPECT_EQ(format_duration(1'000), "1us");
  EXPECT_EQ(format_duration(12'345), "12.3us");
  EXPECT_EQ(format_duration(1'500'000), "1.5ms");
  EXPECT_EQ(format_duration(1'234'567), "1.23ms");
  EXPECT_EQ(format_duration(1'235'000), "1.24ms");
  EXPECT_EQ(format_duration(250'000'000), "250ms");
  EXPECT_EQ(format_duration(999'999'999), "1000ms");
  EXPECT_EQ(format_duration(2'000'000'000), "2s");
  EXPECT_EQ(format_duration(123'456'000'000), "123s");
  EXPECT_EQ(format_duration(-1'500'000), "-1.5ms");
}

TEST(FormatDuration, RoundTripsThroughTheParser) {
  for (int64_t ns : {int64_t{0}, int64_t{7}, int64_t{12'300}, int64_t{1'500'000},
                     int64_t{250'000'000}, int64_t{3'000'000'000}}) {
    EXPECT_EQ(parse_duration_ns(format_duration(ns)), ns) << ns;
  }
}

TEST(FormatDuration, ShortBufferIsTruncatedAndTerminated) {
  char text[4];
  EXPECT_EQ(format_duration(1'500'000, text, sizeof text), 3u);
  EXPECT_STREQ(text, "1.5");
}

}  // namespace
}  // namespace blockwatch::duration
