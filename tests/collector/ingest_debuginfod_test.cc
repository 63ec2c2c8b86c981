// A debuginfod lookup must not block the collector's ingestion: the real
// IngestServer (Boost.Asio, Unix sockets) and the real Symbolizer with
// libdebuginfod, whose server is a loopback socket this test accepts from and
// never answers. Connection A names a module found nowhere on this host, so its
// first frame waits for that server; meanwhile connection B, another process,
// must be ingested to its end, and A's further records are read only up to the
// per-connection bound. Then the test lets A's lookup fail (it closes the
// server's side) and all of A's records arrive too: nothing is lost.
//
// The symbolizer's deadline is ten minutes here, so A's lookup ends only when
// the test says: every wait is for a condition (bounded only to end a stuck
// run), none for an amount of time. libdw decides at load time whether to use
// debuginfod (DEBUGINFOD_URLS), so main() binds the socket, sets the variables
// and re-executes this program; the listening socket stays open across exec.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "tests/collector/silent_debuginfod.h"

#include "collector/aggregate.h"
#include "collector/ingest.h"
#include "collector/symbolizer.h"
#include "tests/collector/wire_builder.h"

namespace blockwatch::collector {
namespace {

using testing::WireBuilder;

// Polls `condition` until it holds or 60 s passed (a bound for a stuck run, not a
// guess at how long the machine takes). Returns the condition's last value.
bool wait_until(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

int connect_unix(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool send_all(int fd, const std::string& bytes) {
  for (size_t sent = 0; sent < bytes.size();) {
    const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// One process's stream: Hello, one module, one stack of one pc in it (no Symbol
// frame: the collector symbolizes it), one fsync record, and Goodbye if `end`.
std::string stream(int pid, const std::string& module_path, const std::string& build_id, bool end) {
  WireBuilder builder;
  builder.hello(pid, "/usr/bin/demo-" + std::to_string(pid));
  wire::Frame modules;
  wire::Module* module = modules.mutable_modules()->add_modules();
  module->set_path(module_path);
  module->set_base(0x400000);
  module->set_start(0x401000);
  module->set_end(0x402000);
  module->set_build_id(build_id);
  builder.frame(modules).stack(1, {0x401234}).event(wire::KIND_FSYNC, 5'000'000, 1);
  if (end) builder.goodbye();
  return builder.bytes;
}

// What the aggregator knows of process `pid`: its records, and whether its
// stream ended. Takes the aggregator's mutex, as a live report does.
struct Seen {
  uint64_t events = 0;
  bool ended = false;
};
Seen seen(Aggregator& aggregator, int pid) {
  std::lock_guard lock(aggregator.mutex());
  for (const ProcessInfo& process : aggregator.report().processes) {
    if (process.pid == pid) return Seen{process.events, !process.connected};
  }
  return {};
}

// Whether the peer of `fd` still holds the connection (no EOF, no error).
bool peer_still_connected(int fd) {
  char byte;
  const ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

TEST(IngestDebuginfod, ASilentServerStallsOnlyTheConnectionThatNeedsIt) {
  const int listener = std::atoi(getenv("BW_TEST_LISTENER_FD"));
  std::string error;
  std::shared_ptr<const StackClassifier> classifier = StackClassifier::create({}, &error);
  ASSERT_TRUE(classifier) << error;
  Aggregator aggregator(classifier);
  Symbolizer symbolizer(Symbolizer::Options{.debuginfod_deadline_ms = 600'000});
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  IngestOptions options;
  options.symbolizer = &symbolizer;
  options.log = [](const std::string&) {};
  IngestServer server(io, aggregator, options);
  const std::string dir =
      std::filesystem::temp_directory_path() / ("bw-ingest-debuginfod-" + std::to_string(getpid()));
  ASSERT_TRUE(server.listen_unix(dir + "/collector.sock", &error)) << error;
  std::thread io_thread([&io] { io.run(); });

  // A: a module only debuginfod could know (no such file, an unknown build-id).
  const std::string unknown_id(
      "\x42\x57\x43\x48\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19"
      "\x1a\x1b\x1c\x1d\x1e\x1f",
      20);
  const int a = connect_unix(dir + "/collector.sock");
  ASSERT_GE(a, 0);
  ASSERT_TRUE(send_all(a, stream(111, "/nonexistent/bw-ingest-debuginfod", unknown_id, false)));

  // The lookup is under way once the client connected to the silent server.
  pollfd waiting = {listener, POLLIN, 0};
  ASSERT_EQ(poll(&waiting, 1, 60'000), 1) << "the symbolizer never asked the debuginfod server";
  const int lookup = accept(listener, nullptr, nullptr);
  ASSERT_GE(lookup, 0);

  // B: another process, its module on this host (this test's own executable,
  // no build-id to check): ingested to its end while A's lookup hangs.
  const int b = connect_unix(dir + "/collector.sock");
  ASSERT_GE(b, 0);
  ASSERT_TRUE(send_all(b, stream(222, "/proc/self/exe", "", true)));
  close(b);
  EXPECT_TRUE(wait_until([&] {
    const Seen s = seen(aggregator, 222);
    return s.events == 1 && s.ended;
  })) << "B was not ingested while A's debuginfod lookup was pending";

  // Still pending: the server's side never closed and A's record is not in yet
  // (its frame waits for the symbolizer; A's reading has not stopped B's).
  EXPECT_TRUE(peer_still_connected(lookup)) << "A's lookup ended early";
  EXPECT_EQ(seen(aggregator, 111).events, 0u);

  // A keeps sending while its first frame waits: the collector reads it until
  // kMaxQueuedBytesPerConnection are queued, then leaves the rest in the socket
  // (this sender blocks; the library's would count drops instead).
  constexpr int kMoreEvents = 450'000;  // ~42 bytes each: over twice the 8 MiB queue
  WireBuilder more;
  for (int i = 0; i < kMoreEvents; ++i) more.event(wire::KIND_FSYNC, 5'000'000, 1);
  ASSERT_GT(more.bytes.size(), 2 * kMaxQueuedBytesPerConnection);
  std::atomic<bool> a_sent{false};
  std::thread a_sender([&] {
    EXPECT_TRUE(send_all(a, more.bytes));
    a_sent = true;
  });
  EXPECT_TRUE(wait_until([&] { return server.read_pauses() > 0; })) << "A's reading never paused";
  // Paused for good while the lookup hangs: what the collector took (8 MiB and
  // one read) plus the socket's buffers cannot hold all of it yet.
  EXPECT_FALSE(a_sent.load()) << "the collector kept reading A beyond its bound";
  EXPECT_EQ(seen(aggregator, 111).events, 0u);

  // The server gives up on A's lookup (and any retry): A's records arrive,
  // unsymbolized, every one; nothing was lost.
  std::atomic<bool> stop_refusing{false};
  std::thread refuser([&] {
    while (!stop_refusing.load()) {
      pollfd incoming = {listener, POLLIN, 0};
      if (poll(&incoming, 1, 20) == 1) close(accept(listener, nullptr, nullptr));
    }
  });
  close(lookup);
  a_sender.join();
  ASSERT_TRUE(send_all(a, WireBuilder().goodbye().bytes));
  close(a);
  EXPECT_TRUE(wait_until([&] { return seen(aggregator, 111).ended; }));
  EXPECT_EQ(seen(aggregator, 111).events, 1u + kMoreEvents) << "A's records were lost";
  EXPECT_GE(symbolizer.stats().debuginfod_queries, 1u);
  stop_refusing = true;
  refuser.join();

  boost::asio::post(io, [&server] { server.close(); });
  EXPECT_TRUE(server.wait_until_ended(kStreamDrainTimeout));
  work.reset();
  io.stop();
  io_thread.join();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace blockwatch::collector

int main(int argc, char** argv) {
  // libdebuginfod's own bound (DEBUGINFOD_TIMEOUT) is not the one tested.
  if (getenv("DEBUGINFOD_URLS") == nullptr) setenv("DEBUGINFOD_TIMEOUT", "600", 1);
  if (const int failed = blockwatch::testing::reexec_with_silent_debuginfod(
          argv, "ingest_debuginfod_test")) {
    return failed;
  }
  ::testing::InitGoogleTest(&argc, argv);
  const int status = RUN_ALL_TESTS();
  std::filesystem::remove_all(getenv("DEBUGINFOD_CACHE_PATH"));
  return status;
}
