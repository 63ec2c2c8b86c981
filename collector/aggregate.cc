// Hotspot accumulation per process and the merge into a Report. The per-event path
// is one flat_hash_map lookup keyed by (stack id, kind, allowed) and a few writes
// to that hotspot's accumulator: names stay the stream's interned string ids
// (integers) until a report is built, so no string is copied or compared per
// event. Rule classification runs once per new key. Stall samples with a
// stall_id take one more lookup (stall id -> where the stall's contribution
// went) so that a stall counts once, with its latest sample.
#include "collector/aggregate.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <deque>

#include "absl/hash/hash.h"

namespace blockwatch::collector {

// --- LogHistogram ---

uint32_t LogHistogram::bucket_of(int64_t value_ns) {
  if (value_ns < 16) return value_ns < 0 ? 0 : static_cast<uint32_t>(value_ns);
  auto v = static_cast<uint64_t>(value_ns);
  int exponent = 63 - std::countl_zero(v);  // >= 4
  uint32_t sub = static_cast<uint32_t>(v >> (exponent - 4)) & 15u;
  return 16 + static_cast<uint32_t>(exponent - 4) * 16 + sub;
}

int64_t LogHistogram::midpoint_of(uint32_t bucket) {
  if (bucket < 16) return bucket;
  uint32_t exponent = (bucket - 16) / 16 + 4;
  uint64_t sub = (bucket - 16) % 16;
  uint64_t width = uint64_t{1} << (exponent - 4);
  uint64_t lower = (16 + sub) * width;
  return static_cast<int64_t>(lower + width / 2);
}

void LogHistogram::add(int64_t value_ns, uint64_t count) {
  uint32_t bucket = bucket_of(value_ns);
  total_ += count;
  min_ns_ = std::min(min_ns_, value_ns);
  max_ns_ = std::max(max_ns_, value_ns);
  // Grow by at least kGrowBuckets (two powers of two) at a time: a hotspot's
  // durations spread over a range, and regrowing bucket by bucket costs moves.
  constexpr uint32_t kGrowBuckets = 32;
  if (counts_.empty()) {
    first_bucket_ = bucket > kGrowBuckets / 2 ? bucket - kGrowBuckets / 2 : 0;
    counts_.assign(kGrowBuckets, 0);
  } else if (bucket < first_bucket_) {
    uint32_t new_first = bucket > kGrowBuckets ? bucket - kGrowBuckets : 0;
    counts_.insert(counts_.begin(), first_bucket_ - new_first, 0);
    first_bucket_ = new_first;
  } else if (bucket - first_bucket_ >= counts_.size()) {
    counts_.resize(bucket - first_bucket_ + kGrowBuckets, 0);
  }
  uint32_t& slot = counts_[bucket - first_bucket_];
  uint64_t sum = uint64_t{slot} + count;
  slot = sum > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(sum);
}

void LogHistogram::merge(const LogHistogram& other) {
  if (other.total_ == 0) return;
  min_ns_ = std::min(min_ns_, other.min_ns_);
  max_ns_ = std::max(max_ns_, other.max_ns_);
  for (size_t i = 0; i < other.counts_.size(); ++i) {
    if (other.counts_[i] != 0)
      add(midpoint_of(other.first_bucket_ + static_cast<uint32_t>(i)), other.counts_[i]);
  }
}

void LogHistogram::remove(int64_t value_ns) {
  uint32_t bucket = bucket_of(value_ns);
  if (total_ == 0 || bucket < first_bucket_ || bucket - first_bucket_ >= counts_.size()) return;
  uint32_t& slot = counts_[bucket - first_bucket_];
  if (slot == 0) return;
  --slot;
  if (--total_ == 0) {
    min_ns_ = INT64_MAX;
    max_ns_ = INT64_MIN;
  }
}

int64_t LogHistogram::quantile(double q) const {
  if (total_ == 0) return 0;
  auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total_)));
  rank = std::clamp<uint64_t>(rank, 1, total_);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      return std::clamp(midpoint_of(first_bucket_ + static_cast<uint32_t>(i)), min_ns_, max_ns_);
    }
  }
  return max_ns_;
}

// --- Per-process state ---

