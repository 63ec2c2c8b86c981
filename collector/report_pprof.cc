// The pprof writer: a tiny hand-written protobuf encoder for the handful of
// profile.proto messages a block profile needs (Profile, ValueType, Sample, Label,
// Mapping, Location, Line, Function), then gzip. Hand-written so the collector does
// not carry a second generated schema; tests/reports parses the output with the
// real protobuf library against a schema written from the public spec.
//
// Field numbers are those of github.com/google/pprof/proto/profile.proto.
#include "collector/report_pprof.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace blockwatch::collector {
namespace {

// Appends protobuf wire-format fields to a byte string. Scalar fields equal to
// their proto3 default (0, false) are omitted, as protobuf itself does.
class ProtoWriter {
 public:
  void varint_field(int field, uint64_t value) {
    if (value == 0) return;
    tag(field, 0);
    varint(value);
  }
  void int64_field(int field, int64_t value) { varint_field(field, static_cast<uint64_t>(value)); }
  // Always written: string_table[0] must be present even though it is "".
  void bytes_field(int field, std::string_view bytes) {
    tag(field, 2);
    varint(bytes.size());
    out_.append(bytes);
  }
  void packed_field(int field, const std::vector<uint64_t>& values) {
    if (values.empty()) return;
    ProtoWriter packed;
    for (uint64_t v : values) packed.varint(v);
    bytes_field(field, packed.bytes());
  }
  void message_field(int field, const ProtoWriter& message) { bytes_field(field, message.bytes()); }
  const std::string& bytes() const { return out_; }

 private:
  void tag(int field, int wire_type) { varint((static_cast<uint64_t>(field) << 3) | wire_type); }
  void varint(uint64_t value) {
    while (value >= 0x80) {
      out_.push_back(static_cast<char>((value & 0x7f) | 0x80));
      value >>= 7;
    }
    out_.push_back(static_cast<char>(value));
  }
  std::string out_;
};

// profile.proto field numbers.
enum ProfileField {
  kSampleType = 1,
  kSample = 2,
  kMapping = 3,
  kLocation = 4,
  kFunction = 5,
  kStringTable = 6,
  kTimeNanos = 9,
  kPeriodType = 11,
  kPeriod = 12,
  kComment = 13,
  kDefaultSampleType = 14,
};

// Mappings live at synthetic, disjoint address ranges: hotspots merge processes
// whose load addresses differ, so the only stable address is the module offset.
// address = mapping start + module offset keeps pprof's -addresses view meaningful.
constexpr int kMappingAddressShift = 40;

// An unsymbolized frame is named "module+0xOFFSET" so distinct unknown frames stay
// distinct in pprof's function views.
std::string unknown_function_name(const StackFrame& frame) {
  char offset[32];
  std::snprintf(offset, sizeof offset, "+0x%llx", static_cast<unsigned long long>(frame.offset));
  std::string module =
      frame.module.empty() ? "[unknown]" : frame.module.substr(frame.module.rfind('/') + 1);
  return module + offset;
}

// Interns strings, functions, mappings and locations in first-use order, which
// keeps the encoding deterministic.
class ProfileBuilder {
 public:
  ProfileBuilder() { string_id(""); }

  int64_t string_id(const std::string& text) {
    auto [it, inserted] = strings_.try_emplace(text, static_cast<int64_t>(string_table_.size()));
    if (inserted) string_table_.push_back(text);
    return it->second;
  }

  uint64_t location_id(const StackFrame& frame) {
    uint64_t mapping = mapping_id(frame.module);
    uint64_t function =
        function_id(frame.function.empty() ? unknown_function_name(frame) : frame.function);
    std::string key = std::to_string(mapping) + ':' + std::to_string(frame.offset) + ':' +
                      std::to_string(function);
    auto [it, inserted] = locations_.try_emplace(key, locations_.size() + 1);
    if (inserted) {
      ProtoWriter location;
      location.varint_field(1, it->second);  // id
      location.varint_field(2, mapping);     // mapping_id
      uint64_t base = mapping == 0 ? 0 : mapping << kMappingAddressShift;
      location.varint_field(3, base + frame.offset);  // address
      ProtoWriter line;
      line.varint_field(1, function);  // function_id
      location.message_field(4, line);
      profile_.message_field(kLocation, location);
    }
    return it->second;
  }

