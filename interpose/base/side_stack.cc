// The side-stack pool and the x86-64 stack-switching trampoline (see
// side_stack.h). Elsewhere there is no trampoline: run_on_side_stack returns
// false and callers do the work where they are.
#include "interpose/base/side_stack.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace blockwatch::interpose {
namespace {

constexpr size_t kGuardBytes = 4096;
constexpr size_t kStride = kSideStackBytes + kGuardBytes;
static_assert(kSideStacks == 64, "one bit per stack in a 64-bit word");

constinit std::atomic<uint64_t> g_in_use{0};

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
#endif
constinit std::atomic<unsigned char*> g_pool{nullptr};

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

void side_stack_init() {
#if defined(__x86_64__)
  if (g_pool.load(std::memory_order_acquire)) return;
  void* pool = mmap(nullptr, kStride * kSideStacks, PROT_NONE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (pool == MAP_FAILED) return;
  auto* base = static_cast<unsigned char*>(pool);
  for (int i = 0; i < kSideStacks; ++i) {
    // The guard page stays PROT_NONE, below each stack (stacks grow down).
    if (mprotect(base + i * kStride + kGuardBytes, kSideStackBytes, PROT_READ | PROT_WRITE) != 0) {
      munmap(pool, kStride * kSideStacks);
      return;
    }
  }
  g_pool.store(base, std::memory_order_release);
#endif
}

bool run_on_side_stack(void (*fn)(void*), void* arg) {
#if defined(__x86_64__)
  unsigned char* pool = g_pool.load(std::memory_order_acquire);
  if (!pool) return false;
  uint64_t used = g_in_use.load(std::memory_order_relaxed);
  int index;
  for (;;) {
    if (~used == 0) return false;
    index = __builtin_ctzll(~used);
    const uint64_t bit = uint64_t{1} << index;
    if (g_in_use.compare_exchange_weak(used, used | bit, std::memory_order_acquire)) break;
  }
  unsigned char* top = pool + index * kStride + kStride;  // 16-byte aligned (page end)
  const uint64_t all = ~uint64_t{0};
  uint64_t saved = 0;
  raw_sigprocmask(SIG_SETMASK, &all, &saved);
  bw_call_on_stack(arg, fn, top);
  raw_sigprocmask(SIG_SETMASK, &saved, nullptr);
  g_in_use.fetch_and(~(uint64_t{1} << index), std::memory_order_release);
  return true;
#else
  (void)fn;
  (void)arg;
  return false;
#endif
}

size_t side_stack_high_water_bytes() {
  unsigned char* pool = g_pool.load(std::memory_order_acquire);
  if (!pool) return 0;
  size_t deepest = 0;
  for (int i = 0; i < kSideStacks; ++i) {
    const unsigned char* low = pool + i * kStride + kGuardBytes;
    size_t untouched = 0;
    while (untouched < kSideStackBytes && low[untouched] == 0) ++untouched;
    if (kSideStackBytes - untouched > deepest) deepest = kSideStackBytes - untouched;
  }
  return deepest;
}

}  // namespace blockwatch::interpose
