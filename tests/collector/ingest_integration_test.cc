// Integration test: a real blockwatchd process and clients writing frames over
// real Unix sockets. Malformed streams (garbage, truncated, oversized, wrong
// version, out of order) close only their own connection with a logged reason;
// the collector keeps serving the others and loses nothing already received; a
// client SIGKILLed mid-stream keeps what it flushed; the socket directory is 0700.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tests/collector/wire_builder.h"

namespace {

using blockwatch::testing::WireBuilder;
namespace wire = blockwatch::wire;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Polls `condition` until it holds or 30 s passed (a bound for a stuck run, not
// a guess at how long the machine takes). Returns the condition's last value.
bool wait_until(const std::function<bool()>& condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// The size of what blockwatchd --save kept of process `pid`'s stream (0 if none
// yet). It saves each frame after decoding it: a clean stream is all processed
// once its saved copy is as long as what was sent.
std::string saved_path(const std::string& dir, int pid) {
  std::error_code ec;
  const std::string suffix = "-pid" + std::to_string(pid) + ".bwrec";
  for (const auto& entry : std::filesystem::directory_iterator(dir + "/saved", ec)) {
    if (entry.path().string().ends_with(suffix)) return entry.path().string();
  }
  return "";
}

uintmax_t saved_bytes(const std::string& dir, int pid) {
  std::error_code ec;
  const std::string path = saved_path(dir, pid);
  return path.empty() ? 0 : std::filesystem::file_size(path, ec);
}

bool accepts_connections(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return ok;
}

class Collector {
 public:
  explicit Collector(const std::string& dir) : dir_(dir) {
    socket_path = dir + "/sockets/collector.sock";
    json_path = dir + "/report.json";
    log_path = dir + "/stderr.log";
    pid_ = ::fork();
    if (pid_ == 0) {
      std::freopen(log_path.c_str(), "w", stderr);
      std::string listen = "--listen=unix:" + socket_path;
      std::string report = "--report=" + json_path;
      std::string save = "--save=" + dir + "/saved";
      ::execl(BLOCKWATCHD_PATH, "blockwatchd", listen.c_str(), report.c_str(), save.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // Until it accepts: the socket file exists from bind(), before listen(), and
    // a connect in between is refused (seen on a loaded machine).
    wait_until([&] { return accepts_connections(socket_path); });
  }
  // SIGTERM, wait, parse the JSON report it wrote.
  nlohmann::json stop() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
    return nlohmann::json::parse(read_file(json_path));
  }
  std::string socket_path, json_path, log_path;

 private:
  std::string dir_;
  pid_t pid_;
};

int connect_to(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  return fd;
}

void send_all(int fd, const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;  // the collector may close a bad stream early
    sent += static_cast<size_t>(n);
  }
}

WireBuilder good_stream(int pid, const std::string& function) {
  WireBuilder w;
  w.hello(pid, "/usr/bin/svc-" + std::to_string(pid))
      .string(1, "worker-" + std::to_string(pid))
      .symbol(0x1000, function)
      .stack(1, {0x1000});
  for (int i = 0; i < 5; ++i) w.event(wire::KIND_MUTEX, 2'000'000, 1, 1);
  return w;
}

const nlohmann::json* find_process(const nlohmann::json& report, int pid) {
  for (const auto& p : report["processes"]) {
    if (p["pid"] == pid) return &p;
  }
  return nullptr;
}

uint64_t events_of(const nlohmann::json& report, const std::string& exe) {
  uint64_t count = 0;
  for (const auto& h : report["hotspots"]) {
    if (h["exe"] == exe) count += h["count"].get<uint64_t>();
  }
  return count;
}

TEST(IngestIntegration, BadStreamsCloseOnlyTheirConnection) {
  char dir_template[] = "/tmp/bw-ingest-XXXXXX";
  std::string dir = ::mkdtemp(dir_template);
  Collector collector(dir);
  struct stat st;
  ASSERT_EQ(::stat((dir + "/sockets").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  // A good client that stays connected through all the bad ones.
  int steady = connect_to(collector.socket_path);
  send_all(steady, good_stream(100, "steady::run()").bytes);

  // Garbage, wrong version, out of order, oversized, truncated: each after some
  // valid frames where possible, so we can check those are kept.
  struct Bad {
    std::string bytes;
    bool close_write;
  };
  std::vector<Bad> bad;
  bad.push_back(
      {good_stream(201, "garbage::f()").bytes + std::string("\x05\xff\xff\xff\xff\xff", 6), false});
  bad.push_back({WireBuilder().hello(202, "/x", 9).bytes, false});
  bad.push_back({WireBuilder().string(1, "too early").hello(203).bytes, false});
  bad.push_back({good_stream(204, "oversized::f()").bytes + std::string("\xff\xff\xff\x7f", 4) +
                     std::string(1000, 'x'),
                 false});
  std::string truncated = good_stream(205, "truncated::f()").bytes;
  WireBuilder tail;
  tail.event(wire::KIND_FSYNC, 1, 1, 1);
  bad.push_back({truncated + tail.bytes.substr(0, tail.bytes.size() - 2), true});
  for (const Bad& b : bad) {
    int fd = connect_to(collector.socket_path);
    send_all(fd, b.bytes);
    if (b.close_write) ::shutdown(fd, SHUT_WR);
    char byte;
    ::recv(fd, &byte, 1, 0);  // returns when the collector closes its end
    ::close(fd);
  }

  // A client killed mid-stream: what it flushed is kept. It says when its bytes
  // are sent (a fixed wait raced with its start on a loaded machine).
  int sent_pipe[2];
  ASSERT_EQ(::pipe2(sent_pipe, O_CLOEXEC), 0);
  pid_t killed = ::fork();
  if (killed == 0) {
    int fd = connect_to(collector.socket_path);
    WireBuilder w = good_stream(300, "killed::f()");
    send_all(fd, w.bytes + WireBuilder().event(wire::KIND_FSYNC, 1, 1, 1).bytes.substr(0, 3));
    (void)!::write(sent_pipe[1], "s", 1);
    ::pause();
    ::_exit(0);
  }
  ::close(sent_pipe[1]);
  char sent = 0;
  ASSERT_EQ(::read(sent_pipe[0], &sent, 1), 1);
  ::close(sent_pipe[0]);
  ::kill(killed, SIGKILL);
  ::waitpid(killed, nullptr, 0);

  // The steady client finishes after all that, and a new one still gets served.
  const std::string steady_end =
      WireBuilder().event(wire::KIND_SLEEP, 3'000'000, 1, 1).goodbye().bytes;
  send_all(steady, steady_end);
  ::close(steady);
  int late = connect_to(collector.socket_path);
  const std::string late_stream = good_stream(400, "late::f()").goodbye().bytes;
  send_all(late, late_stream);
  ::close(late);
  // Stopped only once both streams were read to their Goodbye: SIGTERM closes
  // every connection, and a fixed wait was a guess at the machine's speed.
  const uintmax_t steady_size = good_stream(100, "steady::run()").bytes.size() + steady_end.size();
  EXPECT_TRUE(wait_until([&] { return saved_bytes(dir, 100) == steady_size; }));
  EXPECT_TRUE(wait_until([&] { return saved_bytes(dir, 400) == late_stream.size(); }));
  // The killed client's complete frames (its cut last frame is not saved).
  const uintmax_t killed_size = good_stream(300, "killed::f()").bytes.size();
  EXPECT_TRUE(wait_until([&] { return saved_bytes(dir, 300) == killed_size; }));
  // Still connected when SIGTERM comes: its stream ends during the shutdown
  // drain, after the io_context stopped. blockwatchd once kept such a
  // connection (and its strand of the decode pool) alive in the io_context's
  // queue past the pool, and aborted at exit (ASan: use after free).
  const int lingering = connect_to(collector.socket_path);
  const std::string lingering_stream = good_stream(500, "lingering::f()").bytes;
  send_all(lingering, lingering_stream);
  EXPECT_TRUE(wait_until([&] { return saved_bytes(dir, 500) == lingering_stream.size(); }));

  nlohmann::json report = collector.stop();
  ::close(lingering);
  std::string log = read_file(collector.log_path);
  for (const char* reason : {"not a valid Frame", "unsupported protocol_version 9",
                             "first frame is not a Hello", "exceeds", "truncated"}) {
    EXPECT_NE(log.find(reason), std::string::npos) << reason << " not in log:\n" << log;
  }
  const auto* steady_process = find_process(report, 100);
  ASSERT_NE(steady_process, nullptr);
  EXPECT_EQ((*steady_process)["said_goodbye"], true);
  EXPECT_EQ(events_of(report, "/usr/bin/svc-100"), 6u);
  for (int pid : {201, 204, 205, 300, 400, 500}) {
    ASSERT_NE(find_process(report, pid), nullptr) << pid;
    EXPECT_EQ(events_of(report, "/usr/bin/svc-" + std::to_string(pid)), 5u) << pid;
  }
  EXPECT_EQ((*find_process(report, 300))["end_reason"], "disconnected");
  EXPECT_EQ((*find_process(report, 500))["said_goodbye"], false);
  EXPECT_EQ(find_process(report, 202), nullptr);

  // --save kept each stream; the saved copy re-decodes (complete frames only).
  std::string saved = read_file(saved_path(dir, 100));
  EXPECT_FALSE(saved.empty());
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
