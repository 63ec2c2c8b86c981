// Rust names go to libiberty (common/demangle.h, shared with the injected
// library), which reads both Rust schemes and drops the legacy scheme's
// `::h<hash>` suffix; everything else to LLVM's demangler. LLVM 14's
// rustDemangle reads only v0, and a legacy Rust name is valid Itanium, so LLVM
// alone would print `$LT$...$GT$::h0123...` escapes.
//
// A C++ function template's name leaves its return type out
// ("std::this_thread::sleep_for<...>(...)", not "void std::this_thread::..."): a
// frame then starts with its scope, which is what rules and readers look for.
#include "collector/demangle.h"

#include <cstdlib>
#include <memory>

#include <llvm/Demangle/Demangle.h>

#include "common/demangle.h"

namespace blockwatch::collector {

std::string demangle(std::string_view symbol) {
  if (symbol.size() < 3 || symbol[0] != '_') return std::string(symbol);
  std::string mangled(symbol);
  // Empty for anything that is not a Rust symbol: a C++ name, or an Itanium
  // name whose last component is not a Rust hash.
  if (std::string rust = demangle::rust_name(mangled.c_str()); !rust.empty()) return rust;
  llvm::ItaniumPartialDemangler demangler;
  if (demangler.partialDemangle(mangled.c_str())) return llvm::demangle(mangled);
  std::unique_ptr<char, decltype(&std::free)> full(demangler.finishDemangle(nullptr, nullptr),
                                                   &std::free);
  if (!full) return mangled;
  std::string_view text(full.get());
  if (demangler.isFunction()) {
    std::unique_ptr<char, decltype(&std::free)> name(demangler.getFunctionName(nullptr, nullptr),
                                                     &std::free);
    const size_t at = name ? text.find(name.get()) : std::string_view::npos;
    if (at != std::string_view::npos) text.remove_prefix(at);
  }
  return std::string(text);
}

}  // namespace blockwatch::collector
