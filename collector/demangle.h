// Symbol demangling for the collector: C++ (Itanium ABI) and Rust, legacy
// (`_ZN...17h<hash>E`) and v0 (`_R...`), by maintained libraries only.
#pragma once

#include <string>
#include <string_view>

namespace blockwatch::collector {

// The readable name of a linker symbol: "model::Infer()", "std::thread::sleep",
// "<alloc::vec::Vec<T,A> as core::ops::drop::Drop>::drop". A name that is not
// mangled (a C function) comes back unchanged. Thread-safe; allocates.
std::string demangle(std::string_view symbol);

}  // namespace blockwatch::collector
