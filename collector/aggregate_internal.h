// What aggregate.cc (hotspots, the per-event path, the report) and
// aggregate_stalls.cc (stall samples merged by stall_id, stack-less stalls linked
// to the blocking calls that cover them) share: the per-process state, the
// accumulator of one hotspot, the stream handler, and the small helpers both
// call per event. Inline here so that the per-event path stays inlinable in both
// files. Internal to the collector core: callers use aggregate.h.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "collector/aggregate.h"

namespace blockwatch::collector {
namespace aggregate_internal {

struct HotspotKey {
  uint64_t stack_id;
  int kind;
  bool allowed_by_scope;
  bool stack_borrowed;  // a stall shown with the stack of the blocking call it was in
  // Stalls: wire::StallScope (a task's and a turn's stalls never share a
  // hotspot: only task stalls fail `stall>=`). 0 for every other kind.
  uint8_t stall_scope = 0;
  bool operator==(const HotspotKey&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const HotspotKey& k) {
    return H::combine(std::move(h), k.stack_id, k.kind, k.allowed_by_scope, k.stack_borrowed,
                      k.stall_scope);
  }
};

// Up to kMaxNamesPerHotspot distinct string ids of one stream (0, "none", is
// skipped): integers on the per-event path, text only when a report is built.
// Two ids with one text (the sender interns by text, so only an odd stream)
// take two places and resolve to one name. The size lives apart from the ids (in
// the accumulator's first cache line): a full set or id 0 never touches them.
struct NameIds {
  uint64_t ids[kMaxNamesPerHotspot];
};

inline void add_name_id(NameIds* names, uint8_t* size, uint64_t id) {
  if (id == 0 || *size == kMaxNamesPerHotspot) return;
  for (uint32_t i = 0; i < *size; ++i) {
    if (names->ids[i] == id) return;
  }
  names->ids[(*size)++] = id;
}

// An occurrence as kept while aggregating (names by id; pid is the process's).
struct OccurrenceIds {
  int64_t start_unix_ns;
  int64_t duration_ns;
  uint64_t thread_id;
  uint64_t task_id;
  int32_t tid;
};

inline void add_name(std::vector<std::string>* names, const std::string& name) {
  if (name.empty() || names->size() >= kMaxNamesPerHotspot) return;
  if (std::find(names->begin(), names->end(), name) == names->end()) names->push_back(name);
}

inline bool is_blocking_kind(wire::Kind kind) {
  return kind != wire::KIND_STALL && kind != wire::KIND_HANG;
}

// Where one stall's contribution went and what it was (its latest sample), so a
// later sample can replace it and a blocking call's stack can adopt it. `acc`
// null: the stall is idle / not a worker.
struct StallRecord {
  Aggregator::HotspotAccumulator* acc = nullptr;
  // One of its own samples had a stack taken outside a blocking call. A sample
  // taken inside one (blocked_in set) is a frame-pointer walk that often stops
  // early (libc, Rust's std and most -O2 code keep no frame pointers); the call's
  // own record has a full (DWARF) stack, which the stall then borrows.
  bool has_stack = false;
  bool borrowed = false;   // shown with the stack of a blocking call that covers it
  bool pending = false;    // in ProcessState::pending_stalls
  bool allowed_by_scope = false;
  uint8_t stall_scope = 0;  // wire::StallScope of its samples
  int tid = 0;
  uint64_t thread_id = 0;
  uint64_t task_id = 0;
  int64_t start_unix_ns = 0;  // of the first sample: identifies its occurrence
  int64_t duration_ns = 0;
  int64_t cpu_ns = 0;
  int64_t runqueue_ns = 0;
  int64_t offcpu_ns = 0;
  // When its stack-less samples were taken (start + duration): a blocking call
  // of the same thread spanning one of them is what the stall was inside.
  std::array<int64_t, 3> stackless_at_unix_ns{};
  uint32_t stackless_samples = 0;
  std::string blocked_in;  // the latest linkable sample's blocked_in
};

// A blocking call with a stack, remembered briefly: the sender may deliver it
// before the stall samples taken while it ran (they come from another queue).
struct RecentCall {
  int32_t tid = 0;
  int64_t start_unix_ns = 0;
  int64_t end_unix_ns = 0;
  uint64_t stack_id = 0;
  Aggregator::HotspotAccumulator* acc = nullptr;  // the call's hotspot: kind, function, stack
};

// The hotspot last used for a stack id: most events of a stack have one kind, so
// this array (indexed by the sender's small sequential ids) answers without the
// hash map, whose slots for 10k stacks are never in cache.
struct StackSlot {
  Aggregator::HotspotAccumulator* acc = nullptr;
  int32_t kind = 0;
  bool allowed_by_scope = false;
  uint8_t stall_scope = 0;
};
inline constexpr uint64_t kDenseStackIds = uint64_t{1} << 20;  // 16 MiB at most per process

struct PendingStall {
  int32_t tid;
  uint64_t stall_id;
};

}  // namespace aggregate_internal

// What the per-event path writes comes first, so that one event touches few
// cache lines of a hotspot (with 10k hotspots every event misses the cache).
struct Aggregator::HotspotAccumulator {
  uint64_t count = 0;
  int64_t total_ns = 0;
  int64_t max_ns = 0;
  uint64_t function_hash = 0;   // of the last function added to hotspot.functions
  uint16_t fd_type_mask = 0;    // bit 1 << wire::FdType per type seen
  bool dropped = false;         // idle / not_worker: received, never reported
  bool histogram_live = false;  // see add_duration()
  uint8_t thread_count = 0, holder_count = 0, task_count = 0;  // sizes of the *_ids below
  // At most kMaxOccurrences, in arrival order.
  std::vector<aggregate_internal::OccurrenceIds> occurrences;
  LogHistogram histogram;
  int64_t cpu_ns = 0;  // stalls only: blocking events leave these alone
  int64_t runqueue_ns = 0;
  int64_t offcpu_ns = 0;
  aggregate_internal::NameIds thread_ids, holder_ids, task_ids;
  // Set when created: kind, stack, path, allowed, exe, pid, functions. Counts,
  // names, occurrences and percentiles are filled in by report().
  Hotspot hotspot;
  StackClass stack_class;
};

struct Aggregator::ProcessState {
  ProcessInfo info;
  // The stream's StringDefs: names are kept by id until a report is built.
  absl::flat_hash_map<uint64_t, std::string> strings;
  absl::flat_hash_map<aggregate_internal::HotspotKey, std::unique_ptr<HotspotAccumulator>,
                      absl::Hash<aggregate_internal::HotspotKey>>
      hotspots;
  // Ids below kDenseStackIds; a cache of `hotspots`.
  std::vector<aggregate_internal::StackSlot> by_stack_id;
  // Bounded: at most kMaxTrackedStalls ids, the oldest forgotten first.
  absl::flat_hash_map<uint64_t, aggregate_internal::StallRecord> stalls;
  std::deque<uint64_t> stall_order;
  // Stall detection is on (Hello) or a stall came: blocking calls go to recent_calls.
  bool link_stalls = false;
  std::vector<aggregate_internal::RecentCall> recent_calls;  // ring of kRecentBlockingCalls
  size_t recent_next = 0;
  // Stack-less stalls no call has covered yet; at most kMaxPendingStalls.
  std::vector<aggregate_internal::PendingStall> pending_stalls;
  // Per task entry, from the latest Counters (cumulative): aggregate_tasks.cc.
  std::vector<TaskStats> tasks;
  uint64_t task_labels_dropped = 0;

