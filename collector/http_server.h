// The live collector's HTTP/1.1 endpoints (`blockwatchd --http 127.0.0.1:PORT`),
// built on Boost.Beast and run on the caller's io_context:
//   GET /                    live dashboard (HTML from the viewer), placeholder if absent
//   GET /api/report          the JSON report (text supplied by blockwatchd)
//   GET /metrics             Prometheus text format (metrics.h)
//   GET /debug/pprof/block   gzipped pprof of blocked time; cumulative, or with
//                            ?seconds=N (1..max) what was added during the next N s
// Anything else is 404; methods other than GET are 405. Requests are bounded (header
// bytes, no bodies, connection count, per-read/write timeouts); a bad request gets
// a 4xx and its connection is closed, never a crash.
//
// This library does not depend on the collector core: blockwatchd supplies the
// content as functions. They are called on the thread(s) running the io_context.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "collector/report_model.h"

namespace blockwatch::collector {

struct HttpContent {
  std::function<Report()> snapshot;          // /metrics and /debug/pprof/block (503 if absent)
  std::function<std::string()> report_json;  // /api/report (404 if absent)
  std::function<std::string()> html_page;    // / (a placeholder page if absent)
};

struct HttpLimits {
  size_t max_header_bytes = 8 * 1024;
  size_t max_connections = 64;          // more are answered 503 and closed
  std::chrono::seconds io_timeout{10};  // each read of a request, each write
  int max_profile_seconds = 60;         // upper bound of ?seconds=N
};

class HttpServer {
 public:
  virtual ~HttpServer() = default;
  // The bound address; with port 0 in the request, the port the kernel chose.
  virtual boost::asio::ip::tcp::endpoint local_endpoint() const = 0;
  // Stops accepting; open connections end at their next timeout or request.
  virtual void stop() = 0;
};

// Binds and starts accepting. Throws boost::system::system_error if the address
// cannot be bound. The server lives while the io_context has work for it or the
// returned pointer is held.
std::shared_ptr<HttpServer> start_http_server(boost::asio::io_context& io,
                                              const boost::asio::ip::tcp::endpoint& endpoint,
                                              HttpContent content, HttpLimits limits = {});

// "127.0.0.1:8080", "[::1]:8080", or ":8080" / "8080" (loopback: binding other
// interfaces must be asked for explicitly, e.g. "0.0.0.0:8080").
// Throws std::invalid_argument on anything else.
boost::asio::ip::tcp::endpoint parse_http_listen_address(const std::string& text);

}  // namespace blockwatch::collector