  void add_sample(const std::vector<uint64_t>& location_ids, const std::vector<uint64_t>& values,
                  const std::vector<std::pair<std::string, std::string>>& labels) {
    ProtoWriter sample;
    sample.packed_field(1, location_ids);
    sample.packed_field(2, values);
    for (const auto& [key, value] : labels) {
      ProtoWriter label;
      label.int64_field(1, string_id(key));
      label.int64_field(2, string_id(value));
      sample.message_field(3, label);
    }
    samples_.message_field(kSample, sample);
  }

  // Profile fields may appear in any order; the string table goes last because
  // everything before it adds strings.
  std::string finish(const ProtoWriter& header) {
    std::string out = header.bytes();
    out += samples_.bytes();
    out += profile_.bytes();
    ProtoWriter table;
    for (const auto& text : string_table_) table.bytes_field(kStringTable, text);
    out += table.bytes();
    return out;
  }

 private:
  uint64_t mapping_id(const std::string& module) {
    if (module.empty()) return 0;
    auto [it, inserted] = mappings_.try_emplace(module, mappings_.size() + 1);
    if (inserted) {
      ProtoWriter mapping;
      uint64_t start = it->second << kMappingAddressShift;
      mapping.varint_field(1, it->second);                                     // id
      mapping.varint_field(2, start);                                          // memory_start
      mapping.varint_field(3, start + (uint64_t{1} << kMappingAddressShift));  // memory_limit
      mapping.int64_field(5, string_id(module));                               // filename
      mapping.varint_field(7, 1);  // has_functions: symbolized already, pprof must not retry
      profile_.message_field(kMapping, mapping);
    }
    return it->second;
  }

  uint64_t function_id(const std::string& name) {
    auto [it, inserted] = functions_.try_emplace(name, functions_.size() + 1);
    if (inserted) {
      ProtoWriter function;
      function.varint_field(1, it->second);      // id
      function.int64_field(2, string_id(name));  // name
      function.int64_field(3, string_id(name));  // system_name
      profile_.message_field(kFunction, function);
    }
    return it->second;
  }

  std::unordered_map<std::string, int64_t> strings_;
  std::vector<std::string> string_table_;
  std::unordered_map<std::string, uint64_t> mappings_, functions_, locations_;
  ProtoWriter samples_;  // Sample messages
  ProtoWriter profile_;  // Mapping, Location and Function messages
};

ProtoWriter value_type(ProfileBuilder& builder, const std::string& type, const std::string& unit) {
  ProtoWriter message;
  message.int64_field(1, builder.string_id(type));
  message.int64_field(2, builder.string_id(unit));
  return message;
}

int64_t earliest_start_unix_ns(const Report& report) {
  int64_t earliest = 0;
  for (const auto& process : report.processes) {
    if (process.start_unix_ns > 0 && (earliest == 0 || process.start_unix_ns < earliest))
      earliest = process.start_unix_ns;
  }
  return earliest;
}

std::string hotspot_key(const Hotspot& hotspot) {
  std::string key = hotspot.exe + '\n' + hotspot.kind + '\n' + hotspot.path + '\n';
  for (const auto& frame : hotspot.stack)
    key += frame.function + '@' + frame.module + '+' + std::to_string(frame.offset) + ';';
  return key;
}

}  // namespace

std::string encode_pprof_profile(const Report& report) {
  ProfileBuilder builder;
  ProtoWriter header;
  header.message_field(kSampleType, value_type(builder, "contentions", "count"));
  header.message_field(kSampleType, value_type(builder, "delay", "nanoseconds"));
  header.int64_field(kTimeNanos, earliest_start_unix_ns(report));
  header.message_field(kPeriodType, value_type(builder, "contentions", "count"));
  header.int64_field(kPeriod, 1);
  header.int64_field(kComment,
                     builder.string_id("blockwatch: blocked and stalled time of worker threads"));
  header.int64_field(kDefaultSampleType, builder.string_id("delay"));

  for (const auto& hotspot : report.hotspots) {
    std::vector<uint64_t> location_ids;
    location_ids.reserve(hotspot.stack.size() + 1);
    for (const auto& frame : hotspot.stack) location_ids.push_back(builder.location_id(frame));
    if (location_ids.empty()) location_ids.push_back(builder.location_id({"[no stack]", "", 0, 0}));
    std::vector<std::pair<std::string, std::string>> labels = {{"kind", hotspot.kind}};
    if (!hotspot.path.empty()) labels.emplace_back("path", hotspot.path);
    labels.emplace_back("allowed", hotspot.allowed ? "true" : "false");
    if (!hotspot.exe.empty()) labels.emplace_back("exe", hotspot.exe);
    builder.add_sample(
        location_ids,
        {hotspot.count, static_cast<uint64_t>(std::max<int64_t>(hotspot.total_ns, 0))}, labels);
  }
  return builder.finish(header);
}

