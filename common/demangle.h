// Symbol demangling with GNU libiberty (the demangler of binutils' c++filt and
// GCC; Debian's libiberty-dev): Rust, legacy (`_ZN...17h<hash>E`) and v0
// (`_R...`), and C++ (Itanium ABI). Shared by the collector (Rust names; it
// demangles C++ with LLVM) and the injected library, which links libiberty.a
// statically and hidden, so a dormant process loads no library for it.
//
// Contract of both functions: allocate (libiberty mallocs its result, the
// std::string copies it), take no lock of ours, are not async-signal-safe and
// are thread-safe (libiberty keeps no state between calls). In the injected
// library: its own threads and its constructor only, never a hook or a signal
// handler. Stack: libiberty's C++ demangler keeps its parse on the stack and
// refuses a name longer than 1024 characters for that reason (its recursion
// limit; such a name comes back unchanged), which bounds it to about 140 KiB
// (measured); its Rust demangler limits its recursion depth likewise.
#pragma once

#include <string>

namespace blockwatch::demangle {

// The readable name of a Rust symbol, legacy or v0, without the legacy
// scheme's `::h<hash>` suffix and without v0's crate disambiguators
// ("std::thread::sleep", "<tokio::runtime::park::CachedParkThread>::park");
// v0 names keep their generic arguments ("tokio::runtime::task::raw::poll::<..>").
// Empty when `symbol` is no Rust symbol (a C++ or C name).
std::string rust_name(const char* symbol);

// The readable name of any symbol: Rust as rust_name says; C++ with its
// parameters and qualifiers but without a function template's return type
// ("ns::f(int)", "std::this_thread::sleep_for<long, std::ratio<1l, 1l> >(...)"),
// so a name starts with its scope as rules expect. Anything else (a C name, an
// invalid mangling, a C++ name over 1024 characters) comes back unchanged.
std::string readable_name(const char* symbol);

}  // namespace blockwatch::demangle
