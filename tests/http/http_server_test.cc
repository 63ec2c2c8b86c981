// The live HTTP endpoints, served on an ephemeral loopback port by a server running
// in this process, fetched with real clients: a Beast client, raw sockets for
// malformed requests, and `go tool pprof` on the profile URL. Also the Pyroscope
// push, against a one-shot HTTP server in the test that captures the request.
// Label "integration": real sockets and processes.
#include <gtest/gtest.h>
#include <zlib.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <filesystem>
#include <future>
#include <mutex>
#include <regex>
#include <thread>

#include "collector/http_server.h"
#include "collector/pyroscope_push.h"
#include "proto/pprof_profile.pb.h"
#include "tests/reports/sample_report.h"

namespace blockwatch::collector {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

struct Fetched {
  unsigned status = 0;
  std::string content_type;
  std::string body;
};

Fetched fetch(unsigned short port, const std::string& target, http::verb verb = http::verb::get) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  stream.expires_after(20s);
  stream.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port));
  http::request<http::string_body> request{verb, target, 11};
  request.set(http::field::host, "127.0.0.1");
  http::write(stream, request);
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  http::read(stream, buffer, response);
  return {response.result_int(), std::string(response[http::field::content_type]), response.body()};
}

// Sends raw bytes (then ends the sending side if `half_close`), returns everything
// the server answers until it closes the connection.
std::string exchange_raw(unsigned short port, const std::string& bytes, bool half_close = false) {
  asio::io_context io;
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port));
  boost::system::error_code error;
  asio::write(socket, asio::buffer(bytes), error);
  if (half_close) socket.shutdown(tcp::socket::shutdown_send, error);
  std::string answer;
  char chunk[4096];
  for (;;) {
    size_t n = socket.read_some(asio::buffer(chunk), error);
    answer.append(chunk, n);
    if (error) break;
  }
  return answer;
}

