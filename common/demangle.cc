// libiberty's demanglers behind the two calls of demangle.h. rust_demangle is
// asked first: a Rust legacy name is also valid Itanium C++, which
// cplus_demangle_v3 would print with its `$LT$` escapes and hash. Without
// DMGL_VERBOSE libiberty drops the legacy hash and v0's crate disambiguators;
// DMGL_RET_DROP leaves a C++ function template's return type out.
#include "common/demangle.h"

#include <cstdlib>
#include <memory>

// No <cstring> in this file: libiberty.h (which this includes) declares
// basename() as C does, which clashes with glibc's C++ overloads of it.
#include <libiberty/demangle.h>

namespace blockwatch::demangle {
namespace {

constexpr int kOptions = DMGL_PARAMS | DMGL_ANSI | DMGL_RET_DROP;

struct FreeMalloced {
  void operator()(char* text) const { std::free(text); }
};
using Malloced = std::unique_ptr<char, FreeMalloced>;

bool may_be_mangled(const char* symbol) {
  return symbol[0] == '_' && (symbol[1] == 'Z' || symbol[1] == 'R');
}

}  // namespace

std::string rust_name(const char* symbol) {
  if (!may_be_mangled(symbol)) return {};
  const Malloced rust(rust_demangle(symbol, kOptions));
  return rust ? std::string(rust.get()) : std::string();
}

std::string readable_name(const char* symbol) {
  if (!may_be_mangled(symbol)) return symbol;
  if (std::string rust = rust_name(symbol); !rust.empty()) return rust;
  if (symbol[1] != 'Z') return symbol;
  const Malloced cxx(cplus_demangle_v3(symbol, kOptions));
  return cxx ? std::string(cxx.get()) : std::string(symbol);
}

}  // namespace blockwatch::demangle
