// Symbolization and the module table (see symbols.h). Sender thread only.
#include "interpose/symbols.h"

#include <elf.h>
#include <link.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/debugging/symbolize.h"

namespace blockwatch::interpose {
namespace {

bool is_rust_hash(std::string_view part) {
  if (part.size() != 17 || part[0] != 'h') return false;
  return std::all_of(part.begin() + 1, part.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// Decodes one path component of a Rust legacy name: `$LT$` escapes, `..` -> `::`,
// and the `_` that precedes a component starting with `$`.
std::string decode_rust_component(std::string_view part) {
  if (part.size() > 1 && part[0] == '_' && part[1] == '$') part.remove_prefix(1);
  static constexpr std::pair<std::string_view, char> kEscapes[] = {
      {"SP", '@'}, {"BP", '*'}, {"RF", '&'}, {"LT", '<'},
      {"GT", '>'}, {"LP", '('}, {"RP", ')'}, {"C", ','}};
  std::string out;
  for (size_t i = 0; i < part.size();) {
    if (part.compare(i, 2, "..") == 0) {
      out += "::";
      i += 2;
      continue;
    }
    if (part[i] == '$') {
      const size_t close = part.find('$', i + 1);
      if (close != std::string_view::npos) {
        const std::string_view code = part.substr(i + 1, close - i - 1);
        bool decoded = false;
        for (const auto& [name, c] : kEscapes) {
          if (code == name) {
            out += c;
            decoded = true;
          }
        }
        if (!decoded && code.size() > 1 && code[0] == 'u') {
          out += static_cast<char>(strtol(std::string(code.substr(1)).c_str(), nullptr, 16));
          decoded = true;
        }
        if (decoded) {
          i = close + 1;
          continue;
        }
      }
    }
    out += part[i++];
  }
  return out;
}

// `_ZN` (<length><identifier>)+ `E`, as Rust's legacy mangling emits it.
bool split_legacy_mangled(std::string_view name, std::vector<std::string_view>& parts) {
  if (name.substr(0, 3) != "_ZN" || name.back() != 'E') return false;
  size_t i = 3;
  while (i < name.size() - 1) {
    size_t length = 0;
    if (name[i] < '0' || name[i] > '9') return false;
    while (i < name.size() && name[i] >= '0' && name[i] <= '9')
      length = length * 10 + (name[i++] - '0');
    if (length == 0 || i + length > name.size() - 1) return false;
    parts.push_back(name.substr(i, length));
    i += length;
  }
  return !parts.empty();
}

}  // namespace

std::string clean_rust_symbol(std::string_view name) {
  std::vector<std::string_view> parts;
  if (name.size() > 4 && split_legacy_mangled(name, parts)) {
    if (!is_rust_hash(parts.back())) return std::string(name);  // C++ that absl refused
    parts.pop_back();
  } else {
    // Already demangled by absl: `a::b::h<hash>`.
    const size_t last = name.rfind("::");
    if (last == std::string_view::npos || !is_rust_hash(name.substr(last + 2))) {
      return std::string(name);
    }
    name = name.substr(0, last);
    for (size_t start = 0;;) {
      const size_t next = name.find("::", start);
      parts.push_back(name.substr(start, next - start));
      if (next == std::string_view::npos) break;
      start = next + 2;
    }
  }
  std::string out;
  for (std::string_view part : parts) {
    if (!out.empty()) out += "::";
    out += decode_rust_component(part);
  }
  return out;
}

std::string symbolize_return_address(uint64_t pc) {
  if (pc == 0) return {};
  char name[1024];
  if (!absl::Symbolize(reinterpret_cast<const void*>(pc - 1), name, sizeof name)) return {};
  return clean_rust_symbol(name);
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
  const ssize_t length = readlink("/proc/self/exe", path, sizeof path - 1);
  return length > 0 ? std::string(path, length) : std::string();
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
  dl_iterate_phdr(add_module, &modules);
  std::sort(modules.begin(), modules.end(),
            [](const ModuleInfo& a, const ModuleInfo& b) { return a.start < b.start; });
  return modules;
}

uint64_t module_change_count() {
  uint64_t count = 0;
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
