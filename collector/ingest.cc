// Accept loops, per-connection read loops and decode strands of the ingestion
// server. Each connection is a generic stream socket (Unix or TCP), a
// StreamDecoder and an Aggregator stream; reads are asynchronous, so one thread
// reads every client, and decoding (which may wait for debuginfod) runs on the
// decode pool: a slow or hostile client costs only its own buffers (bounded).
#include "collector/ingest.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <thread>

namespace blockwatch::collector {

namespace asio = boost::asio;

// The symbolizer as a connection's decoder sees it: the Aggregator's mutex,
// held while the decoder feeds it, is released while a frame waits for its
// symbols, so other connections keep feeding the Aggregator meanwhile (the
// decoder touches no shared state between its handler calls).
class UnlockingSymbolizer final : public FrameSymbolizer {
 public:
  explicit UnlockingSymbolizer(FrameSymbolizer* inner) : inner_(inner) {}
  void set_held_lock(std::unique_lock<std::mutex>* lock) { held_ = lock; }
  Symbolization symbolize(const ModuleIdentity& module, uint64_t address) override {
    if (held_ != nullptr) held_->unlock();
    Symbolization result = inner_->symbolize(module, address);
    if (held_ != nullptr) held_->lock();
    return result;
  }
  JitSymbol symbolize_jit(const ProcessIdentity& process, uint64_t address) override {
    if (held_ != nullptr) held_->unlock();  // it may read a perf map
    JitSymbol result = inner_->symbolize_jit(process, address);
    if (held_ != nullptr) held_->lock();
    return result;
  }

 private:
  FrameSymbolizer* inner_;
  std::unique_lock<std::mutex>* held_ = nullptr;
};

// One connection. Its socket is read on the io_context's thread; what was read
// is decoded on the connection's strand of the decode pool, in order.
// io thread only: socket_, read_pending_, end_posted_, paused_before_. Strand
// only: the decoder, the recording, finished_. Both: queued_bytes_ and paused_
// (atomics).
class IngestServer::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(IngestServer* server, asio::generic::stream_protocol::socket socket, size_t number)
      : server_(server),
        socket_(std::move(socket)),
        number_(number),
        strand_(asio::make_strand(server->decode_pool_)),
        symbolizer_(server->options_.symbolizer) {
    std::lock_guard lock(server_->aggregator_.mutex());
    sink_ = server_->aggregator_.begin_stream();
    decoder_ = std::make_unique<StreamDecoder>(
        &pid_probe_, StreamDecoder::Options{
                         .symbolizer = server_->options_.symbolizer ? &symbolizer_ : nullptr});
    pid_probe_.next = sink_;
  }

  void start() { read(); }

  // io thread. A connection whose reads are paused has no read to fail: its
  // stream is ended here instead.
  void close() {
    boost::system::error_code ignored;
    socket_.close(ignored);
    if (!read_pending_) post_end();
  }

 private:
  static constexpr size_t kReadBytes = 64 * 1024;

  // Forwards to the aggregator's sink, noting the pid for log lines and file names.
  struct PidProbe : StreamHandler {
    StreamHandler* next = nullptr;
    int pid = 0;
    void on_hello(const wire::Hello& h) override {
      pid = h.pid();
      next->on_hello(h);
    }
    void on_modules(const wire::Modules& m) override { next->on_modules(m); }
    void on_string(uint64_t id, const std::string& text) override { next->on_string(id, text); }
    void on_event(const wire::Event& e, const EventRefs& r) override { next->on_event(e, r); }
    void on_counters(const wire::Counters& c) override { next->on_counters(c); }
    void on_goodbye(const wire::Goodbye& g) override { next->on_goodbye(g); }
  };

  // io thread.
  void read() {
    if (!socket_.is_open()) return post_end();
    auto self = shared_from_this();
    auto chunk = std::make_shared<std::string>(kReadBytes, '\0');
    read_pending_ = true;
    socket_.async_read_some(asio::buffer(*chunk),
                            [self, chunk](const boost::system::error_code& error, size_t size) {
                              self->read_pending_ = false;
                              self->on_read(error, std::move(*chunk), size);
                            });
  }

  // io thread: hands the bytes to the strand and reads on, unless the strand is
  // kMaxQueuedBytesPerConnection behind (then decode() resumes the reading).
  void on_read(const boost::system::error_code& error, std::string chunk, size_t size) {
    if (size > 0) {
      // The bound counts memory, not payload: a short read gets a buffer of its size.
      if (size < kReadBytes / 4) chunk = std::string(chunk.data(), size);
      chunk.resize(size);
      const size_t held = chunk.capacity();
      queued_bytes_ += held;
      asio::post(strand_, [self = shared_from_this(), chunk = std::move(chunk), held]() mutable {
        self->decode(std::move(chunk), held);
      });
    }
    if (error) return post_end();
    if (queued_bytes_.load() >= kMaxQueuedBytesPerConnection) {
      paused_.store(true);
      ++server_->read_pauses_;
      if (!paused_before_) {
        server_->log("blockwatch: connection " + std::to_string(number_) +
                     ": decoding is behind (a symbol lookup?); its socket is not read until it "
                     "catches up (the process counts what it drops)");
      }
      paused_before_ = true;
      // The strand may have caught up between the check and the store: whoever
      // clears the flag reads on.
      if (queued_bytes_.load() >= kMaxQueuedBytesPerConnection || !paused_.exchange(false)) return;
    }
    read();
  }

