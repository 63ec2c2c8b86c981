// Unit tests of the runtime hooks without the preload: the headers compile, do
// nothing and report "not active"; RAII scopes nest; wrap_task, ThreadPool and the
// Asio helpers run their work; the handler-tracking label logic picks the right
// site. The bw_* symbols are weak and unresolved here, so every call is skipped.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/local/connect_pair.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <string>
#include <thread>

#include "blockwatch/asio.hpp"
#include "blockwatch/blockwatch.hpp"
#include "blockwatch/thread_pool.hpp"

namespace {

using blockwatch::asio_tracking::format_label;
using blockwatch::asio_tracking::kLabelBytes;
using blockwatch::asio_tracking::Site;

TEST(HooksWithoutPreload, NotActiveAndSymbolsAbsent) {
  EXPECT_FALSE(blockwatch::Active());
  EXPECT_TRUE(bw_task_begin == nullptr);
  EXPECT_EQ(blockwatch_set_event_callback(nullptr, nullptr), -1);
  EXPECT_EQ(blockwatch_flush(10), 0);
}

TEST(HooksWithoutPreload, ScopesNestAndRunTheirBody) {
  int steps = 0;
  {
    blockwatch::WorkerScope worker;
    blockwatch::TaskScope outer("outer");
    {
      blockwatch::TaskScope inner("inner");
      blockwatch::AllowBlocking allow("test reason");
      ++steps;
    }
    ++steps;
  }
  EXPECT_EQ(steps, 2);
  static_assert(noexcept(blockwatch::TaskScope("x")));
  static_assert(noexcept(blockwatch::AllowBlocking("x")));
  static_assert(!std::is_copy_constructible_v<blockwatch::TaskScope>);
}

TEST(HooksWithoutPreload, WrapTaskForwardsArgumentsAndResult) {
  auto add = blockwatch::wrap_task("add", [](int a, int b) { return a + b; });
  EXPECT_EQ(add(2, 3), 5);
  std::string moved = "payload";
  auto take = blockwatch::wrap_task("take", [s = std::move(moved)]() { return s.size(); });
  EXPECT_EQ(take(), 7u);
}

TEST(ThreadPool, RunsEveryJobOnNamedThreads) {
  std::atomic<int> done{0};
  std::atomic<bool> named_right{true};
  {
    blockwatch::ThreadPool pool(2, "unitpool");
    for (int i = 0; i < 50; ++i) {
      pool.submit("count", [&] {
        char name[16] = {};
        pthread_getname_np(pthread_self(), name, sizeof name);
        if (std::strncmp(name, "unitpool-", 9) != 0) named_right = false;
        done.fetch_add(1);
      });
    }
    pool.wait_idle();
    EXPECT_EQ(done.load(), 50);
    pool.submit("throws", [] { throw std::runtime_error("job error"); });
    pool.submit("after", [&] { done.fetch_add(1); });
  }  // destructor drains the queue
  EXPECT_EQ(done.load(), 51);
  EXPECT_TRUE(named_right.load());
}

TEST(AsioWorkers, RunWorkersRunsHandlersOnNamedThreads) {
  boost::asio::io_context io;
  std::atomic<int> handled{0};
  std::atomic<bool> named_right{true};
  for (int i = 0; i < 20; ++i) {
    boost::asio::post(io, [&] {
      char name[16] = {};
      pthread_getname_np(pthread_self(), name, sizeof name);
      if (std::strncmp(name, "unitio-", 7) != 0) named_right = false;
      handled.fetch_add(1);
    });
  }
  blockwatch::asio::run_workers(io, 3, "unitio");
  EXPECT_EQ(handled.load(), 20);
  EXPECT_TRUE(named_right.load());
}

TEST(AsioWorkers, HandlerExceptionReachesTheCaller) {
  boost::asio::io_context io;
  boost::asio::post(io, [] { throw std::runtime_error("handler failed"); });
  EXPECT_THROW(blockwatch::asio::run_workers(io, 1, "unitthrow"), std::runtime_error);
}

TEST(AsioTrackingLabel, SourceLocationUsesBasenameLineAndFunction) {
  Site site;
  site.file = "/src/service/demo_service.cc";
  site.line = 42;
  site.func = "handle_request";
  site.object_type = "io_context";
  site.op_name = "post";
  char label[kLabelBytes];
  format_label(site, label);
  EXPECT_STREQ(label, "demo_service.cc:42 handle_request");
}

TEST(AsioTrackingLabel, WithoutLocationUsesObjectAndOperation) {
  Site site;
  site.object_type = "socket";
  site.op_name = "async_receive";
  char label[kLabelBytes];
  format_label(site, label);
  EXPECT_STREQ(label, "socket.async_receive");
}

TEST(AsioTrackingLabel, LongLabelsAreTruncatedNotOverrun) {
  std::string long_name(300, 'f');
  Site site;
  site.file = "x.cc";
  site.line = 1;
  site.func = long_name.c_str();
  char label[kLabelBytes + 8];
  std::memset(label, '#', sizeof label);
  format_label(site, label);
  EXPECT_EQ(std::strlen(label), kLabelBytes - 1);
  EXPECT_EQ(label[kLabelBytes], '#');  // nothing written past the buffer
}

}  // namespace

