// The Pyroscope pusher: a timer loop on the caller's io_context; each tick takes a
// snapshot, subtracts the previous one (subtract_report) and sends it with one
// Beast HTTP/1.1 request. One push is in flight at a time; every step has a timeout.
#include "collector/pyroscope_push.h"

#include <atomic>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <cstdio>
#include <iostream>
#include <optional>
#include <stdexcept>

#include "collector/report_pprof.h"

namespace blockwatch::collector {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct HttpUrl {
  std::string host;
  std::string port = "80";
  std::string path_prefix;  // without trailing '/'
};

HttpUrl parse_http_url(const std::string& url) {
  constexpr std::string_view kScheme = "http://";
  if (url.rfind(kScheme, 0) != 0)
    throw std::invalid_argument("Pyroscope URL must start with http://: " + url);
  std::string rest = url.substr(kScheme.size());
  HttpUrl parsed;
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    parsed.path_prefix = rest.substr(slash);
    rest.resize(slash);
    while (!parsed.path_prefix.empty() && parsed.path_prefix.back() == '/')
      parsed.path_prefix.pop_back();
  }
  if (auto colon = rest.rfind(':');
      colon != std::string::npos && rest.find(']', colon) == std::string::npos) {
    parsed.port = rest.substr(colon + 1);
    rest.resize(colon);
  }
  if (rest.size() >= 2 && rest.front() == '[') rest = rest.substr(1, rest.size() - 2);
  parsed.host = rest;
  if (parsed.host.empty() || parsed.port.empty())
    throw std::invalid_argument("bad Pyroscope URL: " + url);
  return parsed;
}

std::string percent_encode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buffer[4];
      std::snprintf(buffer, sizeof buffer, "%%%02X", c);
      out += buffer;
    }
  }
  return out;
}

int64_t unix_seconds_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class Pusher : public PyroscopePusher, public std::enable_shared_from_this<Pusher> {
 public:
  Pusher(asio::io_context& io, PyroscopePushOptions options, std::function<Report()> snapshot)
      : io_(io),
        options_(std::move(options)),
        url_(parse_http_url(options_.url)),
        snapshot_(std::move(snapshot)),
        timer_(io),
        resolver_(io) {}

  void start() {
    previous_ = snapshot_();
    previous_unix_s_ = unix_seconds_now();
    schedule();
  }
  void stop() override {
    stopped_ = true;
    timer_.cancel();
    if (stream_) stream_->cancel();
  }
  uint64_t pushes_accepted() const override { return accepted_; }
  uint64_t pushes_failed() const override { return failed_; }

 private:
  void schedule() {
    if (stopped_) return;
    timer_.expires_after(options_.interval);
    timer_.async_wait([self = shared_from_this()](beast::error_code error) {
      if (!error && !self->stopped_) self->push();
    });
  }

  void push() {
    Report now = snapshot_();
    int64_t now_unix_s = std::max(unix_seconds_now(), previous_unix_s_ + 1);
    const std::string boundary = "blockwatch-profile-boundary";
    request_ = {http::verb::post,
                url_.path_prefix + "/ingest?name=" + percent_encode(options_.application_name) +
                    "&from=" + std::to_string(previous_unix_s_) +
                    "&until=" + std::to_string(now_unix_s) + "&format=pprof&spyName=blockwatch",
                11};
    request_.set(http::field::host, url_.host + ':' + url_.port);
    request_.set(http::field::user_agent, "blockwatch");
    request_.set(http::field::content_type, "multipart/form-data; boundary=" + boundary);
    request_.body() =
        "--" + boundary +
        "\r\nContent-Disposition: form-data; name=\"profile\"; filename=\"profile.pprof\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n" +
        gzip_bytes(encode_pprof_profile(subtract_report(now, previous_))) + "\r\n--" + boundary +
        "--\r\n";
    request_.prepare_payload();
    pending_ = std::move(now);
    pending_unix_s_ = now_unix_s;
    resolver_.async_resolve(
        url_.host, url_.port,
        [self = shared_from_this()](beast::error_code error, tcp::resolver::results_type results) {
          if (error) return self->finish(error, 0);
          self->connect(results);
        });
  }

  void connect(const tcp::resolver::results_type& results) {
    stream_.emplace(io_);
    stream_->expires_after(options_.timeout);
    stream_->async_connect(results, [self = shared_from_this()](beast::error_code error,
                                                                const tcp::endpoint&) {
      if (error) return self->finish(error, 0);
      http::async_write(*self->stream_, self->request_, [self](beast::error_code error, size_t) {
        if (error) return self->finish(error, 0);
        self->response_ = {};
        http::async_read(*self->stream_, self->buffer_, self->response_,
                         [self](beast::error_code error, size_t) {
                           self->finish(error, error ? 0 : self->response_.result_int());
                         });
      });
    });
  }

  void finish(beast::error_code error, unsigned status) {
    if (stream_) {
      beast::error_code ignored;
      stream_->socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream_.reset();
    }
    if (!error && status >= 200 && status < 300) {
      ++accepted_;
      previous_ = std::move(pending_);  // a failed push leaves its interval to the next one
      previous_unix_s_ = pending_unix_s_;
    } else {
      ++failed_;
      if (!stopped_) {
        std::cerr << "blockwatchd: Pyroscope push to " << options_.url
                  << " failed: " << (error ? error.message() : "HTTP " + std::to_string(status))
                  << '\n';
      }
    }
    schedule();
  }

  asio::io_context& io_;
  PyroscopePushOptions options_;
  HttpUrl url_;
  std::function<Report()> snapshot_;
  asio::steady_timer timer_;
  tcp::resolver resolver_;
  std::optional<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
  Report previous_, pending_;
  int64_t previous_unix_s_ = 0, pending_unix_s_ = 0;
  std::atomic<bool> stopped_{false};
  std::atomic<uint64_t> accepted_{0}, failed_{0};
};

}  // namespace

std::shared_ptr<PyroscopePusher> start_pyroscope_push(asio::io_context& io,
                                                      PyroscopePushOptions options,
                                                      std::function<Report()> snapshot) {
  auto pusher = std::make_shared<Pusher>(io, std::move(options), std::move(snapshot));
  pusher->start();
  return pusher;
}

}  // namespace blockwatch::collector
