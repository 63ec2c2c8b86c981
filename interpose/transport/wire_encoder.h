// A small hand-written encoder for the frames of proto/blockwatch.proto, so the
// injected library never links libprotobuf (a target may link its own, of another
// version). It writes the protobuf wire format directly: varints, zigzag-free
// int32/int64 (two's complement, as protoc does for non-sint types), fixed32,
// length-delimited strings and messages, packed repeated uint64. Fields at their
// proto3 default are omitted, as libprotobuf does.
//
// Runs on the sender thread only: it appends to std::string and may allocate.
// Tested against libprotobuf in wire_encoder_test.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "interpose/core/record.h"
#include "interpose/core/task_stats.h"

namespace blockwatch::interpose {

inline constexpr uint32_t kWireMagic = 0x42574348;  // "BWCH"
inline constexpr uint32_t kWireProtocolVersion = 1;
inline constexpr size_t kMaxFrameBytes = 1 << 20;

struct HelloInfo {
  std::string library_version;
  int32_t pid = 0;
  int32_t ppid = 0;
  std::string exe;
  std::vector<std::string> argv;
  std::string hostname;
  int64_t start_unix_ns = 0;
  int64_t monotonic_to_unix_ns = 0;
  int64_t threshold_ns = 0;
  int64_t stall_threshold_ns = 0;
  std::string workers;
  bool forked_child = false;
  struct TaskProbe {
    std::string rule, function, module, refused;
    bool installed = false;
  };
  std::vector<TaskProbe> task_probes;
  std::string task_probes_note;
};

struct ModuleInfo {
  std::string path;
  uint64_t base = 0;
  uint64_t start = 0;
  uint64_t end = 0;
  std::string build_id;  // raw bytes
  uint64_t file_offset = 0;
};

struct CountersInfo {
  uint64_t events_recorded = 0;
  uint64_t dropped_queue_full = 0;
  uint64_t dropped_no_collector = 0;
  uint64_t dropped_too_deep = 0;
  uint64_t stalls_suppressed = 0;
  uint64_t threads_seen = 0;
  uint64_t threads_unwatched = 0;
};

// The interned ids an Event refers to (0 = none), resolved by the sender.
struct EventIds {
  uint64_t thread_name = 0;
  uint64_t stack = 0;
  uint64_t task = 0;
  uint64_t allow_reason = 0;
  uint64_t holder_name = 0;
};

// Appends one length-delimited Frame per call to `out` (the varint byte count,
// then the serialized Frame). Keeps scratch buffers between calls.
class WireEncoder {
 public:
  void hello(const HelloInfo& hello, std::string& out);
  void modules(uint32_t generation, const std::vector<ModuleInfo>& modules, std::string& out);
  void string_def(uint64_t id, std::string_view text, std::string& out);
  void symbol(uint64_t pc, std::string_view function, std::string_view module,
              uint64_t module_offset, std::string& out);
  void stack(uint64_t id, const uint64_t* pcs, size_t pc_count, std::string& out);
  // `monotonic_to_unix_ns` turns the record's CLOCK_MONOTONIC start into Unix time.
  void event(const Record& record, const EventIds& ids, int64_t monotonic_to_unix_ns,
             std::string& out);
  // `tasks` and `task_labels_dropped`: Counters.tasks and .task_labels_dropped.
  void counters(const CountersInfo& counters, std::string& out) { this->counters(counters, {}, 0, out); }
  void counters(const CountersInfo& counters, const std::vector<TaskStatsLine>& tasks,
                uint64_t task_labels_dropped, std::string& out);
  void goodbye(std::string_view reason, int32_t exit_status, std::string& out);

 private:
  // Wraps body_ as Frame field `frame_field` and appends the delimited frame.
  void finish_frame(int frame_field, std::string& out);
  std::string body_;
  std::string nested_;
};

// Low-level appenders, exposed for tests. Each skips a proto3 default value.
namespace proto_wire {
void put_varint(uint64_t value, std::string& out);
void put_tag(int field, int wire_type, std::string& out);
void put_uint(int field, uint64_t value, std::string& out);
void put_int(int field, int64_t value, std::string& out);  // int32 / int64
void put_bool(int field, bool value, std::string& out);
void put_fixed32(int field, uint32_t value, std::string& out);
void put_bytes(int field, std::string_view value, std::string& out);
void put_packed_uint(int field, const uint64_t* values, size_t count, std::string& out);
}  // namespace proto_wire

}  // namespace blockwatch::interpose
