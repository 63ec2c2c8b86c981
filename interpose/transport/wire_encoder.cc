// The hand-written protobuf encoder for blockwatch.proto frames (see
// wire_encoder.h). Field numbers here must match proto/blockwatch.proto;
// wire_encoder_test.cc decodes every message with libprotobuf to keep them honest.
// Sender thread only; allocates.
#include "interpose/transport/wire_encoder.h"

#include <cstring>

#include "common/kinds.h"

namespace blockwatch::interpose {
namespace proto_wire {

enum WireType { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void put_varint(uint64_t value, std::string& out) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void put_tag(int field, int wire_type, std::string& out) {
  put_varint((static_cast<uint64_t>(field) << 3) | static_cast<uint64_t>(wire_type), out);
}

void put_uint(int field, uint64_t value, std::string& out) {
  if (value == 0) return;
  put_tag(field, kVarint, out);
  put_varint(value, out);
}

// int32 and int64 share an encoding: a negative int32 is sign-extended to 64 bits.
void put_int(int field, int64_t value, std::string& out) {
  put_uint(field, static_cast<uint64_t>(value), out);
}

void put_bool(int field, bool value, std::string& out) { put_uint(field, value ? 1 : 0, out); }

void put_fixed32(int field, uint32_t value, std::string& out) {
  if (value == 0) return;
  put_tag(field, kFixed32, out);
  for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<char>(value >> shift));
}

void put_bytes(int field, std::string_view value, std::string& out) {
  if (value.empty()) return;
  put_tag(field, kLengthDelimited, out);
  put_varint(value.size(), out);
  out.append(value);
}

// A length-delimited field that is present even when empty (a nested message).
static void put_message(int field, std::string_view value, std::string& out) {
  put_tag(field, kLengthDelimited, out);
  put_varint(value.size(), out);
  out.append(value);
}

static size_t varint_size(uint64_t value) {
  size_t size = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++size;
  }
  return size;
}

void put_packed_uint(int field, const uint64_t* values, size_t count, std::string& out) {
  if (count == 0) return;
  size_t payload = 0;
  for (size_t i = 0; i < count; ++i) payload += varint_size(values[i]);
  put_tag(field, kLengthDelimited, out);
  put_varint(payload, out);
  for (size_t i = 0; i < count; ++i) put_varint(values[i], out);
}

}  // namespace proto_wire

using namespace proto_wire;

static std::string_view c_string(const char* text) {
  return text ? std::string_view(text) : std::string_view();
}

void WireEncoder::finish_frame(int frame_field, std::string& out) {
  // Frame { oneof body { ... frame_field ... } }: tag + length + body.
  const size_t frame_size = varint_size((static_cast<uint64_t>(frame_field) << 3) | 2) +
                            varint_size(body_.size()) + body_.size();
  put_varint(frame_size, out);
  put_message(frame_field, body_, out);
}

void WireEncoder::hello(const HelloInfo& hello, std::string& out) {
  body_.clear();
  put_fixed32(1, kWireMagic, body_);
  put_uint(2, kWireProtocolVersion, body_);
  put_bytes(3, hello.library_version, body_);
  put_int(4, hello.pid, body_);
  put_int(5, hello.ppid, body_);
  put_bytes(6, hello.exe, body_);
  // Repeated strings keep empty elements: an empty argv[i] is still an argument.
  for (const std::string& arg : hello.argv) put_message(7, arg, body_);
  put_bytes(8, hello.hostname, body_);
  put_int(9, hello.start_unix_ns, body_);
  put_int(10, hello.monotonic_to_unix_ns, body_);
  put_int(11, hello.threshold_ns, body_);
  put_int(12, hello.stall_threshold_ns, body_);
  put_bytes(13, hello.workers, body_);
  put_bool(14, hello.forked_child, body_);
  for (const HelloInfo::TaskProbe& probe : hello.task_probes) {
    nested_.clear();
    put_bytes(1, probe.rule, nested_);
    put_bytes(2, probe.function, nested_);
    put_bytes(3, probe.module, nested_);
    put_bool(4, probe.installed, nested_);
    put_bytes(5, probe.refused, nested_);
    put_message(15, nested_, body_);
  }
  put_bytes(16, hello.task_probes_note, body_);
  finish_frame(1, out);
}

