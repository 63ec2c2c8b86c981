// A tiny collector for the agent's integration tests: listens on a Unix socket,
// accepts connections, splits each connection's bytes into length-delimited
// frames and decodes them with libprotobuf. It can stop listening (collector
// absent), drop every connection (collector killed) and pause reading (collector
// stopped with SIGSTOP: the kernel still queues connections and bytes up to the
// socket buffer, nobody reads them).
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proto/blockwatch.pb.h"

namespace blockwatch::testing {

// Decodes the complete frames at the front of `buffer` into `frames` and erases
// them. Returns false on a malformed frame.
bool take_frames(std::string& buffer, std::vector<wire::Frame>& frames);

class TestCollector {
 public:
  explicit TestCollector(std::string socket_path);
  ~TestCollector();
  TestCollector(const TestCollector&) = delete;
  TestCollector& operator=(const TestCollector&) = delete;

  void stop_listening();    // close and unlink the listening socket
  void kill_connections();  // close every accepted connection
  void set_paused(bool paused);

  size_t connection_count();
  std::vector<wire::Frame> frames(size_t connection);
  bool malformed();

  // Polls `predicate` until true or `timeout_ms` passed.
  static bool wait_for(const std::function<bool()>& predicate, int timeout_ms);

 private:
  struct Connection {
    int fd = -1;
    std::string buffer;
    std::vector<wire::Frame> frames;
  };
  void serve();

  std::string socket_path_;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<bool> paused_{false};
  std::mutex mutex_;
  std::vector<Connection> connections_;
  bool malformed_ = false;
  std::thread thread_;
};

}  // namespace blockwatch::testing
