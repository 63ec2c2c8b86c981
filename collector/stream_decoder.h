// Incremental, bounded decoder of the wire stream (proto/blockwatch.proto): bytes go
// in as they arrive from a socket or a file, resolved records come out through a
// StreamHandler. It resolves the stream's interning (StringDef, Symbol, Stack) so a
// consumer sees names and symbolized stacks, never ids. Given a FrameSymbolizer,
// it symbolizes each new pc of a stream once against the stream's Modules (file,
// line, inlined frames; the symbolizer's name wins over the target's Symbol). A malformed stream
// (garbage, a frame over kMaxFrameBytes, bad magic or version, Hello not first, a reference to an
// undefined id, a truncated frame at end of stream) is rejected with a reason string; everything
// handed to the handler before the rejection stays valid.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "collector/report_model.h"
#include "collector/symbolization.h"
#include "proto/blockwatch.pb.h"

namespace blockwatch::collector {

inline constexpr uint32_t kWireMagic = 0x42574348;  // "BWCH"
inline constexpr uint32_t kWireProtocolVersion = 1;
inline constexpr size_t kMaxFrameBytes = 1 << 20;
// Interning definitions one stream may make before it is rejected: bounds the
// collector's memory against a runaway or hostile client.
inline constexpr size_t kMaxDefinitionsPerStream = 4'000'000;

// The JSON/DESIGN.md name of a kind: "mutex", "rwlock_read", ..., "stall", "hang".
const char* kind_name(wire::Kind kind);

// A stack resolved against the stream's Symbol frames. Owned by the decoder; the
// address is stable for the decoder's lifetime (consumers may key on it).
struct ResolvedStack {
  uint64_t id = 0;                 // the wire id, meaningful only within its stream
  std::vector<StackFrame> frames;  // innermost first
};

// The interned references of one event, resolved. Pointers are never null (empty
// string for "none"), except stack, which is null when the event had no stack.
struct EventRefs {
  const std::string* thread_name;
  const std::string* task;
  const std::string* allow_reason;
  const std::string* holder_name;
  const ResolvedStack* stack;
};

// Receives what the decoder resolved. Called synchronously from feed()/finish().
class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  // A stream begins; with StreamDecoder::Options::allow_restart a later Hello
  // begins another stream (another process) with fresh ids.
  virtual void on_hello(const wire::Hello& hello) { (void)hello; }
  virtual void on_modules(const wire::Modules& modules) { (void)modules; }
  // A StringDef, once per id and stream, before any event that references it
  // (a consumer that keeps names by id, as the aggregator does, copies it here).
  virtual void on_string(uint64_t id, const std::string& text) {
    (void)id;
    (void)text;
  }
  virtual void on_event(const wire::Event& event, const EventRefs& refs) = 0;
  virtual void on_counters(const wire::Counters& counters) { (void)counters; }
  virtual void on_goodbye(const wire::Goodbye& goodbye) { (void)goodbye; }
};

class StreamDecoder {
 public:
  struct Options {
    // Accept a Hello after the first one as the start of a new stream (a saved
    // .bwrec file is several streams back to back). Off for a socket connection,
    // which carries exactly one process's stream.
    bool allow_restart = false;
    // Symbolizes pcs with the module map (collector/symbolizer.h); null: frames
    // are what the target's Symbol frames said. Not owned; outlives the decoder.
    FrameSymbolizer* symbolizer = nullptr;
  };

  explicit StreamDecoder(StreamHandler* handler);
  StreamDecoder(StreamHandler* handler, Options options);

  // Appends bytes and decodes every complete frame. False once the stream is
  // rejected (then and afterwards); error() says why.
  bool feed(const char* data, size_t size);
  // End of input. A partial frame left over is an error ("truncated ...").
  // An empty stream is not an error; a stream that ends without Goodbye is not
  // either (the process may have been killed; what it flushed is kept).
  bool finish();

  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  bool saw_hello() const { return saw_hello_; }
  // Bytes of the complete, accepted frames so far (a prefix of the input that
  // decodes cleanly: what a saved copy of the stream should keep).
  uint64_t bytes_accepted() const { return bytes_accepted_; }
  uint64_t frames_accepted() const { return frames_accepted_; }

