// The agent tests' in-process collector (see test_collector.h).
#include "test_collector.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

namespace blockwatch::testing {

bool take_frames(std::string& buffer, std::vector<wire::Frame>& frames) {
  size_t pos = 0;
  for (;;) {
    uint64_t length = 0;
    size_t cursor = pos;
    int shift = 0;
    bool have_length = false;
    while (cursor < buffer.size() && shift < 64) {
      const uint8_t byte = static_cast<uint8_t>(buffer[cursor++]);
      length |= uint64_t{byte & 0x7fu} << shift;
      shift += 7;
      if (!(byte & 0x80)) {
        have_length = true;
        break;
      }
    }
    if (!have_length || buffer.size() - cursor < length) break;
    if (length > (1u << 20)) return false;
    wire::Frame frame;
    if (!frame.ParseFromArray(buffer.data() + cursor, static_cast<int>(length))) return false;
    frames.push_back(std::move(frame));
    pos = cursor + length;
  }
  buffer.erase(0, pos);
  return true;
}

TestCollector::TestCollector(std::string socket_path) : socket_path_(std::move(socket_path)) {
  unlink(socket_path_.c_str());
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  strncpy(address.sun_path, socket_path_.c_str(), sizeof address.sun_path - 1);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      listen(listen_fd_, 16) != 0) {
    close(listen_fd_);
    listen_fd_ = -1;
  }
  thread_ = std::thread([this] { serve(); });
}

TestCollector::~TestCollector() {
  stop_ = true;
  thread_.join();
  stop_listening();
  kill_connections();
}

void TestCollector::stop_listening() {
  std::lock_guard lock(mutex_);
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    unlink(socket_path_.c_str());
  }
  listen_fd_ = -1;
}

void TestCollector::kill_connections() {
  std::lock_guard lock(mutex_);
  for (Connection& connection : connections_) {
    if (connection.fd >= 0) close(connection.fd);
    connection.fd = -1;
  }
}

void TestCollector::set_paused(bool paused) { paused_ = paused; }

size_t TestCollector::connection_count() {
  std::lock_guard lock(mutex_);
  return connections_.size();
}

std::vector<wire::Frame> TestCollector::frames(size_t connection) {
  std::lock_guard lock(mutex_);
  return connection < connections_.size() ? connections_[connection].frames
                                          : std::vector<wire::Frame>();
}

bool TestCollector::malformed() {
  std::lock_guard lock(mutex_);
  return malformed_;
}

bool TestCollector::wait_for(const std::function<bool()>& predicate, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!predicate()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

void TestCollector::serve() {
  while (!stop_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    if (paused_) continue;
    std::lock_guard lock(mutex_);
    if (listen_fd_ >= 0) {
      pollfd listener{listen_fd_, POLLIN, 0};
      if (poll(&listener, 1, 0) == 1) {
        const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) connections_.push_back(Connection{fd, {}, {}});
      }
    }
    for (Connection& connection : connections_) {
      char chunk[65536];
      for (ssize_t n; connection.fd >= 0 && (n = read(connection.fd, chunk, sizeof chunk)) > 0;) {
        connection.buffer.append(chunk, static_cast<size_t>(n));
      }
      if (!take_frames(connection.buffer, connection.frames)) malformed_ = true;
    }
  }
}

}  // namespace blockwatch::testing
