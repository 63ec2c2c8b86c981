// DWARF unwinding of a stack sample (see stack_unwinder.h).
//
// libunwind's remote API with accessors of our own, as perf's unwinder does:
//  - registers come from the sample;
//  - memory inside the copied stack comes from the copy; memory inside a loaded
//    module's readable segments (code, .eh_frame_hdr, .eh_frame) is read with
//    process_vm_readv (cached); anything else is refused: nothing faults;
//  - unwind info: the module's .eh_frame_hdr search table, handed to libunwind's
//    own dwarf_search_unwind_table.
// The module table comes from dl_iterate_phdr, looked at again at most once a
// second or when an unwind meets code outside every known module; it is rebuilt
// and libunwind's cache flushed when the set of modules changed. A module
// unloaded in between costs wrong or missing frames, never a fault (reads go
// through process_vm_readv).
#include "interpose/watchdog/stack_unwinder.h"

#include <link.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

#include "interpose/base/clock.h"
#include "interpose/base/own_code.h"

#if defined(__x86_64__)
#include <libunwind.h>

// libunwind's table search, exported by libunwind-generic but not declared in
// its public headers (perf declares it the same way).
extern "C" int _Ux86_64_dwarf_search_unwind_table(unw_addr_space_t, unw_word_t, unw_dyn_info_t*,
                                                  unw_proc_info_t*, int, void*);
#endif

namespace blockwatch::interpose {

#if defined(__x86_64__)
namespace {

constexpr int kMaxModules = 1024;
constexpr uintptr_t kRedZoneBytes = 128;  // x86-64 SysV: below sp, still the function's
constexpr int kMaxSegments = 4096;

struct Module {
  uintptr_t text_start = 0, text_end = 0;  // the executable PT_LOAD
  uintptr_t eh_frame_hdr = 0;              // 0: no usable search table
  uintptr_t table = 0;
  uint64_t fde_count = 0;
};

struct Segment {  // a readable PT_LOAD, sorted by start
  uintptr_t start = 0, end = 0;
  int module = 0;
};

// Watchdog thread only.
constinit Module g_modules[kMaxModules];
constinit int g_module_count = 0;
constinit Segment g_segments[kMaxSegments];
constinit int g_segment_count = 0;
constinit unsigned long long g_loads_seen = 0;  // dlpi_adds + dlpi_subs at the last rebuild
constinit unw_addr_space_t g_address_space = nullptr;
constinit int64_t g_loads_checked_ns = 0;
constinit bool g_unknown_ip_seen = false;
constexpr int64_t kRecheckNs = 1'000'000'000;

// DW_EH_PE encodings a .eh_frame_hdr of GNU ld / lld / gold uses.
constexpr uint8_t kPeUdata4 = 0x03, kPeSdata4 = 0x0b, kPeUdata8 = 0x04, kPeSdata8 = 0x0c;
constexpr uint8_t kPeDatarelSdata4 = 0x3b;

// Size of an encoded pointer we can skip, or 0.
int encoded_size(uint8_t encoding) {
  switch (encoding & 0x0f) {
    case kPeUdata4 & 0x0f:
    case kPeSdata4 & 0x0f:
      return 4;
    case kPeUdata8 & 0x0f:
    case kPeSdata8 & 0x0f:
      return 8;
    default:
      return 0;
  }
}

// The binary-search table of a mapped .eh_frame_hdr, when it has the layout
// libunwind searches (version 1, udata4 count, datarel sdata4 entries).
void read_eh_frame_hdr(Module& module, uintptr_t hdr) {
  uint8_t bytes[16];
  iovec local = {bytes, sizeof bytes};
  iovec remote = {reinterpret_cast<void*>(hdr), sizeof bytes};
  if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != sizeof bytes) return;
  const int pointer_size = encoded_size(bytes[1]);
  if (bytes[0] != 1 || pointer_size == 0 || bytes[2] != kPeUdata4 || bytes[3] != kPeDatarelSdata4) {
    return;
  }
  uint32_t count = 0;
  std::memcpy(&count, bytes + 4 + pointer_size, sizeof count);
  module.eh_frame_hdr = hdr;
  module.table = hdr + 4 + pointer_size + 4;
  module.fde_count = count;
}

int add_module(dl_phdr_info* info, size_t, void*) {
  if (g_module_count >= kMaxModules) return 1;
  Module& module = g_modules[g_module_count];
  module = Module{};
  const int first_segment = g_segment_count;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& phdr = info->dlpi_phdr[i];
    const uintptr_t start = info->dlpi_addr + phdr.p_vaddr;
    if (phdr.p_type == PT_LOAD && (phdr.p_flags & PF_R) && g_segment_count < kMaxSegments) {
      g_segments[g_segment_count++] = Segment{start, start + phdr.p_memsz, g_module_count};
      if (phdr.p_flags & PF_X) {
        module.text_start = start;
        module.text_end = start + phdr.p_memsz;
      }
    }
  }
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& phdr = info->dlpi_phdr[i];
    if (phdr.p_type != PT_GNU_EH_FRAME) continue;
    const uintptr_t hdr = info->dlpi_addr + phdr.p_vaddr;
    // Read only if it lies in one of this module's readable segments.
    for (int s = first_segment; s < g_segment_count; ++s) {
      if (hdr >= g_segments[s].start && hdr + 16 <= g_segments[s].end) {
        read_eh_frame_hdr(module, hdr);
        break;
      }
    }
  }
  if (module.text_end > module.text_start)
    ++g_module_count;
  else
    g_segment_count = first_segment;  // no code: nothing to unwind through
  return 0;
}

