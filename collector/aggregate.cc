// Hotspot accumulation per process and the merge into a Report. The per-event path
// is one flat_hash_map lookup keyed by (stack id, kind, allowed); rule
// classification runs once per new key. Stall samples with a stall_id take one
// more lookup (stall id -> where the stall's contribution went) so that a stall
// counts once, with its latest sample.
#include "collector/aggregate.h"

#include <algorithm>
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
  bool operator==(const HotspotKey&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const HotspotKey& k) {
    return H::combine(std::move(h), k.stack_id, k.kind, k.allowed_by_scope);
  }
};

void add_name(std::vector<std::string>* names, const std::string& name) {
  if (name.empty() || names->size() >= kMaxNamesPerHotspot) return;
  if (std::find(names->begin(), names->end(), name) == names->end()) names->push_back(name);
}

const char* fd_type_name(wire::FdType type) {
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

}  // namespace

struct Aggregator::HotspotAccumulator {
  Hotspot hotspot;  // the plain fields; percentiles filled in by report()
  LogHistogram histogram;
  StackClass stack_class;
};

namespace {

// Where one stall's contribution went and what it was (its latest sample), so a
// later sample can replace it. `acc` null: the stall is idle / not a worker.
struct StallRecord {
  Aggregator::HotspotAccumulator* acc = nullptr;
  bool has_stack = false;
  int tid = 0;
  int64_t start_unix_ns = 0;  // of the first sample: identifies its occurrence
  int64_t duration_ns = 0;
  int64_t cpu_ns = 0;
  int64_t runqueue_ns = 0;
  int64_t offcpu_ns = 0;
};

}  // namespace

struct Aggregator::ProcessState {
  ProcessInfo info;
  absl::flat_hash_map<HotspotKey, std::unique_ptr<HotspotAccumulator>, absl::Hash<HotspotKey>>
      hotspots;
  // Bounded: at most kMaxTrackedStalls ids, the oldest forgotten first.
  absl::flat_hash_map<uint64_t, StallRecord> stalls;
  std::deque<uint64_t> stall_order;
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
    process = state.get();
    owner_->processes_.push_back(std::move(state));
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
  HotspotAccumulator* new_hotspot(const wire::Event& event, const EventRefs& refs,
                                  const char* kind);
  HotspotAccumulator* hotspot_for(const wire::Event& event, const EventRefs& refs);
  void add_sample(HotspotAccumulator* acc, const wire::Event& event, const EventRefs& refs);
  void on_stall_sample(const wire::Event& event, const EventRefs& refs);
  StallRecord* track_stall(uint64_t stall_id, bool* first);
  void replace_stall_sample(StallRecord* stall, const wire::Event& event, const EventRefs& refs);
  void remove_stall_sample(const StallRecord& stall);
  Aggregator* owner_;
};

Aggregator::HotspotAccumulator* Aggregator::Sink::new_hotspot(const wire::Event& event,
                                                              const EventRefs& refs,
                                                              const char* kind) {
  auto acc = std::make_unique<HotspotAccumulator>();
  Hotspot& h = acc->hotspot;
  h.kind = kind;
  h.exe = process->info.exe;
  h.pids.push_back(process->info.pid);
  if (refs.stack != nullptr) h.stack = refs.stack->frames;
  if (owner_->classifier_) acc->stack_class = owner_->classifier_->classify(h.kind, h.stack);
  h.path = acc->stack_class.path;
  if (!refs.allow_reason->empty()) {
    h.allowed = true;
    h.allow_reason = *refs.allow_reason;
  } else if (acc->stack_class.allowed) {
    h.allowed = true;
    h.allow_reason = acc->stack_class.allow_reason;
  }
  HotspotKey key{event.stack(), event.kind(), !refs.allow_reason->empty()};
  return process->hotspots.emplace(key, std::move(acc)).first->second.get();
}

static bool is_dropped(const Aggregator::HotspotAccumulator& acc) {
  return acc.stack_class.idle || acc.stack_class.not_worker;
}

Aggregator::HotspotAccumulator* Aggregator::Sink::hotspot_for(const wire::Event& event,
                                                              const EventRefs& refs) {
  HotspotKey key{event.stack(), event.kind(), !refs.allow_reason->empty()};
  auto it = process->hotspots.find(key);
  return it != process->hotspots.end() ? it->second.get()
                                       : new_hotspot(event, refs, kind_name(event.kind()));
}

void Aggregator::Sink::on_event(const wire::Event& event, const EventRefs& refs) {
  ++owner_->events_;
  ++process->info.events;
  if (event.kind() == wire::KIND_STALL && event.stall_id() != 0) {
    on_stall_sample(event, refs);
    return;
  }
  HotspotAccumulator* acc = hotspot_for(event, refs);
  if (is_dropped(*acc)) {
    ++owner_->idle_events_;
    return;
  }
  add_sample(acc, event, refs);
}

