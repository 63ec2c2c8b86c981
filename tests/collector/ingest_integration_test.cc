// Integration test: a real blockwatchd process and clients writing frames over
// real Unix sockets. Malformed streams (garbage, truncated, oversized, wrong
// version, out of order) close only their own connection with a logged reason;
// the collector keeps serving the others and loses nothing already received; a
// client SIGKILLed mid-stream keeps what it flushed; the socket directory is 0700.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
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
    for (int i = 0; i < 500 && ::access(socket_path.c_str(), F_OK) != 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
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

  // A client killed mid-stream: what it flushed is kept.
  pid_t killed = ::fork();
  if (killed == 0) {
    int fd = connect_to(collector.socket_path);
    WireBuilder w = good_stream(300, "killed::f()");
    send_all(fd, w.bytes + WireBuilder().event(wire::KIND_FSYNC, 1, 1, 1).bytes.substr(0, 3));
    ::pause();
    ::_exit(0);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ::kill(killed, SIGKILL);
  ::waitpid(killed, nullptr, 0);

  // The steady client finishes after all that, and a new one still gets served.
  send_all(steady, WireBuilder().event(wire::KIND_SLEEP, 3'000'000, 1, 1).goodbye().bytes);
  ::close(steady);
  int late = connect_to(collector.socket_path);
  send_all(late, good_stream(400, "late::f()").goodbye().bytes);
  ::close(late);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  nlohmann::json report = collector.stop();
  std::string log = read_file(collector.log_path);
  for (const char* reason : {"not a valid Frame", "unsupported protocol_version 9",
                             "first frame is not a Hello", "exceeds", "truncated"}) {
    EXPECT_NE(log.find(reason), std::string::npos) << reason << " not in log:\n" << log;
  }
  const auto* steady_process = find_process(report, 100);
  ASSERT_NE(steady_process, nullptr);
  EXPECT_EQ((*steady_process)["said_goodbye"], true);
  EXPECT_EQ(events_of(report, "/usr/bin/svc-100"), 6u);
  for (int pid : {201, 204, 205, 300, 400}) {
    ASSERT_NE(find_process(report, pid), nullptr) << pid;
    EXPECT_EQ(events_of(report, "/usr/bin/svc-" + std::to_string(pid)), 5u) << pid;
  }
  EXPECT_EQ((*find_process(report, 300))["end_reason"], "disconnected");
  EXPECT_EQ(find_process(report, 202), nullptr);

  // --save kept each stream; the saved copy re-decodes (complete frames only).
  std::string saved = read_file(dir + "/saved/stream-1-pid100.bwrec");
  EXPECT_FALSE(saved.empty());
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
