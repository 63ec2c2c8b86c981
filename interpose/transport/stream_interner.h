// What the sender defines once per stream and then refers to by id: strings
// (thread names, task labels, allow reasons, holder names), stacks and the
// symbols of their pcs; and what it remembers per thread (tid -> last name, for
// holder names). Every table is bounded (bounded_lru.h; interpose/README.md
// "Memory"): ids are never reused, so a value forgotten and seen again gets a
// new id and is defined again, and nothing a reader has is ever contradicted.
//
// Sender thread only: allocates, symbolizes (mmaps objects).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "interpose/core/record.h"
#include "interpose/transport/bounded_lru.h"
#include "interpose/transport/symbols.h"
#include "interpose/transport/wire_encoder.h"

namespace blockwatch::interpose {

class StreamInterner {
 public:
  // Table sizes: entries, least recently used forgotten first. Symbols must
  // outnumber a stack's frames: the observer holds pointers to one stack's names
  // while more are looked up.
  static constexpr size_t kStrings = 4096;  // <= kLabelBytes each
  static constexpr size_t kStacks = 4096;   // <= kMaxFrames pcs each
  static constexpr size_t kSymbols = 8192;  // pc -> demangled function name
  static constexpr size_t kThreads = 4096;  // tid -> last name
  static_assert(kSymbols > kMaxFrames);

  // A new stream: every value is undefined on it.
  void new_stream() { ++stream_number_; }

  // The id of `text` (0 for empty), its StringDef appended to `out` first if this
  // stream has not had it.
  uint64_t define_string(std::string_view text, WireEncoder& encoder, std::string& out);

  // The id of the stack of `record` (0 without frames), with Symbol frames for
  // pcs this stream has not had and the Stack appended to `out` first if needed.
  uint64_t define_stack(const Record& record, size_t frame_count,
                        const std::vector<ModuleInfo>& modules, WireEncoder& encoder,
                        std::string& out);

  // The demangled function of return address `pc` (empty when unknown). Valid
  // until kSymbols other pcs were looked up.
  const std::string& symbol_name(uint64_t pc, const std::vector<ModuleInfo>& modules);

  // Remembers `name` as `tid`'s; true when the tid was not remembered.
  bool remember_thread(int32_t tid, std::string_view name);
  // `tid`'s last name, or null.
  const std::string* thread_name(int32_t tid);

  size_t strings() const { return strings_.size(); }
  size_t stacks() const { return stacks_.size(); }
  size_t symbols() const { return symbols_.size(); }
  size_t threads() const { return thread_names_.size(); }

 private:
  struct Interned {
    uint64_t id = 0;
    uint64_t defined_in = 0;  // the stream number that last defined it
  };
  struct SymbolEntry {
    std::string name;
    uint64_t defined_in = 0;
  };
  SymbolEntry& symbol_entry(uint64_t pc, const std::vector<ModuleInfo>& modules);

  uint64_t stream_number_ = 1;
  uint64_t next_string_id_ = 1;
  uint64_t next_stack_id_ = 1;
  BoundedLru<Interned> strings_{kStrings};
  BoundedLru<Interned> stacks_{kStacks};
  BoundedLru<SymbolEntry> symbols_{kSymbols};       // key: the pc's 8 bytes
  BoundedLru<std::string> thread_names_{kThreads};  // key: the tid's 4 bytes
  ElfSymbolizer symbolizer_;
};

}  // namespace blockwatch::interpose