int count_loads(dl_phdr_info* info, size_t size, void* data) {
  if (size >= offsetof(dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs) {
    *static_cast<unsigned long long*>(data) = info->dlpi_adds + info->dlpi_subs;
  }
  return 1;  // the counters are global: the first object is enough
}

void rebuild_modules() {
  g_module_count = 0;
  g_segment_count = 0;
  dl_iterate_phdr(add_module, nullptr);
  // Insertion sort by start (a few hundred segments, mostly in order already).
  for (int i = 1; i < g_segment_count; ++i) {
    const Segment moving = g_segments[i];
    int j = i - 1;
    while (j >= 0 && g_segments[j].start > moving.start) {
      g_segments[j + 1] = g_segments[j];
      --j;
    }
    g_segments[j + 1] = moving;
  }
}

// The readable segment holding [address, address + bytes), or null.
const Segment* segment_of(uintptr_t address, uintptr_t bytes) {
  int low = 0, high = g_segment_count - 1;
  while (low <= high) {
    const int mid = (low + high) / 2;
    if (address < g_segments[mid].start) {
      high = mid - 1;
    } else if (address >= g_segments[mid].end) {
      low = mid + 1;
    } else {
      return address + bytes <= g_segments[mid].end ? &g_segments[mid] : nullptr;
    }
  }
  return nullptr;
}

// What the accessors unwind: the copy, and the registers to start from (the
// sample's, or the caller's after finish_epilogue below).
struct UnwindInput {
  const StackCopy* copy = nullptr;
  uint64_t regs[kStackCopyRegs] = {};
  bool read_below_copy = false;  // a rule asked for a stack slot below the sampled sp
};

UnwindInput& input_of(void* arg) { return *static_cast<UnwindInput*>(arg); }

// Module memory is read through a small cache of 256-byte lines filled with
// process_vm_readv on our own pid, which returns an error instead of faulting:
// a module dlclose'd while we unwind (after the table above was built) cannot
// crash the watchdog. Emptied before each unwind. Watchdog thread only.
constexpr size_t kLineBytes = 256;
constexpr int kLines = 64;
struct CacheLine {
  uintptr_t base = 0;  // 0: empty
  unsigned char bytes[kLineBytes] = {};
};
constinit CacheLine g_lines[kLines];

bool read_module_word(uintptr_t address, unw_word_t* value) {
  const uintptr_t base = address & ~(kLineBytes - 1);
  if (address + sizeof *value > base + kLineBytes) {  // straddles two lines
    iovec local = {value, sizeof *value};
    iovec remote = {reinterpret_cast<void*>(address), sizeof *value};
    return process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == sizeof *value;
  }
  CacheLine& line = g_lines[(base / kLineBytes) % kLines];
  if (line.base != base) {
    // A line never crosses a page: if `address` is mapped, all of it is.
    iovec local = {line.bytes, kLineBytes};
    iovec remote = {reinterpret_cast<void*>(base), kLineBytes};
    line.base = 0;
    if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != static_cast<ssize_t>(kLineBytes)) {
      return false;
    }
    line.base = base;
  }
  std::memcpy(value, line.bytes + (address - base), sizeof *value);
  return true;
}

