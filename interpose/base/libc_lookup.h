// Finds a function in the C library without calling dlsym, by reading libc's own
// dynamic symbol table (GNU hash, symbol versions) through the loader's public
// link-map list (_r_debug).
//
// Why: dlsym may call back into the program (its malloc/free, which may call
// write or pthread_mutex_lock), and those calls reach blockwatch's hooks while
// blockwatch is still resolving its real functions. real_symbols.cc fills the
// table from here first, so such a nested call passes through to libc instead of
// failing; dlsym(RTLD_NEXT) then replaces an entry where another library
// interposes the same function after blockwatch.
//
// Contract: no allocation, no lock, no call into any interposed function; reads
// the link-map list without the loader's lock, so call it when no dlopen/dlclose
// can run at the same time on another thread (library start, or the first hook).
#pragma once

namespace blockwatch::interpose {

// The address of libc's `symbol` at `version` (nullptr: the default version, the
// one a program linked today binds to). IFUNC symbols are resolved. nullptr when
// libc or the symbol is not found.
void* libc_lookup(const char* symbol, const char* version);

// True when every object loaded after the one whose dynamic section is
// `own_dynamic` is libc, the loader or the vDSO: then dlsym(RTLD_NEXT) from it
// can only find libc's definitions, which libc_lookup already gave. Same
// contract as libc_lookup.
bool only_libc_and_loader_after(const void* own_dynamic);

}  // namespace blockwatch::interpose
