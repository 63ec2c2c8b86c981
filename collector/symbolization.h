// What a symbolizer answers for one address of a loaded object, and the
// interface the stream decoder calls (stream_decoder.h). Plain data, no
// dependency on elfutils: the decoder and its fuzz target build without it; the
// libdw implementation is Symbolizer (symbolizer.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace blockwatch::collector {

// One frame of a symbolized address: the physical function last, the functions
// inlined into it before it, innermost first.
struct SymbolizedFrame {
  std::string function;        // demangled; "" when no symbol covers the address
  std::string file;            // source file, "" when unknown
  uint32_t line = 0;           // 0 when unknown
  uint32_t function_line = 0;  // line where the function is declared (pprof start_line)
  bool inlined = false;        // inlined into the next frame (same address)
};

struct Symbolization {
  std::vector<SymbolizedFrame> frames;  // empty: nothing known about the address
  // The file at the module's path is another build than the one that ran (it was
  // rebuilt or upgraded while the process lived) and no copy with the right
  // build-id was found: frames stay empty rather than naming the wrong function.
  bool build_id_mismatch = false;
  // The module has no DWARF anywhere the symbolizer looked (its file,
  // .gnu_debugdata, /usr/lib/debug, debuginfod): names come from its symbol
  // tables at best, and no frame of it has a file or line.
  bool no_debug_info = false;
};

// What the collector knows of a loaded object (from the wire's Module).
struct ModuleIdentity {
  std::string path;
  std::string build_id;  // raw bytes; empty when the object has none
};

// The process a stream comes from, as its Hello says.
struct ProcessIdentity {
  int pid = 0;
  std::string hostname;
  int64_t start_unix_ns = 0;
};

// What is known of an address in anonymous executable memory (JIT code).
struct JitSymbol {
  std::string name;    // the function's, from the process's perf map; "" when unknown
  std::string source;  // where the name came from ("/tmp/perf-PID.map")
  std::string note;    // when name is "": why ("no entry in /tmp/perf-PID.map")
};

class FrameSymbolizer {
 public:
  virtual ~FrameSymbolizer() = default;
  // `address` (a return address minus one) lies in no object the process
  // loaded: its name from the process's perf map, if the collector can read it.
  // Pure: a wrapper that forgot to forward it would silently lose JIT names.
  virtual JitSymbol symbolize_jit(const ProcessIdentity& process, uint64_t address) = 0;
  // The frames at `address`, an offset from the module's load bias (a file
  // virtual address). Callers pass a return address minus one, so the line is
  // the call's, not the next statement's.
  virtual Symbolization symbolize(const ModuleIdentity& module, uint64_t address) = 0;
};

}  // namespace blockwatch::collector