  const std::string& text(uint64_t id) const {
    static const std::string kNone;
    auto it = strings.find(id);
    return it == strings.end() ? kNone : it->second;
  }
};

namespace aggregate_internal {

inline bool is_dropped(const Aggregator::HotspotAccumulator& acc) { return acc.dropped; }

// Functions are strings on the wire: a hash of the last one added saves reading
// the hotspot's list for each event of the same call (a hash collision can only
// leave a name out of this capped "seen" list).
inline void add_function(Aggregator::HotspotAccumulator* acc, const std::string& function) {
  if (function.empty()) return;
  const uint64_t hash = absl::HashOf(std::string_view(function));
  if (hash == acc->function_hash) return;
  acc->function_hash = hash;
  add_name(&acc->hotspot.functions, function);
}

// Grows by doubling from 16 and stops at kMaxOccurrences (no slack past the cap).
inline void push_occurrence(Aggregator::HotspotAccumulator* acc, const OccurrenceIds& occurrence) {
  auto& occurrences = acc->occurrences;
  if (occurrences.size() >= kMaxOccurrences) return;
  if (occurrences.size() == occurrences.capacity()) {
    occurrences.reserve(std::min(kMaxOccurrences, std::max<size_t>(16, 2 * occurrences.size())));
  }
  occurrences.push_back(occurrence);
}

// Durations: while every sample of a hotspot is also one of its occurrences (at
// most kMaxOccurrences), the occurrences are its histogram; the first sample past
// the cap fills the real one from them and keeps it from then on. A hotspot with
// few events never touches histogram memory: with 10k stacks, where every event
// misses the cache, that is one miss less per event.
inline void add_duration(Aggregator::HotspotAccumulator* acc, const OccurrenceIds& occurrence) {
  if (!acc->histogram_live) {
    if (acc->occurrences.size() < kMaxOccurrences) {
      push_occurrence(acc, occurrence);
      return;
    }
    acc->histogram_live = true;
    for (const OccurrenceIds& o : acc->occurrences) acc->histogram.add(o.duration_ns);
  }
  acc->histogram.add(occurrence.duration_ns);
  push_occurrence(acc, occurrence);
}

}  // namespace aggregate_internal

// The handler of one stream: feeds its process's state. Blocking events are
// handled in aggregate.cc, stall samples and their links to blocking calls in
// aggregate_stalls.cc.
class Aggregator::Sink : public StreamHandler {
 public:
  explicit Sink(Aggregator* owner) : owner_(owner) {}
  ProcessState* process = nullptr;  // the current stream's process