namespace tracking_rules {

using blockwatch::asio_tracking::completion;
using blockwatch::asio_tracking::creation;
using blockwatch::asio_tracking::tracked_handler;

struct FakeOperation : tracked_handler {};

TEST(AsioTrackingCreation, OutermostUserLocationNamesTheHandler) {
  FakeOperation op;
  {
    BLOCKWATCH_ASIO_LOCATION("start_session");
    BOOST_ASIO_HANDLER_LOCATION(("/usr/include/boost/asio/impl/read.hpp", 10, "async_read"));
    creation(op, "socket", "async_receive");
  }
  EXPECT_STREQ(op.bw_site_.func, "start_session");
  EXPECT_STREQ(op.bw_site_.file, __FILE__);
  EXPECT_EQ(blockwatch::asio_tracking::tls_location_top, nullptr);  // scopes popped
}

TEST(AsioTrackingCreation, NoLocationFallsBackToOperationName) {
  FakeOperation op;
  creation(op, "io_context", "post");
  EXPECT_EQ(op.bw_site_.file, nullptr);
  char label[blockwatch::asio_tracking::kLabelBytes];
  blockwatch::asio_tracking::format_label(op.bw_site_, label);
  EXPECT_STREQ(label, "io_context.post");
}

TEST(AsioTrackingCreation, ComposedOperationStepInheritsTheInvokingLabel) {
  FakeOperation first;
  {
    BLOCKWATCH_ASIO_LOCATION("read_request");
    creation(first, "socket", "async_receive");
  }
  FakeOperation next_step;
  FakeOperation plain_post;
  {
    completion running(first);
    running.invocation_begin();
    {
      BOOST_ASIO_HANDLER_LOCATION(("/usr/include/boost/asio/impl/read.hpp", 20, "async_read"));
      creation(next_step, "socket", "async_receive");
    }
    creation(plain_post, "io_context", "post");  // not a composed step: no inheritance
    running.invocation_end();
  }
  EXPECT_STREQ(next_step.bw_site_.func, "read_request");
  EXPECT_EQ(plain_post.bw_site_.file, nullptr);
  EXPECT_EQ(blockwatch::asio_tracking::tls_invoking_site, nullptr);
}

}  // namespace tracking_rules

namespace real_asio {

// The label a handler would get, read from inside the handler.
std::string current_label() {
  const blockwatch::asio_tracking::Site* site = blockwatch::asio_tracking::tls_invoking_site;
  if (site == nullptr) return "<no site>";
  char label[blockwatch::asio_tracking::kLabelBytes];
  blockwatch::asio_tracking::format_label(*site, label);
  return label;
}

TEST(AsioTrackingInAsio, PostedHandlersCarryLocationOrOperation) {
  boost::asio::io_context io;
  std::string located, plain;
  int located_line = 0;
  {
    located_line = __LINE__ + 1;
    BLOCKWATCH_ASIO_LOCATION("located_handler");
    boost::asio::post(io, [&] { located = current_label(); });
  }
  boost::asio::post(io, [&] { plain = current_label(); });
  io.run();
  EXPECT_EQ(located, "hooks_unit_test.cc:" + std::to_string(located_line) + " located_handler");
  EXPECT_EQ(plain, "io_context.execute");  // Boost 1.74 posts through execute()
  EXPECT_EQ(blockwatch::asio_tracking::tls_invoking_site, nullptr);
}

// async_read is a composed operation: its second async_read_some is created inside
// the first one's invocation, under Asio's own location; it keeps the user's label.
TEST(AsioTrackingInAsio, ComposedReadKeepsTheStartingLabel) {
  boost::asio::io_context io;
  boost::asio::local::stream_protocol::socket reader(io), writer(io);
  boost::asio::local::connect_pair(reader, writer);
  char buffer[10];
  std::string label_at_completion;
  int located_line = 0;
  {
    located_line = __LINE__ + 1;
    BLOCKWATCH_ASIO_LOCATION("read_request");
    boost::asio::async_read(
        reader, boost::asio::buffer(buffer),
        [&](const boost::system::error_code&, size_t) { label_at_completion = current_label(); });
  }
  boost::asio::write(writer, boost::asio::buffer("01234", 5));
  io.poll();  // the first half arrives: async_read issues its next async_read_some
  EXPECT_TRUE(label_at_completion.empty());
  boost::asio::write(writer, boost::asio::buffer("56789", 5));
  io.run();
  EXPECT_EQ(label_at_completion,
            "hooks_unit_test.cc:" + std::to_string(located_line) + " read_request");
}

}  // namespace real_asio
