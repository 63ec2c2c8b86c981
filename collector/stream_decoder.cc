// Frame splitting, validation and interning resolution for the wire stream. The
// decoder never trusts the peer: every length is capped before anything is
// buffered, every id is checked before it is used, and the first violation stops
// the stream with a reason that names the frame and byte offset.
#include "collector/stream_decoder.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <utility>

#include "common/kinds.h"

namespace blockwatch::collector {

namespace {

const std::string kEmpty;

std::string hex_address(uint64_t pc) {
  char text[24];
  std::snprintf(text, sizeof text, "0x%" PRIx64, pc);
  return text;
}

// Reads the varint length prefix at p[0, n). Returns the prefix's byte count,
// 0 when more bytes are needed, -1 when the length exceeds kMaxFrameBytes.
int read_length_prefix(const unsigned char* p, size_t n, uint64_t* length) {
  uint64_t value = 0;
  for (size_t i = 0; i < n; ++i) {
    value |= uint64_t{p[i] & 0x7fu} << (7 * i);
    if ((p[i] & 0x80u) == 0) {
      *length = value;
      return value > kMaxFrameBytes ? -1 : static_cast<int>(i + 1);
    }
    if (i >= 2) return -1;  // a fourth byte means at least 2^21 > 1 MiB
  }
  return 0;
}

}  // namespace

// common/kinds.h is the one list of kinds; the wire enum must agree with it.
#define BLOCKWATCH_KIND_MATCHES_WIRE(name, number, text, wire_suffix)        \
  static_assert(kinds::name == number && wire::KIND_##wire_suffix == number, \
                "common/kinds.h and proto/blockwatch.proto disagree on " text);
BLOCKWATCH_KIND_LIST(BLOCKWATCH_KIND_MATCHES_WIRE)
#undef BLOCKWATCH_KIND_MATCHES_WIRE
static_assert(wire::Kind_MAX == kinds::kKindHang, "a wire kind is missing from common/kinds.h");

static_assert(wire::STALL_SCOPE_TASK == kinds::kStallScopeTask &&
                  wire::STALL_SCOPE_TURN == kinds::kStallScopeTurn &&
                  wire::STALL_SCOPE_UNSPECIFIED == kinds::kStallScopeUnspecified,
              "common/kinds.h and proto/blockwatch.proto disagree on stall scopes");

const char* kind_name(wire::Kind kind) { return kinds::kind_name(kind); }

StreamDecoder::StreamDecoder(StreamHandler* handler) : StreamDecoder(handler, Options{}) {}

StreamDecoder::StreamDecoder(StreamHandler* handler, Options options)
    : handler_(handler), options_(options) {}

bool StreamDecoder::fail(std::string reason) {
  if (error_.empty()) {
    error_ = "frame " + std::to_string(frames_accepted_ + 1) + " at byte " +
             std::to_string(bytes_accepted_) + ": " + reason;
  }
  buffer_.clear();
  buffer_start_ = 0;
  return false;
}

bool StreamDecoder::feed(const char* data, size_t size) {
  if (failed()) return false;
  buffer_.append(data, size);
  if (!decode_buffered()) return false;
  // Compact once the consumed prefix dominates, so a long stream costs O(bytes).
  if (buffer_start_ > 0 && buffer_start_ * 2 >= buffer_.size()) {
    buffer_.erase(0, buffer_start_);
    buffer_start_ = 0;
  }
  return true;
}

bool StreamDecoder::decode_buffered() {
  while (buffer_start_ < buffer_.size()) {
    const auto* p = reinterpret_cast<const unsigned char*>(buffer_.data()) + buffer_start_;
    size_t available = buffer_.size() - buffer_start_;
    uint64_t length = 0;
    int prefix = read_length_prefix(p, available, &length);
    if (prefix < 0) {
      return fail("frame length exceeds the " + std::to_string(kMaxFrameBytes) +
                  "-byte limit (garbage or an oversized frame)");
    }
    if (prefix == 0 || available - prefix < length) return true;  // need more bytes
    if (!decode_frame(reinterpret_cast<const char*>(p) + prefix, length)) return false;
    buffer_start_ += prefix + length;
    bytes_accepted_ += prefix + length;
    ++frames_accepted_;
  }
  return true;
}

bool StreamDecoder::finish() {
  if (failed()) return false;
  size_t left = buffer_.size() - buffer_start_;
  if (left > 0) {
    return fail("truncated: stream ended inside a frame (" + std::to_string(left) +
                " bytes left over)");
  }
  return true;
}

// Fast path for the common frame: a Frame holding only `Event event = 6`. Parses
// the Event into a reused message (no allocation per event once warm). Sets
// *handled = false when the frame has another shape; decode_frame then takes it.
bool StreamDecoder::decode_event_frame(const char* body, size_t size, bool* handled) {
  *handled = false;
  constexpr unsigned char kEventTag = (6 << 3) | 2;  // field 6, length-delimited
  if (!saw_hello_ || size < 2 || static_cast<unsigned char>(body[0]) != kEventTag) return true;
  uint64_t length = 0;
  int prefix =
      read_length_prefix(reinterpret_cast<const unsigned char*>(body) + 1, size - 1, &length);
  if (prefix <= 0 || 1 + prefix + length != size) return true;  // not exactly one Event
  *handled = true;
  if (!event_.ParseFromArray(body + 1 + prefix, static_cast<int>(length))) {
    return fail("not a valid Frame message (" + std::to_string(size) + " bytes)");
  }
  return deliver_event(event_);
}

bool StreamDecoder::decode_frame(const char* body, size_t size) {
  bool handled = false;
  bool ok = decode_event_frame(body, size, &handled);
  if (handled) return ok;
  if (!frame_.ParseFromArray(body, static_cast<int>(size))) {
    return fail("not a valid Frame message (" + std::to_string(size) + " bytes)");
  }
  if (frame_.body_case() == wire::Frame::kHello) return on_hello(frame_.hello());
  if (!saw_hello_) return fail("first frame is not a Hello");
  switch (frame_.body_case()) {
    case wire::Frame::kModules:
      define_modules(frame_.modules());
      handler_->on_modules(frame_.modules());
      return true;
    case wire::Frame::kString:
      return define_string(frame_.string());
    case wire::Frame::kSymbol:
      return define_symbol(frame_.symbol());
    case wire::Frame::kStack:
      return define_stack(frame_.stack());
    case wire::Frame::kEvent:
      return deliver_event(frame_.event());
    case wire::Frame::kCounters:
      handler_->on_counters(frame_.counters());
      return true;
    case wire::Frame::kGoodbye:
      handler_->on_goodbye(frame_.goodbye());
      return true;
    default:
      return true;  // a body from a newer minor version: skip it
  }
}

bool StreamDecoder::on_hello(const wire::Hello& hello) {
  if (hello.magic() != kWireMagic) {
    return fail("bad magic " + hex_address(hello.magic()) + " (expected 0x42574348)");
  }
  if (hello.protocol_version() != kWireProtocolVersion) {
    return fail("unsupported protocol_version " + std::to_string(hello.protocol_version()) +
                " (this collector reads " + std::to_string(kWireProtocolVersion) + ")");
  }
  if (saw_hello_) {
    if (!options_.allow_restart) return fail("a second Hello in one stream");
    reset_tables();
  }
  saw_hello_ = true;
  process_ = ProcessIdentity{hello.pid(), hello.hostname(), hello.start_unix_ns()};
  handler_->on_hello(hello);
  return true;
}

void StreamDecoder::reset_tables() {
  strings_.clear();
  symbols_.clear();
  modules_.clear();
  for (auto& [id, stack] : stacks_) retired_stacks_.push_back(std::move(stack));
  stacks_.clear();
  stacks_by_id_.clear();
  definitions_ = 0;
}

bool StreamDecoder::count_definition() {
  if (++definitions_ > kMaxDefinitionsPerStream) {
    return fail("more than " + std::to_string(kMaxDefinitionsPerStream) +
                " interned definitions in one stream");
  }
  return true;
}

bool StreamDecoder::define_string(const wire::StringDef& def) {
  if (def.id() == 0) return fail("StringDef with id 0");
  if (!count_definition()) return false;
  auto [it, inserted] = strings_.try_emplace(def.id(), def.text());
  if (!inserted && it->second != def.text()) {
    return fail("StringDef " + std::to_string(def.id()) + " redefined differently");
  }
  if (inserted) handler_->on_string(def.id(), it->second);
  return true;
}

void StreamDecoder::define_modules(const wire::Modules& modules) {
  for (const wire::Module& module : modules.modules()) {
    auto same = std::find_if(modules_.begin(), modules_.end(), [&](const wire::Module& known) {
      return known.start() == module.start() && known.path() == module.path();
    });
    if (same != modules_.end()) modules_.erase(same);
    modules_.push_back(module);
  }
}

// The module whose executable segment holds the call at return address `pc`
// (pc - 1: a call that ends a segment returns past it); the newest wins.
const wire::Module* StreamDecoder::module_of(uint64_t pc) const {
  if (pc == 0) return nullptr;
  for (auto it = modules_.rbegin(); it != modules_.rend(); ++it) {
    if (it->start() <= pc - 1 && pc - 1 < it->end()) return &*it;
  }
  return nullptr;
}

std::vector<StackFrame> StreamDecoder::symbolized_frames(StackFrame base) const {
  const wire::Module* module = module_of(base.pc);
  if (options_.symbolizer == nullptr || module == nullptr || base.offset == 0) return {base};
  Symbolization symbolized = options_.symbolizer->symbolize(
      ModuleIdentity{module->path(), module->build_id()}, base.offset - 1);
  if (symbolized.build_id_mismatch) {
    base.function = kBuildIdMismatchFunction;
    base.build_id_mismatch = true;
  }
  base.no_debug_info = symbolized.no_debug_info;
  if (symbolized.frames.empty()) return {base};
  std::vector<StackFrame> frames;
  frames.reserve(symbolized.frames.size());
  for (SymbolizedFrame& s : symbolized.frames) {
    StackFrame frame = base;
    if (!s.function.empty()) frame.function = std::move(s.function);
    frame.file = std::move(s.file);
    frame.line = s.line;
    frame.function_line = s.function_line;
    frame.inlined = s.inlined;
    frames.push_back(std::move(frame));
  }
  return frames;
}

bool StreamDecoder::define_symbol(const wire::Symbol& symbol) {
  if (!count_definition()) return false;
  StackFrame frame;
  frame.function = symbol.function().empty() ? hex_address(symbol.pc()) : symbol.function();
  frame.module = symbol.module();
  frame.offset = symbol.module_offset();
  frame.pc = symbol.pc();
  // A pc in no object the process loaded (the target names none): JIT code,
  // named from the process's perf map, or the frame says why not.
  if (symbol.function().empty() && symbol.module().empty() && options_.symbolizer != nullptr &&
      symbol.pc() != 0 && module_of(symbol.pc()) == nullptr) {
    JitSymbol jit = options_.symbolizer->symbolize_jit(process_, symbol.pc() - 1);
    if (!jit.name.empty()) {
      frame.function = std::move(jit.name);
      frame.module = std::move(jit.source);
    } else if (!jit.note.empty()) {
      frame.function += " (" + jit.note + ")";
    }
  }
  // A later, better name wins.
  symbols_.insert_or_assign(symbol.pc(), symbolized_frames(std::move(frame)));
  return true;
}

bool StreamDecoder::define_stack(const wire::Stack& stack) {
  if (stack.id() == 0) return fail("Stack with id 0");
  if (!count_definition()) return false;
  auto resolved = std::make_unique<ResolvedStack>();
  resolved->id = stack.id();
  resolved->frames.reserve(stack.pcs_size());
  for (uint64_t pc : stack.pcs()) {
    auto symbol = symbols_.find(pc);
    if (symbol == symbols_.end()) {
      // No Symbol frame: a pc inside an announced module is resolved here.
      const wire::Module* module = module_of(pc);
      if (module == nullptr) {
        return fail("Stack " + std::to_string(stack.id()) + " uses pc " + hex_address(pc) +
                    " that no Symbol or Module defined");
      }
      if (!count_definition()) return false;
      StackFrame frame;
      frame.function = hex_address(pc);
      frame.module = module->path();
      frame.offset = pc - module->base();
      frame.pc = pc;
      symbol = symbols_.emplace(pc, symbolized_frames(std::move(frame))).first;
    }
    resolved->frames.insert(resolved->frames.end(), symbol->second.begin(), symbol->second.end());
  }
  auto [it, inserted] = stacks_.try_emplace(stack.id(), nullptr);
  if (!inserted) {
    bool same = it->second->frames.size() == resolved->frames.size();
    for (size_t i = 0; same && i < resolved->frames.size(); ++i) {
      same = it->second->frames[i].pc == resolved->frames[i].pc;
    }
    if (!same) return fail("Stack " + std::to_string(stack.id()) + " redefined differently");
    return true;
  }
  if (stack.id() < kDenseStackIds) {
    if (stack.id() >= stacks_by_id_.size()) {
      stacks_by_id_.resize(
          std::min(kDenseStackIds, std::max(stack.id() + 1, stacks_by_id_.size() * 2)), nullptr);
    }
    stacks_by_id_[stack.id()] = resolved.get();
  }
  it->second = std::move(resolved);
  return true;
}

bool StreamDecoder::lookup_string(uint64_t id, const char* field, const std::string** out) {
  if (id == 0) {
    *out = &kEmpty;
    return true;
  }
  auto it = strings_.find(id);
  if (it == strings_.end()) {
    return fail(std::string("Event.") + field + " references undefined string " +
                std::to_string(id));
  }
  *out = &it->second;
  return true;
}

bool StreamDecoder::deliver_event(const wire::Event& event) {
  EventRefs refs{};
  if (!lookup_string(event.thread_name(), "thread_name", &refs.thread_name) ||
      !lookup_string(event.task(), "task", &refs.task) ||
      !lookup_string(event.allow_reason(), "allow_reason", &refs.allow_reason) ||
      !lookup_string(event.holder_name(), "holder_name", &refs.holder_name)) {
    return false;
  }
  if (const uint64_t id = event.stack(); id != 0) {
    if (id < stacks_by_id_.size()) refs.stack = stacks_by_id_[id];
    if (refs.stack == nullptr) {
      auto it = stacks_.find(id);
      if (it == stacks_.end()) {
        return fail("Event references undefined stack " + std::to_string(id));
      }
      refs.stack = it->second.get();
    }
  }
  if (event.duration_ns() < 0) return fail("Event with negative duration_ns");
  handler_->on_event(event, refs);
  return true;
}

// --- Whole-stream convenience ---

namespace {

class CollectingHandler : public StreamHandler {
 public:
  explicit CollectingHandler(DecodedStream* out) : out_(out) {}
  void on_hello(const wire::Hello& hello) override {
    if (out_->streams++ == 0) out_->hello = hello;
  }
  void on_modules(const wire::Modules& modules) override { out_->modules.push_back(modules); }
  void on_event(const wire::Event& event, const EventRefs& refs) override {
    ResolvedEvent resolved;
    resolved.raw = event;
    resolved.kind = kind_name(event.kind());
    resolved.thread_name = *refs.thread_name;
    resolved.task = *refs.task;
    resolved.allow_reason = *refs.allow_reason;
    resolved.holder_name = *refs.holder_name;
    if (refs.stack != nullptr) resolved.stack = refs.stack->frames;
    out_->events.push_back(std::move(resolved));
  }
  void on_counters(const wire::Counters& counters) override {
    out_->counters = counters;
    out_->has_counters = true;
  }
  void on_goodbye(const wire::Goodbye& goodbye) override {
    out_->goodbye = true;
    out_->goodbye_frame = goodbye;
  }