namespace {

struct HotspotKey {
  uint64_t stack_id;
  int kind;
  bool allowed_by_scope;
  bool stack_borrowed;  // a stall shown with the stack of the blocking call it was in
  bool operator==(const HotspotKey&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const HotspotKey& k) {
    return H::combine(std::move(h), k.stack_id, k.kind, k.allowed_by_scope, k.stack_borrowed);
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

void add_name_id(NameIds* names, uint8_t* size, uint64_t id) {
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

void add_name(std::vector<std::string>* names, const std::string& name) {
  if (name.empty() || names->size() >= kMaxNamesPerHotspot) return;
  if (std::find(names->begin(), names->end(), name) == names->end()) names->push_back(name);
}

const char* fd_type_name(int type) {
  switch (type) {
    case wire::FD_REGULAR:
      return "regular";
    case wire::FD_SOCKET:
      return "socket";
    case wire::FD_PIPE:
      return "pipe";
    case wire::FD_TTY:
      return "tty";
    case wire::FD_CHAR:
      return "char";
    case wire::FD_OTHER:
      return "other";
    default:
      return "";
  }
}

bool is_blocking_kind(wire::Kind kind) {
  return kind != wire::KIND_STALL && kind != wire::KIND_HANG;
}

}  // namespace

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
  std::vector<OccurrenceIds> occurrences;  // at most kMaxOccurrences, in arrival order
  LogHistogram histogram;
  int64_t cpu_ns = 0;  // stalls only: blocking events leave these alone
  int64_t runqueue_ns = 0;
  int64_t offcpu_ns = 0;
  NameIds thread_ids, holder_ids, task_ids;
  // Set when created: kind, stack, path, allowed, exe, pid, functions. Counts,
  // names, occurrences and percentiles are filled in by report().
  Hotspot hotspot;
  StackClass stack_class;
};

namespace {

// Where one stall's contribution went and what it was (its latest sample), so a
// later sample can replace it and a blocking call's stack can adopt it. `acc`
// null: the stall is idle / not a worker.
struct StallRecord {
  Aggregator::HotspotAccumulator* acc = nullptr;
  bool has_stack = false;  // one of its own samples had a stack
  bool borrowed = false;   // shown with the stack of a blocking call that covers it
  bool pending = false;    // in ProcessState::pending_stalls
  bool allowed_by_scope = false;
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
  std::string blocked_in;  // the latest stack-less sample's blocked_in
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
};
constexpr uint64_t kDenseStackIds = uint64_t{1} << 20;  // 16 MiB at most per process

struct PendingStall {
  int32_t tid;
  uint64_t stall_id;
};

// Clock slack between a stall sample's time and a blocking call's bounds: the
// watchdog reads the time a moment before it sees the thread in its call.
constexpr int64_t kCallCoverSlackNs = 1'000'000;

}  // namespace

struct Aggregator::ProcessState {
  ProcessInfo info;
  // The stream's StringDefs: names are kept by id until a report is built.
  absl::flat_hash_map<uint64_t, std::string> strings;
  absl::flat_hash_map<HotspotKey, std::unique_ptr<HotspotAccumulator>, absl::Hash<HotspotKey>>
      hotspots;
  std::vector<StackSlot> by_stack_id;  // ids below kDenseStackIds; a cache of `hotspots`
  // Bounded: at most kMaxTrackedStalls ids, the oldest forgotten first.
  absl::flat_hash_map<uint64_t, StallRecord> stalls;
  std::deque<uint64_t> stall_order;
  // Stall detection is on (Hello) or a stall came: blocking calls go to recent_calls.
  bool link_stalls = false;
  std::vector<RecentCall> recent_calls;  // ring of kRecentBlockingCalls
  size_t recent_next = 0;
  // Stack-less stalls no call has covered yet; at most kMaxPendingStalls.
  std::vector<PendingStall> pending_stalls;

  const std::string& text(uint64_t id) const {
    static const std::string kNone;
    auto it = strings.find(id);
    return it == strings.end() ? kNone : it->second;
  }
};

class Aggregator::Sink : public StreamHandler {
 public:
  explicit Sink(Aggregator* owner) : owner_(owner) {}
  ProcessState* process = nullptr;  // the current stream's process