 private:
  bool decode_buffered();
  bool decode_frame(const char* body, size_t size);
  bool decode_event_frame(const char* body, size_t size, bool* handled);
  bool on_hello(const wire::Hello& hello);
  bool define_string(const wire::StringDef& def);
  bool define_symbol(const wire::Symbol& symbol);
  void define_modules(const wire::Modules& modules);
  const wire::Module* module_of(uint64_t pc) const;
  // The frames of one pc: `base` (the target's answer) expanded by the symbolizer.
  std::vector<StackFrame> symbolized_frames(StackFrame base) const;
  bool define_stack(const wire::Stack& stack);
  bool deliver_event(const wire::Event& event);
  bool lookup_string(uint64_t id, const char* field, const std::string** out);
  bool fail(std::string reason);
  bool count_definition();
  void reset_tables();

  StreamHandler* handler_;
  Options options_;
  std::string buffer_;  // bytes not yet decoded, from buffer_start_
  size_t buffer_start_ = 0;
  std::string error_;
  bool saw_hello_ = false;
  ProcessIdentity process_;  // from the Hello: whose perf map names JIT frames
  uint64_t bytes_accepted_ = 0;
  uint64_t frames_accepted_ = 0;
  size_t definitions_ = 0;
  wire::Frame frame_;  // reused: parsing into it keeps its allocations
  wire::Event event_;  // events, the bulk of a stream, parse straight into this
  absl::flat_hash_map<uint64_t, std::string> strings_;
  // Frames per pc: one, or several when functions were inlined at it.
  absl::flat_hash_map<uint64_t, std::vector<StackFrame>> symbols_;
  // Every module the stream announced, newest last (a pc symbolized before a
  // dlclose keeps its module).
  std::vector<wire::Module> modules_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<ResolvedStack>> stacks_;
  // The same stacks by id for ids below kDenseStackIds (the sender numbers them
  // 1, 2, ...): one array read per event instead of a hash probe that misses
  // the cache once a stream has thousands of stacks.
  static constexpr uint64_t kDenseStackIds = uint64_t{1} << 20;
  std::vector<const ResolvedStack*> stacks_by_id_;
  // Stacks of a previous stream (allow_restart) stay alive: consumers may still
  // hold pointers to them.
  std::vector<std::unique_ptr<ResolvedStack>> retired_stacks_;
};

// --- Convenience for tests and `blockwatch report`: a whole stream, in memory. ---

struct ResolvedEvent {
  wire::Event raw;
  std::string kind;  // kind_name(raw.kind())
  std::string thread_name, task, allow_reason, holder_name;
  std::vector<StackFrame> stack;
};

struct DecodedStream {
  wire::Hello hello;  // the first stream's Hello
  std::vector<wire::Modules> modules;
  std::vector<ResolvedEvent> events;
  wire::Counters counters;
  bool has_counters = false;
  bool goodbye = false;
  wire::Goodbye goodbye_frame;
  int streams = 0;  // how many Hello frames (processes) the input held
  std::string error;
};

// Decodes one saved stream file: one stream, or several concatenated (each starts
// with its Hello; see docs/report-schema.md). False (with out->error) on a
// malformed stream or an unreadable file; what was decoded before the error stays
// in *out. With a symbolizer, stacks carry file:line and inlined frames.
bool decode_file(const std::string& path, DecodedStream* out,
                 FrameSymbolizer* symbolizer = nullptr);
// The same, from memory.
bool decode_bytes(const std::string& bytes, DecodedStream* out,
                  FrameSymbolizer* symbolizer = nullptr);

// The function name of a frame whose module file was replaced by another build.
inline constexpr const char* kBuildIdMismatchFunction = "<file changed: build-id mismatch>";

}  // namespace blockwatch::collector
