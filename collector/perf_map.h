// Names for JIT code from a perf map: /tmp/perf-PID.map, the text file that
// `node --perf-basic-prof`, the JVM's perf-map-agent, LuaJIT and others append
// one line to per compiled function ("START SIZE name", hex, name to the end of
// the line). The collector reads it for return addresses that lie in no loaded
// object (anonymous executable memory); the target only ships the addresses.
//
// The file is read incrementally: each lookup first reads the lines appended
// since the last one (an fstat when nothing was), so a function compiled after
// the stream began is found. A later line wins over earlier ones it overlaps
// (JIT engines reuse code memory). Memory is bounded by kMaxPerfMapBytes per
// map; past it no further lines are read and lookups that miss say so.
//
// Not thread-safe: the owner (Symbolizer) serialises calls.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>

namespace blockwatch::collector {

inline constexpr size_t kMaxPerfMapBytes = 64 << 20;

class PerfMap {
 public:
  // `path`: the map file. `not_before_unix_ns`: when the process started; a file
  // last written before then belongs to an earlier process with the same pid.
  PerfMap(std::string path, int64_t not_before_unix_ns);

  enum class Status {
    kFound,     // name is the function's
    kNoEntry,   // the map has no line covering the address
    kNoMap,     // no such file (the program wrote none)
    kStale,     // the file predates the process
    kTooLarge,  // no entry in the part read; the rest is past kMaxPerfMapBytes
  };
  struct Answer {
    Status status = Status::kNoMap;
    std::string name;
  };
  Answer lookup(uint64_t address);

  const std::string& path() const { return path_; }
  size_t entry_count() const { return entries_.size(); }

 private:
  struct Entry {
    uint64_t end;
    std::string name;
  };
  // Reads what was appended since the last call. Returns the file's state.
  Status refresh();
  void add_line(std::string_view line);
  void reset();

  std::string path_;
  int64_t not_before_unix_ns_;
  dev_t device_ = 0;
  ino_t inode_ = 0;
  uint64_t offset_ = 0;   // bytes of the file consumed (complete lines)
  std::string partial_;   // an incomplete last line, awaiting its end
  std::map<uint64_t, Entry> entries_;  // by start; ranges never overlap
  size_t bytes_ = 0;      // memory held by entries_, roughly
  bool full_ = false;
};

}  // namespace blockwatch::collector
