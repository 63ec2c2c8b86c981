// The code a task-entry probe runs on every call of a probed function (see
// probe_hook.h). Compiled with -mgeneral-regs-only: the hooks run at a
// function's entry, before its prologue, where xmm0-7 may hold its arguments
// and the trampoline saves only the integer argument registers.
//
// Hook-path code: no allocation and no lock on the fast path, async-signal-safe.
#include "interpose/probes/probe_hook.h"

#include "interpose/core/thread_state.h"

// The trampoline template. At a function's entry rsp is 8 mod 16 (the return
// address); nine pushes make it 0 mod 16 for the calls. Flags need no saving
// (a call clobbers them by the ABI; DF is clear on entry and stays clear).
// r10 (a static chain) and r11 are saved too: r11 carries the hook's address.
// The template is data: it is only ever executed as copies.
__asm__(R"(
    .pushsection .rodata.bw_probe_stub, "a"
    .globl bw_probe_stub_begin, bw_probe_stub_id_fast, bw_probe_stub_call_fast
    .globl bw_probe_stub_id_slow, bw_probe_stub_call_slow, bw_probe_stub_end
    .hidden bw_probe_stub_begin, bw_probe_stub_id_fast, bw_probe_stub_call_fast
    .hidden bw_probe_stub_id_slow, bw_probe_stub_call_slow, bw_probe_stub_end
bw_probe_stub_begin:
    push %rdi
    push %rsi
    push %rdx
    push %rcx
    push %r8
    push %r9
    push %rax
    push %r10
    push %r11
    mov $0x7eadbeef, %edi
bw_probe_stub_id_fast:
    movabs $0x1122334455667788, %r11
bw_probe_stub_call_fast:
    call *%r11
    test %eax, %eax
    jz 1f
    sub $128, %rsp
    movdqu %xmm0, 0(%rsp)
    movdqu %xmm1, 16(%rsp)
    movdqu %xmm2, 32(%rsp)
    movdqu %xmm3, 48(%rsp)
    movdqu %xmm4, 64(%rsp)
    movdqu %xmm5, 80(%rsp)
    movdqu %xmm6, 96(%rsp)
    movdqu %xmm7, 112(%rsp)
    mov $0x7eadbeef, %edi
bw_probe_stub_id_slow:
    movabs $0x1122334455667788, %r11
bw_probe_stub_call_slow:
    call *%r11
    movdqu 0(%rsp), %xmm0
    movdqu 16(%rsp), %xmm1
    movdqu 32(%rsp), %xmm2
    movdqu 48(%rsp), %xmm3
    movdqu 64(%rsp), %xmm4
    movdqu 80(%rsp), %xmm5
    movdqu 96(%rsp), %xmm6
    movdqu 112(%rsp), %xmm7
    add $128, %rsp
1:
    pop %r11
    pop %r10
    pop %rax
    pop %r9
    pop %r8
    pop %rcx
    pop %rdx
    pop %rsi
    pop %rdi
bw_probe_stub_end:
    .popsection
)");

namespace bw = blockwatch::interpose;

namespace {

// The 1 in N probe entries that read the clock (task_stats.h), out of line so
// the common path saves no register. Same contract as bw_probe_fast.
__attribute__((noinline, cold)) void probe_entry_clock(bw::ThreadSlot& slot, uint32_t probe_id) {
  bw::task_timer_entry_clock(slot.task_timer, static_cast<int>(&slot - bw::g_thread_slots),
                             probe_id, slot.tid.load(std::memory_order_relaxed));
}

}  // namespace

extern "C" __attribute__((visibility("hidden"))) int bw_probe_fast(uint32_t probe_id) {
  const uint8_t mode = bw::current_mode();
  if (__builtin_expect(mode == bw::kModeWorker, 1)) {
    bw::ThreadSlot* slot = bw::tls_thread.slot;
    // Inside blockwatch (guard held) nothing of ours runs a task; a worker
    // without a slot (all taken) is unwatched.
    if (slot && bw::tls_thread.guard_depth == 0) {
      if (bw::probe_task_entry(*slot, probe_id)) probe_entry_clock(*slot, probe_id);
    }
    return 0;
  }
  return mode == bw::kModeUnknown ? 1 : 0;
}

extern "C" __attribute__((visibility("hidden"))) void bw_probe_slow(uint32_t probe_id) {
  if (bw::classify_for_probe()) bw_probe_fast(probe_id);
}