  void post_end() {
    if (end_posted_) return;
    end_posted_ = true;
    asio::post(strand_, [self = shared_from_this()] { self->end(); });
  }

  // Strand.
  void decode(std::string chunk, size_t held) {
    if (!finished_) {
      const uint64_t accepted_before = decoder_->bytes_accepted();
      bool ok;
      {
        std::unique_lock lock(server_->aggregator_.mutex());
        symbolizer_.set_held_lock(&lock);
        ok = decoder_->feed(chunk.data(), chunk.size());
        symbolizer_.set_held_lock(nullptr);
      }
      keep_accepted(chunk, accepted_before);
      if (!ok) finish("closed: " + decoder_->error(), "rejected");
    }
    queued_bytes_ -= held;
    if (queued_bytes_.load() < kMaxQueuedBytesPerConnection && paused_.exchange(false)) {
      // Weak: a handler left in the io_context's queue at shutdown must not keep
      // the connection (and its strand of the decode pool) past the pool.
      asio::post(server_->io_, [weak = weak_from_this()] {
        if (auto self = weak.lock()) self->read();
      });
    }
  }

  // Strand: the socket ended (or was closed); everything read before is decoded.
  void end() {
    if (finished_) return;
    bool clean;
    {
      std::lock_guard lock(server_->aggregator_.mutex());
      clean = decoder_->finish();
    }
    // A partial frame at end of stream is how a killed process ends: logged,
    // but the stream ended as a disconnection, not as a protocol violation.
    finish(clean ? "" : "ended: " + decoder_->error(), "disconnected");
  }

  // Strand. Appends to the recording only the bytes of frames the decoder
  // accepted, so a saved stream always re-decodes cleanly.
  void keep_accepted(const std::string& chunk, uint64_t accepted_before) {
    if (!server_->options_.record_in_memory && server_->options_.save_dir.empty()) return;
    pending_.append(chunk);
    size_t newly_accepted = decoder_->bytes_accepted() - accepted_before;
    if (newly_accepted == 0) return;
    if (server_->options_.record_in_memory) recorded_.append(pending_, 0, newly_accepted);
    if (!server_->options_.save_dir.empty()) save(pending_.data(), newly_accepted);
    pending_.erase(0, newly_accepted);
  }

  void save(const char* data, size_t size) {
    if (!save_file_.is_open()) {
      std::string path = server_->options_.save_dir + "/stream-" + std::to_string(number_) +
                         "-pid" + std::to_string(pid_probe_.pid) + ".bwrec";
      save_file_.open(path, std::ios::binary | std::ios::trunc);
    }
    save_file_.write(data, static_cast<std::streamsize>(size));
    save_file_.flush();
  }

  // Strand. The socket is closed on the io thread (a rejected stream's peer
  // sees the connection end).
  void finish(const std::string& problem, const char* end_reason) {
    if (finished_) return;
    finished_ = true;
    if (!problem.empty()) {
      if (std::string_view(end_reason) == "rejected") ++server_->rejected_connections_;
      server_->log("blockwatch: connection " + std::to_string(number_) + " (pid " +
                   std::to_string(pid_probe_.pid) + ") " + problem);
    }
    {
      std::lock_guard lock(server_->aggregator_.mutex());
      server_->aggregator_.end_stream(sink_, end_reason);
    }
    // Weak, as in decode(): a strand must never outlive its execution context
    // (its destructor locks the pool's strand service), and the io_context is
    // destroyed after this server in blockwatchd.
    asio::post(server_->io_, [weak = weak_from_this()] {
      if (auto self = weak.lock()) {
        boost::system::error_code ignored;
        self->socket_.close(ignored);
      }
    });
    server_->connection_closed(this, std::move(recorded_));
  }

  IngestServer* server_;
  asio::generic::stream_protocol::socket socket_;
  size_t number_;
  asio::strand<asio::thread_pool::executor_type> strand_;
  UnlockingSymbolizer symbolizer_;
  StreamHandler* sink_ = nullptr;
  PidProbe pid_probe_;
  std::unique_ptr<StreamDecoder> decoder_;
  bool read_pending_ = false;
  bool end_posted_ = false;
  bool paused_before_ = false;  // logged once per connection
  std::atomic<size_t> queued_bytes_{0};
  std::atomic<bool> paused_{false};
  std::string pending_;   // received, not yet accepted by the decoder
  std::string recorded_;  // accepted bytes (record_in_memory)
  std::ofstream save_file_;
  bool finished_ = false;
};

