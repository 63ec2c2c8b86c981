// Zydis (task-entry probes) and libunwind's remote unwinder (the watchdog's
// DWARF unwind of a sampled stack) are needed only in a watched process. Linked
// directly, they were loaded into every process the preload reaches, dormant
// ones too (process_scope.h): each of their functions is defined here instead,
// as a forwarder that loads its library with dlopen at its first call (the
// library constructor for the probes, the watchdog thread for the unwinder) and
// calls the real one. A library that cannot be loaded makes its functions fail
// the way they fail (a Zydis error status, a negative libunwind code): probes
// are then refused, stall samples have no stack.
//
// Not hook-path code: the first call of each function takes the loader's lock
// (through the loader gate, our threads never hold it across a fork).
#include <Zydis/Zydis.h>
#include <dlfcn.h>
#include <libunwind.h>

#include <atomic>

#include "interpose/base/loader_gate.h"

namespace blockwatch::interpose {
namespace {

struct LazyLibrary {
  const char* soname;
  std::atomic<void*> handle{nullptr};
  std::atomic<bool> tried{false};
};

LazyLibrary g_zydis{"libZydis.so.4.0"};
LazyLibrary g_unwind_remote{"libunwind-x86_64.so.8"};

void* lazy_symbol(LazyLibrary& library, std::atomic<void*>& cache, const char* name) {
  if (void* function = cache.load(std::memory_order_acquire)) return function;
  void* handle = library.handle.load(std::memory_order_acquire);
  if (!handle && !library.tried.exchange(true)) {
    LoaderSection in_loader;
    handle = dlopen(library.soname, RTLD_NOW | RTLD_LOCAL);
    library.handle.store(handle, std::memory_order_release);
  }
  void* function = handle ? dlsym(handle, name) : nullptr;
  cache.store(function, std::memory_order_release);
  return function;
}

#define BW_LAZY_NAME_INNER(name) #name
#define BW_LAZY_NAME(name) BW_LAZY_NAME_INNER(name)  // libunwind's unw_* are macros

// The real `name` of `library` as a pointer of the forwarder's own type.
#define BW_LAZY(library, name)                                                                 \
  ([]() {                                                                                      \
    static std::atomic<void*> cache{nullptr};                                                  \
    return reinterpret_cast<decltype(&name)>(lazy_symbol(library, cache, BW_LAZY_NAME(name))); \
  }())

}  // namespace
}  // namespace blockwatch::interpose

namespace bw = blockwatch::interpose;

extern "C" {

ZyanStatus ZydisDecoderInit(ZydisDecoder* decoder, ZydisMachineMode machine_mode,
                            ZydisStackWidth stack_width) {
  auto real = BW_LAZY(bw::g_zydis, ZydisDecoderInit);
  return real ? real(decoder, machine_mode, stack_width) : ZYAN_STATUS_FAILED;
}

ZyanStatus ZydisDecoderDecodeFull(const ZydisDecoder* decoder, const void* buffer, ZyanUSize length,
                                  ZydisDecodedInstruction* instruction,
                                  ZydisDecodedOperand operands[ZYDIS_MAX_OPERAND_COUNT]) {
  auto real = BW_LAZY(bw::g_zydis, ZydisDecoderDecodeFull);
  return real ? real(decoder, buffer, length, instruction, operands) : ZYAN_STATUS_FAILED;
}

ZyanStatus ZydisCalcAbsoluteAddress(const ZydisDecodedInstruction* instruction,
                                    const ZydisDecodedOperand* operand, ZyanU64 runtime_address,
                                    ZyanU64* result_address) {
  auto real = BW_LAZY(bw::g_zydis, ZydisCalcAbsoluteAddress);
  return real ? real(instruction, operand, runtime_address, result_address) : ZYAN_STATUS_FAILED;
}

unw_addr_space_t unw_create_addr_space(unw_accessors_t* accessors, int byte_order) {
  auto real = BW_LAZY(bw::g_unwind_remote, unw_create_addr_space);
  return real ? real(accessors, byte_order) : nullptr;
}

void unw_flush_cache(unw_addr_space_t space, unw_word_t low, unw_word_t high) {
  if (auto real = BW_LAZY(bw::g_unwind_remote, unw_flush_cache)) real(space, low, high);
}

int unw_set_caching_policy(unw_addr_space_t space, unw_caching_policy_t policy) {
  auto real = BW_LAZY(bw::g_unwind_remote, unw_set_caching_policy);
  return real ? real(space, policy) : -UNW_EUNSPEC;
}

int unw_init_remote(unw_cursor_t* cursor, unw_addr_space_t space, void* arg) {
  auto real = BW_LAZY(bw::g_unwind_remote, unw_init_remote);
  return real ? real(cursor, space, arg) : -UNW_EUNSPEC;
}

int unw_step(unw_cursor_t* cursor) {
  auto real = BW_LAZY(bw::g_unwind_remote, unw_step);
  return real ? real(cursor) : -UNW_EUNSPEC;
}

int unw_get_reg(unw_cursor_t* cursor, int reg, unw_word_t* value) {
  auto real = BW_LAZY(bw::g_unwind_remote, unw_get_reg);
  return real ? real(cursor, reg, value) : -UNW_EUNSPEC;
}

int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t space, unw_word_t ip, unw_dyn_info_t* info,
                                       unw_proc_info_t* proc, int need_unwind_info, void* arg) {
  auto real = BW_LAZY(bw::g_unwind_remote, _Ux86_64_dwarf_search_unwind_table);
  return real ? real(space, ip, info, proc, need_unwind_info, arg) : -UNW_EUNSPEC;
}

}  // extern "C"
