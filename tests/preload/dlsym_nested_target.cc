// The program side of the nested-dlsym scenario (see dlsym_nested.h): it replaces
// free() the way tracing allocators do, reports what the nested hooked calls
// returned, blocks once on a worker (so the test sees blockwatch working after
// its eventful start), then checks each result against what the real call
// returns. Exit status 3 names the first result that differs.
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "tests/preload/dlsym_nested.h"
#include "tests/preload/target_support.h"

extern "C" void __libc_free(void* pointer);

// Replaces glibc's free for the whole process (glibc supports replacing its
// allocator functions). Runs wherever free runs: keep it to a flag check.
extern "C" void free(void* pointer) {
  dlsym_nested_on_free();
  __libc_free(pointer);
}

int main() {
  const DlsymNestedOutcome& outcome = *dlsym_nested_outcome();
  printf(
      "nested_free_calls=%d write=%lld:%d read=%lld timedlock=%d usleep=%lld:%d "
      "getpid=%lld\n",
      outcome.nested_free_calls, static_cast<long long>(outcome.nested_write_rc),
      outcome.nested_write_errno, static_cast<long long>(outcome.nested_read_rc),
      outcome.nested_timedlock_rc, static_cast<long long>(outcome.nested_usleep_rc),
      outcome.nested_usleep_errno, static_cast<long long>(outcome.nested_getpid_rc));
  fflush(stdout);
  preload_target::run_named_thread("worker-1", [] { usleep(5000); });
  CHECK(outcome.outer_write_rc == 1);
  if (outcome.nested_free_calls > 0) {
    CHECK(outcome.nested_write_rc == 1 && outcome.nested_write_errno == 0);
    CHECK(outcome.nested_read_rc == 1);
    CHECK(outcome.nested_timedlock_rc == EDEADLK);
    CHECK(outcome.nested_usleep_rc == 0 && outcome.nested_usleep_errno == 0);
    CHECK(outcome.nested_getpid_rc == getpid());
  }
  return 0;
}
