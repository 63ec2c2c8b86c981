// Hotspot accumulation per process and the merge into a Report. The per-event path
// is one flat_hash_map lookup keyed by (stack id, kind, allowed) and a few writes
// to that hotspot's accumulator: names stay the stream's interned string ids
// (integers) until a report is built, so no string is copied or compared per
// event. Rule classification runs once per new key. Stall samples with a
// stall_id, and stack-less stalls looking for the blocking call they were in,
// are handled in aggregate_stalls.cc; what both files share is in
// aggregate_internal.h.
#include "collector/aggregate.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "collector/aggregate_internal.h"
#include "collector/aggregate_tasks.h"
#include "common/kinds.h"

namespace blockwatch::collector {

using aggregate_internal::add_duration;
using aggregate_internal::add_function;
using aggregate_internal::add_name;
using aggregate_internal::add_name_id;
using aggregate_internal::HotspotKey;
using aggregate_internal::is_blocking_kind;
using aggregate_internal::is_dropped;
using aggregate_internal::kDenseStackIds;
using aggregate_internal::OccurrenceIds;
using aggregate_internal::StackSlot;

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

// --- The stream handler: processes and blocking events ---

namespace {

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

}  // namespace

void Aggregator::Sink::on_hello(const wire::Hello& hello) {
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
  p.task_probes.clear();
  for (const wire::TaskProbe& probe : hello.task_probes()) {
    p.task_probes.push_back(
        {probe.rule(), probe.function(), probe.module(), probe.installed(), probe.refused()});
  }
  p.task_probes_note = hello.task_probes_note();
  p.connected = true;
  state->link_stalls = hello.stall_threshold_ns() > 0;
  process = state.get();
  owner_->processes_.push_back(std::move(state));
}

void Aggregator::Sink::on_counters(const wire::Counters& c) {
  ProcessInfo& p = process->info;
  p.dropped_queue_full = c.dropped_queue_full();
  p.dropped_no_collector = c.dropped_no_collector();
  p.dropped_too_deep = c.dropped_too_deep();
  p.stalls_suppressed = c.stalls_suppressed();
  p.threads_unwatched = c.threads_unwatched();
  p.dropped = p.dropped_queue_full + p.dropped_no_collector + p.dropped_too_deep;
  process->tasks.clear();  // cumulative: the latest lines replace the earlier ones
  for (const wire::TaskStats& line : c.tasks()) process->tasks.push_back(task_stats_from_wire(line, p));
  process->task_labels_dropped = c.task_labels_dropped();
}

Aggregator::HotspotAccumulator* Aggregator::Sink::new_hotspot(
    const HotspotKey& key, const char* kind, const std::vector<StackFrame>* frames,
    const std::string& scope_allow_reason) {
  auto acc = std::make_unique<HotspotAccumulator>();
  Hotspot& h = acc->hotspot;
  h.kind = kind;
  h.scope = kinds::stall_scope_name(key.stall_scope);
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

Aggregator::HotspotAccumulator* Aggregator::Sink::hotspot_for(const wire::Event& event,
                                                              const EventRefs& refs) {
  const uint8_t stall_scope =
      event.kind() == wire::KIND_STALL ? static_cast<uint8_t>(event.stall_scope()) : 0;
  const HotspotKey key{event.stack(), event.kind(), !refs.allow_reason->empty(), false,
                       stall_scope};
  StackSlot* slot = nullptr;
  if (key.stack_id < kDenseStackIds) {
    auto& slots = process->by_stack_id;
    if (key.stack_id >= slots.size()) {
      slots.resize(std::min(kDenseStackIds, std::max(key.stack_id + 1, slots.size() * 2)));
    }
    slot = &slots[key.stack_id];
    if (slot->acc != nullptr && slot->kind == key.kind &&
        slot->allowed_by_scope == key.allowed_by_scope && slot->stall_scope == key.stall_scope) {
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
  if (slot != nullptr) *slot = StackSlot{acc, key.kind, key.allowed_by_scope, key.stall_scope};
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

namespace {

LogHistogram histogram_of(const Aggregator::HotspotAccumulator& acc) {
  if (acc.histogram_live) return acc.histogram;
  LogHistogram histogram;
  for (const OccurrenceIds& o : acc.occurrences) histogram.add(o.duration_ns);
  return histogram;
}

}  // namespace

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
  // A sampled stall's innermost frame is wherever the thread happened to be: two
  // samples in one function's loop are one hotspot. Callers' frames are return
  // addresses, the same for the same call path.
  // (The innermost physical frame comes with the functions inlined at its pc.)
  bool innermost = h.kind == "stall" && h.stack_source == "own";
  for (const StackFrame& f : h.stack) {
    key += '\0' + f.function + '\1' + f.module + '\1';
    if (!innermost) key += std::to_string(f.offset);
    if (!f.inlined) innermost = false;
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
    report.threads_unwatched += process->info.threads_unwatched;
    for (const TaskStats& line : process->tasks) merge_task_stats(line, &report.tasks);
    report.task_labels_dropped += process->task_labels_dropped;
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
  std::vector<std::string> entry_rules;  // every installed task-entry rule of the run
  for (const ProcessInfo& p : report.processes) {
    for (const TaskProbe& probe : p.task_probes) {
      if (probe.installed && std::find(entry_rules.begin(), entry_rules.end(), probe.rule) ==
                                 entry_rules.end()) {
        entry_rules.push_back(probe.rule);
      }
    }
  }
  absl::flat_hash_map<std::string, PathTotals> paths;
  for (Merged& m : merged) {
    Hotspot& h = m.hotspot;
    if (h.kind == "stall") h.task_function = task_function_of(h.stack, entry_rules);
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
  finish_task_stats(&report.tasks);
  for (auto& [name, totals] : paths) report.paths.push_back(totals);
  std::sort(report.paths.begin(), report.paths.end(), [](const PathTotals& a, const PathTotals& b) {
    return a.blocked_ns + a.stalled_ns > b.blocked_ns + b.stalled_ns;
  });
  return report;
}

}  // namespace blockwatch::collector