// The collector's ingestion server: accepts wire streams on a Unix socket (and,
// optionally, TCP on loopback) with Boost.Asio, gives each connection its own
// StreamDecoder feeding the shared Aggregator, and closes only the connection
// whose stream is malformed (the reason is logged; what it sent before is kept).
// It can also keep each connection's accepted bytes (complete frames only) in
// memory or in a directory, for `--report X.bwrec` and `blockwatchd --save`.
//
// Threading: accepting and reading sockets run on the io_context's thread(s);
// decoding and symbolizing run on a pool of the server's own threads, one
// strand per connection (in order within a connection, several connections at
// once). A module's first symbolization may wait for a debuginfod server (up to
// the symbolizer's deadline): that stalls only the connections that need that
// module, never the reading of the others. A connection whose decoding falls
// behind keeps at most kMaxQueuedBytesPerConnection read and not yet decoded;
// past that its socket is not read until the decoder catches up (the target's
// sender then counts what it drops, as with any slow collector). The
// Aggregator is fed under its mutex(), released while a frame waits for a
// symbol, so another thread may take a report() under that mutex too.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/thread_pool.hpp>

#include "collector/aggregate.h"

namespace blockwatch::collector {

// Bytes one connection may have read and not yet decoded (its reads pause there).
inline constexpr size_t kMaxQueuedBytesPerConnection = 8 << 20;
// How long the end of a run waits for closed connections' streams to be decoded:
// past the symbolizer's debuginfod deadline (10 s), which one lookup may take.
inline constexpr std::chrono::seconds kStreamDrainTimeout{15};

struct IngestOptions {
  bool record_in_memory = false;  // keep streams for recorded_streams()
  std::string save_dir;           // non-empty: write each stream to DIR/stream-N-pidP.bwrec
  // Where connection-level messages go (closed streams and why). Default: stderr.
  std::function<void(const std::string&)> log;
  // Symbolizes each stream's pcs (file:line, inlined frames); null: the target's
  // Symbol frames as sent. Not owned.
  FrameSymbolizer* symbolizer = nullptr;
  // Threads that decode and symbolize (each connection uses one at a time).
  // 0: max(4, hardware threads): that many connections may wait for
  // debuginfod at once before others wait for a thread.
  unsigned decode_threads = 0;
};

class IngestServer {
 public:
  IngestServer(boost::asio::io_context& io, Aggregator& aggregator, IngestOptions options);
  ~IngestServer();

  // Listens on a Unix socket. A missing parent directory is created with mode
  // 0700; a stale socket file is replaced. The socket itself is made 0600.
  bool listen_unix(const std::string& socket_path, std::string* error);
  // Listens on TCP; `host` must be given explicitly (use 127.0.0.1 for loopback).
  bool listen_tcp(const std::string& host, uint16_t port, std::string* error);
  uint16_t tcp_port() const;  // the bound port (useful with port 0)

  // Stops accepting and closes every connection (their streams end as
  // "disconnected" once what they sent is decoded). Must run on the
  // io_context's thread, or after it stopped.
  void close();

  // Waits until every connection's stream has ended (decoded to its end and
  // handed to the Aggregator), at most `timeout`. True when none is left.
  // Any thread but the io_context's while a connection still reads.
  bool wait_until_ended(std::chrono::milliseconds timeout);

  size_t open_connections() const { return open_connections_.load(); }
  size_t total_connections() const { return total_connections_.load(); }
  size_t rejected_connections() const { return rejected_connections_.load(); }
  // Times a connection stopped reading because its decoding was behind by
  // kMaxQueuedBytesPerConnection.
  size_t read_pauses() const { return read_pauses_.load(); }

  // Every stream received so far, concatenated (each begins with its Hello; only
  // complete, accepted frames). Needs record_in_memory.
  std::string recorded_streams() const;

  class Connection;

 private:
  friend class Connection;
  template <typename Acceptor>
  void accept_loop(Acceptor* acceptor);
  void connection_closed(Connection* connection, std::string recorded);
  void log(const std::string& line);

  boost::asio::io_context& io_;
  Aggregator& aggregator_;
  IngestOptions options_;
  std::unique_ptr<boost::asio::local::stream_protocol::acceptor> unix_acceptor_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> tcp_acceptor_;
  std::string socket_path_;
  boost::asio::thread_pool decode_pool_;
  std::mutex connections_mutex_;  // connections_ (ended on decode threads)
  std::condition_variable connections_ended_;
  std::vector<std::shared_ptr<Connection>> connections_;
  std::mutex log_mutex_;
  mutable std::mutex recorded_mutex_;
  std::vector<std::string> recorded_;  // finished connections' streams
  std::atomic<size_t> open_connections_{0};
  std::atomic<size_t> total_connections_{0};
  std::atomic<size_t> rejected_connections_{0};
  std::atomic<size_t> read_pauses_{0};
};

}  // namespace blockwatch::collector
