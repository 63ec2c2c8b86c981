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
  if (getenv("DEBUGINFOD_URLS") == nullptr) {
    const int listener = socket(AF_INET, SOCK_STREAM, 0);  // inherited by the exec'd image
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
        listen(listener, 16) != 0 ||
        getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      perror("symbolizer_deadline_test: loopback listener");
      return 1;
    }
    char cache[] = "/tmp/bw-debuginfod-cache-XXXXXX";
    if (mkdtemp(cache) == nullptr) return 1;
    setenv("DEBUGINFOD_URLS",
           ("http://127.0.0.1:" + std::to_string(ntohs(address.sin_port))).c_str(), 1);
    setenv("DEBUGINFOD_CACHE_PATH", cache, 1);
    execv("/proc/self/exe", argv);
    perror("symbolizer_deadline_test: re-exec");
    return 1;
  }
  ::testing::InitGoogleTest(&argc, argv);
  const int status = RUN_ALL_TESTS();
  std::system((std::string("rm -rf ") + getenv("DEBUGINFOD_CACHE_PATH")).c_str());
  return status;
}
