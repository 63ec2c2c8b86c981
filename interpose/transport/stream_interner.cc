// The sender's bounded interning tables (see stream_interner.h).
#include "interpose/transport/stream_interner.h"

#include <utility>

namespace blockwatch::interpose {
namespace {

template <typename T>
std::string_view bytes_of(const T& value) {
  return std::string_view(reinterpret_cast<const char*>(&value), sizeof value);
}

}  // namespace

StreamInterner::SymbolEntry& StreamInterner::symbol_entry(uint64_t pc,
                                                          const std::vector<ModuleInfo>& modules) {
  if (SymbolEntry* entry = symbols_.find(bytes_of(pc))) return *entry;
  SymbolEntry entry;
  entry.name = symbolizer_.symbolize_return_address(pc, find_module(modules, pc));
  return symbols_.insert(bytes_of(pc), std::move(entry));
}

const std::string& StreamInterner::symbol_name(uint64_t pc,
                                               const std::vector<ModuleInfo>& modules) {
  return symbol_entry(pc, modules).name;
}

uint64_t StreamInterner::define_string(std::string_view text, WireEncoder& encoder,
                                       std::string& out) {
  if (text.empty()) return 0;
  Interned* entry = strings_.find(text);
  if (!entry) entry = &strings_.insert(text, Interned{next_string_id_++, 0});
  if (entry->defined_in != stream_number_) {
    encoder.string_def(entry->id, text, out);
    entry->defined_in = stream_number_;
  }
  return entry->id;
}

uint64_t StreamInterner::define_stack(const Record& record, size_t frame_count,
                                      const std::vector<ModuleInfo>& modules, WireEncoder& encoder,
                                      std::string& out) {
  if (frame_count == 0) return 0;
  const std::string_view key(reinterpret_cast<const char*>(record.frames),
                             frame_count * sizeof(uintptr_t));
  Interned* entry = stacks_.find(key);
  if (!entry) entry = &stacks_.insert(key, Interned{next_stack_id_++, 0});
  if (entry->defined_in == stream_number_) return entry->id;
  entry->defined_in = stream_number_;
  const uint64_t id = entry->id;
  uint64_t pcs[kMaxFrames];
  for (size_t i = 0; i < frame_count; ++i) {
    const uint64_t pc = pcs[i] = record.frames[i];
    // The collector symbolizes pcs of objects it can open (Modules: path,
    // build-id, bias). Only what has no file there is named here: the vDSO and
    // code outside any object (dladdr, no ELF parsing).
    const ModuleInfo* module = find_module(modules, pc);
    if (module && !module->path.empty() && module->path[0] == '/') continue;
    SymbolEntry& symbol = symbol_entry(pc, modules);
    if (symbol.defined_in == stream_number_) continue;
    symbol.defined_in = stream_number_;
    encoder.symbol(pc, symbol.name, module ? module->path : std::string_view(),
                   module ? pc - module->base : 0, out);
  }
  encoder.stack(id, pcs, frame_count, out);
  return id;
}

bool StreamInterner::remember_thread(int32_t tid, std::string_view name) {
  if (std::string* known = thread_names_.find(bytes_of(tid))) {
    if (*known != name) known->assign(name);
    return false;
  }
  thread_names_.insert(bytes_of(tid), std::string(name));
  return true;
}

const std::string* StreamInterner::thread_name(int32_t tid) {
  return thread_names_.find(bytes_of(tid));
}

}  // namespace blockwatch::interpose
