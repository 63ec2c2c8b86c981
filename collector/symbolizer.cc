// libdwfl-based symbolization. One Dwfl per module file, reported at base 0 with
// dwfl_report_elf (add_p_vaddr: Dwfl addresses are then file virtual addresses,
// which is what pc - load bias is). Function names: the ELF symbol table (via
// dwfl_module_addrinfo, which also reads .gnu_debugdata) for the physical frame,
// DWARF (linkage name, else name, through abstract origins) for inlined ones;
// source lines from the line table and each inlined instance's call site.
#include "collector/symbolizer.h"

#include <dwarf.h>
#include <elfutils/debuginfod.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <gelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "collector/demangle.h"

namespace blockwatch::collector {

namespace {

// Per-module and total cache bounds: a runaway stream of distinct pcs costs a
// cache flush, never unbounded memory.
constexpr size_t kMaxModules = 1024;
constexpr size_t kMaxCachedAddressesPerModule = 1 << 20;
// Perf maps held at once (each up to kMaxPerfMapBytes); more: all are dropped
// and re-read on demand.
constexpr size_t kMaxPerfMaps = 16;
// File times come from the kernel's coarse clock (a tick behind the real time):
// a perf map written just after the process started may look a little older.
constexpr int64_t kPerfMapClockSlackNs = 1'000'000'000;

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

enum class FileMatch { kMissing, kMatch, kMismatch };

// Whether the ELF file at `path` is the build `build_id` names (any ELF file
// matches an empty build-id: there is nothing to check).
// Only regular files are read: a stream names paths, and opening a FIFO or a
// device (blocking until a writer comes, or endless) must not stall the collector.
FileMatch check_build_id(const std::string& path, const std::string& build_id) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return FileMatch::kMissing;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return FileMatch::kMissing;
  }
  FileMatch result = FileMatch::kMismatch;
  if (Elf* elf = elf_begin(fd, ELF_C_READ_MMAP, nullptr)) {
    if (elf_kind(elf) == ELF_K_ELF) {
      const void* bits = nullptr;
      const ssize_t size = dwelf_elf_gnu_build_id(elf, &bits);
      if (build_id.empty() ||
          (size > 0 && std::string_view(static_cast<const char*>(bits), size) == build_id)) {
        result = FileMatch::kMatch;
      }
    }
    elf_end(elf);
  }
  close(fd);
  return result;
}

// debuginfod's progress callback: cancels a download past the deadline stored as
// the client's user data (called about once a second while connecting too).
int debuginfod_progress(debuginfod_client* client, long, long) {
  const auto* deadline_ms = static_cast<const int64_t*>(debuginfod_get_user_data(client));
  return deadline_ms != nullptr && now_ms() > *deadline_ms ? 1 : 0;
}

std::string attribute_string(Dwarf_Die* die, int name) {
  Dwarf_Attribute attr;
  if (dwarf_attr_integrate(die, name, &attr) == nullptr) return {};
  const char* text = dwarf_formstring(&attr);
  return text == nullptr ? std::string() : std::string(text);
}

// The DIE that declares `die`'s function: through DW_AT_abstract_origin (an
// inlined or out-of-line instance) and DW_AT_specification (a member defined
// outside its class).
Dwarf_Die declaration_of(Dwarf_Die* die) {
  Dwarf_Die current = *die;
  for (int hops = 0; hops < 8; ++hops) {
    Dwarf_Attribute attr;
    Dwarf_Die next;
    if ((dwarf_attr(&current, DW_AT_abstract_origin, &attr) == nullptr &&
         dwarf_attr(&current, DW_AT_specification, &attr) == nullptr) ||
        dwarf_formref_die(&attr, &next) == nullptr) {
      break;
    }
    current = next;
  }
  return current;
}

std::string die_function_name(Dwarf_Die* die);

