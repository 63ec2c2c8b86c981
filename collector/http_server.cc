// The HTTP server: one Session per connection (Beast tcp_stream with timeouts, an
// empty_body parser so a request carrying a body is refused), an acceptor that
// counts live sessions, and a router from target to content. Everything runs as
// completion handlers on the caller's io_context; nothing here blocks it except the
// content functions themselves.
#include "collector/http_server.h"

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <optional>
#include <stdexcept>

#include "collector/metrics.h"
#include "collector/report_pprof.h"

namespace blockwatch::collector {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Response = http::response<http::string_body>;

constexpr const char* kPlaceholderPage =
    "<!doctype html><meta charset=\"utf-8\"><title>blockwatch</title>"
    "<h1>blockwatch collector</h1><p>The dashboard is not built into this binary. "
    "See <a href=\"/api/report\">/api/report</a>, <a href=\"/metrics\">/metrics</a> and "
    "<a href=\"/debug/pprof/block\">/debug/pprof/block</a>.</p>\n";

struct SharedState {
  HttpContent content;
  HttpLimits limits;
  std::atomic<size_t> connections{0};
};

Response make_response(http::status status, std::string content_type, std::string body) {
  Response response{status, 11};
  response.set(http::field::server, "blockwatch");
  response.set(http::field::content_type, content_type);
  response.set(http::field::cache_control, "no-store");
  response.body() = std::move(body);
  response.prepare_payload();
  return response;
}

Response text_response(http::status status, std::string body) {
  return make_response(status, "text/plain; charset=utf-8", std::move(body) + '\n');
}

Response pprof_response(const Report& report) {
  Response response = make_response(http::status::ok, "application/octet-stream",
                                    gzip_bytes(encode_pprof_profile(report)));
  response.set(http::field::content_disposition, "attachment; filename=\"block.pb.gz\"");
  return response;
}

// ?seconds=N: nullopt when absent, -1 when malformed.
std::optional<int> seconds_parameter(std::string_view query) {
  while (!query.empty()) {
    std::string_view pair = query.substr(0, query.find('&'));
    query.remove_prefix(std::min(query.size(), pair.size() + 1));
    if (pair.substr(0, 8) != "seconds=") continue;
    std::string_view digits = pair.substr(8);
    int seconds = 0;
    auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), seconds);
    if (error != std::errc() || end != digits.data() + digits.size()) return -1;
    return seconds;
  }
  return std::nullopt;
}

http::status parse_error_status(const beast::error_code& error) {
  if (error == http::error::header_limit) return http::status::request_header_fields_too_large;
  if (error == http::error::unexpected_body || error == http::error::body_limit)
    return http::status::payload_too_large;
  return http::status::bad_request;
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<SharedState> state)
      : stream_(std::move(socket)), state_(std::move(state)), timer_(stream_.get_executor()) {
    ++state_->connections;
  }
  ~Session() { --state_->connections; }

  void start() { read_request(); }

 private:
  void read_request() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(state_->limits.max_header_bytes));
    stream_.expires_after(state_->limits.io_timeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code error, size_t) { self->on_read(error); });
  }

  void on_read(beast::error_code error) {
    if (error == http::error::end_of_stream || error == beast::error::timeout ||
        error == asio::error::operation_aborted || error == asio::error::connection_reset) {
      return close();
    }
    if (error) {
      keep_alive_ = false;
      return send(text_response(parse_error_status(error), "bad request: " + error.message()));
    }
    keep_alive_ = parser_->get().keep_alive();
    route(parser_->get());
  }

  void route(const http::request<http::empty_body>& request) {
    if (request.method() != http::verb::get) {
      Response response = text_response(http::status::method_not_allowed, "only GET is served");
      response.set(http::field::allow, "GET");
      return send(std::move(response));
    }
    std::string_view target(request.target().data(), request.target().size());
    std::string_view path = target.substr(0, target.find('?'));
    std::string_view query = path.size() < target.size() ? target.substr(path.size() + 1) : "";
    const HttpContent& content = state_->content;
    try {
      if (path == "/") {
        return send(make_response(http::status::ok, "text/html; charset=utf-8",
                                  content.html_page ? content.html_page() : kPlaceholderPage));
      }
      if (path == "/api/report") {
        if (!content.report_json)
          return send(text_response(http::status::not_found, "no JSON report"));
        return send(make_response(http::status::ok, "application/json", content.report_json()));
      }
      if ((path == "/metrics" || path == "/debug/pprof/block") && !content.snapshot)
        return send(text_response(http::status::service_unavailable, "no report source"));
      if (path == "/metrics") {
        return send(make_response(
            http::status::ok, "text/plain; version=0.0.4; charset=utf-8",
            render_prometheus_metrics(content.snapshot(), read_resident_memory_bytes())));
      }
      if (path == "/debug/pprof/block") return serve_block_profile(query);
    } catch (const std::exception& e) {
      return send(text_response(http::status::internal_server_error, e.what()));
    }
    send(text_response(http::status::not_found, "not found"));
  }

  void serve_block_profile(std::string_view query) {
    std::optional<int> seconds = seconds_parameter(query);
    if (!seconds || *seconds == 0) return send(pprof_response(state_->content.snapshot()));
    if (*seconds < 0 || *seconds > state_->limits.max_profile_seconds) {
      return send(text_response(
          http::status::bad_request,
          "seconds must be 0.." + std::to_string(state_->limits.max_profile_seconds)));
    }
    // A delta profile: snapshot now, again after N seconds, serve the difference.
    auto before = std::make_shared<Report>(state_->content.snapshot());
    stream_.expires_never();
    timer_.expires_after(std::chrono::seconds(*seconds));
    timer_.async_wait([self = shared_from_this(), before](beast::error_code error) {
      if (error) return self->close();
      try {
        self->send(pprof_response(subtract_report(self->state_->content.snapshot(), *before)));
      } catch (const std::exception& e) {
        self->send(text_response(http::status::internal_server_error, e.what()));
      }
    });
  }

  void send(Response response) {
    response.keep_alive(keep_alive_);
    response_ = std::make_shared<Response>(std::move(response));
    stream_.expires_after(state_->limits.io_timeout);
    http::async_write(stream_, *response_,
                      [self = shared_from_this()](beast::error_code error, size_t) {
                        if (error || !self->keep_alive_) return self->close();
                        self->read_request();
                      });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  std::shared_ptr<SharedState> state_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  std::shared_ptr<Response> response_;
  bool keep_alive_ = false;
};