int find_proc_info(unw_addr_space_t as, unw_word_t ip, unw_proc_info_t* info, int need_unwind_info,
                   void* arg) {
  const Segment* segment = segment_of(ip, 1);
  if (!segment) {
    g_unknown_ip_seen = true;
    return -UNW_ENOINFO;
  }
  const Module& module = g_modules[segment->module];
  if (module.eh_frame_hdr == 0 || ip < module.text_start || ip >= module.text_end) {
    return -UNW_ENOINFO;
  }
  unw_dyn_info_t table = {};
  table.format = UNW_INFO_FORMAT_REMOTE_TABLE;
  table.start_ip = module.text_start;
  table.end_ip = module.text_end;
  table.u.rti.segbase = module.eh_frame_hdr;
  table.u.rti.table_data = module.table;
  table.u.rti.table_len = module.fde_count * 8 / sizeof(unw_word_t);
  return _Ux86_64_dwarf_search_unwind_table(as, ip, &table, info, need_unwind_info, arg);
}

// libunwind frees what dwarf_search_unwind_table allocated itself.
void put_unwind_info(unw_addr_space_t, unw_proc_info_t*, void*) {}

int get_dyn_info_list_addr(unw_addr_space_t, unw_word_t*, void*) { return -UNW_ENOINFO; }

int access_mem(unw_addr_space_t, unw_word_t address, unw_word_t* value, int write, void* arg) {
  if (write) return -UNW_EREADONLYREG;
  UnwindInput& input = input_of(arg);
  const StackCopy& copy = *input.copy;
  if (address >= copy.stack_start &&
      address + sizeof *value <= copy.stack_start + copy.stack_bytes) {
    std::memcpy(value, copy.stack + (address - copy.stack_start), sizeof *value);
    return 0;
  }
  if (address < copy.stack_start && address + kRedZoneBytes >= copy.stack_start) {
    input.read_below_copy = true;
    return -UNW_EINVAL;
  }
  if (!segment_of(address, sizeof *value) || !read_module_word(address, value)) return -UNW_EINVAL;
  return 0;
}

int access_reg(unw_addr_space_t, unw_regnum_t regnum, unw_word_t* value, int write, void* arg) {
  if (regnum < 0 || regnum >= kStackCopyRegs) return -UNW_EBADREG;
  if (write) return 0;  // a step never needs to write the sample back
  *value = input_of(arg).regs[regnum];
  return 0;
}

int access_fpreg(unw_addr_space_t, unw_regnum_t, unw_fpreg_t*, int, void*) { return -UNW_EBADREG; }

int resume(unw_addr_space_t, unw_cursor_t*, void*) { return -UNW_EINVAL; }

int get_proc_name(unw_addr_space_t, unw_word_t, char*, size_t, unw_word_t*, void*) {
  return -UNW_ENOINFO;  // names come later, from the sender and the collector
}

bool prepare_address_space() {
  if (!g_address_space) {
    static unw_accessors_t accessors = {};
    accessors.find_proc_info = find_proc_info;
    accessors.put_unwind_info = put_unwind_info;
    accessors.get_dyn_info_list_addr = get_dyn_info_list_addr;
    accessors.access_mem = access_mem;
    accessors.access_reg = access_reg;
    accessors.access_fpreg = access_fpreg;
    accessors.resume = resume;
    accessors.get_proc_name = get_proc_name;
    g_address_space = unw_create_addr_space(&accessors, 0);
    if (!g_address_space) return false;
    unw_set_caching_policy(g_address_space, UNW_CACHE_GLOBAL);
  }
  // The loader's lock is taken at most once a second, or when the last unwind
  // met code in no known module (a dlopen since): a fork() while it is held
  // would leave the child's loader locked (glibc does not reset it).
  const int64_t now_ns = monotonic_ns();
  if (g_module_count != 0 && !g_unknown_ip_seen && now_ns - g_loads_checked_ns < kRecheckNs) {
    return true;
  }
  g_loads_checked_ns = now_ns;
  g_unknown_ip_seen = false;
  unsigned long long loads = 0;
  dl_iterate_phdr(count_loads, &loads);
  if (g_module_count == 0 || loads != g_loads_seen) {
    rebuild_modules();
    unw_flush_cache(g_address_space, 0, 0);
    g_loads_seen = loads;
  }
  return true;
}

