// Loads libunwind where it is needed (optional_libs.h).
#include "interpose/base/optional_libs.h"

#include <dlfcn.h>

#include "interpose/base/loader_gate.h"

// Weak: resolved where the library is linked anyway (unit tests, or a target
// that links it), null in libblockwatch.so (linked --as-needed without it).
extern "C" int unw_backtrace(void** buffer, int size) __attribute__((weak));

namespace blockwatch::interpose {

UnwBacktraceFn g_unw_backtrace = nullptr;

namespace {
// libunwind's soname on Debian 12 (libunwind8).
constexpr const char* kUnwindSonames[] = {"libunwind.so.8", "libunwind.so"};

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

}  // namespace blockwatch::interpose
