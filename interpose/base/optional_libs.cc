// Loads libunwind and absl's demangler where they are needed (optional_libs.h).
#include "interpose/base/optional_libs.h"

#include <dlfcn.h>

#include <atomic>
#include <string>

#include "absl/base/config.h"
#include "interpose/base/loader_gate.h"

// Weak: resolved where the library is linked anyway (unit tests, or a target
// that links it), null in libblockwatch.so (linked --as-needed without them).
extern "C" int unw_backtrace(void** buffer, int size) __attribute__((weak));
namespace absl {
ABSL_NAMESPACE_BEGIN
namespace debugging_internal {
bool Demangle(const char* mangled, char* out, int out_size) __attribute__((weak));
}  // namespace debugging_internal
ABSL_NAMESPACE_END
}  // namespace absl

namespace blockwatch::interpose {

UnwBacktraceFn g_unw_backtrace = nullptr;

namespace {
// libunwind's soname on Debian 12 (libunwind8); BW_ABSL_DEMANGLE_SONAME comes
// from absl's CMake package (CMakeLists.txt).
constexpr const char* kUnwindSonames[] = {"libunwind.so.8", "libunwind.so"};
constinit std::atomic<DemangleFn> g_demangle{nullptr};
constinit std::atomic<bool> g_demangle_tried{false};

#define BW_STRINGIFY_INNER(x) #x
#define BW_STRINGIFY(x) BW_STRINGIFY_INNER(x)

// The mangled name of absl::debugging_internal::Demangle(const char*, char*, int)
// in the absl we were built against (its inline namespace is part of it).
std::string absl_demangle_symbol() {
  std::string absl_namespace = "4absl";
#if ABSL_OPTION_USE_INLINE_NAMESPACE
  const std::string inline_name = BW_STRINGIFY(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  absl_namespace += std::to_string(inline_name.size()) + inline_name;
#endif
  return "_ZN" + absl_namespace + "18debugging_internal8DemangleEPKcPci";
}

void* open_library(const char* soname) {
  LoaderSection in_loader;  // our own threads: never inside the loader across fork
  return dlopen(soname, RTLD_NOW | RTLD_LOCAL);
}
}  // namespace

bool load_unwinder() {
  if (g_unw_backtrace) return true;
  UnwBacktraceFn backtrace = unw_backtrace;
  for (const char* soname : kUnwindSonames) {
    if (backtrace) break;
    if (void* handle = open_library(soname)) {
      backtrace = reinterpret_cast<UnwBacktraceFn>(dlsym(handle, "unw_backtrace"));
    }
  }
  __atomic_store_n(&g_unw_backtrace, backtrace, __ATOMIC_RELEASE);
  return backtrace != nullptr;
}

DemangleFn demangler() {
  if (DemangleFn demangle = g_demangle.load(std::memory_order_acquire)) return demangle;
  if (absl::debugging_internal::Demangle) {
    g_demangle.store(absl::debugging_internal::Demangle, std::memory_order_release);
    return absl::debugging_internal::Demangle;
  }
  if (g_demangle_tried.exchange(true)) return g_demangle.load(std::memory_order_acquire);
  DemangleFn demangle = nullptr;
  if (void* handle = open_library(BW_ABSL_DEMANGLE_SONAME)) {
    demangle = reinterpret_cast<DemangleFn>(dlsym(handle, absl_demangle_symbol().c_str()));
  }
  g_demangle.store(demangle, std::memory_order_release);
  return demangle;
}

}  // namespace blockwatch::interpose
