// Idle-wait classification (see wait_classifier.h): the verdict cache, the hook
// side that parks unknown call sites in the thread's slot, and the watchdog side
// that symbolizes them and applies the built-in rules of common/builtin_rules.h
// with the matcher the collector uses too (common/stack_rule.h).
//
// Hook side (wait_classify_begin/end): no allocation, no lock of ours; one
// unwind of at most kWaitStackFrames frames under the RecursionGuard. Watchdog
// side (wait_classify_pending, classify_wait_stack): allocates, regcomp/regexec,
// mmaps objects to symbolize; watchdog thread only (or a unit test).
#include "interpose/core/wait_classifier.h"

#include <cerrno>
#include <cstring>
#include <iterator>
#include <string_view>

#include "common/builtin_rules.h"
#include "common/kinds.h"
#include "common/stack_rule.h"
#include "interpose/core/capture.h"
#include "interpose/core/config.h"
#include "interpose/transport/symbols.h"

namespace blockwatch::interpose {
namespace {

namespace shared = blockwatch::builtin_rules;

constinit VerdictCache g_cache;

WaitVerdict load_verdict(uint64_t entry) { return static_cast<WaitVerdict>(entry & 3); }

}  // namespace

// --- the cache ----------------------------------------------------------------------

WaitVerdict VerdictCache::lookup(uint64_t key) const {
  const uint64_t tag = tag_of(key);
  for (int probe = 0; probe < kProbes; ++probe) {
    const uint64_t entry = entries_[(tag + probe) % kEntries].load(std::memory_order_acquire);
    if (entry == 0) return WaitVerdict::kUnknown;
    if ((entry & ~uint64_t{3}) == tag) return load_verdict(entry);
  }
  return WaitVerdict::kUnknown;
}

bool VerdictCache::insert(uint64_t key, WaitVerdict verdict) {
  const uint64_t tag = tag_of(key);
  const uint64_t value = tag | static_cast<uint64_t>(verdict);
  for (int probe = 0; probe < kProbes; ++probe) {
    std::atomic<uint64_t>& slot = entries_[(tag + probe) % kEntries];
    uint64_t entry = slot.load(std::memory_order_relaxed);
    if (entry != 0 && (entry & ~uint64_t{3}) != tag) continue;
    if (slot.compare_exchange_strong(entry, value, std::memory_order_release) ||
        (entry & ~uint64_t{3}) == tag) {
      return true;
    }
  }
  // Every entry of the window holds another call site: forget one of them (it is
  // classified again when next parked). Refusing left a program with more than
  // the cache's call sites re-symbolizing the new ones at every watchdog tick,
  // and their parks never ended a loop turn.
  entries_[(tag + (tag >> 32) % kProbes) % kEntries].store(value, std::memory_order_release);
  return true;
}

void VerdictCache::clear() {
  for (auto& entry : entries_) entry.store(0, std::memory_order_relaxed);
}

uint64_t wait_stack_hash(const uintptr_t* pcs, int count) {
  uint64_t hash = 0x9e3779b97f4a7c15ull ^ static_cast<uint64_t>(count);
  for (int i = 0; i < count; ++i) {
    hash ^= pcs[i];
    hash *= 0xff51afd7ed558ccdull;
    hash ^= hash >> 33;
  }
  return hash ? hash : 1;
}

VerdictCache& wait_verdict_cache() { return g_cache; }

// --- hook side ----------------------------------------------------------------------

WaitTicket wait_classify_begin(uint8_t kind, int max_frames) {
  WaitTicket ticket;
  ThreadSlot* slot = tls_thread.slot;
  // Explicit tasks need no help, and API workers without tasks are classified too.
  // Nested in another timed call (a signal handler's wait, say): the slot's turn
  // state belongs to the outer call.
  if (!slot || tls_thread.guard_depth != 0 ||
      slot->task_depth.load(std::memory_order_relaxed) > 0) {
    return ticket;
  }
  const int saved_errno = errno;
  uintptr_t pcs[kWaitStackFrames];
  int count;
  {
    RecursionGuard guard;  // libunwind's first use on a thread locks mutexes
    count = capture_stack(pcs, max_frames < kWaitStackFrames ? max_frames : kWaitStackFrames);
  }
  ticket.key = wait_stack_hash(pcs, count);
  ticket.verdict = g_cache.lookup(ticket.key);
  switch (ticket.verdict) {
    case WaitVerdict::kIdle:
      mark_loop_turn(true);
      break;
    case WaitVerdict::kUnknown:
      // Key last (release): the watchdog copies pcs only under a matching key,
      // then checks the copy hashes to it (a torn copy does not).
      slot->pending_wait_key.store(0, std::memory_order_relaxed);
      for (int i = 0; i < count; ++i)
        slot->pending_wait_pcs[i].store(pcs[i], std::memory_order_relaxed);
      slot->pending_wait_count.store(static_cast<uint8_t>(count), std::memory_order_relaxed);
      slot->pending_wait_kind.store(kind, std::memory_order_relaxed);
      slot->pending_wait_key.store(ticket.key, std::memory_order_release);
      task_timer_unclassified_wait_begin(slot->task_timer);
      break;
    case WaitVerdict::kOther:
      break;
  }
  errno = saved_errno;
  return ticket;
}

bool wait_classify_end(const WaitTicket& ticket) {
  if (ticket.key == 0) return false;
  ThreadSlot* slot = tls_thread.slot;
  if (!slot) return false;
  WaitVerdict verdict = ticket.verdict;
  if (verdict == WaitVerdict::kUnknown) {
    // seq_cst pairs with the watchdog's (store verdict; load key): either it saw
    // the key cleared, or this lookup sees its verdict.
    slot->pending_wait_key.store(0, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    verdict = g_cache.lookup(ticket.key);
    task_timer_unclassified_wait_end(slot->task_timer, verdict == WaitVerdict::kIdle);
  }
  if (verdict != WaitVerdict::kIdle) return false;
  mark_loop_turn(false);
  return true;
}

// --- watchdog side ------------------------------------------------------------------

namespace {

// The built-in rules, compiled once with the collector's matcher
// (common/stack_rule.h), the pool rule with a configured pool_wait.
const std::vector<stack_rule::StackRule>& compiled_rules() {
  static const auto* rules = [] {
    auto* compiled = new std::vector<stack_rule::StackRule>(shared::count_of(shared::kRules));
    for (int i = 0; i < shared::count_of(shared::kRules); ++i) {
      std::string error;  // built-in patterns compile (common_stack_rule_test)
      const char* pool_wait = config().pool_wait;
      (*compiled)[i].compile(stack_rule::builtin_rule_text(i, pool_wait ? pool_wait : ""), &error);
    }
    return compiled;
  }();
  return *rules;
}

// The watchdog's own symbolizer and module table (the sender has its own: an
// ElfSymbolizer is not shared between threads).
struct WatchdogSymbols {
  ElfSymbolizer symbolizer;
  std::vector<ModuleInfo> modules;
  uint64_t module_changes = ~uint64_t{0};
};

std::vector<NamedFrame> symbolize(const uintptr_t* pcs, int count) {
  static WatchdogSymbols* symbols = new WatchdogSymbols;
  const uint64_t changes = module_change_count();
  if (changes != symbols->module_changes) {
    symbols->modules = enumerate_modules();
    symbols->module_changes = changes;
  }
  std::vector<NamedFrame> stack;
  for (int i = 0; i < count; ++i) {
    const ModuleInfo* module = find_module(symbols->modules, pcs[i]);
    stack.push_back({symbols->symbolizer.symbolize_return_address(pcs[i], module),
                     module ? module->path : std::string()});
  }
  return stack;
}

}  // namespace

// An epoll wait's call site is a nested loop (builtin_rules.h kNestedLoopFrames)?
bool in_nested_loop(const std::vector<NamedFrame>& stack) {
  static const auto* rule = [] {
    auto* compiled = new stack_rule::StackRule;
    stack_rule::RuleText text;
    text.frames.assign(std::begin(shared::kNestedLoopFrames), std::end(shared::kNestedLoopFrames));
    std::string error;  // built-in patterns compile (common_builtin_rules_test)
    compiled->compile(text, &error);
    return compiled;
  }();
  return rule->matches(kinds::kind_name(kinds::kKindPoll), stack);
}

WaitVerdict classify_wait_stack(const char* kind, const std::vector<NamedFrame>& stack) {
  // epoll waits (the only `poll` waits classified: shims/sleep.cc) are the
  // executor's idle wait by definition, except in a nested loop.
  if (std::string_view(kind) == kinds::kind_name(kinds::kKindPoll)) {
    return in_nested_loop(stack) ? WaitVerdict::kOther : WaitVerdict::kIdle;
  }
  const std::vector<stack_rule::StackRule>& rules = compiled_rules();
  // A wait that a not_worker rule matches (tokio's blocking pool waiting for a
  // job) is also an idle wait: the thread does no worker's work meanwhile. It is
  // not demoted for good: tokio starts a new worker on an idle pool thread (after
  // block_in_place), and that worker must stay watched. What the pool's threads
  // record is dropped by the collector's not_worker rules.
  for (const stack_rule::StackRule& rule : rules) {
    if (rule.matches(kind, stack)) return WaitVerdict::kIdle;
  }
  return WaitVerdict::kOther;
}

WaitVerdict wait_classify_pending(ThreadSlot& slot, bool* still_waiting) {
  *still_waiting = false;
  const uint64_t key = slot.pending_wait_key.load(std::memory_order_acquire);
  if (key == 0) return WaitVerdict::kUnknown;
  uintptr_t pcs[kWaitStackFrames];
  int count = slot.pending_wait_count.load(std::memory_order_relaxed);
  if (count > kWaitStackFrames) count = kWaitStackFrames;
  for (int i = 0; i < count; ++i) pcs[i] = slot.pending_wait_pcs[i].load(std::memory_order_relaxed);
  const uint8_t kind = slot.pending_wait_kind.load(std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_acquire);
  if (slot.pending_wait_key.load(std::memory_order_relaxed) != key ||
      wait_stack_hash(pcs, count) != key) {
    return WaitVerdict::kUnknown;  // the owner moved on meanwhile: next tick
  }
  WaitVerdict verdict = g_cache.lookup(key);
  if (verdict == WaitVerdict::kUnknown) {
    verdict = classify_wait_stack(kinds::kind_name(kind), symbolize(pcs, count));
    g_cache.insert(key, verdict);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
  *still_waiting = slot.pending_wait_key.load(std::memory_order_seq_cst) == key;
  return verdict;
}

}  // namespace blockwatch::interpose
