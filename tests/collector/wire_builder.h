// Test helper: writes wire streams with libprotobuf, the way the injected library
// does by hand, so collector tests can feed exact, valid (or deliberately broken)
// frame sequences to the decoder, the aggregator and a live socket.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "proto/blockwatch.pb.h"

namespace blockwatch::testing {

// Appends one length-delimited frame to *out.
inline void append_frame(const wire::Frame& frame, std::string* out) {
  std::string body = frame.SerializeAsString();
  uint64_t length = body.size();
  do {
    unsigned char byte = length & 0x7f;
    length >>= 7;
    if (length != 0) byte |= 0x80;
    out->push_back(static_cast<char>(byte));
  } while (length != 0);
  out->append(body);
}

class WireBuilder {
 public:
  std::string bytes;

  WireBuilder& hello(int pid, const std::string& exe = "/usr/bin/demo", uint32_t version = 1,
                     uint32_t magic = 0x42574348, int64_t stall_threshold_ns = 0) {
    wire::Frame f;
    auto* h = f.mutable_hello();
    h->set_magic(magic);
    h->set_protocol_version(version);
    h->set_pid(pid);
    h->set_ppid(1);
    h->set_exe(exe);
    h->add_argv(exe);
    h->set_hostname("testhost");
    h->set_threshold_ns(1'000'000);
    h->set_stall_threshold_ns(stall_threshold_ns);
    append_frame(f, &bytes);
    return *this;
  }
  WireBuilder& string(uint64_t id, const std::string& text) {
    wire::Frame f;
    f.mutable_string()->set_id(id);
    f.mutable_string()->set_text(text);
    append_frame(f, &bytes);
    return *this;
  }
  WireBuilder& symbol(uint64_t pc, const std::string& function,
                      const std::string& module = "/usr/bin/demo") {
    wire::Frame f;
    auto* s = f.mutable_symbol();
    s->set_pc(pc);
    s->set_function(function);
    s->set_module(module);
    s->set_module_offset(pc & 0xfffff);
    append_frame(f, &bytes);
    return *this;
  }
  WireBuilder& stack(uint64_t id, const std::vector<uint64_t>& pcs) {
    wire::Frame f;
    f.mutable_stack()->set_id(id);
    for (uint64_t pc : pcs) f.mutable_stack()->add_pcs(pc);
    append_frame(f, &bytes);
    return *this;
  }
  // An event; fields beyond the common ones are set by the caller through `extra`.
  WireBuilder& event(wire::Kind kind, int64_t duration_ns, uint64_t stack_id,
                     uint64_t thread_name = 0, int tid = 100, uint64_t task = 0,
                     uint64_t allow_reason = 0, uint64_t holder_name = 0) {
    wire::Frame f;
    auto* e = f.mutable_event();
    e->set_kind(kind);
    e->set_start_unix_ns(1'700'000'000'000'000'000 + next_start_ns_);
    next_start_ns_ += 1000;
    e->set_duration_ns(duration_ns);
    e->set_tid(tid);
    e->set_thread_name(thread_name);
    e->set_stack(stack_id);
    e->set_task(task);
    e->set_allow_reason(allow_reason);
    e->set_holder_name(holder_name);
    e->set_fd(-1);
    e->set_function(kind == wire::KIND_FSYNC ? "fsync" : "pthread_mutex_lock");
    append_frame(f, &bytes);
    return *this;
  }
  WireBuilder& frame(const wire::Frame& f) {
    append_frame(f, &bytes);
    return *this;
  }
  WireBuilder& counters(uint64_t recorded, uint64_t dropped_queue_full) {
    wire::Frame f;
    f.mutable_counters()->set_events_recorded(recorded);
    f.mutable_counters()->set_dropped_queue_full(dropped_queue_full);
    append_frame(f, &bytes);
    return *this;
  }
  WireBuilder& goodbye(const std::string& reason = "exit", int status = 0) {
    wire::Frame f;
    f.mutable_goodbye()->set_reason(reason);
    f.mutable_goodbye()->set_exit_status(status);
    append_frame(f, &bytes);
    return *this;
  }

 private:
  int64_t next_start_ns_ = 0;
};

}  // namespace blockwatch::testing
