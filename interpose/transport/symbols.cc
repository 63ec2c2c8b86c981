// Symbolization and the module table (see symbols.h). Our own threads only.
#include "interpose/transport/symbols.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <unordered_map>

#include "common/demangle.h"
#include "interpose/base/loader_gate.h"
#include "interpose/base/proc_file.h"

namespace blockwatch::interpose {

// The function symbols of one object file, from a read-only mapping of it that is
// kept (names point into it); the fd is closed right after mmap.
struct ElfSymbolizer::Table {
  struct Entry {
    uint64_t start;  // st_value: link-time address
    uint64_t end;
    const char* name;
  };
  std::vector<Entry> entries;  // sorted by start

  void load(const std::string& path);
  const char* lookup(uint64_t address) const {
    auto it = std::upper_bound(entries.begin(), entries.end(), address,
                               [](uint64_t value, const Entry& e) { return value < e.start; });
    if (it == entries.begin()) return nullptr;
    --it;
    return address < it->end ? it->name : nullptr;
  }
};

struct ElfSymbolizer::Tables {
  std::unordered_map<std::string, std::unique_ptr<Table>> by_path;
};

namespace {

// The defined function symbols of one symbol table section, or none when the
// section's bounds do not fit the image.
template <typename Visit>
void visit_section_functions(const char* image, size_t size, const ElfW(Shdr) & symbols,
                             const ElfW(Shdr) & strings, Visit&& visit) {
  if (symbols.sh_offset + symbols.sh_size > size || strings.sh_offset + strings.sh_size > size ||
      symbols.sh_entsize != sizeof(ElfW(Sym))) {
    return;
  }
  const auto* sym = reinterpret_cast<const ElfW(Sym)*>(image + symbols.sh_offset);
  const size_t count = symbols.sh_size / sizeof(ElfW(Sym));
  const char* names = image + strings.sh_offset;
  for (size_t i = 0; i < count; ++i) {
    const int type = ELF64_ST_TYPE(sym[i].st_info);
    if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sym[i].st_shndx == SHN_UNDEF ||
        sym[i].st_value == 0 || sym[i].st_name >= strings.sh_size) {
      continue;
    }
    visit(names + sym[i].st_name, sym[i].st_value, sym[i].st_size);
  }
}

// Maps `path` read-only (the fd is closed at once) and calls `visit` for every
// function symbol of its .symtab and .dynsym. Returns the mapping (the caller
// unmaps it, or keeps it while names point into it) and its size; null when the
// file is no readable 64-bit ELF.
template <typename Visit>
const char* map_and_visit_functions(const char* path, size_t* mapped_size, Visit&& visit) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return nullptr;
  struct stat st {};
  void* map = MAP_FAILED;
  if (fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) >= sizeof(ElfW(Ehdr))) {
    map = mmap(nullptr, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  }
  close(fd);  // the mapping stays valid without it: no fd of ours lingers
  if (map == MAP_FAILED) return nullptr;
  const char* image = static_cast<const char*>(map);
  const size_t size = st.st_size;
  *mapped_size = size;
  const auto* header = reinterpret_cast<const ElfW(Ehdr)*>(image);
  const bool valid = memcmp(header->e_ident, ELFMAG, SELFMAG) == 0 &&
                     header->e_ident[EI_CLASS] == ELFCLASS64 &&
                     header->e_shentsize == sizeof(ElfW(Shdr)) &&
                     header->e_shoff + uint64_t{header->e_shnum} * sizeof(ElfW(Shdr)) <= size;
  if (!valid) {
    munmap(map, size);
    return nullptr;
  }
  const auto* sections = reinterpret_cast<const ElfW(Shdr)*>(image + header->e_shoff);
  for (int i = 0; i < header->e_shnum; ++i) {
    const ElfW(Shdr)& section = sections[i];
    if ((section.sh_type == SHT_SYMTAB || section.sh_type == SHT_DYNSYM) &&
        section.sh_link < header->e_shnum) {
      visit_section_functions(image, size, section, sections[section.sh_link], visit);
    }
  }
  return image;
}

}  // namespace

bool for_each_function_symbol(const char* path, FunctionSymbolVisitor visit, void* context) {
  size_t size = 0;
  const char* image =
      map_and_visit_functions(path, &size, [&](const char* name, uint64_t address, uint64_t bytes) {
        visit(context, name, address, bytes);
      });
  if (!image) return false;
  munmap(const_cast<char*>(image), size);
  return true;
}

void ElfSymbolizer::Table::load(const std::string& path) {
  size_t size = 0;
  const char* image = map_and_visit_functions(
      path.c_str(), &size, [this](const char* name, uint64_t address, uint64_t bytes) {
        entries.push_back({address, address + std::max<uint64_t>(bytes, 1), name});
      });
  if (!image) return;
  if (entries.empty()) {
    munmap(const_cast<char*>(image), size);
    return;
  }
  // Aliases share an address (getpid, __getpid): the lookup takes the last entry at
  // or below the address, so sort the public name (fewest leading '_') last.
  auto underscores = [](const char* name) { return strspn(name, "_"); };
  std::sort(entries.begin(), entries.end(), [&](const Entry& a, const Entry& b) {
    if (a.start != b.start) return a.start < b.start;
    return underscores(a.name) > underscores(b.name);
  });
}