void WireEncoder::modules(uint32_t generation, const std::vector<ModuleInfo>& modules,
                          std::string& out) {
  body_.clear();
  put_uint(1, generation, body_);
  for (const ModuleInfo& module : modules) {
    nested_.clear();
    put_bytes(1, module.path, nested_);
    put_uint(2, module.base, nested_);
    put_uint(3, module.start, nested_);
    put_uint(4, module.end, nested_);
    put_bytes(5, module.build_id, nested_);
    put_uint(6, module.file_offset, nested_);
    put_message(2, nested_, body_);
  }
  finish_frame(2, out);
}

void WireEncoder::string_def(uint64_t id, std::string_view text, std::string& out) {
  body_.clear();
  put_uint(1, id, body_);
  put_bytes(2, text, body_);
  finish_frame(3, out);
}

void WireEncoder::symbol(uint64_t pc, std::string_view function, std::string_view module,
                         uint64_t module_offset, std::string& out) {
  body_.clear();
  put_uint(1, pc, body_);
  put_bytes(2, function, body_);
  put_bytes(3, module, body_);
  put_uint(4, module_offset, body_);
  finish_frame(4, out);
}

void WireEncoder::stack(uint64_t id, const uint64_t* pcs, size_t pc_count, std::string& out) {
  body_.clear();
  put_uint(1, id, body_);
  put_packed_uint(2, pcs, pc_count, body_);
  finish_frame(5, out);
}

void WireEncoder::event(const Record& record, const EventIds& ids, int64_t monotonic_to_unix_ns,
                        std::string& out) {
  body_.clear();
  put_uint(1, record.kind, body_);
  put_int(2, record.start_mono_ns + monotonic_to_unix_ns, body_);
  put_int(3, record.duration_ns, body_);
  put_int(4, record.tid, body_);
  put_uint(5, ids.thread_name, body_);
  put_uint(6, ids.stack, body_);
  put_uint(7, ids.task, body_);
  put_uint(8, ids.allow_reason, body_);
  put_uint(9, record.address, body_);
  put_int(10, record.holder_tid, body_);
  put_uint(11, ids.holder_name, body_);
  put_int(12, record.fd, body_);
  put_uint(13, record.fd_type, body_);
  put_bytes(14, c_string(record.function), body_);
  put_uint(15, record.task_seq, body_);
  put_bool(16, record.in_task != 0, body_);
  put_uint(20, record.stall_sample, body_);
  put_int(21, record.cpu_ns, body_);
  put_int(22, record.runqueue_ns, body_);
  // offcpu_ns = duration - cpu - runqueue, never negative (stalls only).
  if (record.kind == kinds::kKindStall) {
    const int64_t offcpu_ns = record.duration_ns - record.cpu_ns - record.runqueue_ns;
    put_int(23, offcpu_ns > 0 ? offcpu_ns : 0, body_);
  }
  put_int(24, record.minor_faults, body_);
  put_int(25, record.major_faults, body_);
  put_bytes(26, c_string(record.blocked_in), body_);
  put_int(27, record.blocked_ns, body_);
  put_uint(28, record.stall_id, body_);
  put_uint(29, record.stall_scope, body_);
  finish_frame(6, out);
}

void WireEncoder::counters(const CountersInfo& counters, const std::vector<TaskStatsLine>& tasks,
                           uint64_t task_labels_dropped, std::string& out) {
  body_.clear();
  put_uint(1, counters.events_recorded, body_);
  put_uint(2, counters.dropped_queue_full, body_);
  put_uint(3, counters.dropped_no_collector, body_);
  put_uint(4, counters.dropped_too_deep, body_);
  put_uint(5, counters.stalls_suppressed, body_);
  put_uint(6, counters.threads_seen, body_);
  put_uint(7, counters.threads_unwatched, body_);
  for (const TaskStatsLine& line : tasks) {
    nested_.clear();
    put_bytes(1, line.rule, nested_);
    put_bytes(2, line.label, nested_);
    put_uint(3, line.tasks_total, nested_);
    put_uint(4, line.tasks_timed, nested_);
    put_uint(5, line.timed_over_1ms, nested_);
    put_int(6, line.max_ns, nested_);
    put_packed_uint(7, line.buckets.data(), line.buckets.size(), nested_);
    put_int(8, line.sum_ns, nested_);
    put_message(8, nested_, body_);
  }
  put_uint(9, task_labels_dropped, body_);
  finish_frame(7, out);
}

void WireEncoder::goodbye(std::string_view reason, int32_t exit_status, std::string& out) {
  body_.clear();
  put_bytes(1, reason, body_);
  put_int(2, exit_status, body_);
  finish_frame(8, out);
}

}  // namespace blockwatch::interpose