std::string gzip_bytes(const std::string& bytes) {
  z_stream stream{};
  // windowBits 15 + 16 selects the gzip wrapper; no gz_header: mtime 0, no name.
  if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK)
    throw std::runtime_error("gzip: deflateInit2 failed");
  std::string out(deflateBound(&stream, bytes.size()) + 32, '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  stream.avail_in = static_cast<uInt>(bytes.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  int status = deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  if (status != Z_STREAM_END) throw std::runtime_error("gzip: deflate did not finish");
  return out;
}

void write_pprof_report(const Report& report, std::ostream& out) {
  std::string compressed = gzip_bytes(encode_pprof_profile(report));
  out.write(compressed.data(), static_cast<std::streamsize>(compressed.size()));
}

Report subtract_report(const Report& later, const Report& earlier) {
  std::map<std::string, const Hotspot*> before;
  for (const auto& hotspot : earlier.hotspots) before[hotspot_key(hotspot)] = &hotspot;
  Report delta = later;
  delta.hotspots.clear();
  for (const auto& hotspot : later.hotspots) {
    Hotspot grown = hotspot;
    if (auto it = before.find(hotspot_key(hotspot)); it != before.end()) {
      const Hotspot& old = *it->second;
      grown.count = hotspot.count > old.count ? hotspot.count - old.count : 0;
      grown.total_ns = std::max<int64_t>(hotspot.total_ns - old.total_ns, 0);
      grown.cpu_ns = std::max<int64_t>(hotspot.cpu_ns - old.cpu_ns, 0);
      grown.runqueue_ns = std::max<int64_t>(hotspot.runqueue_ns - old.runqueue_ns, 0);
      grown.offcpu_ns = std::max<int64_t>(hotspot.offcpu_ns - old.offcpu_ns, 0);
      int64_t seen_until_ns = 0;
      for (const auto& occurrence : old.occurrences)
        seen_until_ns = std::max(seen_until_ns, occurrence.start_unix_ns);
      std::erase_if(grown.occurrences,
                    [&](const Occurrence& o) { return o.start_unix_ns <= seen_until_ns; });
    }
    if (grown.count > 0 || grown.total_ns > 0) delta.hotspots.push_back(std::move(grown));
  }
  std::stable_sort(delta.hotspots.begin(), delta.hotspots.end(),
                   [](const Hotspot& a, const Hotspot& b) { return a.total_ns > b.total_ns; });
  auto minus = [](auto a, auto b) { return a > b ? a - b : decltype(a){0}; };
  delta.blocking_events = minus(later.blocking_events, earlier.blocking_events);
  delta.blocked_ns = minus(later.blocked_ns, earlier.blocked_ns);
  delta.stalls = minus(later.stalls, earlier.stalls);
  delta.stalled_ns = minus(later.stalled_ns, earlier.stalled_ns);
  delta.allowed_events = minus(later.allowed_events, earlier.allowed_events);
  delta.dropped = minus(later.dropped, earlier.dropped);
  for (auto& totals : delta.paths) {
    for (const auto& old : earlier.paths) {
      if (old.path != totals.path) continue;
      totals.blocking_events = minus(totals.blocking_events, old.blocking_events);
      totals.blocked_ns = minus(totals.blocked_ns, old.blocked_ns);
      totals.stalls = minus(totals.stalls, old.stalls);
      totals.stalled_ns = minus(totals.stalled_ns, old.stalled_ns);
    }
  }
  return delta;
}

}  // namespace blockwatch::collector