// `name` qualified by the scopes that contain its declaration: namespaces,
// classes, and the function a local class or lambda is defined in. "model::Load"
// for a function with internal linkage (no linkage name to demangle);
// "pool::Submit(int)::{lambda}::operator()" for a lambda.
std::string qualified_name(Dwarf_Die* die, const std::string& name) {
  Dwarf_Die declaration = declaration_of(die);
  Dwarf_Die* scopes = nullptr;
  const int count = dwarf_getscopes_die(&declaration, &scopes);
  std::string qualified = name;
  for (int i = 1; i < count; ++i) {
    const int tag = dwarf_tag(&scopes[i]);
    const char* scope_name = dwarf_diename(&scopes[i]);
    if (tag == DW_TAG_subprogram) {
      // Already qualified by its own declaration's scopes.
      qualified = die_function_name(&scopes[i]) + "::" + qualified;
      break;
    }
    if (tag == DW_TAG_namespace) {
      qualified =
          (scope_name != nullptr ? scope_name : "(anonymous namespace)") + ("::" + qualified);
    } else if (tag == DW_TAG_class_type || tag == DW_TAG_structure_type ||
               tag == DW_TAG_union_type) {
      qualified = (scope_name != nullptr ? scope_name : "{lambda}") + ("::" + qualified);
    }
  }
  free(scopes);
  return qualified;
}

// A function DIE's name: the demangled linkage name (qualified, with parameters,
// like the symbol table's), else DW_AT_name qualified by its enclosing scopes (C
// functions; C++ functions with internal linkage).
std::string die_function_name(Dwarf_Die* die) {
  std::string linkage = attribute_string(die, DW_AT_linkage_name);
  if (linkage.empty()) linkage = attribute_string(die, DW_AT_MIPS_linkage_name);
  if (!linkage.empty()) return demangle(linkage);
  const std::string name = attribute_string(die, DW_AT_name);
  return name.empty() ? name : qualified_name(die, name);
}

// Line tables name files relative to the compilation directory when the build
// used relative paths (Ninja does): "../src/x.cc" becomes "/build/src/x.cc".
std::string absolute_source_path(const char* file, const char* comp_dir) {
  if (file == nullptr) return {};
  if (file[0] == '/' || comp_dir == nullptr || comp_dir[0] == '\0') return file;
  return (std::filesystem::path(comp_dir) / file).lexically_normal().string();
}

uint32_t declared_line(Dwarf_Die* die) {
  int line = 0;
  return dwarf_decl_line(die, &line) == 0 && line > 0 ? static_cast<uint32_t>(line) : 0;
}

// Where an inlined instance was called from: DW_AT_call_file / DW_AT_call_line.
void call_site(Dwarf_Die* die, std::string* file, uint32_t* line) {
  Dwarf_Attribute attr;
  Dwarf_Word value = 0;
  *line = dwarf_formudata(dwarf_attr(die, DW_AT_call_line, &attr), &value) == 0
              ? static_cast<uint32_t>(value)
              : 0;
  file->clear();
  Dwarf_Die cu;
  Dwarf_Files* files = nullptr;
  size_t file_count = 0;
  if (dwarf_formudata(dwarf_attr(die, DW_AT_call_file, &attr), &value) == 0 &&
      dwarf_diecu(die, &cu, nullptr, nullptr) != nullptr &&
      dwarf_getsrcfiles(&cu, &files, &file_count) == 0 && value < file_count) {
    Dwarf_Attribute comp_dir;
    *file = absolute_source_path(dwarf_filesrc(files, value, nullptr, nullptr),
                                 dwarf_formstring(dwarf_attr(&cu, DW_AT_comp_dir, &comp_dir)));
  }
}