  void on_hello(const wire::Hello& hello) override;
  void on_string(uint64_t id, const std::string& text) override {
    if (process != nullptr) process->strings.try_emplace(id, text);
  }
  void on_event(const wire::Event& event, const EventRefs& refs) override;
  void on_counters(const wire::Counters& c) override;
  void on_goodbye(const wire::Goodbye& goodbye) override {
    process->info.said_goodbye = true;
    process->info.end_reason = goodbye.reason();
    process->info.exit_status = goodbye.exit_status();
  }
  void finish_process(const std::string& end_reason) {
    if (process == nullptr) return;
    process->info.connected = false;
    if (!process->info.said_goodbye) process->info.end_reason = end_reason;
    process = nullptr;
  }

 private:
  using StallRecord = aggregate_internal::StallRecord;
  using RecentCall = aggregate_internal::RecentCall;
  using HotspotKey = aggregate_internal::HotspotKey;

  HotspotAccumulator* new_hotspot(const HotspotKey& key, const char* kind,
                                  const std::vector<StackFrame>* frames,
                                  const std::string& scope_allow_reason);
  HotspotAccumulator* hotspot_for(const wire::Event& event, const EventRefs& refs);
  void add_sample(HotspotAccumulator* acc, const wire::Event& event);
  // Stall samples (aggregate_stalls.cc).
  void on_stall_sample(const wire::Event& event, const EventRefs& refs);
  StallRecord* track_stall(uint64_t stall_id, bool* first);
  void replace_stall_sample(StallRecord* stall, const wire::Event& event);
  bool home_stall(StallRecord* stall, HotspotAccumulator* acc);
  // Stack-less stalls and the blocking calls that cover them (either order).
  void note_blocking_call(const wire::Event& event, HotspotAccumulator* acc);
  void note_stackless_sample(uint64_t stall_id, StallRecord* stall, const wire::Event& event);
  const RecentCall* find_recent_call(const StallRecord& stall) const;
  void borrow_stack(StallRecord* stall, const RecentCall& call);
  Aggregator* owner_;
};

}  // namespace blockwatch::collector
