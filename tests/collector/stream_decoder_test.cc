// Unit tests of the wire stream decoder: valid streams resolve their interning;
// every kind of malformed stream is rejected with a reason and keeps what was
// decoded before; byte-at-a-time feeding gives the same result as one block.
#include "collector/stream_decoder.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "tests/collector/wire_builder.h"

namespace blockwatch::collector {
namespace {

using testing::WireBuilder;

WireBuilder valid_stream() {
  WireBuilder w;
  w.hello(42)
      .string(1, "worker-0")
      .string(2, "handler:/api")
      .string(3, "holder-thread")
      .symbol(0x1000, "pthread_mutex_lock", "/lib/libc.so.6")
      .symbol(0x2000, "app::handle()")
      .symbol(0x3000, "")
      .stack(7, {0x1000, 0x2000, 0x3000})
      .event(wire::KIND_MUTEX, 5'000'000, 7, 1, 100, 2, 0, 3)
      .event(wire::KIND_FSYNC, 2'000'000, 0, 1)
      .counters(2, 5)
      .goodbye("exit", 0);
  return w;
}

TEST(StreamDecoder, ResolvesInterning) {
  DecodedStream out;
  ASSERT_TRUE(decode_bytes(valid_stream().bytes, &out)) << out.error;
  EXPECT_EQ(out.hello.pid(), 42);
  EXPECT_EQ(out.streams, 1);
  ASSERT_EQ(out.events.size(), 2u);
  const ResolvedEvent& e = out.events[0];
  EXPECT_EQ(e.kind, "mutex");
  EXPECT_EQ(e.thread_name, "worker-0");
  EXPECT_EQ(e.task, "handler:/api");
  EXPECT_EQ(e.holder_name, "holder-thread");
  EXPECT_EQ(e.allow_reason, "");
  ASSERT_EQ(e.stack.size(), 3u);
  EXPECT_EQ(e.stack[0].function, "pthread_mutex_lock");
  EXPECT_EQ(e.stack[0].module, "/lib/libc.so.6");
  EXPECT_EQ(e.stack[1].function, "app::handle()");
  EXPECT_EQ(e.stack[2].function, "0x3000");  // unknown names show the address
  EXPECT_EQ(e.stack[2].pc, 0x3000u);
  EXPECT_EQ(out.events[1].kind, "fsync");
  EXPECT_TRUE(out.events[1].stack.empty());
  EXPECT_TRUE(out.has_counters);
  EXPECT_EQ(out.counters.dropped_queue_full(), 5u);
  EXPECT_TRUE(out.goodbye);
  EXPECT_EQ(out.goodbye_frame.reason(), "exit");
}

class CountingHandler : public StreamHandler {
 public:
  int events = 0;
  void on_event(const wire::Event&, const EventRefs&) override { ++events; }
};

TEST(StreamDecoder, ByteAtATimeMatchesOneBlock) {
  std::string bytes = valid_stream().bytes;
  CountingHandler handler;
  StreamDecoder decoder(&handler);
  for (char c : bytes) ASSERT_TRUE(decoder.feed(&c, 1)) << decoder.error();
  EXPECT_TRUE(decoder.finish()) << decoder.error();
  EXPECT_EQ(handler.events, 2);
  EXPECT_EQ(decoder.bytes_accepted(), bytes.size());
}

// Decodes `bytes`, expects a rejection whose reason contains `reason`, and returns
// how many events were delivered before it.
size_t expect_rejected(const std::string& bytes, const std::string& reason) {
  DecodedStream out;
  EXPECT_FALSE(decode_bytes(bytes, &out));
  EXPECT_NE(out.error.find(reason), std::string::npos) << "error was: " << out.error;
  return out.events.size();
}

TEST(StreamDecoder, RejectsHelloNotFirst) {
  WireBuilder w;
  w.string(1, "x").hello(1);
  expect_rejected(w.bytes, "first frame is not a Hello");
}

TEST(StreamDecoder, RejectsBadMagicAndVersion) {
  expect_rejected(WireBuilder().hello(1, "/x", 1, 0xdeadbeef).bytes, "bad magic");
  expect_rejected(WireBuilder().hello(1, "/x", 2).bytes, "unsupported protocol_version 2");
}

TEST(StreamDecoder, RejectsUndefinedReferencesAndKeepsEarlierEvents) {
  WireBuilder w = valid_stream();
  w.event(wire::KIND_MUTEX, 1, 99);  // stack 99 never defined
  EXPECT_EQ(expect_rejected(w.bytes, "undefined stack 99"), 2u);

  WireBuilder s;
  s.hello(1).event(wire::KIND_SLEEP, 1, 0, 5);
  expect_rejected(s.bytes, "thread_name references undefined string 5");

  WireBuilder p;
  p.hello(1).stack(3, {0x42});
  expect_rejected(p.bytes, "no Symbol or Module defined");
}

// A pc no Symbol frame named, inside an announced module's executable segment, is
// that module's offset (the collector symbolizes it; here without a symbolizer).
TEST(StreamDecoder, ResolvesPcsWithoutSymbolFromModules) {
  wire::Frame modules;
  wire::Module* m = modules.mutable_modules()->add_modules();
  m->set_path("/usr/bin/demo");
  m->set_base(0x10000);
  m->set_start(0x11000);
  m->set_end(0x12000);
  WireBuilder w;
  w.hello(1)
      .frame(modules)
      .string(1, "worker-0")
      .stack(3, {0x11234})
      .event(wire::KIND_SLEEP, 5, 3, 1);
  DecodedStream out;
  ASSERT_TRUE(decode_bytes(w.bytes, &out)) << out.error;
  ASSERT_EQ(out.events.size(), 1u);
  ASSERT_EQ(out.events[0].stack.size(), 1u);
  EXPECT_EQ(out.events[0].stack[0].module, "/usr/bin/demo");
  EXPECT_EQ(out.events[0].stack[0].offset, 0x1234u);
  EXPECT_EQ(out.events[0].stack[0].function, "0x11234");
}

TEST(StreamDecoder, RejectsOversizedFrameBeforeBuffering) {
  std::string bytes = WireBuilder().hello(1).bytes;
  bytes += "\x80\x80\x80\x01";  // length 2^21: over 1 MiB
  expect_rejected(bytes, "exceeds");
  // Exactly one byte over the limit, announced in three bytes.
  std::string over = WireBuilder().hello(1).bytes;
  uint32_t length = kMaxFrameBytes + 1;
  over.push_back(static_cast<char>((length & 0x7f) | 0x80));
  over.push_back(static_cast<char>(((length >> 7) & 0x7f) | 0x80));
  over.push_back(static_cast<char>(length >> 14));
  expect_rejected(over, "exceeds");
}

TEST(StreamDecoder, RejectsGarbageAndTruncation) {
  std::string garbage = WireBuilder().hello(1).bytes + std::string("\x05\xff\xff\xff\xff\xff", 6);
  expect_rejected(garbage, "not a valid Frame");
  std::string full = valid_stream().bytes;
  std::string cut = full.substr(0, full.size() - 3);
  expect_rejected(cut, "truncated");
}

TEST(StreamDecoder, RejectsRedefinitionAndSecondHelloOnASocket) {
  WireBuilder w;
  w.hello(1).string(1, "a").string(1, "b");
  expect_rejected(w.bytes, "redefined");

  WireBuilder twice;
  twice.hello(1).hello(2);
  CountingHandler handler;
  StreamDecoder socket_decoder(&handler);  // default: one stream per connection
  EXPECT_FALSE(socket_decoder.feed(twice.bytes.data(), twice.bytes.size()));
  EXPECT_NE(socket_decoder.error().find("second Hello"), std::string::npos);
  // Once rejected, a decoder stays rejected.
  EXPECT_FALSE(socket_decoder.feed("", 0));
}

TEST(StreamDecoder, ConcatenatedStreamsHaveFreshIds) {
  WireBuilder a = valid_stream();
  WireBuilder b;
  b.hello(43).string(1, "other-worker").symbol(0x9000, "b::f()").stack(7, {0x9000});
  b.event(wire::KIND_SLEEP, 3, 7, 1);
  DecodedStream out;
  ASSERT_TRUE(decode_bytes(a.bytes + b.bytes, &out)) << out.error;
  EXPECT_EQ(out.streams, 2);
  ASSERT_EQ(out.events.size(), 3u);
  EXPECT_EQ(out.events[2].thread_name, "other-worker");
  ASSERT_EQ(out.events[2].stack.size(), 1u);
  EXPECT_EQ(out.events[2].stack[0].function, "b::f()");
}

TEST(StreamDecoder, DecodeFileReadsWhatWasWritten) {
  std::string path = ::testing::TempDir() + "/decoder_test.bwrec";
  {
    std::ofstream f(path, std::ios::binary);
    f << valid_stream().bytes;
  }
  DecodedStream out;
  ASSERT_TRUE(decode_file(path, &out)) << out.error;
  EXPECT_EQ(out.events.size(), 2u);
  std::remove(path.c_str());
  DecodedStream missing;
  EXPECT_FALSE(decode_file(path, &missing));
  EXPECT_NE(missing.error.find("cannot open"), std::string::npos);
}

TEST(StreamDecoder, EmptyStreamIsNotAnError) {
  DecodedStream out;
  EXPECT_TRUE(decode_bytes("", &out));
  EXPECT_EQ(out.streams, 0);
}

TEST(KindName, NamesEveryKind) {
  EXPECT_STREQ(kind_name(wire::KIND_RWLOCK_WRITE), "rwlock_write");
  EXPECT_STREQ(kind_name(wire::KIND_STALL), "stall");
  EXPECT_STREQ(kind_name(static_cast<wire::Kind>(99)), "unknown");
}

}  // namespace
}  // namespace blockwatch::collector