// The inlined chain at `address` from the concrete DIE tree: innermost inlined
// instance first, the containing subprogram last. Appends to *frames and returns
// true when a subprogram closed the chain.
bool append_dwarf_frames(Dwfl_Module* module, uint64_t address, const std::string& symbol_name,
                         std::string file, uint32_t line, std::vector<SymbolizedFrame>* frames) {
  Dwarf_Addr bias = 0;
  Dwarf_Die* cu = dwfl_module_addrdie(module, address, &bias);
  if (cu == nullptr) return false;
  Dwarf_Die* scopes = nullptr;
  const int scope_count = dwarf_getscopes(cu, address - bias, &scopes);
  if (scope_count <= 0) return false;
  // dwarf_getscopes continues into an inlined function's abstract definition;
  // the concrete path from the innermost scope outwards is the call chain.
  Dwarf_Die* chain = nullptr;
  const int chain_count = dwarf_getscopes_die(&scopes[0], &chain);
  free(scopes);
  bool closed = false;
  for (int i = 0; i < chain_count && !closed; ++i) {
    Dwarf_Die* die = &chain[i];
    const int tag = dwarf_tag(die);
    if (tag == DW_TAG_inlined_subroutine) {
      frames->push_back(
          SymbolizedFrame{die_function_name(die), file, line, declared_line(die), true});
      call_site(die, &file, &line);
    } else if (tag == DW_TAG_subprogram || tag == DW_TAG_entry_point) {
      std::string name = symbol_name.empty() ? die_function_name(die) : symbol_name;
      frames->push_back(SymbolizedFrame{std::move(name), file, line, declared_line(die), false});
      closed = true;
    }
  }
  free(chain);
  return closed;
}

Symbolization resolve(Dwfl_Module* module, uint64_t address) {
  Symbolization out;
  GElf_Off symbol_offset = 0;
  GElf_Sym symbol;
  const char* raw_name =
      dwfl_module_addrinfo(module, address, &symbol_offset, &symbol, nullptr, nullptr, nullptr);
  const std::string symbol_name = raw_name != nullptr ? demangle(raw_name) : std::string();
  std::string file;
  int line = 0;
  if (Dwfl_Line* source = dwfl_module_getsrc(module, address)) {
    file = absolute_source_path(dwfl_lineinfo(source, nullptr, &line, nullptr, nullptr, nullptr),
                                dwfl_line_comp_dir(source));
  }
  const uint32_t line_number = line > 0 ? static_cast<uint32_t>(line) : 0;
  Dwarf_Addr dwarf_bias = 0;
  out.no_debug_info = dwfl_module_getdwarf(module, &dwarf_bias) == nullptr;
  if (append_dwarf_frames(module, address, symbol_name, file, line_number, &out.frames)) return out;
  out.frames.clear();
  if (!symbol_name.empty() || !file.empty()) {
    out.frames.push_back(SymbolizedFrame{symbol_name, file, line_number, 0, false});
  }
  return out;
}

}  // namespace

std::string build_id_hex(std::string_view build_id) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(build_id.size() * 2);
  for (unsigned char byte : build_id) {
    hex += kDigits[byte >> 4];
    hex += kDigits[byte & 15];
  }
  return hex;
}

struct Symbolizer::ModuleState {
  std::mutex mutex;     // everything below
  bool opened = false;  // open_module ran (whatever it found)
  Dwfl* dwfl = nullptr;
  Dwfl_Module* module = nullptr;
  bool build_id_mismatch = false;
  int64_t debuginfod_deadline_ms = 0;  // user data of the Dwfl's debuginfod client
  absl::flat_hash_map<uint64_t, Symbolization> cache;
  ~ModuleState() {
    if (dwfl != nullptr) dwfl_end(dwfl);
  }
};

