// libc_lookup (see libc_lookup.h): a GNU-hash lookup in libc's .dynsym with
// symbol-version matching, the same answer dlvsym gives for libc's definitions.
#include "interpose/base/libc_lookup.h"

#include <elf.h>
#include <link.h>

#include <atomic>
#include <cstdint>
#include <cstring>

namespace blockwatch::interpose {

namespace {

struct DynamicTables {
  ElfW(Addr) base = 0;
  const ElfW(Sym) * symbols = nullptr;
  const char* strings = nullptr;
  const uint32_t* gnu_hash = nullptr;
  const ElfW(Versym) * versions = nullptr;  // may be null: an unversioned object
  const ElfW(Verdef) * version_definitions = nullptr;
};

bool is_libc(const char* path) {
  if (path == nullptr) return false;
  const char* slash = std::strrchr(path, '/');
  const char* name = slash != nullptr ? slash + 1 : path;
  return std::strcmp(name, "libc.so.6") == 0;
}

const link_map* find_libc() {
  for (const link_map* map = _r_debug.r_map; map != nullptr; map = map->l_next) {
    if (is_libc(map->l_name)) return map;
  }
  return nullptr;
}

// glibc relocates .dynamic's pointers in place on most targets, not on all: an
// address below the load base is still file-relative.
template <typename T>
const T* rebased(ElfW(Addr) base, ElfW(Addr) address) {
  return reinterpret_cast<const T*>(address < base ? address + base : address);
}

bool read_dynamic(const link_map* map, DynamicTables* out) {
  out->base = map->l_addr;
  for (const ElfW(Dyn)* entry = map->l_ld; entry->d_tag != DT_NULL; ++entry) {
    const ElfW(Addr) address = entry->d_un.d_ptr;
    switch (entry->d_tag) {
      case DT_SYMTAB:
        out->symbols = rebased<ElfW(Sym)>(out->base, address);
        break;
      case DT_STRTAB:
        out->strings = rebased<char>(out->base, address);
        break;
      case DT_GNU_HASH:
        out->gnu_hash = rebased<uint32_t>(out->base, address);
        break;
      case DT_VERSYM:
        out->versions = rebased<ElfW(Versym)>(out->base, address);
        break;
      case DT_VERDEF:
        out->version_definitions = rebased<ElfW(Verdef)>(out->base, address);
        break;
      default:
        break;
    }
  }
  return out->symbols != nullptr && out->strings != nullptr && out->gnu_hash != nullptr;
}

uint32_t gnu_hash_of(const char* name) {
  uint32_t hash = 5381;
  for (const unsigned char* c = reinterpret_cast<const unsigned char*>(name); *c != 0; ++c) {
    hash = hash * 33 + *c;
  }
  return hash;
}

// The name of version index `index` in the object's version definitions.
const char* version_name(const DynamicTables& tables, uint16_t index) {
  const ElfW(Verdef)* definition = tables.version_definitions;
  while (definition != nullptr) {
    if (definition->vd_ndx == index) {
      const auto* aux = reinterpret_cast<const ElfW(Verdaux)*>(
          reinterpret_cast<const char*>(definition) + definition->vd_aux);
      return tables.strings + aux->vda_name;
    }
    if (definition->vd_next == 0) break;
    definition = reinterpret_cast<const ElfW(Verdef)*>(reinterpret_cast<const char*>(definition) +
                                                       definition->vd_next);
  }
  return nullptr;
}

// Default version: the one not marked hidden (what `symbol@@VERSION` means).
bool version_matches(const DynamicTables& tables, uint32_t symbol_index, const char* version) {
  if (tables.versions == nullptr) return version == nullptr;
  const uint16_t versym = tables.versions[symbol_index];
  const uint16_t index = versym & 0x7fff;
  if (version == nullptr) return (versym & 0x8000) == 0;
  const char* name = version_name(tables, index);
  return name != nullptr && std::strcmp(name, version) == 0;
}

void* definition_address(const DynamicTables& tables, const ElfW(Sym) & symbol) {
  const int type = ELF64_ST_TYPE(symbol.st_info);
  if (symbol.st_shndx == SHN_UNDEF || (type != STT_FUNC && type != STT_GNU_IFUNC)) return nullptr;
  void* address = reinterpret_cast<void*>(tables.base + symbol.st_value);
  if (type == STT_GNU_IFUNC) address = reinterpret_cast<void* (*)()>(address)();
  return address;
}

// libc's tables, found once: the constructor looks up some 70 symbols, and
// finding and reading them for each was most of what a dormant process paid at
// start. Two threads racing here (early hooks) both compute the same values; only
// a complete copy is published.
bool libc_tables(DynamicTables* out) {
  static DynamicTables cached;
  static std::atomic<int> state{0};  // 0: not yet, 1: being written, 2: ready
  if (state.load(std::memory_order_acquire) == 2) {
    *out = cached;
    return true;
  }
  const link_map* libc = find_libc();
  if (libc == nullptr || !read_dynamic(libc, out)) return false;
  int expected = 0;
  if (state.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
    cached = *out;
    state.store(2, std::memory_order_release);
  }
  return true;
}

}  // namespace

bool only_libc_and_loader_after(const void* own_dynamic) {
  const link_map* map = _r_debug.r_map;
  while (map != nullptr && map->l_ld != own_dynamic) map = map->l_next;
  if (map == nullptr) return false;
  for (map = map->l_next; map != nullptr; map = map->l_next) {
    const char* path = map->l_name;
    const char* slash = path ? std::strrchr(path, '/') : nullptr;
    const char* name = slash ? slash + 1 : (path ? path : "");
    if (name[0] != '\0' && std::strcmp(name, "libc.so.6") != 0 &&
        std::strncmp(name, "ld-linux", 8) != 0 && std::strncmp(name, "linux-vdso", 10) != 0) {
      return false;
    }
  }
  return true;
}

void* libc_lookup(const char* symbol, const char* version) {
  DynamicTables tables;
  if (!libc_tables(&tables)) return nullptr;
  const uint32_t bucket_count = tables.gnu_hash[0];
  const uint32_t first_hashed = tables.gnu_hash[1];
  const uint32_t bloom_words = tables.gnu_hash[2];
  const auto* buckets = reinterpret_cast<const uint32_t*>(
      reinterpret_cast<const ElfW(Addr)*>(tables.gnu_hash + 4) + bloom_words);
  const uint32_t* chain = buckets + bucket_count;
  const uint32_t hash = gnu_hash_of(symbol);
  if (bucket_count == 0) return nullptr;
  uint32_t index = buckets[hash % bucket_count];
  if (index < first_hashed) return nullptr;
  for (;; ++index) {
    const uint32_t chain_hash = chain[index - first_hashed];
    if ((chain_hash | 1) == (hash | 1) &&
        std::strcmp(tables.strings + tables.symbols[index].st_name, symbol) == 0 &&
        version_matches(tables, index, version)) {
      if (void* address = definition_address(tables, tables.symbols[index])) return address;
    }
    if ((chain_hash & 1) != 0) return nullptr;  // end of this bucket's chain
  }
}

}  // namespace blockwatch::interpose