ElfSymbolizer::ElfSymbolizer() : tables_(new Tables) {}
ElfSymbolizer::~ElfSymbolizer() { delete tables_; }

ElfSymbolizer::Table* ElfSymbolizer::table_for(const std::string& path) {
  auto [it, inserted] = tables_->by_path.try_emplace(path);
  if (inserted) {
    it->second = std::make_unique<Table>();
    it->second->load(path);
  }
  return it->second.get();
}

std::string ElfSymbolizer::symbolize_return_address(uint64_t pc, const ModuleInfo* module) {
  if (pc == 0) return {};
  const uint64_t address = pc - 1;
  if (module && !module->path.empty()) {
    const Table* table = table_for(module->path);
    if (const char* name = table->lookup(address - module->base)) {
      return demangle::readable_name(name);
    }
    if (!table->entries.empty()) return {};
  }
  // No readable file (the vDSO, a deleted object): the dynamic symbols the loader
  // knows, when one contains the address.
  Dl_info info{};
  std::string name;
  {
    LoaderSection in_loader;  // loader_gate.h: never inside the loader across fork
    if (dladdr(reinterpret_cast<void*>(address), &info) && info.dli_sname && info.dli_saddr &&
        reinterpret_cast<uint64_t>(info.dli_saddr) <= address) {
      name = info.dli_sname;
    }
  }
  return name.empty() ? name : demangle::readable_name(name.c_str());
}

namespace {

std::string read_build_id(const dl_phdr_info* info, const ElfW(Phdr) & phdr) {
  const char* note = reinterpret_cast<const char*>(info->dlpi_addr + phdr.p_vaddr);
  const char* end = note + phdr.p_memsz;
  auto align4 = [](size_t n) { return (n + 3) & ~size_t{3}; };
  while (note + sizeof(ElfW(Nhdr)) <= end) {
    const auto* header = reinterpret_cast<const ElfW(Nhdr)*>(note);
    const char* name = note + sizeof(ElfW(Nhdr));
    const char* desc = name + align4(header->n_namesz);
    if (desc + header->n_descsz > end) break;
    if (header->n_type == NT_GNU_BUILD_ID && header->n_namesz == 4 && memcmp(name, "GNU", 4) == 0) {
      return std::string(desc, header->n_descsz);
    }
    note = desc + align4(header->n_descsz);
  }
  return {};
}

std::string main_program_path() {
  char path[4096];
  read_exe_path(path, sizeof path);
  return path;
}

int add_module(dl_phdr_info* info, size_t, void* data) {
  auto& modules = *static_cast<std::vector<ModuleInfo>*>(data);
  ModuleInfo module;
  module.path = info->dlpi_name && info->dlpi_name[0] ? info->dlpi_name : "";
  if (modules.empty() && module.path.empty()) module.path = main_program_path();
  module.base = info->dlpi_addr;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& phdr = info->dlpi_phdr[i];
    if (phdr.p_type == PT_LOAD && (phdr.p_flags & PF_X)) {
      const uint64_t start = info->dlpi_addr + phdr.p_vaddr;
      if (module.start == 0 || start < module.start) {
        module.start = start;
        module.file_offset = phdr.p_offset;
      }
      module.end = std::max<uint64_t>(module.end, start + phdr.p_memsz);
    } else if (phdr.p_type == PT_NOTE && module.build_id.empty()) {
      module.build_id = read_build_id(info, phdr);
    }
  }
  if (module.start != 0) modules.push_back(std::move(module));
  return 0;
}

}  // namespace

std::vector<ModuleInfo> enumerate_modules() {
  std::vector<ModuleInfo> modules;
  {
    LoaderSection in_loader;  // loader_gate.h: never inside the loader across fork
    dl_iterate_phdr(add_module, &modules);
  }
  std::sort(modules.begin(), modules.end(),
            [](const ModuleInfo& a, const ModuleInfo& b) { return a.start < b.start; });
  return modules;
}

uint64_t module_change_count() {
  uint64_t count = 0;
  LoaderSection in_loader;  // loader_gate.h: never inside the loader across fork
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t size, void* data) {
        if (size >= offsetof(dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
          *static_cast<uint64_t*>(data) = info->dlpi_adds + info->dlpi_subs;
        }
        return 1;  // the counters are the same in every entry: stop at the first
      },
      &count);
  return count;
}

const ModuleInfo* find_module(const std::vector<ModuleInfo>& modules, uint64_t pc) {
  auto it = std::upper_bound(modules.begin(), modules.end(), pc,
                             [](uint64_t value, const ModuleInfo& m) { return value < m.start; });
  if (it == modules.begin()) return nullptr;
  --it;
  return pc < it->end ? &*it : nullptr;
}

}  // namespace blockwatch::interpose
