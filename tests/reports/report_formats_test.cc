// Golden and property tests of the pprof, folded and JUnit writers. Goldens live in
// golden/; run with BLOCKWATCH_UPDATE_GOLDEN=1 to rewrite them after an intended
// change (then review the diff). The pprof golden is the profile parsed by the real
// protobuf library (schema pprof_profile.proto) and printed in text format, so a
// malformed encoding fails the parse, not just the comparison.
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "collector/report_folded.h"
#include "collector/report_junit.h"
#include "collector/report_pprof.h"
#include "proto/pprof_profile.pb.h"
#include "tests/reports/sample_report.h"

namespace blockwatch::collector {
namespace {

std::string gunzip(const std::string& compressed) {
  z_stream stream{};
  EXPECT_EQ(inflateInit2(&stream, 15 + 16), Z_OK);
  std::string out(1 << 20, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  stream.avail_in = static_cast<uInt>(compressed.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&stream, Z_FINISH), Z_STREAM_END);
  out.resize(stream.total_out);
  inflateEnd(&stream);
  return out;
}

void expect_golden(const std::string& name, const std::string& actual) {
  const std::string path = std::string(BLOCKWATCH_GOLDEN_DIR) + "/" + name;
  if (const char* update = std::getenv("BLOCKWATCH_UPDATE_GOLDEN");
      update && std::string(update) == "1") {
    std::ofstream(path, std::ios::binary) << actual;
    GTEST_SKIP() << "rewrote " << path;
  }
  std::ifstream file(path, std::ios::binary);
  ASSERT_TRUE(file) << "missing golden " << path << " (BLOCKWATCH_UPDATE_GOLDEN=1 creates it)";
  std::stringstream expected;
  expected << file.rdbuf();
  EXPECT_EQ(expected.str(), actual)
      << "golden " << name << " differs; BLOCKWATCH_UPDATE_GOLDEN=1 rewrites it";
}

perftools::profiles::Profile parse_profile(const std::string& bytes) {
  perftools::profiles::Profile profile;
  EXPECT_TRUE(profile.ParseFromString(bytes));
  return profile;
}

template <typename Writer>
std::string render(Writer writer, const Report& report) {
  std::ostringstream out;
  writer(report, out);
  return out.str();
}

TEST(PprofReport, MatchesGolden) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(
      parse_profile(encode_pprof_profile(test::sample_report())), &text);
  expect_golden("sample.pprof.txt", text);
}

TEST(PprofReport, IsGzipOfTheEncodedProfile) {
  Report report = test::sample_report();
  std::string file = render(write_pprof_report, report);
  ASSERT_GE(file.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(file[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(file[1]), 0x8b);
  EXPECT_EQ(gunzip(file), encode_pprof_profile(report));
}

TEST(PprofReport, OneSamplePerHotspotWithBlockProfileValues) {
  Report report = test::sample_report();
  perftools::profiles::Profile profile = parse_profile(encode_pprof_profile(report));
  auto str = [&](int64_t index) { return profile.string_table(static_cast<int>(index)); };
  ASSERT_EQ(profile.string_table(0), "");
  ASSERT_EQ(profile.sample_type_size(), 2);
  EXPECT_EQ(str(profile.sample_type(0).type()) + "/" + str(profile.sample_type(0).unit()),
            "contentions/count");
  EXPECT_EQ(str(profile.sample_type(1).type()) + "/" + str(profile.sample_type(1).unit()),
            "delay/nanoseconds");
  ASSERT_EQ(profile.sample_size(), static_cast<int>(report.hotspots.size()));
  for (int i = 0; i < profile.sample_size(); ++i) {
    const auto& sample = profile.sample(i);
    const Hotspot& hotspot = report.hotspots[static_cast<size_t>(i)];
    EXPECT_EQ(sample.value(0), static_cast<int64_t>(hotspot.count));
    EXPECT_EQ(sample.value(1), hotspot.total_ns);
    // One location per physical frame: inlined functions are Lines of the next one.
    const auto physical = std::count_if(hotspot.stack.begin(), hotspot.stack.end(),
                                        [](const StackFrame& f) { return !f.inlined; });
    ASSERT_EQ(sample.location_id_size(), static_cast<int>(physical));
    // Leaf first, as pprof expects: the first location names the innermost frame.
    const auto& leaf = profile.location(static_cast<int>(sample.location_id(0) - 1));
    ASSERT_EQ(leaf.id(), sample.location_id(0));
    const auto& function = profile.function(static_cast<int>(leaf.line(0).function_id() - 1));
    EXPECT_EQ(str(function.name()), hotspot.stack[0].function);
    std::map<std::string, std::string> labels;
    for (const auto& label : sample.label()) labels[str(label.key())] = str(label.str());
    EXPECT_EQ(labels["kind"], hotspot.kind);
    EXPECT_EQ(labels["allowed"], hotspot.allowed ? "true" : "false");
    EXPECT_EQ(labels.count("path"), hotspot.path.empty() ? 0u : 1u);
  }
  for (const auto& mapping : profile.mapping()) EXPECT_TRUE(mapping.has_functions());
  // The unsymbolized frame of the stall is named after its module and offset.
  const auto& unknown = profile.location(static_cast<int>(profile.sample(0).location_id(2) - 1));
  EXPECT_EQ(str(profile.function(static_cast<int>(unknown.line(0).function_id() - 1)).name()),
            "demo_server+0x5000");
}

// The fsync hotspot's Journal::flush() frame had Journal::sync_locked() inlined
// at its call: one Location, two Lines (innermost first), with files and lines.
TEST(PprofReport, InlinedFunctionsAreLinesOfOneLocation) {
  Report report = test::sample_report();
  perftools::profiles::Profile profile = parse_profile(encode_pprof_profile(report));
  auto str = [&](int64_t index) { return profile.string_table(static_cast<int>(index)); };
  const auto& sample = profile.sample(1);
  ASSERT_EQ(report.hotspots[1].kind, "fsync");
  const auto& location = profile.location(static_cast<int>(sample.location_id(1) - 1));
  ASSERT_EQ(location.line_size(), 2);
  auto function_of = [&](const perftools::profiles::Line& line) {
    return profile.function(static_cast<int>(line.function_id() - 1));
  };
  EXPECT_EQ(str(function_of(location.line(0)).name()), "Journal::sync_locked()");
  EXPECT_EQ(location.line(0).line(), 31);
  EXPECT_EQ(str(function_of(location.line(0)).filename()), "/src/journal.h");
  EXPECT_EQ(str(function_of(location.line(1)).name()), "Journal::flush()");
  EXPECT_EQ(location.line(1).line(), 57);
  EXPECT_EQ(str(function_of(location.line(1)).filename()), "/src/journal.cc");
  EXPECT_EQ(function_of(location.line(1)).start_line(), 50);
  const auto& mapping = profile.mapping(static_cast<int>(location.mapping_id() - 1));
  EXPECT_TRUE(mapping.has_filenames());
  EXPECT_TRUE(mapping.has_line_numbers());
  EXPECT_TRUE(mapping.has_inline_frames());
}

TEST(PprofReport, EmptyReportIsAValidProfile) {
  perftools::profiles::Profile profile = parse_profile(encode_pprof_profile(Report{}));
  EXPECT_EQ(profile.sample_size(), 0);
  EXPECT_EQ(profile.sample_type_size(), 2);
}

TEST(SubtractReport, KeepsOnlyWhatGrew) {
  Report earlier = test::sample_report();
  Report later = earlier;
  later.hotspots[2].count += 5;  // mutex grew
  later.hotspots[2].total_ns += 1000000;
  later.blocking_events += 5;
  Hotspot fresh = later.hotspots[1];
  fresh.kind = "write";  // a new hotspot
  later.hotspots.push_back(fresh);
  Report delta = subtract_report(later, earlier);
  ASSERT_EQ(delta.hotspots.size(), 2u);
  EXPECT_EQ(delta.hotspots[0].kind, "write");
  EXPECT_EQ(delta.hotspots[0].total_ns, fresh.total_ns);
  EXPECT_EQ(delta.hotspots[1].kind, "mutex");
  EXPECT_EQ(delta.hotspots[1].count, 5u);
  EXPECT_EQ(delta.hotspots[1].total_ns, 1000000);
  EXPECT_EQ(delta.blocking_events, 5u);
  EXPECT_TRUE(subtract_report(earlier, earlier).hotspots.empty());
}

TEST(FoldedReport, MatchesGolden) {
  expect_golden("sample.folded", render(write_folded_report, test::sample_report()));
}

TEST(FoldedReport, RootFirstKindPrefixedAndParseable) {
  std::string folded = render(write_folded_report, test::sample_report());
  // The inlined Journal::sync_locked() is a frame of its own.
  EXPECT_NE(folded.find("[fsync];main;Loop::run_once();Journal::flush();Journal::sync_locked();"
                        "fsync 45000000\n"),
            std::string::npos);
  EXPECT_NE(folded.find("[sleep];[allowed];model::retry();nanosleep 8000000\n"), std::string::npos);
  std::istringstream lines(folded);
  std::string line;
  int64_t total_ns = 0;
  while (std::getline(lines, line)) {
    size_t space = line.rfind(' ');
    ASSERT_NE(space, std::string::npos) << line;
    total_ns += std::stoll(line.substr(space + 1));
    // The `;` inside the template argument must not split the frame.
    EXPECT_EQ(line.find("int; "), std::string::npos) << line;
  }
  EXPECT_EQ(total_ns, 80000000 + 45000000 + 30000000 + 8000000 + 2000000);
}

TEST(FoldedReport, MergesEqualStacks) {
  Report report = test::sample_report();
  report.hotspots.push_back(report.hotspots[1]);
  std::string folded = render(write_folded_report, report);
  EXPECT_NE(folded.find("Journal::sync_locked();fsync 90000000\n"), std::string::npos);
}

TEST(JunitReport, MatchesGolden) {
  expect_golden("sample.junit.xml", render(write_junit_report, test::sample_report()));
}

TEST(JunitReport, FailsOnlyCasesWithNewDisallowedHotspots) {
  std::string xml = render(write_junit_report, test::sample_report());
  // verdict + (no path) fsync + worker-pool mutex fail; model has a stall (fails) too.
  EXPECT_NE(xml.find("tests=\"4\" failures=\"4\""), std::string::npos) << xml;
  Report report = test::sample_report();
  report.hotspots[0].allowed = true;  // the stall
  xml = render(write_junit_report, report);
  EXPECT_NE(xml.find("tests=\"4\" failures=\"3\""), std::string::npos) << xml;
  report.verdict = {};
  xml = render(write_junit_report, report);
  EXPECT_NE(xml.find("tests=\"4\" failures=\"0\""), std::string::npos) << xml;
  EXPECT_EQ(xml.find("<failure"), std::string::npos);
}

TEST(JunitReport, EscapesMarkupAndControlCharacters) {
  std::string xml = render(write_junit_report, test::sample_report());
  EXPECT_NE(xml.find("pool::Cache&lt;int; &quot;k&quot; &amp; &lt;v&gt;&gt;::get()"),
            std::string::npos);
  EXPECT_EQ(xml.find('\x01'), std::string::npos);
}

TEST(JunitReport, OneCasePerProcessWithoutPaths) {
  Report report = test::sample_report();
  report.paths.clear();
  for (auto& hotspot : report.hotspots) hotspot.path.clear();
  std::string xml = render(write_junit_report, report);
  EXPECT_NE(xml.find("name=\"pid 4242 /usr/bin/demo_server\""), std::string::npos);
  EXPECT_NE(xml.find("name=\"pid 4243 /usr/bin/helper\""), std::string::npos);
  EXPECT_NE(xml.find("tests=\"3\" failures=\"2\""), std::string::npos) << xml;
}

}  // namespace
}  // namespace blockwatch::collector