namespace {

// libdwfl keeps pointers to the callbacks and to a `char*` debuginfo path for a
// Dwfl's life: one leaked set per debug root. ":.debug:ROOT" means the module's
// own directory, its .debug/ subdirectory, then ROOT (by build-id and by
// .gnu_debuglink). dwfl_standard_find_debuginfo also reads .gnu_debugdata and,
// with DEBUGINFOD_URLS set, asks debuginfod.
const Dwfl_Callbacks* callbacks_for(const std::string& debug_root) {
  static std::mutex mutex;
  // Never destroyed: what it points to lives as long as the process (a map
  // destroyed at exit would leave the sets unreachable for LeakSanitizer).
  static auto* by_root = new absl::flat_hash_map<std::string, const Dwfl_Callbacks*>;
  std::lock_guard lock(mutex);
  const Dwfl_Callbacks*& callbacks = (*by_root)[debug_root];
  if (callbacks == nullptr) {
    auto* path = new char*(strdup((":.debug:" + debug_root).c_str()));
    callbacks = new Dwfl_Callbacks{dwfl_build_id_find_elf, dwfl_standard_find_debuginfo,
                                   dwfl_offline_section_address, path};
  }
  return callbacks;
}

bool debuginfod_configured() {
  const char* urls = getenv("DEBUGINFOD_URLS");
  return urls != nullptr && urls[0] != '\0';
}

}  // namespace

Symbolizer::Symbolizer() : Symbolizer(Options{}) {}

Symbolizer::Symbolizer(Options options) : options_(std::move(options)) {
  elf_version(EV_CURRENT);
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) == 0) hostname_ = host;
}

Symbolizer::~Symbolizer() = default;

Symbolizer& Symbolizer::shared() {
  static Symbolizer* symbolizer = new Symbolizer();  // never destroyed: streams may outlive main
  return *symbolizer;
}

int64_t Symbolizer::debuginfod_deadline_ms() const {
  return options_.use_debuginfod ? now_ms() + options_.debuginfod_deadline_ms : 0;
}

Symbolizer::Stats Symbolizer::stats() const {
  return Stats{modules_opened_.load(), lookups_.load(), cache_hits_.load(),
               debuginfod_queries_.load()};
}

// The state of `module`, created (not opened yet) when new. Caller holds mutex_.
std::shared_ptr<Symbolizer::ModuleState> Symbolizer::module_entry(const ModuleIdentity& module) {
  const std::string key =
      module.build_id.empty() ? "path:" + module.path : "id:" + build_id_hex(module.build_id);
  auto [it, inserted] = modules_.try_emplace(key);
  if (!inserted) return it->second;
  if (modules_.size() > kMaxModules) {
    modules_.clear();
    it = modules_.try_emplace(key).first;
  }
  it->second = std::make_shared<ModuleState>();
  return it->second;
}

// Finds the file to read for `module`: its path when the build-id matches, else a
// copy by build-id under the debug root, else one from debuginfod. Caller holds
// state->mutex (and not mutex_: this may wait for a download).
void Symbolizer::open_module(ModuleState* state, const ModuleIdentity& module) {
  ++modules_opened_;

  state->dwfl = dwfl_begin(callbacks_for(options_.debug_root));
  if (state->dwfl == nullptr) return;
  // libdwfl asks debuginfod itself (DEBUGINFOD_URLS) for debug info it does not
  // find locally: bound that with the same deadline as our own queries (a
  // deadline already past when debuginfod is not to be used).
  debuginfod_client* client = nullptr;
  if (debuginfod_configured()) {
    client = dwfl_get_debuginfod_client(state->dwfl);
    if (client != nullptr) {
      state->debuginfod_deadline_ms = debuginfod_deadline_ms();
      debuginfod_set_user_data(client, &state->debuginfod_deadline_ms);
      debuginfod_set_progressfn(client, debuginfod_progress);
    }
    if (!options_.use_debuginfod) client = nullptr;
  }

  std::string file = module.path;
  int fd = -1;
  const FileMatch on_disk = check_build_id(module.path, module.build_id);
  if (on_disk != FileMatch::kMatch && !module.build_id.empty()) {
    file.clear();
    const std::string hex = build_id_hex(module.build_id);
    const std::string by_id =
        options_.debug_root + "/.build-id/" + hex.substr(0, 2) + "/" + hex.substr(2) + ".debug";
    if (check_build_id(by_id, module.build_id) == FileMatch::kMatch) {
      file = by_id;
    } else if (client != nullptr) {
      const auto* id = reinterpret_cast<const unsigned char*>(module.build_id.data());
      const int id_size = static_cast<int>(module.build_id.size());
      char* found = nullptr;
      ++debuginfod_queries_;
      fd = debuginfod_find_executable(client, id, id_size, &found);
      if (fd < 0) {
        ++debuginfod_queries_;
        fd = debuginfod_find_debuginfo(client, id, id_size, &found);
      }
      if (fd >= 0 && found != nullptr) file = found;
      free(found);
    }
    if (file.empty()) {
      state->build_id_mismatch = on_disk == FileMatch::kMismatch;
      return;
    }
  } else if (on_disk == FileMatch::kMissing) {
    return;
  }
  dwfl_report_begin(state->dwfl);
  const size_t slash = module.path.rfind('/');
  const std::string name = slash == std::string::npos ? module.path : module.path.substr(slash + 1);
  state->module = dwfl_report_elf(state->dwfl, name.c_str(), file.c_str(), fd, 0, true);
  dwfl_report_end(state->dwfl, nullptr, nullptr);
}

