// Resolves the real-function table declared in real_symbols.h.
//
// Runs in the library constructor and lazily from the first hook that precedes it,
// in two steps:
//   1. every entry straight from libc's symbol table (libc_lookup.h): no dlsym,
//      nothing can call back;
//   2. dlsym(RTLD_NEXT) / dlvsym: the next definition, which is not libc's when
//      another library interposes the same function after blockwatch.
// dlsym may call into the program (its malloc/free, and from there write or
// pthread_mutex_lock): such a nested hook finds the entry step 1 filled and
// passes through to libc. The per-thread `tls_resolving` flag keeps a nested call
// from starting a resolution of its own. An entry thus changes at most twice:
// null, libc's, the next definition; a racing reader sees any of them, each a
// working function.
#include "interpose/base/real_symbols.h"

#include <dlfcn.h>
#include <link.h>

#include "interpose/base/libc_lookup.h"

namespace blockwatch::interpose {

RealSymbols g_real_symbols;

namespace {
__thread bool tls_resolving __attribute__((tls_model("initial-exec"))) = false;

// Which entries step 2 has settled (found or not): not resolved again.
struct Settled {
#define BW_DECLARE_SETTLED(field, symbol, version) bool field = false;
  BW_FOR_EACH_REAL_SYMBOL(BW_DECLARE_SETTLED)
#undef BW_DECLARE_SETTLED
};
Settled g_settled;

template <typename Fn>
void fill_from_libc(Fn*& slot, bool settled, const char* symbol, const char* version) {
  if (settled || __atomic_load_n(&slot, __ATOMIC_ACQUIRE) != nullptr) return;
  void* address = libc_lookup(symbol, version);
  if (address != nullptr) __atomic_store_n(&slot, reinterpret_cast<Fn*>(address), __ATOMIC_RELEASE);
}

template <typename Fn>
void resolve_next(Fn*& slot, bool& settled, const char* symbol, const char* version) {
  if (__atomic_load_n(&settled, __ATOMIC_ACQUIRE)) return;
  void* address = version ? dlvsym(RTLD_NEXT, symbol, version) : dlsym(RTLD_NEXT, symbol);
  if (address != nullptr) __atomic_store_n(&slot, reinterpret_cast<Fn*>(address), __ATOMIC_RELEASE);
  __atomic_store_n(&settled, true, __ATOMIC_RELEASE);
}
}  // namespace

bool resolve_real_symbols() {
  if (tls_resolving) return false;
  tls_resolving = true;
  const int saved_errno = errno;
#define BW_FILL_FROM_LIBC(field, symbol, version)                                           \
  fill_from_libc(g_real_symbols.field, __atomic_load_n(&g_settled.field, __ATOMIC_ACQUIRE), \
                 #symbol, version);
  BW_FOR_EACH_REAL_SYMBOL(BW_FILL_FROM_LIBC)
#undef BW_FILL_FROM_LIBC
  // Step 2 only where some object after ours could define these functions:
  // with nothing but libc and the loader after us, RTLD_NEXT finds what step 1
  // found (and 70 dlsym calls were a third of a dormant process's start cost).
  if (!only_libc_and_loader_after(_DYNAMIC)) {
#define BW_RESOLVE_NEXT(field, symbol, version) \
  resolve_next(g_real_symbols.field, g_settled.field, #symbol, version);
    BW_FOR_EACH_REAL_SYMBOL(BW_RESOLVE_NEXT)
#undef BW_RESOLVE_NEXT
  }
  errno = saved_errno;
  tls_resolving = false;
  return true;
}

}  // namespace blockwatch::interpose
