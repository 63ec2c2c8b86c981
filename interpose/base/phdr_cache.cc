// The module copy our stack captures unwind with (see phdr_cache.h).
#include "interpose/base/phdr_cache.h"

#include <atomic>
#include <cstring>

#include "interpose/base/loader_gate.h"

namespace blockwatch::interpose {
namespace {

// Bounds of one copy. Modules and program headers past them are left out (a
// frame in them ends its stack early); node 20 maps 8 objects, and the bounds
// leave room for programs with hundreds. Both buffers: about 1.2 MB of address
// space, of which only what is filled is ever touched.
constexpr int kMaxModules = 1024;
constexpr int kMaxPhdrs = 8192;
constexpr int kNameBytes = 64 * 1024;
constexpr int kMaxNameBytes = 256;  // a longer name is cut (libunwind needs none on x86-64)

struct Copy {
  dl_phdr_info modules[kMaxModules];
  int module_count;
  ElfW(Phdr) phdrs[kMaxPhdrs];
  char names[kNameBytes];
};

constinit Copy g_copies[2] = {};
constinit std::atomic<int> g_current{-1};  // the published copy; -1: none yet
constinit std::atomic<int> g_readers[2] = {};
constinit std::atomic<bool> g_writing{false};
__thread int tls_scope_depth __attribute__((tls_model("initial-exec"))) = 0;

struct Fill {
  Copy* copy;
  int phdrs_used;
  int names_used;
};

int copy_module(dl_phdr_info* info, size_t size, void* data) {
  auto& fill = *static_cast<Fill*>(data);
  Copy& copy = *fill.copy;
  if (copy.module_count >= kMaxModules) return 1;
  if (fill.phdrs_used + info->dlpi_phnum > kMaxPhdrs) return 0;  // skip it, keep the rest
  dl_phdr_info& module = copy.modules[copy.module_count++];
  module = {};
  std::memcpy(&module, info, size < sizeof module ? size : sizeof module);
  module.dlpi_tls_data = nullptr;  // glibc's is the calling thread's: the copier's here
  ElfW(Phdr)* phdrs = copy.phdrs + fill.phdrs_used;
  std::memcpy(phdrs, info->dlpi_phdr, sizeof(ElfW(Phdr)) * info->dlpi_phnum);
  module.dlpi_phdr = phdrs;
  fill.phdrs_used += info->dlpi_phnum;
  const char* name = info->dlpi_name ? info->dlpi_name : "";
  const size_t length = strnlen(name, kMaxNameBytes - 1);
  if (fill.names_used + static_cast<int>(length) + 1 <= kNameBytes) {
    char* stored = copy.names + fill.names_used;
    std::memcpy(stored, name, length);
    stored[length] = '\0';
    module.dlpi_name = stored;
    fill.names_used += static_cast<int>(length) + 1;
  } else {
    module.dlpi_name = "";
  }
  return 0;
}

}  // namespace

bool phdr_cache_refresh() {
  if (g_writing.exchange(true, std::memory_order_acquire)) return false;
  const int current = g_current.load();
  const int target = current == 0 ? 1 : 0;
  const bool free = g_readers[target].load() == 0;
  if (free) {
    Copy& copy = g_copies[target];
    copy.module_count = 0;
    Fill fill{&copy, 0, 0};
    LoaderSection in_loader;              // loader_gate.h: never inside the loader across fork
    dl_iterate_phdr(copy_module, &fill);  // glibc's: this thread is in no scope
    g_current.store(target);
  }
  g_writing.store(false, std::memory_order_release);
  return free;
}

bool phdr_cache_iterate(int (*callback)(dl_phdr_info*, size_t, void*), void* data, int* result) {
  int index;
  for (;;) {
    index = g_current.load();
    if (index < 0) return false;
    g_readers[index].fetch_add(1);
    if (g_current.load() == index) break;  // else the writer may be filling it
    g_readers[index].fetch_sub(1);
  }
  Copy& copy = g_copies[index];
  *result = 0;
  for (int i = 0; i < copy.module_count && *result == 0; ++i) {
    *result = callback(&copy.modules[i], sizeof copy.modules[i], data);
  }
  g_readers[index].fetch_sub(1, std::memory_order_release);
  return true;
}

void phdr_cache_after_fork_child() {
  // Only this thread exists now: pins and a rebuild of threads that are gone
  // would keep the copy from ever being rebuilt.
  g_readers[0].store(0);
  g_readers[1].store(0);
  g_writing.store(false);
}

bool phdr_cache_in_scope() { return tls_scope_depth > 0; }

PhdrCacheScope::PhdrCacheScope() { ++tls_scope_depth; }
PhdrCacheScope::~PhdrCacheScope() { --tls_scope_depth; }

}  // namespace blockwatch::interpose
