// Task-entry probes at library start (see task_probes.h): find the rules'
// functions in every loaded object's symbol tables (transport/symbols.h reads
// them), plan and build trampolines (probe_patch.h), write the jumps.
//
// Not hook-path code: the library constructor, single-threaded (checked), may
// allocate and mprotect.
#include "interpose/probes/task_probes.h"

#include <dirent.h>
#include <link.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <set>

#include "common/builtin_rules.h"
#include "common/demangle.h"
#include "common/task_entry.h"
#include "interpose/base/proc_file.h"
#include "interpose/probes/probe_patch.h"
#include "interpose/transport/symbols.h"

namespace blockwatch::interpose {
namespace {

// Reach of a rel32 jump, with room for the trampoline's own size.
constexpr int64_t kNearBytes = (int64_t{1} << 31) - (int64_t{1} << 20);
constexpr size_t kPoolBytes = 64 * 1024;

// Function-local statics: the constructor runs before this file's dynamic
// initialisers would.
// The task-entry rules, in the order whose index a probe passes its hook.
std::vector<std::string>& probe_rules() {
  static auto* rules = new std::vector<std::string>;  // read by the sender for life
  return *rules;
}

std::vector<TaskProbeStatus>& statuses() {
  static auto* list = new std::vector<TaskProbeStatus>;  // read by the sender for life
  return *list;
}
std::string& note() {
  static auto* text = new std::string;
  return *text;
}

struct Candidate {
  size_t rule = 0;
  std::string function;
  std::string module;
  uint64_t address = 0;
  uint64_t size = 0;
};

struct ScanContext {
  const std::vector<std::string>* rules = nullptr;
  std::vector<std::string> keys;  // per rule: a substring every matching mangled name has
  const char* module = nullptr;
  uint64_t bias = 0;
  std::vector<Candidate>* out = nullptr;
};

// What every matching mangled name contains: the rule's last name component
// without template arguments, with its length prefix as Itanium C++ and both
// Rust manglings write it ("10do_run_one", "4poll"), so only a few symbols are
// demangled. A rule without "::" (a C function) and a rule that is itself a
// mangled name are their own key.
std::string filter_key(const std::string& rule) {
  if (rule.rfind("_Z", 0) == 0) return rule;
  std::string name = rule.substr(0, rule.find('('));
  while (!name.empty() && name.back() == '>') {
    int depth = 0;
    size_t i = name.size();
    do {
      --i;
      if (name[i] == '>') ++depth;
      if (name[i] == '<') --depth;
    } while (i > 0 && depth > 0);
    name.resize(i);
  }
  const size_t colon = name.rfind("::");
  if (colon == std::string::npos) return name;  // C, or a global C++ function
  name = name.substr(colon + 2);
  return std::to_string(name.size()) + name;
}

void visit_symbol(void* context, const char* name, uint64_t address, uint64_t size) {
  auto& scan = *static_cast<ScanContext*>(context);
  for (size_t i = 0; i < scan.rules->size(); ++i) {
    if (!std::strstr(name, scan.keys[i].c_str())) continue;
    const std::string demangled = demangle::readable_name(name);
    if (!task_entry_rule_matches((*scan.rules)[i], name, demangled)) continue;
    scan.out->push_back({i, demangled, scan.module, scan.bias + address, size});
  }
}

struct LoadedObject {
  std::string path;
  uint64_t bias = 0;
};

std::vector<LoadedObject> loaded_objects() {
  std::vector<LoadedObject> objects;
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) {
        auto& out = *static_cast<std::vector<LoadedObject>*>(data);
        std::string path = info->dlpi_name ? info->dlpi_name : "";
        if (out.empty() && path.empty()) {
          char exe[4096];
          read_exe_path(exe, sizeof exe);
          path = exe;
        }
        // No file: the vDSO.
        if (path.empty() || path.find("linux-vdso") != std::string::npos) return 0;
        out.push_back({path, info->dlpi_addr});
        return 0;
      },
      &objects);
  return objects;
}

int count_threads() {
  DIR* dir = opendir("/proc/self/task");
  if (!dir) return -1;
  int count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count;
}

struct Pool {
  uint8_t* base;
  size_t used;
};

std::vector<Pool>& pools() {
  static auto* list = new std::vector<Pool>;
  return *list;
}

