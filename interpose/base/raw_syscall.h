// The syscall instruction itself, for the few places that must not go through
// libc: libc's syscall() is blockwatch's own hook (and unresolved while a
// thread is inside dlsym), and glibc's wrappers set errno, which a hook must
// leave alone. Returns the kernel's value: >= 0, or -errno. No errno, no
// allocation, no lock, async-signal-safe. x86-64 only (callers say what they do
// elsewhere).
#pragma once

namespace blockwatch::interpose {

#if defined(__x86_64__)
inline long raw_syscall6(long number, long a1, long a2, long a3, long a4, long a5, long a6) {
  long result;
  register long r10 __asm__("r10") = a4;
  register long r8 __asm__("r8") = a5;
  register long r9 __asm__("r9") = a6;
  __asm__ volatile("syscall"
                   : "=a"(result)
                   : "a"(number), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return result;
}
#endif

}  // namespace blockwatch::interpose
