// Side stacks and the x86-64 stack-switching trampoline (see side_stack.h).
// Elsewhere there is no trampoline: run_on_side_stack returns false and callers
// go without a stack.
#include "interpose/base/side_stack.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "interpose/base/raw_syscall.h"

namespace blockwatch::interpose {
namespace {

constexpr size_t kGuardBytes = 4096;

#if defined(__x86_64__)
// rt_sigprocmask with the kernel's 8-byte set, as a raw syscall: glibc's
// sigset_t is 128 bytes, and two of them would be a quarter of the budget this
// file exists for. Not libc's syscall() (our own hook). errno untouched.
void raw_sigprocmask(int how, const uint64_t* set, uint64_t* old) {
  long result;
  register long r10 __asm__("r10") = sizeof(uint64_t);
  __asm__ volatile("syscall"
                   : "=a"(result)
                   : "a"(SYS_rt_sigprocmask), "D"(how), "S"(set), "d"(old), "r"(r10)
                   : "rcx", "r11", "memory");
  (void)result;
}

// Maps kSideStackBytes with a PROT_NONE guard page below. Null on failure.
unsigned char* map_side_stack() {
  const long mapped =
      raw_syscall6(SYS_mmap, 0, kGuardBytes + kSideStackBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mapped < 0 && mapped > -4096) return nullptr;
  if (raw_syscall6(SYS_mprotect, mapped, kGuardBytes, PROT_NONE, 0, 0, 0) != 0) {
    raw_syscall6(SYS_munmap, mapped, kGuardBytes + kSideStackBytes, 0, 0, 0, 0);
    return nullptr;
  }
  return reinterpret_cast<unsigned char*>(mapped) + kGuardBytes;
}
#endif

}  // namespace
}  // namespace blockwatch::interpose

#if defined(__x86_64__)
// void bw_call_on_stack(void* arg, void (*fn)(void*), void* stack_top)
// A standard frame on the caller's stack (push rbp; mov rsp, rbp), then rsp moves
// to stack_top (16-byte aligned) and fn is called. Its CFI (CFA = rbp + 16) stays
// valid while fn runs, because fn preserves rbp: unwinders continue from here
// into the caller's frames.
extern "C" void bw_call_on_stack(void* arg, void (*fn)(void*), void* stack_top);
__asm__(
    ".text\n"
    ".p2align 4\n"
    ".globl bw_call_on_stack\n"
    ".hidden bw_call_on_stack\n"
    ".type bw_call_on_stack, @function\n"
    "bw_call_on_stack:\n"
    "  .cfi_startproc\n"
    "  pushq %rbp\n"
    "  .cfi_def_cfa_offset 16\n"
    "  .cfi_offset %rbp, -16\n"
    "  movq %rsp, %rbp\n"
    "  .cfi_def_cfa_register %rbp\n"
    "  movq %rdx, %rsp\n"
    "  callq *%rsi\n"
    "  movq %rbp, %rsp\n"
    "  popq %rbp\n"
    "  .cfi_def_cfa %rsp, 8\n"
    "  retq\n"
    "  .cfi_endproc\n"
    ".size bw_call_on_stack, .-bw_call_on_stack\n");
#endif

namespace blockwatch::interpose {

bool run_on_side_stack(SideStack& stack, void (*fn)(void*), void* arg) {
#if defined(__x86_64__)
  if (stack.busy.exchange(1, std::memory_order_acquire) != 0) return false;
  unsigned char* low = stack.low.load(std::memory_order_relaxed);
  if (!low) {
    low = map_side_stack();
    if (!low) {
      stack.busy.store(0, std::memory_order_release);
      return false;
    }
    stack.low.store(low, std::memory_order_relaxed);
  }
  const uint64_t all = ~uint64_t{0};
  uint64_t saved = 0;
  raw_sigprocmask(SIG_SETMASK, &all, &saved);
  bw_call_on_stack(arg, fn, low + kSideStackBytes);  // page end: 16-byte aligned
  raw_sigprocmask(SIG_SETMASK, &saved, nullptr);
  stack.busy.store(0, std::memory_order_release);
  return true;
#else
  (void)stack;
  (void)fn;
  (void)arg;
  return false;
#endif
}

size_t side_stack_used_bytes(const SideStack& stack) {
  const unsigned char* low = stack.low.load(std::memory_order_acquire);
  if (!low) return 0;
  size_t untouched = 0;
  while (untouched < kSideStackBytes && low[untouched] == 0) ++untouched;
  return kSideStackBytes - untouched;
}

}  // namespace blockwatch::interpose