 private:
  DecodedStream* out_;
};

}  // namespace

bool decode_bytes(const std::string& bytes, DecodedStream* out, FrameSymbolizer* symbolizer) {
  CollectingHandler handler(out);
  StreamDecoder decoder(&handler,
                        StreamDecoder::Options{.allow_restart = true, .symbolizer = symbolizer});
  if (!decoder.feed(bytes.data(), bytes.size()) || !decoder.finish()) {
    out->error = decoder.error();
    return false;
  }
  return true;
}

bool decode_file(const std::string& path, DecodedStream* out, FrameSymbolizer* symbolizer) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    out->error = path + ": cannot open";
    return false;
  }
  CollectingHandler handler(out);
  StreamDecoder decoder(&handler,
                        StreamDecoder::Options{.allow_restart = true, .symbolizer = symbolizer});
  char chunk[64 * 1024];
  while (in) {
    in.read(chunk, sizeof chunk);
    if (in.gcount() > 0 && !decoder.feed(chunk, static_cast<size_t>(in.gcount()))) break;
  }
  if (!decoder.failed() && in.bad()) {
    out->error = path + ": read error";
    return false;
  }
  if (!decoder.finish()) {
    out->error = path + ": " + decoder.error();
    return false;
  }
  return true;
}

}  // namespace blockwatch::collector
