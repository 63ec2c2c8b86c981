// Resolves the real-function table declared in real_symbols.h.
//
// Runs in the library constructor and lazily from the first hook that precedes it.
// dlsym may itself call functions blockwatch interposes (calloc for its error
// state, pthread_mutex_lock in some libcs); the per-thread `resolving` flag turns
// such a nested call into "use your fallback" instead of infinite recursion.
#include "interpose/real_symbols.h"

#include <dlfcn.h>

namespace blockwatch::interpose {

RealSymbols g_real_symbols;

namespace {
__thread bool tls_resolving __attribute__((tls_model("initial-exec"))) = false;

template <typename Fn>
void resolve_one(Fn*& slot, const char* symbol, const char* version) {
  if (slot != nullptr) return;
  void* address = version ? dlvsym(RTLD_NEXT, symbol, version) : dlsym(RTLD_NEXT, symbol);
  __atomic_store_n(&slot, reinterpret_cast<Fn*>(address), __ATOMIC_RELEASE);
}
}  // namespace

bool resolve_real_symbols() {
  if (tls_resolving) return false;
  tls_resolving = true;
  const int saved_errno = errno;
#define BW_RESOLVE_REAL(field, symbol, version) resolve_one(g_real_symbols.field, #symbol, version);
  BW_FOR_EACH_REAL_SYMBOL(BW_RESOLVE_REAL)
#undef BW_RESOLVE_REAL
  errno = saved_errno;
  tls_resolving = false;
  return true;
}

}  // namespace blockwatch::interpose