std::string gunzip(const std::string& compressed) {
  z_stream stream{};
  inflateInit2(&stream, 15 + 16);
  std::string out(1 << 20, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  stream.avail_in = static_cast<uInt>(compressed.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  int status = inflate(&stream, Z_FINISH);
  inflateEnd(&stream);
  EXPECT_EQ(status, Z_STREAM_END);
  out.resize(stream.total_out);
  return out;
}

perftools::profiles::Profile parse_pprof(const std::string& gzipped) {
  perftools::profiles::Profile profile;
  EXPECT_TRUE(profile.ParseFromString(gunzip(gzipped)));
  return profile;
}

// A server on 127.0.0.1:0 over a Report the test can change.
class HttpServerTest : public ::testing::Test {
 protected:
  void start(HttpLimits limits = {}, bool with_page = false) {
    HttpContent content;
    content.snapshot = [this] {
      std::lock_guard lock(mutex_);
      if (++snapshots_taken_ == grow_at_snapshot_) grow_mutex_hotspot_locked(7, 7000000);
      return report_;
    };
    content.report_json = [] { return std::string("{\"version\":1}"); };
    if (with_page) content.html_page = [] { return std::string("<html>live dashboard</html>"); };
    server_ =
        start_http_server(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0), content, limits);
    port_ = server_->local_endpoint().port();
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    if (server_) asio::post(io_, [server = server_] { server->stop(); });
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }
  void grow_mutex_hotspot_locked(uint64_t count, int64_t ns) {
    report_.hotspots[2].count += count;
    report_.hotspots[2].total_ns += ns;
  }

  asio::io_context io_;
  std::shared_ptr<HttpServer> server_;
  std::thread thread_;
  unsigned short port_ = 0;
  std::mutex mutex_;
  std::atomic<int> snapshots_taken_{0};
  // The snapshot (by number) that grows the mutex hotspot just before it is taken.
  int grow_at_snapshot_ = 0;
  Report report_ = test::sample_report();
};

TEST_F(HttpServerTest, ServesPlaceholderPageAndJsonReport) {
  start();
  EXPECT_NE(server_->local_endpoint().port(), 0);
  EXPECT_TRUE(server_->local_endpoint().address().is_loopback());
  Fetched page = fetch(port_, "/");
  EXPECT_EQ(page.status, 200u);
  EXPECT_NE(page.content_type.find("text/html"), std::string::npos);
  EXPECT_NE(page.body.find("/metrics"), std::string::npos);
  Fetched json = fetch(port_, "/api/report");
  EXPECT_EQ(json.status, 200u);
  EXPECT_EQ(json.content_type, "application/json");
  EXPECT_EQ(json.body, "{\"version\":1}");
}

TEST_F(HttpServerTest, ServesTheViewersDashboard) {
  start({}, true);
  EXPECT_EQ(fetch(port_, "/").body, "<html>live dashboard</html>");
}

TEST_F(HttpServerTest, MetricsAreValidPrometheusText) {
  start();
  Fetched metrics = fetch(port_, "/metrics");
  ASSERT_EQ(metrics.status, 200u);
  EXPECT_NE(metrics.content_type.find("version=0.0.4"), std::string::npos);
  const std::regex sample_line(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? (-?[0-9.e+]+)$)");
  const std::regex comment_line(R"(^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$)");
  std::map<std::string, std::string> series;
  std::istringstream lines(metrics.body);
  std::string line;
  while (std::getline(lines, line)) {
    std::smatch match;
    if (line.rfind("#", 0) == 0) {
      EXPECT_TRUE(std::regex_match(line, comment_line)) << line;
      continue;
    }
    ASSERT_TRUE(std::regex_match(line, match, sample_line)) << line;
    series[line.substr(0, line.rfind(' '))] = line.substr(line.rfind(' ') + 1);
  }
  EXPECT_EQ(series["blockwatch_blocking_events_total{kind=\"mutex\",path=\"worker-pool\",allowed="
                   "\"false\"}"],
            "120");
  EXPECT_EQ(series["blockwatch_blocked_seconds_total{kind=\"fsync\",path=\"\",allowed=\"false\"}"],
            "0.045000000");
  EXPECT_EQ(
      series["blockwatch_blocking_events_total{kind=\"sleep\",path=\"model\",allowed=\"true\"}"],
      "4");
  EXPECT_EQ(series["blockwatch_stalls_total{path=\"model\",scope=\"\"}"], "2");
  // Per hotspot: labelled by the innermost user frame (quotes in a name escaped).
  EXPECT_EQ(series["blockwatch_hotspot_events_total{kind=\"mutex\",function=\"pool::Cache<int; "
                   "\\\"k\\\" & <v>>::get()\",location=\"\",path=\"worker-pool\"}"],
            "120");
  // The innermost user frame may be an inlined function, with its own line.
  EXPECT_EQ(series["blockwatch_hotspot_seconds_total{kind=\"fsync\",function=\"Journal::sync_"
                   "locked()\",location=\"journal.h:31\",path=\"\"}"],
            "0.045000000");
  EXPECT_EQ(series["blockwatch_hotspot_seconds_total{kind=\"stall\",function=\"model::tokenize("
                   "std::string_view)\",location=\"\",path=\"model\"}"],
            "0.080000000");
  EXPECT_EQ(series["blockwatch_stalled_seconds_total{path=\"model\",scope=\"\"}"], "0.080000000");
  EXPECT_EQ(series["blockwatch_dropped_records_total{reason=\"queue_full\"}"], "5");
  EXPECT_EQ(series["blockwatch_processes{state=\"connected\"}"], "1");
  EXPECT_EQ(series["blockwatch_processes{state=\"ended\"}"], "1");
  EXPECT_GT(std::stoll(series["blockwatch_collector_resident_memory_bytes"]), 1 << 20);
}

TEST_F(HttpServerTest, BlockProfileIsCumulativeOrADelta) {
  start();
  Fetched cumulative = fetch(port_, "/debug/pprof/block");
  ASSERT_EQ(cumulative.status, 200u);
  EXPECT_EQ(parse_pprof(cumulative.body).sample_size(), 5);
  // ?seconds=1: only what grows during that second, i.e. between the server's two
  // snapshots for this request. The growth comes with the second snapshot itself:
  // a thread growing it "soon after the first" could miss the window when loaded.
  {
    std::lock_guard lock(mutex_);
    grow_at_snapshot_ = snapshots_taken_ + 2;
  }
  Fetched delta = fetch(port_, "/debug/pprof/block?seconds=1");
  ASSERT_EQ(delta.status, 200u);
  perftools::profiles::Profile profile = parse_pprof(delta.body);
  ASSERT_EQ(profile.sample_size(), 1);
  EXPECT_EQ(profile.sample(0).value(0), 7);
  EXPECT_EQ(profile.sample(0).value(1), 7000000);
  EXPECT_EQ(fetch(port_, "/debug/pprof/block?seconds=abc").status, 400u);
  EXPECT_EQ(fetch(port_, "/debug/pprof/block?seconds=100000").status, 400u);
}

TEST_F(HttpServerTest, GoToolPprofFetchesTheProfileUrl) {
  start();
  auto dir =
      std::filesystem::temp_directory_path() / ("blockwatch-http-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::string command = "HOME='" + dir.string() + "' PPROF_TMPDIR='" + dir.string() + "' '" +
                        BLOCKWATCH_GO_EXECUTABLE +
                        "' tool pprof -top http://127.0.0.1:" + std::to_string(port_) +
                        "/debug/pprof/block 2>&1";
  std::string output;
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char buffer[4096];
  for (size_t n; (n = fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
  EXPECT_EQ(pclose(pipe), 0) << output;
  std::filesystem::remove_all(dir);
  EXPECT_NE(output.find("Type: delay"), std::string::npos) << output;
  EXPECT_TRUE(std::regex_search(output, std::regex(R"(\n\s*80ms\s.*model::tokenize)"))) << output;
  EXPECT_TRUE(std::regex_search(output, std::regex(R"(\n\s*30ms\s.*pthread_mutex_lock)")))
      << output;
}

TEST_F(HttpServerTest, BadRequestsGet4xxAndTheServerKeepsServing) {
  start();
  EXPECT_EQ(fetch(port_, "/nope").status, 404u);
  EXPECT_EQ(fetch(port_, "/metrics", http::verb::post).status, 405u);
  EXPECT_EQ(exchange_raw(port_, "HELLO THERE\r\n\r\n").substr(0, 12), "HTTP/1.1 400");
  EXPECT_EQ(exchange_raw(port_, std::string(3000, '\x01')).substr(0, 12), "HTTP/1.1 400");
  std::string huge_header =
      "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(16 * 1024, 'a') + "\r\n\r\n";
  EXPECT_EQ(exchange_raw(port_, huge_header).substr(0, 12), "HTTP/1.1 431");
  EXPECT_EQ(exchange_raw(port_, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
                .substr(0, 12),
            "HTTP/1.1 413");
  EXPECT_EQ(
      exchange_raw(
          port_,
          "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
          .substr(0, 12),
      "HTTP/1.1 413");
  // Truncated, then the client stops sending: still an answer, not a wait.
  EXPECT_EQ(exchange_raw(port_, "GET /metr", true).substr(0, 12), "HTTP/1.1 400");
  EXPECT_EQ(fetch(port_, "/metrics").status, 200u);
}

TEST_F(HttpServerTest, IdleConnectionsTimeOut) {
  HttpLimits limits;
  limits.io_timeout = 1s;
  start(limits);
  auto started = std::chrono::steady_clock::now();
  std::string answer = exchange_raw(port_, "GET / HTTP/1.1\r\n");  // never finished
  EXPECT_EQ(answer, "");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 15s);  // closed by the server, not hung
}

TEST_F(HttpServerTest, ConnectionCountIsBounded) {
  HttpLimits limits;
  limits.max_connections = 2;
  start(limits);
  asio::io_context io;
  std::vector<tcp::socket> idle;
  for (int i = 0; i < 2; ++i) {
    idle.emplace_back(io);
    idle.back().connect(tcp::endpoint(asio::ip::address_v4::loopback(), port_));
  }
  // Retried until the server has accepted both idle connections, then until it
  // has seen them close: each bounded by 30 s for a stuck run, not by a guess at
  // how soon a loaded machine gets there.
  std::string answer;
  const auto accepted_deadline = std::chrono::steady_clock::now() + 30s;
  while (answer.rfind("HTTP/1.1 503", 0) != 0 &&
         std::chrono::steady_clock::now() < accepted_deadline) {
    std::this_thread::sleep_for(20ms);
    answer = exchange_raw(port_, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  }
  EXPECT_EQ(answer.substr(0, 12), "HTTP/1.1 503");
  idle.clear();  // closing them frees the slots
  unsigned status = 0;
  const auto freed_deadline = std::chrono::steady_clock::now() + 30s;
  while (status != 200 && std::chrono::steady_clock::now() < freed_deadline) {
    std::this_thread::sleep_for(20ms);
    std::string reply =
        exchange_raw(port_, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    status = reply.rfind("HTTP/1.1 200", 0) == 0 ? 200 : 0;
  }
  EXPECT_EQ(status, 200u);
}

TEST(ParseHttpListenAddress, DefaultsToLoopback) {
  EXPECT_EQ(parse_http_listen_address("8080"),
            tcp::endpoint(asio::ip::address_v4::loopback(), 8080));
  EXPECT_EQ(parse_http_listen_address(":9"), tcp::endpoint(asio::ip::address_v4::loopback(), 9));
  EXPECT_EQ(parse_http_listen_address("0.0.0.0:80").address().to_string(), "0.0.0.0");
  EXPECT_EQ(parse_http_listen_address("[::1]:80").address().to_string(), "::1");
  EXPECT_THROW(parse_http_listen_address("localhost:80"), std::invalid_argument);
  EXPECT_THROW(parse_http_listen_address("127.0.0.1:"), std::invalid_argument);
  EXPECT_THROW(parse_http_listen_address("127.0.0.1:99999"), std::invalid_argument);
}

// A one-shot HTTP server standing in for Pyroscope: captures one request.
TEST(PyroscopePush, PostsTheDeltaProfileToIngest) {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  std::promise<http::request<http::string_body>> captured;
  std::thread fake_pyroscope([&] {
    tcp::socket socket(io);
    acceptor.accept(socket);
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    http::read(socket, buffer, request);
    http::response<http::string_body> response{http::status::ok, 11};
    response.prepare_payload();
    http::write(socket, response);
    captured.set_value(std::move(request));
  });
  std::mutex mutex;
  Report report = test::sample_report();
  PyroscopePushOptions options;
  options.url = "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/";
  options.application_name = "demo.block{env=ci}";
  options.interval = 200ms;
  asio::io_context push_io;
  auto pusher = start_pyroscope_push(push_io, options, [&] {
    std::lock_guard lock(mutex);
    return report;
  });
  {
    std::lock_guard lock(mutex);
    report.hotspots[1].count += 2;  // fsync grows after the first snapshot
    report.hotspots[1].total_ns += 4000000;
  }
  std::thread push_thread([&] { push_io.run_for(10s); });
  auto future = captured.get_future();
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
  http::request<http::string_body> request = future.get();
  // The pusher counts the push once it has read the answer.
  for (int attempt = 0; attempt < 500 && pusher->pushes_accepted() == 0; ++attempt)
    std::this_thread::sleep_for(20ms);
  EXPECT_EQ(pusher->pushes_accepted(), 1u);
  asio::post(push_io, [&] { pusher->stop(); });
  push_thread.join();
  fake_pyroscope.join();

  EXPECT_EQ(request.method(), http::verb::post);
  std::string target(request.target());
  EXPECT_TRUE(std::regex_match(
      target,
      std::regex(
          R"(/ingest\?name=demo\.block%7Benv%3Dci%7D&from=\d+&until=\d+&format=pprof&spyName=blockwatch)")))
      << target;
  std::string content_type(request[http::field::content_type]);
  ASSERT_EQ(content_type.rfind("multipart/form-data; boundary=", 0), 0u) << content_type;
  std::string boundary = content_type.substr(content_type.find('=') + 1);
  const std::string& body = request.body();
  EXPECT_NE(body.find("name=\"profile\""), std::string::npos);
  size_t start = body.find("\r\n\r\n") + 4;
  size_t end = body.find("\r\n--" + boundary + "--");
  ASSERT_NE(end, std::string::npos);
  perftools::profiles::Profile profile = parse_pprof(body.substr(start, end - start));
  ASSERT_EQ(profile.sample_size(), 1);  // only the fsync growth since the start
  EXPECT_EQ(profile.sample(0).value(0), 2);
  EXPECT_EQ(profile.sample(0).value(1), 4000000);
}

TEST(PyroscopePush, RejectsNonHttpUrls) {
  asio::io_context io;
  EXPECT_THROW(start_pyroscope_push(io, {.url = "https://pyroscope:4040"}, [] { return Report{}; }),
               std::invalid_argument);
}

}  // namespace
}  // namespace blockwatch::collector