  void on_hello(const wire::Hello& hello) override {
    if (process != nullptr) finish_process("disconnected");
    auto state = std::make_unique<ProcessState>();
    ProcessInfo& p = state->info;
    p.pid = hello.pid();
    p.ppid = hello.ppid();
    p.exe = hello.exe();
    p.argv.assign(hello.argv().begin(), hello.argv().end());
    p.hostname = hello.hostname();
    p.start_unix_ns = hello.start_unix_ns();
    p.threshold_ns = hello.threshold_ns();
    p.stall_threshold_ns = hello.stall_threshold_ns();
    p.forked_child = hello.forked_child();
    p.connected = true;
    state->link_stalls = hello.stall_threshold_ns() > 0;
    process = state.get();
    owner_->processes_.push_back(std::move(state));
  }
  void on_string(uint64_t id, const std::string& text) override {
    if (process != nullptr) process->strings.try_emplace(id, text);
  }
  void on_event(const wire::Event& event, const EventRefs& refs) override;
  void on_counters(const wire::Counters& c) override {
    ProcessInfo& p = process->info;
    p.dropped_queue_full = c.dropped_queue_full();
    p.dropped_no_collector = c.dropped_no_collector();
    p.dropped_too_deep = c.dropped_too_deep();
    p.stalls_suppressed = c.stalls_suppressed();
    p.dropped = p.dropped_queue_full + p.dropped_no_collector + p.dropped_too_deep;
  }
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
  HotspotAccumulator* new_hotspot(const HotspotKey& key, const char* kind,
                                  const std::vector<StackFrame>* frames,
                                  const std::string& scope_allow_reason);
  HotspotAccumulator* hotspot_for(const wire::Event& event, const EventRefs& refs);
  void add_sample(HotspotAccumulator* acc, const wire::Event& event);
  void on_stall_sample(const wire::Event& event, const EventRefs& refs);
  StallRecord* track_stall(uint64_t stall_id, bool* first);
  void replace_stall_sample(StallRecord* stall, const wire::Event& event);
  // Stack-less stalls and the blocking calls that cover them (either order).
  void note_blocking_call(const wire::Event& event, HotspotAccumulator* acc);
  void note_stackless_sample(uint64_t stall_id, StallRecord* stall, const wire::Event& event);
  const RecentCall* find_recent_call(const StallRecord& stall) const;
  void borrow_stack(StallRecord* stall, const RecentCall& call);
  Aggregator* owner_;
};

Aggregator::HotspotAccumulator* Aggregator::Sink::new_hotspot(
    const HotspotKey& key, const char* kind, const std::vector<StackFrame>* frames,
    const std::string& scope_allow_reason) {
  auto acc = std::make_unique<HotspotAccumulator>();
  Hotspot& h = acc->hotspot;
  h.kind = kind;
  h.exe = process->info.exe;
  h.pids.push_back(process->info.pid);
  if (frames != nullptr) h.stack = *frames;
  h.stack_source = h.stack.empty() ? "none" : key.stack_borrowed ? "blocking_call" : "own";
  if (owner_->classifier_) acc->stack_class = owner_->classifier_->classify(h.kind, h.stack);
  h.path = acc->stack_class.path;
  acc->dropped = acc->stack_class.idle || acc->stack_class.not_worker;
  if (!scope_allow_reason.empty()) {
    h.allowed = true;
    h.allow_reason = scope_allow_reason;
  } else if (acc->stack_class.allowed) {
    h.allowed = true;
    h.allow_reason = acc->stack_class.allow_reason;
  }
  return process->hotspots.emplace(key, std::move(acc)).first->second.get();
}

static bool is_dropped(const Aggregator::HotspotAccumulator& acc) { return acc.dropped; }

Aggregator::HotspotAccumulator* Aggregator::Sink::hotspot_for(const wire::Event& event,
                                                              const EventRefs& refs) {
  const HotspotKey key{event.stack(), event.kind(), !refs.allow_reason->empty(), false};
  StackSlot* slot = nullptr;
  if (key.stack_id < kDenseStackIds) {
    auto& slots = process->by_stack_id;
    if (key.stack_id >= slots.size()) {
      slots.resize(std::min(kDenseStackIds, std::max(key.stack_id + 1, slots.size() * 2)));
    }
    slot = &slots[key.stack_id];
    if (slot->acc != nullptr && slot->kind == key.kind &&
        slot->allowed_by_scope == key.allowed_by_scope) {
      return slot->acc;
    }
  }
  HotspotAccumulator* acc = nullptr;
  if (auto it = process->hotspots.find(key); it != process->hotspots.end()) {
    acc = it->second.get();
  } else {
    acc = new_hotspot(key, kind_name(event.kind()),
                      refs.stack != nullptr ? &refs.stack->frames : nullptr, *refs.allow_reason);
  }
  if (slot != nullptr) *slot = StackSlot{acc, key.kind, key.allowed_by_scope};
  return acc;
}

void Aggregator::Sink::on_event(const wire::Event& event, const EventRefs& refs) {
  ++owner_->events_;
  ++process->info.events;
  if (event.kind() == wire::KIND_STALL && event.stall_id() != 0) {
    on_stall_sample(event, refs);
    return;
  }
  HotspotAccumulator* acc = hotspot_for(event, refs);
  if (process->link_stalls && event.stack() != 0 && is_blocking_kind(event.kind())) {
    note_blocking_call(event, acc);
  }
  if (is_dropped(*acc)) {
    ++owner_->idle_events_;
    return;
  }
  add_sample(acc, event);
}

namespace {

// Functions are strings on the wire: a hash of the last one added saves reading
// the hotspot's list for each event of the same call (a hash collision can only
// leave a name out of this capped "seen" list).
void add_function(Aggregator::HotspotAccumulator* acc, const std::string& function) {
  if (function.empty()) return;
  const uint64_t hash = absl::HashOf(std::string_view(function));
  if (hash == acc->function_hash) return;
  acc->function_hash = hash;
  add_name(&acc->hotspot.functions, function);
}

// Grows by doubling from 16 and stops at kMaxOccurrences (no slack past the cap).
void push_occurrence(Aggregator::HotspotAccumulator* acc, const OccurrenceIds& occurrence) {
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
void add_duration(Aggregator::HotspotAccumulator* acc, const OccurrenceIds& occurrence) {
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

LogHistogram histogram_of(const Aggregator::HotspotAccumulator& acc) {
  if (acc.histogram_live) return acc.histogram;
  LogHistogram histogram;
  for (const OccurrenceIds& o : acc.occurrences) histogram.add(o.duration_ns);
  return histogram;
}

// A stall's contribution (its latest sample) into or out of a hotspot. Taking it
// out leaves names (a capped "seen" list); max_ns is exact again once empty.
void add_stall(Aggregator::HotspotAccumulator* acc, const StallRecord& stall) {
  ++acc->count;
  acc->total_ns += stall.duration_ns;
  acc->max_ns = std::max(acc->max_ns, stall.duration_ns);
  acc->cpu_ns += stall.cpu_ns;
  acc->runqueue_ns += stall.runqueue_ns;
  acc->offcpu_ns += stall.offcpu_ns;
  add_name_id(&acc->thread_ids, &acc->thread_count, stall.thread_id);
  add_name_id(&acc->task_ids, &acc->task_count, stall.task_id);
  add_duration(acc, OccurrenceIds{stall.start_unix_ns, stall.duration_ns, stall.thread_id,
                                  stall.task_id, stall.tid});
}

// The occurrence a stall's first sample added, or null (the cap was reached).
// Searched from the back: a stall's samples arrive seconds apart.
OccurrenceIds* find_occurrence(Aggregator::HotspotAccumulator* acc, const StallRecord& stall) {
  for (auto it = acc->occurrences.rbegin(); it != acc->occurrences.rend(); ++it) {
    if (it->tid == stall.tid && it->start_unix_ns == stall.start_unix_ns) return &*it;
  }
  return nullptr;
}

void remove_stall(Aggregator::HotspotAccumulator* acc, const StallRecord& stall) {
  --acc->count;
  acc->total_ns -= stall.duration_ns;
  if (acc->histogram_live) acc->histogram.remove(stall.duration_ns);
  acc->cpu_ns -= stall.cpu_ns;
  acc->runqueue_ns -= stall.runqueue_ns;
  acc->offcpu_ns -= stall.offcpu_ns;
  if (OccurrenceIds* occurrence = find_occurrence(acc, stall)) {
    acc->occurrences.erase(acc->occurrences.begin() + (occurrence - acc->occurrences.data()));
  }
  if (acc->count == 0) acc->max_ns = 0;
}

void remember_sample(StallRecord* stall, const wire::Event& event) {
  stall->duration_ns = event.duration_ns();
  stall->cpu_ns = event.cpu_ns();
  stall->runqueue_ns = event.runqueue_ns();
  stall->offcpu_ns = event.offcpu_ns();
}

bool covers(const RecentCall& call, const StallRecord& stall) {
  if (call.tid != stall.tid) return false;
  for (uint32_t i = 0; i < stall.stackless_samples; ++i) {
    const int64_t at_ns = stall.stackless_at_unix_ns[i];
    if (call.start_unix_ns - kCallCoverSlackNs <= at_ns &&
        at_ns <= call.end_unix_ns + kCallCoverSlackNs) {
      return true;
    }
  }
  return false;
}

const std::string& call_function(const RecentCall& call) {
  static const std::string kNone;
  const auto& functions = call.acc->hotspot.functions;
  return functions.empty() ? kNone : functions.front();
}

}  // namespace

// One blocking event's contribution: count, time, names, occurrence.
void Aggregator::Sink::add_sample(HotspotAccumulator* acc, const wire::Event& event) {
  const int64_t duration_ns = event.duration_ns();
  ++acc->count;
  acc->total_ns += duration_ns;
  acc->max_ns = std::max(acc->max_ns, duration_ns);
  add_name_id(&acc->thread_ids, &acc->thread_count, event.thread_name());
  add_name_id(&acc->holder_ids, &acc->holder_count, event.holder_name());
  add_name_id(&acc->task_ids, &acc->task_count, event.task());
  add_function(acc, event.function());
  if (event.fd_type() > 0 && event.fd_type() < 16) acc->fd_type_mask |= 1u << event.fd_type();
  if (event.cpu_ns() != 0 || event.runqueue_ns() != 0 || event.offcpu_ns() != 0) {
    acc->cpu_ns += event.cpu_ns();
    acc->runqueue_ns += event.runqueue_ns();
    acc->offcpu_ns += event.offcpu_ns();
  }
  add_duration(acc, OccurrenceIds{event.start_unix_ns(), duration_ns, event.thread_name(),
                                  event.task(), event.tid()});
}

// The record of `stall_id`, created (and the oldest forgotten past the bound) when
// new: then *first is true.
StallRecord* Aggregator::Sink::track_stall(uint64_t stall_id, bool* first) {
  auto found = process->stalls.find(stall_id);
  *first = found == process->stalls.end();
  if (!*first) return &found->second;
  if (process->stall_order.size() >= kMaxTrackedStalls) {
    process->stalls.erase(process->stall_order.front());
    process->stall_order.pop_front();
  }
  process->stall_order.push_back(stall_id);
  return &process->stalls[stall_id];
}

// A stall sample: the first one, or the first with a stack, (re)homes the stall;
// any other replaces the stall's earlier contribution in place. A stall without
// a stack of its own looks for the blocking call it was inside.
void Aggregator::Sink::on_stall_sample(const wire::Event& event, const EventRefs& refs) {
  process->link_stalls = true;
  bool first = false;
  StallRecord* stall = track_stall(event.stall_id(), &first);
  const bool has_stack = event.stack() != 0;
  if (!first && (stall->has_stack || !has_stack)) {
    if (stall->acc == nullptr) {
      ++owner_->idle_events_;
      return;
    }
    replace_stall_sample(stall, event);
    if (!has_stack) note_stackless_sample(event.stall_id(), stall, event);
    return;
  }
  if (!first && stall->acc != nullptr) remove_stall(stall->acc, *stall);
  HotspotAccumulator* acc = hotspot_for(event, refs);
  stall->has_stack = has_stack;
  stall->borrowed = false;
  stall->allowed_by_scope = !refs.allow_reason->empty();
  stall->tid = event.tid();
  stall->thread_id = event.thread_name();
  stall->task_id = event.task();
  stall->start_unix_ns = event.start_unix_ns();
  remember_sample(stall, event);
  if (is_dropped(*acc)) {
    stall->acc = nullptr;
    ++owner_->idle_events_;
    return;
  }
  stall->acc = acc;
  add_stall(acc, *stall);
  add_function(acc, event.function());
  if (!has_stack) note_stackless_sample(event.stall_id(), stall, event);
}

void Aggregator::Sink::replace_stall_sample(StallRecord* stall, const wire::Event& event) {
  HotspotAccumulator* acc = stall->acc;
  const int64_t duration_ns = event.duration_ns();
  acc->total_ns += duration_ns - stall->duration_ns;
  acc->max_ns = std::max(acc->max_ns, duration_ns);
  if (acc->histogram_live) {
    acc->histogram.remove(stall->duration_ns);
    acc->histogram.add(duration_ns);
  }
  acc->cpu_ns += event.cpu_ns() - stall->cpu_ns;
  acc->runqueue_ns += event.runqueue_ns() - stall->runqueue_ns;
  acc->offcpu_ns += event.offcpu_ns() - stall->offcpu_ns;
  add_name_id(&acc->thread_ids, &acc->thread_count, event.thread_name());
  add_name_id(&acc->task_ids, &acc->task_count, event.task());
  add_function(acc, event.function());
  if (OccurrenceIds* occurrence = find_occurrence(acc, *stall)) {
    occurrence->duration_ns = duration_ns;
  }
  remember_sample(stall, event);
}

// --- Stack-less stalls and the blocking calls that cover them ---
//
// The watchdog never signals a thread inside an EINTR-able call (invariant 1),
// so a stall spent in such a call has no sampled stack; the call's own record,
// sent when it returns, has one. Calls are remembered in a small ring (they may
// arrive first) and stack-less stalls wait in a short list (usually they arrive
// first); whichever comes second links the two. A thread's calls arrive in the
// order they ended, so a call starting after a waiting stall's last stack-less
// sample means no call of that thread will cover it any more.

void Aggregator::Sink::note_blocking_call(const wire::Event& event, HotspotAccumulator* acc) {
  add_function(acc, event.function());  // caused_by names it, even for an idle hotspot
  const RecentCall call{event.tid(), event.start_unix_ns(),
                        event.start_unix_ns() + event.duration_ns(), event.stack(), acc};
  if (process->recent_calls.size() < kRecentBlockingCalls) {
    process->recent_calls.push_back(call);
  } else {
    process->recent_calls[process->recent_next] = call;
    process->recent_next = (process->recent_next + 1) % kRecentBlockingCalls;
  }
  auto& pending = process->pending_stalls;
  for (size_t i = 0; i < pending.size();) {
    if (pending[i].tid != call.tid) {
      ++i;
      continue;
    }
    auto found = process->stalls.find(pending[i].stall_id);
    StallRecord* stall = found == process->stalls.end() ? nullptr : &found->second;
    bool done = stall == nullptr || stall->has_stack || stall->borrowed || stall->acc == nullptr;
    if (!done && covers(call, *stall)) {
      borrow_stack(stall, call);
      done = true;
    } else if (!done) {
      const int64_t last_at_ns = stall->stackless_at_unix_ns[stall->stackless_samples - 1];
      done = call.start_unix_ns - kCallCoverSlackNs > last_at_ns;
    }
    if (!done) {
      ++i;
      continue;
    }
    if (stall != nullptr) stall->pending = false;
    pending[i] = pending.back();
    pending.pop_back();
  }
}

void Aggregator::Sink::note_stackless_sample(uint64_t stall_id, StallRecord* stall,
                                             const wire::Event& event) {
  if (stall->borrowed || stall->acc == nullptr) return;
  if (stall->stackless_samples < stall->stackless_at_unix_ns.size()) {
    stall->stackless_at_unix_ns[stall->stackless_samples++] =
        event.start_unix_ns() + event.duration_ns();
  }
  stall->blocked_in = event.blocked_in();
  if (const RecentCall* call = find_recent_call(*stall)) {
    borrow_stack(stall, *call);
    return;
  }
  if (stall->pending) return;
  auto& pending = process->pending_stalls;
  if (pending.size() >= kMaxPendingStalls) {
    auto oldest = process->stalls.find(pending.front().stall_id);
    if (oldest != process->stalls.end()) oldest->second.pending = false;
    pending.erase(pending.begin());
  }
  pending.push_back(PendingStall{stall->tid, stall_id});
  stall->pending = true;
}

// The remembered call that covers a stack-less sample of `stall`: one whose
// function is the stall's blocked_in if any, else the latest.
const RecentCall* Aggregator::Sink::find_recent_call(const StallRecord& stall) const {
  const RecentCall* covering = nullptr;
  for (const RecentCall& call : process->recent_calls) {
    if (!covers(call, stall)) continue;
    if (!stall.blocked_in.empty() && call_function(call) == stall.blocked_in) return &call;
    if (covering == nullptr || call.start_unix_ns > covering->start_unix_ns) covering = &call;
  }
  return covering;
}

// Moves a stall from the no-stack hotspot to (stall, the call's stack), linked to
// the call's kind and function.
void Aggregator::Sink::borrow_stack(StallRecord* stall, const RecentCall& call) {
  const HotspotKey key{call.stack_id, wire::KIND_STALL, stall->allowed_by_scope, true};
  HotspotAccumulator* acc = nullptr;
  if (auto found = process->hotspots.find(key); found != process->hotspots.end()) {
    acc = found->second.get();
  } else {
    const std::string scope_reason =
        stall->allowed_by_scope ? stall->acc->hotspot.allow_reason : std::string();
    acc = new_hotspot(key, "stall", &call.acc->hotspot.stack, scope_reason);
    acc->hotspot.caused_by = BlockingCall{call.acc->hotspot.kind, call_function(call)};
    add_function(acc, call_function(call));
  }
  remove_stall(stall->acc, *stall);
  stall->borrowed = true;
  if (is_dropped(*acc)) {
    stall->acc = nullptr;
    ++owner_->idle_events_;
    return;
  }
  stall->acc = acc;
  add_stall(acc, *stall);
}

// --- Aggregator ---

Aggregator::Aggregator(std::shared_ptr<const StackClassifier> classifier)
    : classifier_(std::move(classifier)) {}

Aggregator::~Aggregator() = default;

StreamHandler* Aggregator::begin_stream() {
  sinks_.push_back(std::make_unique<Sink>(this));
  return sinks_.back().get();
}

void Aggregator::end_stream(StreamHandler* stream, const std::string& end_reason) {
  auto it = std::find_if(sinks_.begin(), sinks_.end(),
                         [stream](const auto& s) { return s.get() == stream; });
  if (it == sinks_.end()) return;
  (*it)->finish_process(end_reason);
  sinks_.erase(it);
}

size_t Aggregator::hotspot_count() const {
  size_t n = 0;
  for (const auto& p : processes_) n += p->hotspots.size();
  return n;
}

namespace {

// Identity of a hotspot across processes: same exe, kind, allowed-ness and frames
// (by function, module and offset; addresses differ between processes).
std::string merge_key(const Hotspot& h) {
  std::string key = h.exe + '\0' + h.kind + '\0' + h.stack_source + '\0' + (h.allowed ? "a" : "-") +
                    h.allow_reason;
  for (const StackFrame& f : h.stack) {
    key += '\0' + f.function + '\1' + f.module + '\1' + std::to_string(f.offset);
  }
  return key;
}

void merge_names(std::vector<std::string>* into, const std::vector<std::string>& from) {
  for (const auto& name : from) add_name(into, name);
}

void merge_into(Hotspot* into, const Hotspot& from) {
  into->count += from.count;
  into->total_ns += from.total_ns;
  into->max_ns = std::max(into->max_ns, from.max_ns);
  merge_names(&into->threads, from.threads);
  merge_names(&into->holders, from.holders);
  merge_names(&into->tasks, from.tasks);
  merge_names(&into->functions, from.functions);
  merge_names(&into->fd_types, from.fd_types);
  for (int pid : from.pids) {
    if (std::find(into->pids.begin(), into->pids.end(), pid) == into->pids.end()) {
      into->pids.push_back(pid);
    }
  }
  into->cpu_ns += from.cpu_ns;
  into->runqueue_ns += from.runqueue_ns;
  into->offcpu_ns += from.offcpu_ns;
  into->occurrences.insert(into->occurrences.end(), from.occurrences.begin(),
                           from.occurrences.end());
}

void add_to_summary(const Hotspot& h, Report* report,
                    absl::flat_hash_map<std::string, PathTotals>* paths) {
  if (h.allowed) {
    report->allowed_events += h.count;
    return;
  }
  PathTotals& path = (*paths)[h.path];
  path.path = h.path;
  if (h.kind == "stall") {
    report->stalls += h.count;
    report->stalled_ns += h.total_ns;
    path.stalls += h.count;
    path.stalled_ns += h.total_ns;
  } else if (h.kind != "hang") {
    report->blocking_events += h.count;
    report->blocked_ns += h.total_ns;
    path.blocking_events += h.count;
    path.blocked_ns += h.total_ns;
  }
}

}  // namespace

// The accumulator's hotspot with its names and occurrences resolved to text.
Hotspot Aggregator::with_names(const HotspotAccumulator& acc, const ProcessState& process) {
  Hotspot h = acc.hotspot;
  h.count = acc.count;
  h.total_ns = acc.total_ns;
  h.max_ns = acc.max_ns;
  h.cpu_ns = acc.cpu_ns;
  h.runqueue_ns = acc.runqueue_ns;
  h.offcpu_ns = acc.offcpu_ns;
  for (int i = 0; i < acc.thread_count; ++i)
    add_name(&h.threads, process.text(acc.thread_ids.ids[i]));
  for (int i = 0; i < acc.holder_count; ++i)
    add_name(&h.holders, process.text(acc.holder_ids.ids[i]));
  for (int i = 0; i < acc.task_count; ++i) add_name(&h.tasks, process.text(acc.task_ids.ids[i]));
  for (int type = 0; type < 16; ++type) {
    if (acc.fd_type_mask & (1u << type)) add_name(&h.fd_types, fd_type_name(type));
  }
  h.occurrences.reserve(acc.occurrences.size());
  for (const OccurrenceIds& o : acc.occurrences) {
    h.occurrences.push_back(Occurrence{process.info.pid, o.tid, process.text(o.thread_id),
                                       o.start_unix_ns, o.duration_ns, process.text(o.task_id)});
  }
  return h;
}

Report Aggregator::report() const {
  Report report;
  struct Merged {
    Hotspot hotspot;
    LogHistogram histogram;
  };
  absl::flat_hash_map<std::string, size_t> index_of;
  std::vector<Merged> merged;
  for (const auto& process : processes_) {
    report.processes.push_back(process->info);
    report.dropped += process->info.dropped;
    for (const auto& [key, acc] : process->hotspots) {
      if (acc->count == 0) continue;  // idle / not_worker, or its stalls moved away
      Hotspot hotspot = with_names(*acc, *process);
      auto [it, inserted] = index_of.try_emplace(merge_key(hotspot), merged.size());
      if (inserted) {
        merged.push_back(Merged{std::move(hotspot), histogram_of(*acc)});
      } else {
        merge_into(&merged[it->second].hotspot, hotspot);
        merged[it->second].histogram.merge(histogram_of(*acc));
      }
    }
  }
  absl::flat_hash_map<std::string, PathTotals> paths;
  for (Merged& m : merged) {
    Hotspot& h = m.hotspot;
    h.p50_ns = std::min(m.histogram.quantile(0.50), h.max_ns);
    h.p99_ns = std::min(m.histogram.quantile(0.99), h.max_ns);
    std::sort(
        h.occurrences.begin(), h.occurrences.end(),
        [](const Occurrence& a, const Occurrence& b) { return a.start_unix_ns < b.start_unix_ns; });
    if (h.occurrences.size() > kMaxOccurrences) h.occurrences.resize(kMaxOccurrences);
    add_to_summary(h, &report, &paths);
    report.hotspots.push_back(std::move(h));
  }
  std::stable_sort(report.hotspots.begin(), report.hotspots.end(),
                   [](const Hotspot& a, const Hotspot& b) { return a.total_ns > b.total_ns; });
  for (auto& [name, totals] : paths) report.paths.push_back(totals);
  std::sort(report.paths.begin(), report.paths.end(), [](const PathTotals& a, const PathTotals& b) {
    return a.blocked_ns + a.stalled_ns > b.blocked_ns + b.stalled_ns;
  });
  return report;
}

}  // namespace blockwatch::collector
