// Matches BLOCKWATCH_WORKERS thread rules (see worker_rules.h); their grammar is
// common/worker_selector.h. POSIX regcomp rather than std::regex: the injected
// library is built without exceptions, and std::regex reports a bad pattern only
// by throwing.
#include "interpose/core/worker_rules.h"

#include <atomic>
#include <cstring>
#include <string_view>

#include "common/worker_selector.h"

namespace blockwatch::interpose {

WorkerRules::~WorkerRules() { clear(); }

void WorkerRules::clear() {
  for (regex_t& pattern : patterns_) regfree(&pattern);
  patterns_.clear();
  cut_names_.clear();
  match_main_ = false;
}

bool WorkerRules::parse(const char* text, std::string* error) {
  clear();
  std::vector<worker_selector::ThreadRule> rules;
  bool ok = worker_selector::parse_thread_rules(text ? text : "", &rules, error);
  for (const worker_selector::ThreadRule& rule : rules) {
    if (rule.main) {
      match_main_ = true;
      continue;
    }
    regex_t pattern;
    // One error line: the first problem found.
    if (!worker_selector::compile_full_match(rule.regex, "name:" + rule.regex, &pattern,
                                             ok ? error : nullptr)) {
      ok = false;
      continue;
    }
    patterns_.push_back(pattern);
    if (!rule.cut_name.empty()) cut_names_.push_back(rule.cut_name);
  }
  return ok;
}

bool WorkerRules::matches(const char* thread_name, bool is_main_thread) const {
  if (is_main_thread && match_main_) return true;
  if (!thread_name) return false;
  for (const regex_t& pattern : patterns_) {
    if (regexec(&pattern, thread_name, 0, nullptr, 0) == 0) return true;
  }
  for (const std::string& cut : cut_names_) {
    if (cut == thread_name) return true;
  }
  return false;
}

namespace {
WorkerRules& process_rules() {
  static WorkerRules* rules = new WorkerRules();  // never destroyed: hooks run during exit
  return *rules;
}

// Name -> verdict, for the hooks. One word per entry: the name's 64-bit hash
// with its low two bits replaced by 1 (not a worker) or 2 (worker); 0 is free.
// Two names with the same 62 bits would share a verdict (odds ~2^-62 per pair).
// Readers load one word; writers CAS a free word or, when all kProbes words of
// the window hold other names, overwrite one (eviction): every word a reader
// sees is a whole entry.
class NameVerdictTable {
 public:
  static constexpr int kProbes = 8;
  static uint64_t tag_of(const char* name) {
    uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a over at most 16 bytes
    for (int i = 0; i < 16 && name[i] != '\0'; ++i) {
      hash ^= static_cast<unsigned char>(name[i]);
      hash *= 0x100000001b3ull;
    }
    hash ^= hash >> 29;
    return (hash & ~uint64_t{3}) ? hash & ~uint64_t{3} : 4;
  }
  NameVerdict lookup(uint64_t tag) const {
    for (int probe = 0; probe < kProbes; ++probe) {
      const uint64_t entry =
          entries_[(tag + probe) % kNameVerdictEntries].load(std::memory_order_acquire);
      if ((entry & ~uint64_t{3}) == tag) {
        return (entry & 3) == 2 ? NameVerdict::kWorker : NameVerdict::kNotWorker;
      }
    }
    return NameVerdict::kUnknown;
  }
  void insert(uint64_t tag, bool worker) {
    const uint64_t value = tag | (worker ? 2 : 1);
    for (int probe = 0; probe < kProbes; ++probe) {
      std::atomic<uint64_t>& word = entries_[(tag + probe) % kNameVerdictEntries];
      uint64_t entry = word.load(std::memory_order_relaxed);
      if ((entry & ~uint64_t{3}) == tag) return;
      if (entry == 0 && word.compare_exchange_strong(entry, value, std::memory_order_release)) {
        return;
      }
    }
    entries_[(tag + (tag >> 32) % kProbes) % kNameVerdictEntries].store(value,
                                                                        std::memory_order_release);
  }

 private:
  std::atomic<uint64_t> entries_[kNameVerdictEntries] = {};
};
constinit NameVerdictTable g_name_verdicts;
// Set once by install_worker_rules (constructor): does any rule look at names?
constinit std::atomic<bool> g_has_name_rules{false};
constinit std::atomic<bool> g_match_main{false};

}  // namespace

bool install_worker_rules(const char* text, std::string* error) {
  const bool ok = process_rules().parse(text, error);
  g_has_name_rules.store(process_rules().has_name_rules(), std::memory_order_release);
  g_match_main.store(process_rules().matches_main(), std::memory_order_release);
  return ok;
}

NameVerdict worker_rules_cached_verdict(const char* thread_name, bool is_main_thread) {
  if (is_main_thread && g_match_main.load(std::memory_order_relaxed)) return NameVerdict::kWorker;
  if (!g_has_name_rules.load(std::memory_order_acquire) || !thread_name) {
    return NameVerdict::kNotWorker;
  }
  return g_name_verdicts.lookup(NameVerdictTable::tag_of(thread_name));
}

bool worker_rules_learn(const char* thread_name, bool is_main_thread) {
  if (!thread_name) return is_main_thread && g_match_main.load(std::memory_order_relaxed);
  // What the kernel keeps, and what a hook reads back (PR_GET_NAME).
  char cut[worker_selector::kKeptNameBytes + 1] = {};
  std::strncpy(cut, thread_name, worker_selector::kKeptNameBytes);
  const bool by_name = process_rules().matches(cut, /*is_main_thread=*/false);
  if (g_has_name_rules.load(std::memory_order_acquire)) {
    g_name_verdicts.insert(NameVerdictTable::tag_of(cut), by_name);
  }
  return by_name || (is_main_thread && g_match_main.load(std::memory_order_relaxed));
}

bool worker_rules_match(const char* thread_name, bool is_main_thread) {
  return process_rules().matches(thread_name, is_main_thread);
}

}  // namespace blockwatch::interpose
