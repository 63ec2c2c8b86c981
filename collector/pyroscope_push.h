// Optional push of blocked time to Grafana Pyroscope (`blockwatchd --pyroscope-url`):
// every interval, the pprof profile of what was added since the previous push is
// POSTed to URL/ingest?name=APP&from=S&until=S&format=pprof as multipart/form-data
// (part "profile"), the form Pyroscope's own Go client uses. Plain http:// only.
// A failing push is logged to stderr and the next one covers the lost interval too.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "collector/report_model.h"

namespace blockwatch::collector {

struct PyroscopePushOptions {
  std::string url;  // "http://127.0.0.1:4040"
  std::string application_name = "blockwatch.block";
  std::chrono::milliseconds interval{std::chrono::seconds(15)};
  std::chrono::milliseconds timeout{std::chrono::seconds(10)};
};

class PyroscopePusher {
 public:
  virtual ~PyroscopePusher() = default;
  virtual void stop() = 0;
  virtual uint64_t pushes_accepted() const = 0;  // 2xx answers so far
  virtual uint64_t pushes_failed() const = 0;
};

// Throws std::invalid_argument when `url` is not http://HOST[:PORT][/PREFIX].
std::shared_ptr<PyroscopePusher> start_pyroscope_push(boost::asio::io_context& io,
                                                      PyroscopePushOptions options,
                                                      std::function<Report()> snapshot);

}  // namespace blockwatch::collector