Symbolization Symbolizer::symbolize(const ModuleIdentity& module, uint64_t address) {
  ++lookups_;
  std::shared_ptr<ModuleState> state;
  {
    std::lock_guard lock(mutex_);
    state = module_entry(module);
  }
  std::lock_guard module_lock(state->mutex);
  if (!state->opened) {
    state->opened = true;
    open_module(state.get(), module);
  }
  if (auto hit = state->cache.find(address); hit != state->cache.end()) {
    ++cache_hits_;
    return hit->second;
  }
  Symbolization result;
  if (state->module != nullptr) {
    state->debuginfod_deadline_ms = debuginfod_deadline_ms();  // debug info loads lazily
    result = resolve(state->module, address);
  }
  result.build_id_mismatch = state->build_id_mismatch;
  if (state->cache.size() >= kMaxCachedAddressesPerModule) state->cache.clear();
  state->cache.emplace(address, result);
  return result;
}

JitSymbol Symbolizer::symbolize_jit(const ProcessIdentity& process, uint64_t address) {
  std::lock_guard lock(perf_maps_mutex_);
  JitSymbol out;
  const std::string path = options_.perf_map_dir + "/perf-" + std::to_string(process.pid) + ".map";
  if (process.pid <= 0 || process.hostname.empty() || process.hostname != hostname_) {
    out.note = "JIT code? its perf map is on host " +
               (process.hostname.empty() ? std::string("(unknown)") : process.hostname) +
               ", not read here";
    return out;
  }
  const std::pair<int, int64_t> key(process.pid, process.start_unix_ns);
  auto it = perf_maps_.find(key);
  if (it == perf_maps_.end()) {
    if (perf_maps_.size() >= kMaxPerfMaps) perf_maps_.clear();
    it = perf_maps_
             .emplace(key, std::make_unique<PerfMap>(
                               path, process.start_unix_ns - kPerfMapClockSlackNs))
             .first;
  }
  PerfMap::Answer answer = it->second->lookup(address);
  switch (answer.status) {
    case PerfMap::Status::kFound:
      out.name = std::move(answer.name);
      out.source = path;
      break;
    case PerfMap::Status::kNoEntry:
      out.note = "JIT code, no entry in " + path;
      break;
    case PerfMap::Status::kNoMap:
      out.note = "anonymous code, no " + path;
      break;
    case PerfMap::Status::kStale:
      out.note = "anonymous code; " + path + " is older than the process";
      break;
    case PerfMap::Status::kTooLarge:
      out.note = "JIT code, not in the first " + std::to_string(kMaxPerfMapBytes >> 20) +
                 " MiB read of " + path;
      break;
  }
  return out;
}

}  // namespace blockwatch::collector
