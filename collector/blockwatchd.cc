// blockwatchd: the long-lived collector for staging. Many processes connect at
// once (Unix socket, optionally TCP on loopback); each is reported per process and
// merged by executable. --save keeps each stream; --http serves the live
// dashboard, /api/report, /metrics and pprof (collector/http_server.h);
// --pyroscope-url pushes blocked time to Grafana Pyroscope (collector/pyroscope_push.h).
// On SIGINT or SIGTERM it closes every stream and writes the --report files.
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <sstream>

#include "collector/cli_common.h"
#include "collector/http_server.h"
#include "collector/ingest.h"
#include "collector/pyroscope_push.h"
#include "collector/report_html.h"
#include "collector/report_json.h"
#include "collector/symbolizer.h"

namespace blockwatch::collector {
namespace {

void print_help() {
  std::cout
      << R"(usage: blockwatchd --listen unix:PATH [--listen tcp:127.0.0.1:PORT] [--config FILE]
                   [--save DIR] [--http ADDR] [--report FILE]... [--fail-on RULE]...
                   [--pyroscope-url URL [--pyroscope-name NAME] [--pyroscope-interval DUR]]

The long-lived blockwatch collector. Point processes at it with
BLOCKWATCH_COLLECTOR=unix:PATH and LD_PRELOAD=libblockwatch.so.
  --listen unix:PATH      Unix socket (its directory is created mode 0700); repeatable
  --listen tcp:[HOST:]PORT
                          TCP listener; without HOST it binds 127.0.0.1 (loopback only)
  --save DIR              keep each process's stream as DIR/stream-N-pidP.bwrec
                          (`blockwatch report DIR` re-renders them)
  --http ADDR             live dashboard, /api/report, /metrics, /debug/pprof/block
                          (ADDR: 127.0.0.1:PORT; loopback unless an address is given)
  --pyroscope-url URL     push blocked time to Grafana Pyroscope (http://HOST:4040):
                          POST URL/ingest with a pprof profile of what was added since
                          the previous push (docs/formats.md)
  --pyroscope-name NAME   Pyroscope application name, may carry labels
                          (default blockwatch.block; e.g. blockwatch.block{env=staging})
  --pyroscope-interval DUR  time between pushes (default 15s)
  --report FILE           written when blockwatchd stops (SIGINT/SIGTERM); its format
                          and directory are checked at start
Exit status: 2 on a bad option, config or report path (found before listening) or
when a report could not be written at the end; 0 otherwise.
)";
}

struct DaemonOptions {
  FlagSettings flags;
  std::string config_path;
  std::vector<std::string> unix_paths;
  std::vector<std::pair<std::string, uint16_t>> tcp;
  std::string save_dir, http;
  std::string pyroscope_url, pyroscope_name = "blockwatch.block";
  int64_t pyroscope_interval_ns = 15'000'000'000;
};

bool parse_listen(const std::string& value, DaemonOptions* o, std::string* error) {
  if (value.rfind("unix:", 0) == 0 && value.size() > 5) {
    o->unix_paths.push_back(value.substr(5));
    return true;
  }
  // tcp:PORT (no host) binds loopback: exposing the collector takes an explicit host.
  size_t colon = value.rfind(':');
  if (value.rfind("tcp:", 0) == 0 && colon >= 3 && colon + 1 < value.size()) {
    std::string host = colon > 4 ? value.substr(4, colon - 4) : "127.0.0.1";
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    std::string port_text = value.substr(colon + 1);
    char* end = nullptr;
    long port = std::strtol(port_text.c_str(), &end, 10);
    if (*end == '\0' && port >= 0 && port <= 65535 && !host.empty()) {
      o->tcp.emplace_back(host, static_cast<uint16_t>(port));
      return true;
    }
  }
  *error = "--listen " + value + ": expected unix:PATH or tcp:HOST:PORT";
  return false;
}

// One daemon-only flag at args[*i] into *o; *error when it is none of them.
void parse_daemon_flag(const std::vector<std::string>& args, size_t* i, DaemonOptions* o,
                       std::string* error) {
  std::string value;
  if (take_flag_value(args, i, "--listen", &value, error)) {
    if (error->empty()) parse_listen(value, o, error);
  } else if (take_flag_value(args, i, "--save", &value, error)) {
    o->save_dir = value;
  } else if (take_flag_value(args, i, "--http", &value, error)) {
    o->http = value;
  } else if (take_flag_value(args, i, "--pyroscope-url", &value, error)) {
    o->pyroscope_url = value;
  } else if (take_flag_value(args, i, "--pyroscope-name", &value, error)) {
    o->pyroscope_name = value;
  } else if (take_flag_value(args, i, "--pyroscope-interval", &value, error)) {
    if (error->empty() && (!parse_duration(value, &o->pyroscope_interval_ns) ||
                           o->pyroscope_interval_ns < 1'000'000)) {
      *error = "--pyroscope-interval " + value + ": expected a duration of at least 1ms";
    }
  } else {
    *error = "unknown argument " + args[*i];
  }
}

// Parses the command line into *o. Returns an exit status when blockwatchd should
// stop right away (--help, --version: 0), nothing when it should run; errors go
// to *error.
std::optional<int> parse_daemon_args(const std::vector<std::string>& args, DaemonOptions* o,
                                     std::string* error) {
  for (size_t i = 0; i < args.size() && error->empty(); ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      print_help();
      return 0;
    }
    if (args[i] == "--version") {
      std::cout << "blockwatchd " << kBlockwatchVersion << '\n';
      return 0;
    }
    if (parse_common_flag(args, &i, &o->flags, &o->config_path, error)) continue;
    parse_daemon_flag(args, &i, o, error);
  }
  if (error->empty() && o->unix_paths.empty() && o->tcp.empty()) {
    *error = "give at least one --listen";
  }
  return std::nullopt;
}

// Config, rules and baseline, and the --save directory.
void prepare_daemon(const DaemonOptions& o, Pipeline* pipeline, std::string* error) {
  if (error->empty()) prepare_pipeline(o.flags, o.config_path, pipeline, error);
  // Checked now, not when blockwatchd stops hours later.
  if (error->empty()) check_report_paths(pipeline->settings.reports, false, error);
  if (error->empty() && !o.save_dir.empty()) {
    struct stat st;
    if (::mkdir(o.save_dir.c_str(), 0700) != 0 && errno != EEXIST) {
      *error = "--save " + o.save_dir + ": cannot create: " + std::strerror(errno);
    } else if (::stat(o.save_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      *error = "--save " + o.save_dir + ": not a directory";
    } else if (::access(o.save_dir.c_str(), W_OK | X_OK) != 0) {
      *error = "--save " + o.save_dir + ": cannot write: " + std::strerror(errno);
    }
  }
}

// Each listener's address goes to `log`; printed once every service has started,
// so a setup error is the only line blockwatchd prints.
void start_listeners(const DaemonOptions& o, IngestServer& server, std::ostream& log,
                     std::string* error) {
  for (const auto& path : o.unix_paths) {
    if (!server.listen_unix(path, error)) return;
    log << "blockwatchd: listening on unix:" << path << '\n';
  }
  for (const auto& [host, port] : o.tcp) {
    if (!server.listen_tcp(host, port, error)) return;
    log << "blockwatchd: listening on tcp:" << host << ":" << server.tcp_port() << '\n';
  }
}

std::string report_json_text(Aggregator& aggregator, const Pipeline& pipeline) {
  Report report;
  {
    std::lock_guard lock(aggregator.mutex());
    report = aggregator.report();
  }
  finish_report(pipeline, &report);
  std::stringstream out;
  write_json_report(report, out);
  return out.str();
}

// --http and --pyroscope-url: what runs beside ingestion on the io_context, and
// is stopped with it.
struct LiveServices {
  std::shared_ptr<HttpServer> http;
  std::shared_ptr<PyroscopePusher> pyroscope;
  void stop() {
    if (http) http->stop();
    if (pyroscope) pyroscope->stop();
  }
};

std::shared_ptr<HttpServer> start_http(boost::asio::io_context& io, Aggregator& aggregator,
                                       const Pipeline& pipeline, const std::string& address,
                                       std::ostream& log, std::string* error) {
  HttpContent content;
  content.snapshot = [&aggregator] {
    Report r;
    std::lock_guard lock(aggregator.mutex());
    r = aggregator.report();
    return r;
  };
  content.report_json = [&] { return report_json_text(aggregator, pipeline); };
  content.html_page = [] { return live_dashboard_html(); };
  try {
    auto http = start_http_server(io, parse_http_listen_address(address), content);
    log << "blockwatchd: http on " << http->local_endpoint() << '\n';
    return http;
  } catch (const std::exception& e) {
    *error = "--http " + address + ": " + e.what();
    return nullptr;
  }
}

std::shared_ptr<PyroscopePusher> start_pyroscope(boost::asio::io_context& io,
                                                 Aggregator& aggregator, const DaemonOptions& o,
                                                 std::ostream& log, std::string* error) {
  PyroscopePushOptions push_options;
  push_options.url = o.pyroscope_url;
  push_options.application_name = o.pyroscope_name;
  push_options.interval = std::chrono::milliseconds(o.pyroscope_interval_ns / 1'000'000);
  try {
    // The snapshot runs on the io_context's thread, like the ingestion.
    auto pyroscope = start_pyroscope_push(io, push_options, [&aggregator] {
      std::lock_guard lock(aggregator.mutex());
      return aggregator.report();
    });
    log << "blockwatchd: pushing to Pyroscope at " << o.pyroscope_url << " as " << o.pyroscope_name
        << '\n';
    return pyroscope;
  } catch (const std::exception& e) {
    *error = "--pyroscope-url " + o.pyroscope_url + ": " + e.what();
    return nullptr;
  }
}

void start_live_services(boost::asio::io_context& io, Aggregator& aggregator,
                         const Pipeline& pipeline, const DaemonOptions& o, LiveServices* services,
                         std::ostream& log, std::string* error) {
  if (error->empty() && !o.http.empty()) {
    services->http = start_http(io, aggregator, pipeline, o.http, log, error);
  }
  if (error->empty() && !o.pyroscope_url.empty()) {
    services->pyroscope = start_pyroscope(io, aggregator, o, log, error);
  }
}

// Runs until SIGINT or SIGTERM (caught by `signals`, set up before blockwatchd
// said it was listening), then lets closed connections end their streams.
void serve_until_signal(boost::asio::io_context& io, boost::asio::signal_set& signals,
                        IngestServer& server, LiveServices& services) {
  signals.async_wait([&](const boost::system::error_code&, int) {
    server.close();
    services.stop();
    io.stop();
  });
  io.run();
  io.restart();
  io.poll();
  // The closed connections' streams end once what they sent is decoded (on the
  // decode threads; a symbol lookup may still wait for debuginfod).
  server.wait_until_ended(kStreamDrainTimeout);
}

int daemon_main(const std::vector<std::string>& args) {
  DaemonOptions o;
  std::string error;
  if (std::optional<int> exit_now = parse_daemon_args(args, &o, &error)) return *exit_now;
  Pipeline pipeline;
  prepare_daemon(o, &pipeline, &error);
  if (!error.empty()) {
    std::cerr << "blockwatchd: " << error << '\n';
    return 2;
  }

  boost::asio::io_context io;
  // Before any listener: a SIGTERM right after "listening on" must stop the
  // daemon cleanly (reports written), not kill it with the default action.
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  Aggregator aggregator(pipeline.classifier);
  IngestOptions ingest_options;
  ingest_options.symbolizer = &Symbolizer::shared();
  ingest_options.save_dir = o.save_dir;
  IngestServer server(io, aggregator, ingest_options);
  std::ostringstream started;
  start_listeners(o, server, started, &error);
  LiveServices services;
  start_live_services(io, aggregator, pipeline, o, &services, started, &error);
  if (!error.empty()) {
    std::cerr << "blockwatchd: " << error << '\n';
    return 2;
  }
  std::cerr << started.str() << std::flush;
  serve_until_signal(io, signals, server, services);
  Report report = aggregator.report();
  finish_report(pipeline, &report);
  return write_reports(pipeline, report, nullptr) ? 0 : 2;
}

}  // namespace
}  // namespace blockwatch::collector

// An exception nothing else caught (a config regex, an allocation) ends the
// daemon with a message and status 2 instead of std::terminate's abort.
int main(int argc, char** argv) {
  try {
    return blockwatch::collector::daemon_main(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::cerr << "blockwatchd: " << e.what() << '\n';
    return 2;
  }
}
