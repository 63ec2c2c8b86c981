// The executable ranges of blockwatch's own object (see own_code.h).
#include "interpose/base/own_code.h"

#include <elf.h>
#include <link.h>

#include <atomic>

namespace blockwatch::interpose {
namespace {

constexpr int kMaxOwnRanges = 4;
constinit uintptr_t g_own_start[kMaxOwnRanges];
constinit uintptr_t g_own_end[kMaxOwnRanges];
// Published after the ranges it counts (readers may be signal handlers).
constinit std::atomic<int> g_own_range_count{0};

int find_own_ranges(dl_phdr_info* info, size_t, void*) {
  const auto self = reinterpret_cast<uintptr_t>(&own_code_init);
  bool contains_self = false;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    const uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    if (ph.p_type == PT_LOAD && self >= start && self < start + ph.p_memsz) contains_self = true;
  }
  if (!contains_self) return 0;
  int count = 0;
  for (int i = 0; i < info->dlpi_phnum && count < kMaxOwnRanges; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
    g_own_start[count] = info->dlpi_addr + ph.p_vaddr;
    g_own_end[count] = info->dlpi_addr + ph.p_vaddr + ph.p_memsz;
    ++count;
  }
  g_own_range_count.store(count, std::memory_order_release);
  return 1;
}

}  // namespace

void own_code_init() {
  if (g_own_range_count.load(std::memory_order_acquire) > 0) return;  // never moves
  dl_iterate_phdr(find_own_ranges, nullptr);
}

bool is_own_pc(uintptr_t pc) {
  const int count = g_own_range_count.load(std::memory_order_acquire);
  for (int i = 0; i < count; ++i) {
    if (pc >= g_own_start[i] && pc < g_own_end[i]) return true;
  }
  return false;
}

}  // namespace blockwatch::interpose
