// Stalls in the aggregation (see aggregate.h for the semantics): the watchdog's
// 1x/2x/4x samples of one stall, merged by stall_id so that the stall counts
// once, with its latest sample; and stalls none of whose samples had a stack of
// their own taken outside a blocking call, linked to the blocking call of the
// same thread that covers one of them, whose stack they then show. The per-event path for blocking calls is in aggregate.cc;
// this file only sees stall samples and, while stall detection is on, each
// blocking call's record (note_blocking_call).
#include <algorithm>

#include "collector/aggregate_internal.h"

namespace blockwatch::collector {

using aggregate_internal::add_duration;
using aggregate_internal::add_function;
using aggregate_internal::add_name_id;
using aggregate_internal::is_dropped;
using aggregate_internal::OccurrenceIds;
using aggregate_internal::PendingStall;
using aggregate_internal::RecentCall;
using aggregate_internal::StallRecord;

namespace {

// Clock slack between a stall sample's time and a blocking call's bounds: the
// watchdog reads the time a moment before it sees the thread in its call.
constexpr int64_t kCallCoverSlackNs = 1'000'000;

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

// --- Samples of one stall, merged by stall_id ---

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

// A stall sample: the first one, or the first with a stack taken outside a
// blocking call, (re)homes the stall; any other replaces the stall's earlier
// contribution in place. A stall without such a stack looks for the blocking
// call it was inside, and shows that call's stack when one covers it (a sample
// inside the call keeps its own, often shorter, stack until then).
void Aggregator::Sink::on_stall_sample(const wire::Event& event, const EventRefs& refs) {
  process->link_stalls = true;
  bool first = false;
  StallRecord* stall = track_stall(event.stall_id(), &first);
  const bool has_stack = event.stack() != 0 && event.blocked_in().empty();
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
  stall->stall_scope = static_cast<uint8_t>(event.stall_scope());
  stall->tid = event.tid();
  stall->thread_id = event.thread_name();
  stall->task_id = event.task();
  stall->start_unix_ns = event.start_unix_ns();
  remember_sample(stall, event);
  if (!home_stall(stall, acc)) return;
  add_function(acc, event.function());
  if (!has_stack) note_stackless_sample(event.stall_id(), stall, event);
}

// Adds the stall's contribution to `acc` and returns true; or, when `acc` is an
// idle / not_worker hotspot, counts it as idle and returns false (stall->acc null).
bool Aggregator::Sink::home_stall(StallRecord* stall, HotspotAccumulator* acc) {
  if (is_dropped(*acc)) {
    stall->acc = nullptr;
    ++owner_->idle_events_;
    return false;
  }
  stall->acc = acc;
  add_stall(acc, *stall);
  return true;
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
  const HotspotKey key{call.stack_id, wire::KIND_STALL, stall->allowed_by_scope, true,
                       stall->stall_scope};
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
  home_stall(stall, acc);
}

}  // namespace blockwatch::collector
