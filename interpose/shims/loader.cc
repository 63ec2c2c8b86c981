// The dl_iterate_phdr shim: blockwatch's own stack captures (libunwind inside a
// PhdrCacheScope) walk the library's copy of the module list and never take the
// loader's lock (base/phdr_cache.h says why); every other call, the program's
// included (C++ exceptions find their tables this way), is glibc's, by a tail
// call.
#include <link.h>

#include "interpose/base/phdr_cache.h"
#include "interpose/shims/hook_path.h"

namespace bw = blockwatch::interpose;

// Async-signal-safe in a scope (phdr_cache_iterate); elsewhere what glibc's is.
BW_EXPORT int dl_iterate_phdr(int (*callback)(dl_phdr_info*, size_t, void*), void* data) {
  int result = 0;
  if (__builtin_expect(bw::phdr_cache_in_scope(), 0) &&
      bw::phdr_cache_iterate(callback, data, &result)) {
    return result;
  }
  auto real_call = BW_REAL(dl_iterate_phdr);
  if (!real_call) return 0;  // no module: what an empty list would say
  return real_call(callback, data);
}