// Room for one trampoline within rel32 reach of `target`: an existing pool, or
// a new anonymous mapping placed near it (MAP_FIXED_NOREPLACE never replaces a
// mapping). Writable until seal_pools().
uint8_t* trampoline_space(uint64_t target, size_t bytes) {
  auto near = [&](uint64_t address) {
    const int64_t distance = static_cast<int64_t>(address - target);
    return distance > -kNearBytes && distance < kNearBytes - static_cast<int64_t>(kPoolBytes);
  };
  for (Pool& pool : pools()) {
    if (pool.used + bytes <= kPoolBytes && near(reinterpret_cast<uint64_t>(pool.base))) {
      uint8_t* out = pool.base + pool.used;
      pool.used += (bytes + 15) & ~size_t{15};
      return out;
    }
  }
  const uint64_t aligned = target & ~uint64_t{0xFFFF};
  for (int64_t step = 1; step < 1800; ++step) {
    for (int64_t sign : {-1, 1}) {
      const uint64_t hint = aligned + sign * step * (int64_t{1} << 20);
      void* map = mmap(reinterpret_cast<void*>(hint), kPoolBytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
      if (map == MAP_FAILED) continue;
      if (!near(reinterpret_cast<uint64_t>(map))) {
        munmap(map, kPoolBytes);
        continue;
      }
      pools().push_back({static_cast<uint8_t*>(map), (bytes + 15) & ~size_t{15}});
      return static_cast<uint8_t*>(map);
    }
  }
  return nullptr;
}

void seal_pools() {
  for (const Pool& pool : pools()) mprotect(pool.base, kPoolBytes, PROT_READ | PROT_EXEC);
}

// Writes the jump over the entry (the rest of the displaced bytes become int3:
// nothing branches there, plan_probe checked). The process has one thread.
const char* write_jump(uint64_t address, size_t displaced, uint64_t trampoline) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t start = address & ~(page - 1);
  const uint64_t end = (address + displaced + page - 1) & ~(page - 1);
  void* pages = reinterpret_cast<void*>(start);
  if (mprotect(pages, end - start, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) {
    return "the code's pages could not be made writable";
  }
  auto* code = reinterpret_cast<uint8_t*>(address);
  const int32_t rel = static_cast<int32_t>(static_cast<int64_t>(trampoline) -
                                           static_cast<int64_t>(address + kProbeJumpBytes));
  code[0] = 0xE9;  // jmp rel32
  std::memcpy(code + 1, &rel, sizeof rel);
  std::memset(code + kProbeJumpBytes, 0xCC, displaced - kProbeJumpBytes);  // int3
  mprotect(pages, end - start, PROT_READ | PROT_EXEC);
  return nullptr;
}

// Plans, builds and writes one probe. nullptr when installed, else why not.
const char* install_probe(const Candidate& candidate, uint32_t probe_id) {
  const size_t capacity = trampoline_max_bytes();
  uint8_t* trampoline = trampoline_space(candidate.address, capacity);
  if (!trampoline) return "no memory for a trampoline within reach of the function";
  const uint64_t out_address = reinterpret_cast<uint64_t>(trampoline);
  const size_t stub_bytes = capacity - kMaxRelocatedBytes - kProbeJumpBytes;
  ProbePlan plan;
  const auto* code = reinterpret_cast<const uint8_t*>(candidate.address);
  if (const char* refused =
          plan_probe(code, candidate.size, candidate.address, out_address + stub_bytes, &plan)) {
    return refused;
  }
  if (build_trampoline(trampoline, capacity, out_address, probe_id, candidate.address, plan) == 0) {
    return "the trampoline is out of reach of the function";
  }
  return write_jump(candidate.address, plan.displaced_bytes, out_address);
}

std::vector<std::string> task_entry_rules() {
  std::vector<std::string> rules(std::begin(builtin_rules::kTaskEntries),
                                 std::end(builtin_rules::kTaskEntries));
  if (const char* text = getenv("BLOCKWATCH_TASK_ENTRY")) {
    for (const char* entry = text; *entry;) {
      const size_t length = strcspn(entry, ";");
      std::string rule(entry, length);
      while (!rule.empty() && rule.back() == ' ') rule.pop_back();
      while (!rule.empty() && rule.front() == ' ') rule.erase(0, 1);
      if (!rule.empty()) rules.push_back(rule);
      entry += length;
      if (*entry == ';') ++entry;
    }
  }
  return rules;
}

}  // namespace

bool task_entry_rule_matches(const std::string& rule, const char* mangled,
                             const std::string& demangled) {
  return rule == mangled || task_entry::names_function(rule, demangled);
}

void task_probes_install_at_start() {
  const char* setting = getenv("BLOCKWATCH_PROBES");
  if (setting && (std::strcmp(setting, "off") == 0 || std::strcmp(setting, "0") == 0)) {
    note() = "off (BLOCKWATCH_PROBES=off): task boundaries only from the API and idle waits";
    return;
  }
  const int threads = count_threads();
  if (threads != 1) {
    note() = "not installed: " + std::to_string(threads) +
             " threads were running when blockwatch started, so patching code was not safe";
    return;
  }
  const std::vector<std::string> rules = task_entry_rules();
  std::vector<Candidate> candidates;
  ScanContext scan;
  scan.rules = &rules;
  for (const std::string& rule : rules) scan.keys.push_back(filter_key(rule));
  scan.out = &candidates;
  for (const LoadedObject& object : loaded_objects()) {
    scan.module = object.path.c_str();
    scan.bias = object.bias;
    for_each_function_symbol(object.path.c_str(), visit_symbol, &scan);
  }
  probe_rules() = rules;
  std::set<uint64_t> done;
  for (const Candidate& candidate : candidates) {
    if (!done.insert(candidate.address).second) continue;  // .symtab and .dynsym, aliases
    TaskProbeStatus status;
    status.rule = rules[candidate.rule];
    status.function = candidate.function;
    status.module = candidate.module;
    // The id the hook gets is the rule's index: per-task counts are per rule (a
    // Rust generic matches once per type: tokio's raw::poll 30 times and more).
    const char* refused = install_probe(candidate, static_cast<uint32_t>(candidate.rule));
    status.installed = refused == nullptr;
    if (refused) status.refused = refused;
    statuses().push_back(std::move(status));
  }
  seal_pools();
  note() =
      "libraries loaded later with dlopen are not probed (their code may already run on "
      "another thread)";
}

const std::vector<TaskProbeStatus>& task_probe_statuses() { return statuses(); }
const std::vector<std::string>& task_probe_rules() { return probe_rules(); }
const std::string& task_probes_note() { return note(); }

}  // namespace blockwatch::interpose
