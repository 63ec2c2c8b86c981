// What a task-entry probe runs on every call of a probed function: the
// trampoline's machine-code template (assembled by the compiler, copied per
// probe by build_trampoline) and the two hooks it calls.
#pragma once

#include <cstdint>

extern "C" {
// The template: from `begin` to `end`. The probe id is the imm32 ending at
// `id_fast` and at `id_slow`, the hooks' addresses the imm64 ending at
// `call_fast` and `call_slow`.
extern const uint8_t bw_probe_stub_begin[];
extern const uint8_t bw_probe_stub_id_fast[];
extern const uint8_t bw_probe_stub_call_fast[];
extern const uint8_t bw_probe_stub_id_slow[];
extern const uint8_t bw_probe_stub_call_slow[];
extern const uint8_t bw_probe_stub_end[];

// Fast hook: a worker's task starts. Returns 1 when the thread is not
// classified yet, so the trampoline saves the vector registers and calls the
// slow hook. No allocation, no lock, async-signal-safe, no vector register
// (this file is compiled with -mgeneral-regs-only).
int bw_probe_fast(uint32_t probe_id);
// Slow hook, once per thread: classify it (may allocate: regexec, like a hook's
// first call), then as the fast hook. The trampoline saved xmm0-7 around it.
void bw_probe_slow(uint32_t probe_id);
}