namespace {
unsigned decode_thread_count(unsigned wanted) {
  return wanted != 0 ? wanted : std::max(4u, std::thread::hardware_concurrency());
}
}  // namespace

IngestServer::IngestServer(asio::io_context& io, Aggregator& aggregator, IngestOptions options)
    : io_(io),
      aggregator_(aggregator),
      options_(std::move(options)),
      decode_pool_(decode_thread_count(options_.decode_threads)) {
  if (!options_.log) options_.log = [](const std::string& line) { std::cerr << line << '\n'; };
}

IngestServer::~IngestServer() {
  close();
  decode_pool_.join();  // connections' last jobs refer to this server
  if (!socket_path_.empty()) ::unlink(socket_path_.c_str());
}

template <typename Acceptor>
void IngestServer::accept_loop(Acceptor* acceptor) {
  acceptor->async_accept([this, acceptor](const boost::system::error_code& error,
                                          typename Acceptor::protocol_type::socket socket) {
    if (error == asio::error::operation_aborted || !acceptor->is_open()) return;
    if (!error) {
      boost::system::error_code ec;
      auto protocol = socket.local_endpoint(ec).protocol();
      asio::generic::stream_protocol generic(protocol.family(), protocol.protocol());
      asio::generic::stream_protocol::socket generic_socket(io_, generic, socket.release());
      auto connection =
          std::make_shared<Connection>(this, std::move(generic_socket), ++total_connections_);
      ++open_connections_;
      {
        std::lock_guard lock(connections_mutex_);
        connections_.push_back(connection);
      }
      connection->start();
    }
    accept_loop(acceptor);
  });
}

bool IngestServer::listen_unix(const std::string& socket_path, std::string* error) {
  std::string dir = socket_path.substr(0, socket_path.rfind('/') + 1);
  if (!dir.empty() && ::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    *error = dir + ": cannot create socket directory: " + std::strerror(errno);
    return false;
  }
  struct stat st;
  if (::lstat(socket_path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
    ::unlink(socket_path.c_str());  // stale socket of an earlier collector
  }
  try {
    unix_acceptor_ = std::make_unique<asio::local::stream_protocol::acceptor>(
        io_, asio::local::stream_protocol::endpoint(socket_path));
  } catch (const boost::system::system_error& e) {
    *error = socket_path + ": cannot listen: " + e.what();
    return false;
  }
  ::chmod(socket_path.c_str(), 0600);
  socket_path_ = socket_path;
  accept_loop(unix_acceptor_.get());
  return true;
}

bool IngestServer::listen_tcp(const std::string& host, uint16_t port, std::string* error) {
  try {
    asio::ip::tcp::endpoint endpoint(asio::ip::make_address(host), port);
    tcp_acceptor_ = std::make_unique<asio::ip::tcp::acceptor>(io_, endpoint);
  } catch (const boost::system::system_error& e) {
    *error = host + ":" + std::to_string(port) + ": cannot listen: " + e.what();
    return false;
  }
  accept_loop(tcp_acceptor_.get());
  return true;
}

uint16_t IngestServer::tcp_port() const {
  return tcp_acceptor_ ? tcp_acceptor_->local_endpoint().port() : 0;
}

void IngestServer::connection_closed(Connection* connection, std::string recorded) {
  if (!recorded.empty()) {
    std::lock_guard lock(recorded_mutex_);
    recorded_.push_back(std::move(recorded));
  }
  std::lock_guard lock(connections_mutex_);
  std::erase_if(connections_, [connection](const auto& c) { return c.get() == connection; });
  --open_connections_;
  connections_ended_.notify_all();
}

bool IngestServer::wait_until_ended(std::chrono::milliseconds timeout) {
  std::unique_lock lock(connections_mutex_);
  return connections_ended_.wait_for(lock, timeout, [this] { return connections_.empty(); });
}

void IngestServer::log(const std::string& line) {
  std::lock_guard lock(log_mutex_);
  options_.log(line);
}

void IngestServer::close() {
  boost::system::error_code ignored;
  if (unix_acceptor_) unix_acceptor_->close(ignored);
  if (tcp_acceptor_) tcp_acceptor_->close(ignored);
  // Closing a socket makes its pending read complete with an error, which ends
  // the stream through the normal path; copy first: that path edits the list.
  std::vector<std::shared_ptr<Connection>> open;
  {
    std::lock_guard lock(connections_mutex_);
    open = connections_;
  }
  for (auto& c : open) c->close();
}

std::string IngestServer::recorded_streams() const {
  std::lock_guard lock(recorded_mutex_);
  std::string all;
  for (const auto& stream : recorded_) all += stream;
  return all;
}

}  // namespace blockwatch::collector
