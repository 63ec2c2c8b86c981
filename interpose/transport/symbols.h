// Symbolization of program counters for the in-process needs (the idle-wait
// call sites the watchdog classifies, names for the bw_set_event_callback
// observer, the vDSO's and anonymous code's Symbol frames), the scan of symbol
// tables for task-entry probes, and the loaded-module table (dl_iterate_phdr)
// for module path, load bias and build id. Our own threads and the library
// constructor only: allocates, may take the loader's lock.
//
// Why not absl::Symbolize: it keeps the object files it read open in a cached
// symbolizer, lseek()s those fds later, closes them when the address map changes,
// and logs to stderr when they fail. In a program that closes every fd and reuses
// the numbers, that means moving the file offset of, or closing, the program's
// own fds. ElfSymbolizer mmaps each object once, closes the fd at once, and reads
// .symtab/.dynsym from memory; names are demangled by libiberty
// (common/demangle.h: C++, Rust legacy and v0), linked in statically.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "interpose/transport/wire_encoder.h"

namespace blockwatch::interpose {

// Function names from the ELF symbol tables of loaded objects. Keeps one read-only
// mapping per object it was asked about (no fd), never unmapped.
class ElfSymbolizer {
 public:
  ElfSymbolizer();
  ~ElfSymbolizer();
  ElfSymbolizer(const ElfSymbolizer&) = delete;
  ElfSymbolizer& operator=(const ElfSymbolizer&) = delete;

  // The function containing return address `pc` (looked up at pc - 1, the call
  // instruction) of `module` (nullptr: unknown module), demangled
  // (demangle::readable_name); empty when unknown.
  std::string symbolize_return_address(uint64_t pc, const ModuleInfo* module);

 private:
  struct Table;
  Table* table_for(const std::string& path);
  struct Tables;
  Tables* tables_;
};

// Calls `visit(mangled_name, link_address, size)` for every defined function
// symbol in the .symtab and .dynsym of the object file at `path` (both: a stripped
// object has only .dynsym; aliases and duplicates are visited more than once).
// Maps the file read-only for the call, closes the fd at once, unmaps after.
// Returns false when the file cannot be read as a 64-bit ELF. Allocates.
using FunctionSymbolVisitor = void (*)(void* context, const char* name, uint64_t address,
                                       uint64_t size);
bool for_each_function_symbol(const char* path, FunctionSymbolVisitor visit, void* context);

// Every loaded object: path, load bias, executable range, build id, file offset.
// The main program's path is /proc/self/exe resolved.
std::vector<ModuleInfo> enumerate_modules();

// dl_iterate_phdr's load/unload counters (dlpi_adds + dlpi_subs): changes when an
// object was loaded or unloaded. Cheap: visits only the first object.
uint64_t module_change_count();

// The module whose executable range holds `pc`, or nullptr. `modules` sorted by
// start (enumerate_modules() returns them so).
const ModuleInfo* find_module(const std::vector<ModuleInfo>& modules, uint64_t pc);

}  // namespace blockwatch::interpose