// Appends the frames of `input` to frames[*count...]. Returns how many steps
// succeeded before the walk stopped.
int walk(UnwindInput& input, bool innermost, uintptr_t* frames, int max_frames,
         bool drop_own_frames, int* count) {
  unw_cursor_t cursor;
  if (unw_init_remote(&cursor, g_address_space, &input) < 0) return 0;
  int steps = 0;
  while (*count < max_frames && steps < 4 * max_frames) {
    unw_word_t ip = 0;
    if (unw_get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0) break;
    // The innermost pc is exact: handed on as pc + 1, it is symbolized at itself.
    const uintptr_t pc = innermost ? ip + 1 : ip;
    innermost = false;
    if (!(drop_own_frames && is_own_pc(ip))) frames[(*count)++] = pc;
    if (unw_step(&cursor) <= 0) break;
    ++steps;
  }
  return steps;
}

// LLVM (clang, Rust) leaves a callee-saved register's "saved at CFA-n" rule in
// place after the epilogue's `pop` restored it, so a sample taken between that
// pop and the `ret` has a rule pointing below sp, where a copy taken from sp
// has nothing (perf copies from sp up). There the caller's state is what the
// rest of the epilogue computes, and an epilogue's tail is only `pop reg` and
// `ret`: those two instruction forms (and nothing else) are executed here on
// the registers and the copy. False when the code at pc is anything else.
bool finish_epilogue(UnwindInput& input) {
  // x86 register number of a pop (rax rcx rdx rbx rsp rbp rsi rdi) -> DWARF.
  static constexpr int kDwarfOfX86[8] = {0, 2, 1, 3, kRegRsp, kRegRbp, 4, 5};
  const StackCopy& copy = *input.copy;
  uintptr_t pc = input.regs[kRegRip];
  uintptr_t sp = input.regs[kRegRsp];
  for (int instruction = 0; instruction < 16; ++instruction) {
    uint8_t code[2];
    iovec local = {code, sizeof code};
    iovec remote = {reinterpret_cast<void*>(pc), sizeof code};
    if (!segment_of(pc, sizeof code) ||
        process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != sizeof code) {
      return false;
    }
    if (sp < copy.stack_start || sp + 8 > copy.stack_start + copy.stack_bytes) return false;
    uint64_t top;
    std::memcpy(&top, copy.stack + (sp - copy.stack_start), sizeof top);
    sp += 8;
    if (code[0] == 0xc3) {  // ret
      input.regs[kRegRip] = top;
      input.regs[kRegRsp] = sp;
      return true;
    }
    int reg = -1;
    if (code[0] >= 0x58 && code[0] <= 0x5f) {
      reg = kDwarfOfX86[code[0] - 0x58];
      pc += 1;
    } else if (code[0] == 0x41 && code[1] >= 0x58 && code[1] <= 0x5f) {
      reg = 8 + (code[1] - 0x58);  // r8..r15
      pc += 2;
    }
    if (reg < 0 || reg == kRegRsp) return false;
    input.regs[reg] = top;
  }
  return false;
}

}  // namespace

int unwind_stack_copy(const StackCopy& copy, uintptr_t* frames, int max_frames,
                      bool drop_own_frames) {
  if (copy.regs[kRegRip] == 0 || max_frames <= 0 || !prepare_address_space()) return 0;
  for (CacheLine& line : g_lines) line.base = 0;
  static UnwindInput input;  // watchdog thread only
  input = UnwindInput{};
  input.copy = &copy;
  std::memcpy(input.regs, copy.regs, sizeof input.regs);
  int count = 0;
  walk(input, /*innermost=*/true, frames, max_frames, drop_own_frames, &count);
  // A rule asked for a slot below the sampled sp: only a stale rule of the
  // innermost frame's epilogue does (every other frame's slots are above it),
  // and the value it wanted is in the register already. Walk again from the
  // caller's state that the rest of the epilogue leaves, after frame 0.
  if (input.read_below_copy) {
    input = UnwindInput{};
    input.copy = &copy;
    std::memcpy(input.regs, copy.regs, sizeof input.regs);
    if (finish_epilogue(input)) {
      count = drop_own_frames && is_own_pc(copy.regs[kRegRip]) ? 0 : 1;
      walk(input, /*innermost=*/false, frames, max_frames, drop_own_frames, &count);
    }
  }
  return count;
}

#else  // no unwinder for this architecture yet: samples carry no stack

int unwind_stack_copy(const StackCopy&, uintptr_t*, int, bool) { return 0; }

#endif

}  // namespace blockwatch::interpose
