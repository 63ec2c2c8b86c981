// The hand-written encoder against libprotobuf: every frame type is encoded by
// WireEncoder and decoded with the generated classes of proto/blockwatch.proto,
// field by field, including negative ints, large varints, empty repeated
// elements and the length-delimited framing of a whole stream.
#include "interpose/transport/wire_encoder.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "proto/blockwatch.pb.h"

namespace blockwatch::interpose {
namespace {

// Splits a byte stream into Frames, as the collector does.
std::vector<wire::Frame> decode_stream(const std::string& bytes) {
  std::vector<wire::Frame> frames;
  size_t pos = 0;
  while (pos < bytes.size()) {
    uint64_t length = 0;
    int shift = 0;
    for (;;) {
      EXPECT_LT(pos, bytes.size());
      if (pos >= bytes.size()) return frames;
      const uint8_t byte = static_cast<uint8_t>(bytes[pos++]);
      length |= uint64_t{byte & 0x7fu} << shift;
      shift += 7;
      if (!(byte & 0x80)) break;
    }
    EXPECT_LE(pos + length, bytes.size());
    wire::Frame frame;
    EXPECT_TRUE(frame.ParseFromArray(bytes.data() + pos, static_cast<int>(length)));
    frames.push_back(frame);
    pos += length;
  }
  return frames;
}

wire::Frame decode_one(const std::string& bytes) {
  auto frames = decode_stream(bytes);
  EXPECT_EQ(frames.size(), 1u);
  return frames.empty() ? wire::Frame() : frames[0];
}

TEST(WireEncoder, Hello) {
  HelloInfo hello;
  hello.library_version = "0.1.0";
  hello.pid = 1234;
  hello.ppid = 1;
  hello.exe = "/usr/bin/prog";
  hello.argv = {"prog", "", "--flag=ü"};
  hello.hostname = "host";
  hello.start_unix_ns = 1'700'000'000'123'456'789;
  hello.monotonic_to_unix_ns = -5;
  hello.threshold_ns = 0;
  hello.stall_threshold_ns = 250'000;
  hello.workers = "main,name:worker-.*";
  hello.forked_child = true;
  std::string out;
  WireEncoder encoder;
  encoder.hello(hello, out);
  const wire::Frame frame = decode_one(out);
  ASSERT_TRUE(frame.has_hello());
  const wire::Hello& h = frame.hello();
  EXPECT_EQ(h.magic(), 0x42574348u);
  EXPECT_EQ(h.protocol_version(), 1u);
  EXPECT_EQ(h.library_version(), "0.1.0");
  EXPECT_EQ(h.pid(), 1234);
  EXPECT_EQ(h.ppid(), 1);
  EXPECT_EQ(h.exe(), "/usr/bin/prog");
  ASSERT_EQ(h.argv_size(), 3);
  EXPECT_EQ(h.argv(0), "prog");
  EXPECT_EQ(h.argv(1), "");
  EXPECT_EQ(h.argv(2), "--flag=ü");
  EXPECT_EQ(h.hostname(), "host");
  EXPECT_EQ(h.start_unix_ns(), 1'700'000'000'123'456'789);
  EXPECT_EQ(h.monotonic_to_unix_ns(), -5);
  EXPECT_EQ(h.threshold_ns(), 0);
  EXPECT_EQ(h.stall_threshold_ns(), 250'000);
  EXPECT_EQ(h.workers(), "main,name:worker-.*");
  EXPECT_TRUE(h.forked_child());
}

TEST(WireEncoder, Modules) {
  std::vector<ModuleInfo> modules(2);
  modules[0] = {"/lib/libc.so.6",
                0x7f0000000000,
                0x7f0000028000,
                0x7f00001bd000,
                std::string("\x01\x00\xff\x7f", 4),
                0x28000};
  modules[1] = {"", 0, 0x1000, 0x2000, "", 0};
  std::string out;
  WireEncoder encoder;
  encoder.modules(3, modules, out);
  const wire::Frame frame = decode_one(out);
  ASSERT_TRUE(frame.has_modules());
  EXPECT_EQ(frame.modules().generation(), 3u);
  ASSERT_EQ(frame.modules().modules_size(), 2);
  const wire::Module& libc = frame.modules().modules(0);
  EXPECT_EQ(libc.path(), "/lib/libc.so.6");
  EXPECT_EQ(libc.base(), 0x7f0000000000u);
  EXPECT_EQ(libc.start(), 0x7f0000028000u);
  EXPECT_EQ(libc.end(), 0x7f00001bd000u);
  EXPECT_EQ(libc.build_id(), std::string("\x01\x00\xff\x7f", 4));
  EXPECT_EQ(libc.file_offset(), 0x28000u);
  EXPECT_EQ(frame.modules().modules(1).start(), 0x1000u);  // an all-default-ish module survives
}

TEST(WireEncoder, StringSymbolStack) {
  std::string out;
  WireEncoder encoder;
  encoder.string_def(7, "worker-1", out);
  encoder.symbol(0xffffffffffffff00u, "ns::f(int)", "/bin/x", 0x1234, out);
  const uint64_t pcs[] = {1, 0x7f0000001234, UINT64_MAX, 127, 128};
  encoder.stack(9, pcs, 5, out);
  const auto frames = decode_stream(out);
  ASSERT_EQ(frames.size(), 3u);
  ASSERT_TRUE(frames[0].has_string());
  EXPECT_EQ(frames[0].string().id(), 7u);
  EXPECT_EQ(frames[0].string().text(), "worker-1");
  ASSERT_TRUE(frames[1].has_symbol());
  EXPECT_EQ(frames[1].symbol().pc(), 0xffffffffffffff00u);
  EXPECT_EQ(frames[1].symbol().function(), "ns::f(int)");
  EXPECT_EQ(frames[1].symbol().module(), "/bin/x");
  EXPECT_EQ(frames[1].symbol().module_offset(), 0x1234u);
  ASSERT_TRUE(frames[2].has_stack());
  EXPECT_EQ(frames[2].stack().id(), 9u);
  ASSERT_EQ(frames[2].stack().pcs_size(), 5);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(frames[2].stack().pcs(i), pcs[i]);
}

TEST(WireEncoder, EventWithEveryField) {
  Record record;
  record.kind = wire::KIND_STALL;
  record.fd_type = wire::FD_SOCKET;
  record.in_task = 1;
  record.stall_sample = 4;
  record.tid = 4321;
  record.holder_tid = 99;
  record.fd = -1;
  record.start_mono_ns = 1'000;
  record.duration_ns = 10'000'000;
  record.address = 0xdeadbeef00;
  record.task_seq = 17;
  record.function = "pthread_mutex_lock";
  record.cpu_ns = 6'000'000;
  record.runqueue_ns = 1'000'000;
  record.minor_faults = 3;
  record.major_faults = 1;
  record.blocked_in = "fsync";
  record.blocked_ns = 2'500'000;
  EventIds ids{11, 12, 13, 14, 15};
  std::string out;
  WireEncoder encoder;
  encoder.event(record, ids, 1'700'000'000'000'000'000, out);
  const wire::Frame frame = decode_one(out);
  ASSERT_TRUE(frame.has_event());
  const wire::Event& e = frame.event();
  EXPECT_EQ(e.kind(), wire::KIND_STALL);
  EXPECT_EQ(e.start_unix_ns(), 1'700'000'000'000'001'000);
  EXPECT_EQ(e.duration_ns(), 10'000'000);
  EXPECT_EQ(e.tid(), 4321);
  EXPECT_EQ(e.thread_name(), 11u);
  EXPECT_EQ(e.stack(), 12u);
  EXPECT_EQ(e.task(), 13u);
  EXPECT_EQ(e.allow_reason(), 14u);
  EXPECT_EQ(e.holder_name(), 15u);
  EXPECT_EQ(e.address(), 0xdeadbeef00u);
  EXPECT_EQ(e.holder_tid(), 99);
  EXPECT_EQ(e.fd(), -1);  // negative int32: ten-byte varint
  EXPECT_EQ(e.fd_type(), wire::FD_SOCKET);
  EXPECT_EQ(e.function(), "pthread_mutex_lock");
  EXPECT_EQ(e.task_seq(), 17u);
  EXPECT_TRUE(e.in_task());
  EXPECT_EQ(e.sample(), 4u);
  EXPECT_EQ(e.cpu_ns(), 6'000'000);
  EXPECT_EQ(e.runqueue_ns(), 1'000'000);
  EXPECT_EQ(e.offcpu_ns(), 3'000'000);
  EXPECT_EQ(e.minor_faults(), 3);
  EXPECT_EQ(e.major_faults(), 1);
  EXPECT_EQ(e.blocked_in(), "fsync");
  EXPECT_EQ(e.blocked_ns(), 2'500'000);
}

TEST(WireEncoder, MinimalEventMatchesLibprotobufBytes) {
  Record record;
  record.kind = wire::KIND_MUTEX;
  record.tid = 5;
  record.fd = 3;
  record.duration_ns = 300;
  record.function = "pthread_mutex_lock";
  std::string out;
  WireEncoder encoder;
  encoder.event(record, EventIds{1, 0, 0, 0, 0}, 0, out);
  wire::Frame expected;
  wire::Event* e = expected.mutable_event();
  e->set_kind(wire::KIND_MUTEX);
  e->set_tid(5);
  e->set_fd(3);
  e->set_duration_ns(300);
  e->set_thread_name(1);
  e->set_function("pthread_mutex_lock");
  const std::string body = expected.SerializeAsString();
  // Same field order as protoc: the bytes are identical, not just equivalent.
  ASSERT_GE(out.size(), body.size());
  EXPECT_EQ(out.substr(out.size() - body.size()), body);
  EXPECT_EQ(static_cast<size_t>(static_cast<uint8_t>(out[0])), body.size());
}

TEST(WireEncoder, CountersAndGoodbye) {
  CountersInfo counters{1, 2, 3, 4, 5, 6, 7};
  std::string out;
  WireEncoder encoder;
  encoder.counters(counters, out);
  encoder.goodbye("exit", -3, out);
  const auto frames = decode_stream(out);
  ASSERT_EQ(frames.size(), 2u);
  ASSERT_TRUE(frames[0].has_counters());
  const wire::Counters& c = frames[0].counters();
  EXPECT_EQ(c.events_recorded(), 1u);
  EXPECT_EQ(c.dropped_queue_full(), 2u);
  EXPECT_EQ(c.dropped_no_collector(), 3u);
  EXPECT_EQ(c.dropped_too_deep(), 4u);
  EXPECT_EQ(c.stalls_suppressed(), 5u);
  EXPECT_EQ(c.threads_seen(), 6u);
  EXPECT_EQ(c.threads_unwatched(), 7u);
  ASSERT_TRUE(frames[1].has_goodbye());
  EXPECT_EQ(frames[1].goodbye().reason(), "exit");
  EXPECT_EQ(frames[1].goodbye().exit_status(), -3);
}

// Counters.tasks: a probe line (named by its rule) and an API label line.
TEST(WireEncoder, CountersCarryTaskStats) {
  TaskStatsLine probe;
  probe.probe_id = 0;
  probe.rule = "boost::asio::detail::scheduler::do_run_one";
  probe.tasks_total = 2051;
  probe.tasks_timed = 130;
  probe.timed_over_1ms = 3;
  probe.max_ns = 3'400'000;
  probe.sum_ns = 9'000'000;
  probe.buckets = {120, 0, 7};
  TaskStatsLine api;
  api.label = "parse";
  api.tasks_total = 5;
  api.tasks_timed = 5;
  api.buckets = {5};
  std::string out;
  WireEncoder encoder;
  encoder.counters(CountersInfo{}, {probe, api}, 4, out);
  const auto frames = decode_stream(out);
  ASSERT_EQ(frames.size(), 1u);
  const wire::Counters& c = frames[0].counters();
  ASSERT_EQ(c.tasks_size(), 2);
  EXPECT_EQ(c.task_labels_dropped(), 4u);
  const wire::TaskStats& p = c.tasks(0);
  EXPECT_EQ(p.rule(), "boost::asio::detail::scheduler::do_run_one");
  EXPECT_EQ(p.tasks_total(), 2051u);
  EXPECT_EQ(p.tasks_timed(), 130u);
  EXPECT_EQ(p.timed_over_1ms(), 3u);
  EXPECT_EQ(p.max_timed_ns(), 3'400'000);
  EXPECT_EQ(p.sum_timed_ns(), 9'000'000);
  EXPECT_EQ(std::vector<uint64_t>(p.buckets().begin(), p.buckets().end()), probe.buckets);
  const wire::TaskStats& a = c.tasks(1);
  EXPECT_EQ(a.rule(), "");
  EXPECT_EQ(a.label(), "parse");
  EXPECT_EQ(a.tasks_total(), 5u);
}

TEST(WireEncoder, LargeFrameLengthPrefix) {
  // A body over 127 bytes needs a multi-byte varint length in front of the frame.
  std::string out;
  WireEncoder encoder;
  encoder.string_def(1, std::string(300, 'x'), out);
  const wire::Frame frame = decode_one(out);
  EXPECT_EQ(frame.string().text(), std::string(300, 'x'));
  EXPECT_NE(static_cast<uint8_t>(out[0]) & 0x80, 0);
}

TEST(WireVarint, Boundaries) {
  for (uint64_t value : {uint64_t{0}, uint64_t{1}, uint64_t{127}, uint64_t{128}, uint64_t{16383},
                         uint64_t{16384}, UINT64_MAX}) {
    std::string out;
    proto_wire::put_varint(value, out);
    google::protobuf::io::CodedInputStream input(reinterpret_cast<const uint8_t*>(out.data()),
                                                 static_cast<int>(out.size()));
    uint64_t decoded = 0;
    ASSERT_TRUE(input.ReadVarint64(&decoded));
    EXPECT_EQ(decoded, value);
    EXPECT_EQ(input.CurrentPosition(), static_cast<int>(out.size()));
  }
}

}  // namespace
}  // namespace blockwatch::interpose
