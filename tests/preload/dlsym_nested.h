// A real way for a hooked function to run while blockwatch is inside dlsym
// resolving its real-symbol table (DESIGN.md invariant 4), shared by
// dlsym_nested_first.cc (library) and dlsym_nested_target.cc (program):
//
// 1. The library's constructor runs before blockwatch's (a preloaded object is
//    initialised after the program's own libraries). It makes a dlsym that
//    fails and does not call dlerror, as plugin probes often do: glibc keeps a
//    malloc'ed error object for this thread.
// 2. It then calls write(): blockwatch's hook finds its table empty and calls
//    dlsym. glibc's dlsym frees the pending error object first, with the
//    program's free().
// 3. The program replaces free() (a tracing allocator); while armed, it calls
//    hooked functions (write, read, pthread_mutex_timedlock, usleep, syscall)
//    and records what each returned. They must return exactly what the real
//    calls return, without deadlock.
#pragma once

#include <cstdint>

struct DlsymNestedOutcome {
  int nested_free_calls;  // frees that ran while armed (0 without the preload)
  int64_t outer_write_rc;
  int64_t nested_write_rc;
  int nested_write_errno;
  int64_t nested_read_rc;
  int nested_timedlock_rc;
  int64_t nested_usleep_rc;
  int nested_usleep_errno;
  int64_t nested_getpid_rc;
};

// The library's record of step 1-2 (filled by its constructor).
extern "C" DlsymNestedOutcome* dlsym_nested_outcome();
// Called by the program's free() before it frees; does the nested hooked calls
// when armed (during the constructor's write), once per free.
extern "C" void dlsym_nested_on_free();
