// Symbolization of program counters on the sender thread: absl::Symbolize for the
// function name (C++ demangled), plus a Rust legacy-mangling cleanup that absl does
// not do, and the loaded-module table (dl_iterate_phdr) for module path, load bias
// and build id. Sender thread only: allocates, may take the loader's lock.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "interpose/wire_encoder.h"

namespace blockwatch::interpose {

// The function containing return address `pc` (looked up at pc - 1, the call
// instruction), demangled; empty when unknown.
std::string symbolize_return_address(uint64_t pc);

// Rust legacy symbols (`_ZN...17h<16 hex>E`): absl demangles the simple ones to
// `a::b::h0123456789abcdef` and gives up on those with `$` escapes. This turns
// both into `a::b` with escapes decoded (`$LT$` -> `<`, `..` -> `::`, `$u20$` ->
// ` `). Anything else is returned unchanged.
std::string clean_rust_symbol(std::string_view name);

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
