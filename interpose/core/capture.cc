// Stack capture and record building for blocking calls (see capture.h).
#include "interpose/core/capture.h"

#include <execinfo.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "interpose/base/optional_libs.h"
#include "interpose/base/own_code.h"
#include "interpose/base/phdr_cache.h"
#include "interpose/base/side_stack.h"
#include "interpose/core/config.h"
#include "interpose/core/process_scope.h"
#include "interpose/core/record.h"
#include "interpose/core/thread_state.h"
#include "interpose/transport/agent.h"

namespace blockwatch::interpose {
namespace {

uint8_t fd_type_of(int fd) {
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) return 0;  // FD_UNKNOWN
  switch (st.st_mode & S_IFMT) {
    case S_IFREG:
      return 1;  // FD_REGULAR
    case S_IFSOCK:
      return 2;  // FD_SOCKET
    case S_IFIFO:
      return 3;  // FD_PIPE
    case S_IFCHR:
      return isatty(fd) ? 4 : 5;  // FD_TTY : FD_CHAR
    default:
      return 6;  // FD_OTHER
  }
}

void copy_label(char* out, const char* label, size_t out_bytes) {
  if (!label) return;
  std::strncpy(out, label, out_bytes - 1);
  out[out_bytes - 1] = '\0';
}

// BLOCKWATCH_ON_BLOCKING=abort: say what blocked, where, then abort at the site.
// write(2) and backtrace_symbols_fd only: no allocation.
[[noreturn]] void abort_at_blocking_site(const Record& record) {
  char line[256];
  const int n = snprintf(line, sizeof line,
                         "blockwatch: %s blocked worker thread %d '%s' for %lld ns "
                         "(BLOCKWATCH_ON_BLOCKING=abort); stack:\n",
                         record.function ? record.function : "?", record.tid, record.thread_name,
                         static_cast<long long>(record.duration_ns));
  if (n > 0) (void)!::write(2, line, static_cast<size_t>(n) < sizeof line ? n : sizeof line - 1);
  backtrace_symbols_fd(reinterpret_cast<void* const*>(record.frames), record.frame_count, 2);
  abort();
}

}  // namespace

int64_t g_threshold_ns = 1'000'000;

void capture_init() {
  RecursionGuard guard;
  load_unwinder();  // optional_libs.h: libunwind only in a watched process
  g_threshold_ns = config().threshold_ns;
  timebase_init(g_threshold_ns, config().tsc_allowed);
  own_code_init();
  phdr_cache_refresh();  // before the first unwind, which walks it (phdr_cache.h)
  capture_warm_up_thread();
}

namespace {

// The unwind itself, on whatever stack runs it (a side stack: see callers).
int capture_stack_here(uintptr_t* frames, int max_frames) {
  constexpr int kOwnFramesMax = 16;
  void* raw[kMaxFrames + kOwnFramesMax];
  tls_thread.capture_warm = true;
  int count = 0;
  {
    PhdrCacheScope no_loader_lock;  // phdr_cache.h: libunwind must not wait for the loader
    count = unwind_backtrace(raw, kMaxFrames + kOwnFramesMax);
  }
  int first = 0;
  while (first < count && is_own_pc(reinterpret_cast<uintptr_t>(raw[first]))) ++first;
  int out = 0;
  for (int i = first; i < count && out < max_frames; ++i) {
    frames[out++] = reinterpret_cast<uintptr_t>(raw[i]);
  }
  return out;
}

struct CaptureJob {
  uintptr_t* frames;
  int max_frames;
  int count;
};

void capture_job(void* arg) {
  auto* job = static_cast<CaptureJob*>(arg);
  job->count = capture_stack_here(job->frames, job->max_frames);
}

void warm_up_job(void*) {
  void* frames[4];
  PhdrCacheScope no_loader_lock;
  unwind_backtrace(frames, 4);
}

struct ReportJob {
  const BlockingCall* call;
  int64_t start_mono_ns;
  int64_t duration_ns;
  int32_t tid;
};

// Fills and submits the record; runs on a side stack (the Record, the raw frame
// array and libunwind's cursor and context are ~3 KB, its first use per thread
// ~17 KB).
void report_job(void* arg) {
  const auto& job = *static_cast<const ReportJob*>(arg);
  const BlockingCall& call = *job.call;
  Record record;
  record.kind = call.kind;
  record.function = call.function;
  record.address = call.address;
  record.fd = call.fd;
  record.holder_tid = call.holder_tid;
  record.start_mono_ns = job.start_mono_ns;
  record.duration_ns = job.duration_ns;
  record.tid = job.tid;
  if (call.fd >= 0) record.fd_type = fd_type_of(call.fd);
  bool allowed = false;
  if (const ThreadSlot* slot = tls_thread.slot) {
    std::memcpy(record.thread_name, slot->name, sizeof record.thread_name);
    record.thread_name[kThreadNameBytes - 1] = '\0';
    const int32_t depth = slot->task_depth.load(std::memory_order_relaxed);
    if (depth > 0) {
      record.in_task = 1;
      record.task_seq = slot->task_seq.load(std::memory_order_relaxed);
      const int index = depth <= kMaxTaskNesting ? depth - 1 : kMaxTaskNesting - 1;
      copy_label(record.task, slot->task_labels[index].load(std::memory_order_relaxed),
                 sizeof record.task);
    }
    if (slot->allow_depth.load(std::memory_order_relaxed) > 0) {
      allowed = true;
      copy_label(record.allow_reason, slot->allow_reason.load(std::memory_order_relaxed),
                 sizeof record.allow_reason);
    }
  }
  record.frame_count = static_cast<uint16_t>(capture_stack_here(record.frames, kMaxFrames));
  if (config().abort_on_blocking && !allowed) abort_at_blocking_site(record);
  agent_submit(record);
}

}  // namespace

