// A debuginfod server that accepts the connection and never answers must cost the
// collector its deadline once per module, not libdebuginfod's 90 s timeout per
// query, and never block ingestion for good. The "server" is a real listening
// socket on loopback that nobody accepts from: the request sits in its backlog.
//
// libdw decides at load time whether to use debuginfod (DEBUGINFOD_URLS), so
// main() binds the socket, sets the variables and re-executes this program; the
// socket stays open across exec.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "collector/symbolizer.h"
#include "tests/collector/silent_debuginfod.h"

namespace blockwatch::collector {
namespace {

TEST(SymbolizerDeadline, ASilentServerCostsTheDeadlineOncePerModule) {
  ASSERT_NE(getenv("DEBUGINFOD_URLS"), nullptr);
  Symbolizer symbolizer(Symbolizer::Options{.debuginfod_deadline_ms = 1500});
  // A module that is not on this host: only debuginfod could know it.
  const ModuleIdentity gone{"/nonexistent/blockwatch-deadline-test",
                            std::string("\x42\x57\x43\x48\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09"
                                        "\x0a\x0b\x0c\x0d\x0e\x0f",
                                        20)};
  const auto start = std::chrono::steady_clock::now();
  Symbolization first = symbolizer.symbolize(gone, 0x1000);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(first.frames.empty());
  EXPECT_FALSE(first.build_id_mismatch);
  const uint64_t queries = symbolizer.stats().debuginfod_queries;
  EXPECT_GE(queries, 1u) << "the symbolizer asked the server";
  // The bound is the deadline (1.5 s) plus libdebuginfod's one-second poll; 30 s
  // only catches an unbounded wait (90 s per query by default), whatever the load.
  EXPECT_LT(elapsed, std::chrono::seconds(30));

  // Another address of the same module: the failed lookup is remembered.
  Symbolization second = symbolizer.symbolize(gone, 0x2000);
  EXPECT_TRUE(second.frames.empty());
  EXPECT_EQ(symbolizer.stats().debuginfod_queries, queries);
}

}  // namespace
}  // namespace blockwatch::collector

int main(int argc, char** argv) {
  if (const int failed = blockwatch::testing::reexec_with_silent_debuginfod(
          argv, "symbolizer_deadline_test")) {
    return failed;
  }
  ::testing::InitGoogleTest(&argc, argv);
  const int status = RUN_ALL_TESTS();
  std::system((std::string("rm -rf ") + getenv("DEBUGINFOD_CACHE_PATH")).c_str());
  return status;
}