class Listener : public HttpServer, public std::enable_shared_from_this<Listener> {
 public:
  Listener(asio::io_context& io, const tcp::endpoint& endpoint, std::shared_ptr<SharedState> state)
      : acceptor_(io), retry_timer_(io), state_(std::move(state)) {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(asio::socket_base::max_listen_connections);
  }

  void accept() {
    acceptor_.async_accept(
        [self = shared_from_this()](beast::error_code error, tcp::socket socket) {
          if (error == asio::error::operation_aborted || !self->acceptor_.is_open()) return;
          if (!error) {
            self->admit(std::move(socket));
            return self->accept();
          }
          // Out of descriptors or similar: retry later instead of spinning on the error.
          self->retry_timer_.expires_after(std::chrono::milliseconds(100));
          self->retry_timer_.async_wait([self](beast::error_code) { self->accept(); });
        });
  }

  tcp::endpoint local_endpoint() const override { return endpoint_cache_; }
  // Call on the io_context's thread (asio::post), like every other completion.
  void stop() override {
    beast::error_code ignored;
    acceptor_.close(ignored);
    retry_timer_.cancel();
  }
  void cache_endpoint() { endpoint_cache_ = acceptor_.local_endpoint(); }

 private:
  void admit(tcp::socket socket) {
    if (state_->connections >= state_->limits.max_connections) {
      // Over the bound: a short 503 written without a session, then closed.
      auto busy = std::make_shared<std::pair<tcp::socket, std::string>>(
          std::move(socket),
          "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      asio::async_write(busy->first, asio::buffer(busy->second), [busy](beast::error_code, size_t) {
        beast::error_code ignored;
        busy->first.close(ignored);
      });
      return;
    }
    std::make_shared<Session>(std::move(socket), state_)->start();
  }

  tcp::acceptor acceptor_;
  asio::steady_timer retry_timer_;
  std::shared_ptr<SharedState> state_;
  tcp::endpoint endpoint_cache_;
};

}  // namespace

std::shared_ptr<HttpServer> start_http_server(asio::io_context& io, const tcp::endpoint& endpoint,
                                              HttpContent content, HttpLimits limits) {
  auto state = std::make_shared<SharedState>();
  state->content = std::move(content);
  state->limits = limits;
  auto listener = std::make_shared<Listener>(io, endpoint, state);
  listener->cache_endpoint();
  listener->accept();
  return listener;
}

tcp::endpoint parse_http_listen_address(const std::string& text) {
  std::string host, port_text;
  if (auto colon = text.rfind(':'); colon == std::string::npos) {
    port_text = text;
  } else {
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned port = 0;
  auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || error != std::errc() || end != port_text.data() + port_text.size() ||
      port > 65535)
    throw std::invalid_argument("bad HTTP listen address '" + text + "': expected HOST:PORT");
  beast::error_code address_error;
  auto address = host.empty() ? asio::ip::address(asio::ip::address_v4::loopback())
                              : asio::ip::make_address(host, address_error);
  if (address_error)
    throw std::invalid_argument("bad HTTP listen address '" + text +
                                "': " + address_error.message());
  return {address, static_cast<unsigned short>(port)};
}

}  // namespace blockwatch::collector