void capture_warm_up_thread() {
  if (tls_thread.capture_warm) return;
  RecursionGuard guard;
  const int saved_errno = errno;
  ThreadSlot* slot = tls_thread.slot;
  if (slot && run_on_side_stack(slot->side_stack, warm_up_job, nullptr)) {
    tls_thread.capture_warm = true;
  }
  errno = saved_errno;
}

int capture_stack(uintptr_t* frames, int max_frames) {
  CaptureJob job{frames, max_frames, 0};
  ThreadSlot* slot = tls_thread.slot;
  if (!slot || !run_on_side_stack(slot->side_stack, capture_job, &job)) return 0;
  return job.count;
}

void report_blocking_call(const BlockingCall& call, int64_t start_mono_ns, int64_t duration_ns) {
  // A vfork or _Fork child shares (a copy of) its parent's thread state and
  // record queue: what it does is not the parent's. One getpid() syscall, on the
  // reported path only; the tid check below catches a vfork child too.
  if (!is_original_process()) return;
  RecursionGuard guard;
  const int saved_errno = errno;
  ThreadSlot* slot = tls_thread.slot;
  const int32_t tid = gettid();
  // A vfork() child runs on its parent's thread, TLS and slot until it execs or
  // exits: its calls are not the parent's, and its own process reports nothing
  // (it never ran our constructor). Not recorded.
  if (slot && slot->tid.load(std::memory_order_relaxed) != tid) {
    errno = saved_errno;
    return;
  }
  ReportJob job{&call, start_mono_ns, duration_ns, tid};
  // No slot (cannot happen on a worker) or no memory for its side stack:
  // counted, never done on the caller's stack.
  if (!slot || !run_on_side_stack(slot->side_stack, report_job, &job)) {
    agent_count_not_captured();
  }
  errno = saved_errno;
}

void report_timed_call(const BlockingCall& call, int64_t start_ticks, int64_t elapsed_ticks) {
  int64_t duration_ns = ticks_to_ns(elapsed_ticks);
  if (duration_ns < 0) duration_ns = 0;  // two CPUs' TSCs a few ticks apart (strict mode)
  if (duration_ns < g_threshold_ns) return;
  report_blocking_call(call, ticks_to_mono_ns(start_ticks), duration_ns);
}

void count_nested_call(int64_t elapsed_ticks) {
  if (elapsed_ticks >= g_threshold_ticks.load(std::memory_order_relaxed)) {
    agent_count_not_captured();
  }
}

bool hook_is_nested_in_timed_call(uint8_t mode) {
  if (mode != kModeWorker || tls_thread.guard_depth != 1) return false;
  const ThreadSlot* slot = tls_thread.slot;
  return slot != nullptr && slot->blocked_in.load(std::memory_order_relaxed) != nullptr;
}

}  // namespace blockwatch::interpose