// One event's contribution: count, time, names, split and occurrence.
void Aggregator::Sink::add_sample(HotspotAccumulator* acc, const wire::Event& event,
                                  const EventRefs& refs) {
  Hotspot& h = acc->hotspot;
  int64_t duration_ns = event.duration_ns();
  ++h.count;
  h.total_ns += duration_ns;
  h.max_ns = std::max(h.max_ns, duration_ns);
  acc->histogram.add(duration_ns);
  add_name(&h.threads, *refs.thread_name);
  add_name(&h.holders, *refs.holder_name);
  add_name(&h.tasks, *refs.task);
  add_name(&h.functions, event.function());
  add_name(&h.fd_types, fd_type_name(event.fd_type()));
  h.cpu_ns += event.cpu_ns();
  h.runqueue_ns += event.runqueue_ns();
  h.offcpu_ns += event.offcpu_ns();
  if (h.occurrences.size() < kMaxOccurrences) {
    h.occurrences.push_back(Occurrence{process->info.pid, event.tid(), *refs.thread_name,
                                       event.start_unix_ns(), duration_ns, *refs.task});
  }
}

namespace {

// The occurrence a stall's first sample added to `h`, or null (the cap was reached).
// Searched from the back: a stall's samples arrive seconds apart.
Occurrence* find_occurrence(Hotspot* h, const StallRecord& stall) {
  for (auto it = h->occurrences.rbegin(); it != h->occurrences.rend(); ++it) {
    if (it->tid == stall.tid && it->start_unix_ns == stall.start_unix_ns) return &*it;
  }
  return nullptr;
}

void remember_sample(StallRecord* stall, const wire::Event& event) {
  stall->duration_ns = event.duration_ns();
  stall->cpu_ns = event.cpu_ns();
  stall->runqueue_ns = event.runqueue_ns();
  stall->offcpu_ns = event.offcpu_ns();
}

}  // namespace

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
// any other replaces the stall's earlier contribution in place.
void Aggregator::Sink::on_stall_sample(const wire::Event& event, const EventRefs& refs) {
  bool first = false;
  StallRecord* stall = track_stall(event.stall_id(), &first);
  const bool has_stack = event.stack() != 0;
  if (!first && (stall->has_stack || !has_stack)) {
    if (stall->acc == nullptr) {
      ++owner_->idle_events_;
      return;
    }
    replace_stall_sample(stall, event, refs);
    return;
  }
  if (!first && stall->acc != nullptr) remove_stall_sample(*stall);
  HotspotAccumulator* acc = hotspot_for(event, refs);
  stall->has_stack = has_stack;
  stall->tid = event.tid();
  stall->start_unix_ns = event.start_unix_ns();
  remember_sample(stall, event);
  if (is_dropped(*acc)) {
    stall->acc = nullptr;
    ++owner_->idle_events_;
    return;
  }
  stall->acc = acc;
  add_sample(acc, event, refs);
}

void Aggregator::Sink::replace_stall_sample(StallRecord* stall, const wire::Event& event,
                                            const EventRefs& refs) {
  Hotspot& h = stall->acc->hotspot;
  const int64_t duration_ns = event.duration_ns();
  h.total_ns += duration_ns - stall->duration_ns;
  h.max_ns = std::max(h.max_ns, duration_ns);
  stall->acc->histogram.remove(stall->duration_ns);
  stall->acc->histogram.add(duration_ns);
  h.cpu_ns += event.cpu_ns() - stall->cpu_ns;
  h.runqueue_ns += event.runqueue_ns() - stall->runqueue_ns;
  h.offcpu_ns += event.offcpu_ns() - stall->offcpu_ns;
  add_name(&h.threads, *refs.thread_name);
  add_name(&h.tasks, *refs.task);
  add_name(&h.functions, event.function());
  add_name(&h.fd_types, fd_type_name(event.fd_type()));
  if (Occurrence* occurrence = find_occurrence(&h, *stall)) occurrence->duration_ns = duration_ns;
  remember_sample(stall, event);
}

// Takes a stall's contribution back out of its hotspot (it moves to a stack's).
// Names stay: they are a capped "seen" list. max_ns is exact again once empty.
void Aggregator::Sink::remove_stall_sample(const StallRecord& stall) {
  Hotspot& h = stall.acc->hotspot;
  --h.count;
  h.total_ns -= stall.duration_ns;
  stall.acc->histogram.remove(stall.duration_ns);
  h.cpu_ns -= stall.cpu_ns;
  h.runqueue_ns -= stall.runqueue_ns;
  h.offcpu_ns -= stall.offcpu_ns;
  if (Occurrence* occurrence = find_occurrence(&h, stall)) {
    h.occurrences.erase(h.occurrences.begin() + (occurrence - h.occurrences.data()));
  }
  if (h.count == 0) h.max_ns = 0;
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
  std::string key = h.exe + '\0' + h.kind + '\0' + (h.allowed ? "a" : "-") + h.allow_reason;
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
      if (acc->hotspot.count == 0) continue;  // idle / not_worker
      auto [it, inserted] = index_of.try_emplace(merge_key(acc->hotspot), merged.size());
      if (inserted) {
        merged.push_back(Merged{acc->hotspot, acc->histogram});
      } else {
        merge_into(&merged[it->second].hotspot, acc->hotspot);
        merged[it->second].histogram.merge(acc->histogram);
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
