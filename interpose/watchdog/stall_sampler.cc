// The signal side of stall detection (see stall_sampler.h).
//
// ASYNC-SIGNAL-SAFE CODE: handle_sample_signal() and everything it calls run in a
// signal handler on an arbitrary target thread that may hold any lock (malloc's,
// the loader's, libunwind's). They allocate nothing, take no lock, call no
// function that might (no dl_iterate_phdr, no unw_backtrace: its first use per
// thread locks mutexes and it looks up unwind tables through the loader), touch
// only static memory, and preserve errno. The stack is walked by frame pointers
// from the interrupted context: every address is checked against a snapshot of
// the readable mappings (/proc/self/maps) taken by the watchdog just before the
// signal, so a target built without frame pointers yields a short stack, never a
// fault. Code without frame pointers between frames ends or shortens the walk.
#include "interpose/watchdog/stall_sampler.h"

#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "interpose/base/clock.h"
#include "interpose/base/own_code.h"
#include "interpose/base/proc_file.h"
#include "interpose/core/record.h"

namespace blockwatch::interpose {
namespace {

// Request phases, in the low two bits of the request word; the rest is a
// generation number so a handler that runs late cannot complete a newer request.
constexpr uint64_t kPhaseIdle = 0;
constexpr uint64_t kPhaseRequested = 1;
constexpr uint64_t kPhaseWriting = 2;
constexpr uint64_t kPhaseDone = 3;
constexpr uint64_t kPhaseMask = 3;

struct SampleBuffer {
  std::atomic<uint64_t> word{0};
  std::atomic<int32_t> tid{0};
  int frame_count = 0;
  uintptr_t frames[kMaxFrames] = {};
};
constinit SampleBuffer g_sample;
constinit uint64_t g_generation = 0;  // watchdog thread only

constinit int g_signal = 0;         // installed
constinit int g_wanted_signal = 0;  // to install at the first sample
constinit bool g_install_tried = false;
using SampleHandler = void (*)(int, siginfo_t*, void*);
constinit SampleHandler g_installed_handler = nullptr;

// Readable mappings, sorted (the kernel lists them in address order). Written by
// the watchdog only while no request is pending or being written.
constexpr int kMaxRanges = 8192;
constinit uintptr_t g_range_start[kMaxRanges];
constinit uintptr_t g_range_end[kMaxRanges];
constinit int g_range_count = 0;

// False in unit tests, where "own" code is the test itself.
constinit bool g_drop_own_frames = true;

bool install_handler(int signal);

// --- async-signal-safe part -------------------------------------------------

// Index of the readable range holding [address, address + bytes), or -1.
int readable_range(uintptr_t address, uintptr_t bytes) {
  int low = 0, high = g_range_count - 1;
  while (low <= high) {
    const int mid = (low + high) / 2;
    if (address < g_range_start[mid]) {
      high = mid - 1;
    } else if (address >= g_range_end[mid]) {
      low = mid + 1;
    } else {
      return address + bytes <= g_range_end[mid] ? mid : -1;
    }
  }
  return -1;
}

struct InterruptedRegisters {
  uintptr_t pc = 0, fp = 0, sp = 0;
};

InterruptedRegisters registers_of(const void* context) {
  InterruptedRegisters regs;
  const auto* uc = static_cast<const ucontext_t*>(context);
#if defined(__x86_64__)
  regs.pc = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
  regs.fp = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RBP]);
  regs.sp = static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RSP]);
#elif defined(__aarch64__)
  regs.pc = uc->uc_mcontext.pc;
  regs.fp = uc->uc_mcontext.regs[29];
  regs.sp = uc->uc_mcontext.sp;
#else
  (void)uc;
#endif
  return regs;
}

// Frame-pointer walk: each frame is {saved fp, return address}; caller frames
// sit at higher addresses on the same stack mapping as the interrupted sp.
// Async-signal-safe, no allocation.
int walk_frames(const void* context, uintptr_t* frames, int max_frames) {
  const InterruptedRegisters regs = registers_of(context);
  int count = 0;
  // Stacks are symbolized as return addresses, looked up at address - 1 (the
  // call instruction). The interrupted pc is exact and may be a function's first
  // instruction: handed on as pc + 1, it is looked up at itself.
  if (regs.pc != 0 && !(g_drop_own_frames && is_own_pc(regs.pc))) frames[count++] = regs.pc + 1;
  const int stack_range = readable_range(regs.sp, sizeof(uintptr_t));
  uintptr_t fp = regs.fp;
  while (count < max_frames && fp != 0 && (fp % sizeof(uintptr_t)) == 0) {
    const int range = readable_range(fp, 2 * sizeof(uintptr_t));
    if (range < 0 || (stack_range >= 0 && range != stack_range)) break;
    const auto* frame = reinterpret_cast<const uintptr_t*>(fp);
    const uintptr_t next_fp = frame[0];
    const uintptr_t return_address = frame[1];
    if (return_address == 0) break;
    if (!(g_drop_own_frames && is_own_pc(return_address))) frames[count++] = return_address;
    if (next_fp <= fp) break;  // stacks grow down: a caller's frame is higher
    fp = next_fp;
  }
  return count;
}

void handle_sample_signal(int, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  uint64_t word = g_sample.word.load(std::memory_order_acquire);
  if ((word & kPhaseMask) == kPhaseRequested && info && info->si_code == SI_TKILL &&
      info->si_pid == getpid() && g_sample.tid.load(std::memory_order_relaxed) == gettid() &&
      g_sample.word.compare_exchange_strong(word, (word & ~kPhaseMask) | kPhaseWriting,
                                            std::memory_order_acq_rel)) {
    g_sample.frame_count = walk_frames(context, g_sample.frames, kMaxFrames);
    g_sample.word.store((word & ~kPhaseMask) | kPhaseDone, std::memory_order_release);
  }
  errno = saved_errno;
}

// --- watchdog-thread part ---------------------------------------------------

uintptr_t parse_hex(const char*& p) {
  uintptr_t value = 0;
  for (;; ++p) {
    const char c = *p;
    if (c >= '0' && c <= '9')
      value = value * 16 + static_cast<uintptr_t>(c - '0');
    else if (c >= 'a' && c <= 'f')
      value = value * 16 + static_cast<uintptr_t>(c - 'a' + 10);
    else
      return value;
  }
}

// One line of /proc/self/maps: "start-end perms ...". Keeps readable ones,
// merging adjacent ranges (a stack and the mapping above it stay separate unless
// they touch, which is harmless: both are readable).
void add_maps_line(const char* line) {
  const char* p = line;
  const uintptr_t start = parse_hex(p);
  if (*p++ != '-') return;
  const uintptr_t end = parse_hex(p);
  if (*p++ != ' ' || *p != 'r' || end <= start || g_range_count >= kMaxRanges) return;
  g_range_start[g_range_count] = start;
  g_range_end[g_range_count] = end;
  ++g_range_count;
}

// Re-reads the readable mappings with open/read only (no stdio, no allocation).
void refresh_readable_ranges() {
  g_range_count = 0;
  const int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char chunk[4096];
  char line[512];
  size_t line_length = 0;
  for (;;) {
    const ssize_t n = read(fd, chunk, sizeof chunk);
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      if (chunk[i] == '\n') {
        line[line_length] = '\0';
        add_maps_line(line);
        line_length = 0;
      } else if (line_length + 1 < sizeof line) {
        line[line_length++] = chunk[i];
      }
    }
  }
  close(fd);
}

void sleep_briefly_ns(long nsec) {
  timespec pause = {0, nsec};
  nanosleep(&pause, nullptr);
}

// Does thread `tid` block `signal` right now ("SigBlk:" of its status)? A
// blocked signal would stay pending and could reach the program later through
// sigwaitinfo or a signalfd: such a thread is never sent one. Unknown: blocked.
bool thread_blocks_signal(int32_t tid, int signal) {
  char path[64], text[2048];
  task_file_path(tid, "status", path, sizeof path);
  if (read_small_file(path, text, sizeof text) < 0) return true;
  return parse_signal_blocked(text, signal);
}

}  // namespace

bool parse_signal_blocked(const char* status_text, int signal) {
  static constexpr char kKey[] = "\nSigBlk:";
  const char* line = std::strstr(status_text, kKey);
  if (!line || signal < 1 || signal > 64) return true;
  const char* p = line + sizeof kKey - 1;
  while (*p == ' ' || *p == '\t') ++p;
  const char* digits = p;
  const uint64_t mask = parse_hex(p);
  if (p == digits) return true;
  return (mask >> (signal - 1)) & 1;
}

void stall_sampler_prepare(int signal) {
  own_code_init();
  g_wanted_signal = signal;
}

bool stall_sampler_install(int signal, bool drop_own_frames) {
  g_drop_own_frames = drop_own_frames;
  if (drop_own_frames) own_code_init();
  return install_handler(signal);
}

namespace {

bool install_handler(int signal) {
  struct sigaction previous;
  if (sigaction(signal, nullptr, &previous) != 0) return false;
  const bool has_handler = (previous.sa_flags & SA_SIGINFO) ? previous.sa_sigaction != nullptr
                                                            : previous.sa_handler != SIG_DFL;
  if (has_handler) {
    // Ours already (a fork child inherits it), or the program's: never take it.
    return (previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction == handle_sample_signal;
  }
  struct sigaction action = {};
  action.sa_sigaction = handle_sample_signal;
  action.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  sigfillset(&action.sa_mask);
  if (sigaction(signal, &action, nullptr) != 0) return false;
  g_signal = signal;
  g_installed_handler = handle_sample_signal;
  return true;
}

// First sample: install now. write(2), not stdio: a stalled thread may hold
// stderr's lock.
void install_handler_at_first_sample() {
  if (g_install_tried || g_wanted_signal == 0) return;
  g_install_tried = true;
  if (install_handler(g_wanted_signal)) return;
  char line[200];
  const int n = std::snprintf(line, sizeof line,
                              "blockwatch: signal %d is in use by the program; stalls are "
                              "reported without stacks (BLOCKWATCH_STALL_SIGNAL picks another)\n",
                              g_wanted_signal);
  if (n > 0) (void)!write(2, line, static_cast<size_t>(n) < sizeof line ? n : sizeof line - 1);
}

}  // namespace

bool stall_sampler_usable() {
  if (g_signal == 0) return false;
  struct sigaction current;
  if (sigaction(g_signal, nullptr, &current) != 0) return false;
  return (current.sa_flags & SA_SIGINFO) && current.sa_sigaction == g_installed_handler;
}

ThreadSyscall parse_thread_syscall(const char* text) {
  ThreadSyscall result;
  if (!text || std::strncmp(text, "running", 7) == 0) return result;
  char* end = nullptr;
  const long number = std::strtol(text, &end, 10);
  if (end == text || number < 0) return result;  // -1: blocked outside a syscall
  struct Entry {
    long number;
    const char* name;
  };
  // Syscalls that a handled signal ends with EINTR whatever SA_RESTART says
  // (signal(7)), plus futex, whose EINTR some libc paths (sem_wait) pass on.
  static constexpr Entry kNotRestarted[] = {
#ifdef SYS_nanosleep
      {SYS_nanosleep, "nanosleep"},
#endif
      {SYS_clock_nanosleep, "clock_nanosleep"},
#ifdef SYS_pause
      {SYS_pause, "pause"},
#endif
      {SYS_rt_sigsuspend, "sigsuspend"},
      {SYS_rt_sigtimedwait, "sigtimedwait"},
#ifdef SYS_poll
      {SYS_poll, "poll"},
#endif
      {SYS_ppoll, "ppoll"},
#ifdef SYS_select
      {SYS_select, "select"},
#endif
      {SYS_pselect6, "pselect"},
#ifdef SYS_epoll_wait
      {SYS_epoll_wait, "epoll_wait"},
#endif
      {SYS_epoll_pwait, "epoll_pwait"},
#ifdef SYS_epoll_pwait2
      {SYS_epoll_pwait2, "epoll_pwait2"},
#endif
      {SYS_io_getevents, "io_getevents"},
      {SYS_semtimedop, "semtimedop"},
#ifdef SYS_semop
      {SYS_semop, "semop"},
#endif
      {SYS_msgrcv, "msgrcv"},
      {SYS_msgsnd, "msgsnd"},
      {SYS_futex, "futex"},
  };
  for (const Entry& entry : kNotRestarted) {
    if (entry.number == number) {
      result.interruptible = false;
      result.name = entry.name;
    }
  }
  return result;
}

ThreadSyscall read_thread_syscall(int32_t tid) {
  char path[64];
  task_file_path(tid, "syscall", path, sizeof path);
  char text[256];
  if (read_small_file(path, text, sizeof text) < 0) {
    return ThreadSyscall{.interruptible = false, .name = nullptr};  // gone
  }
  return parse_thread_syscall(text);
}

int stall_sampler_sample(int32_t tid, uintptr_t* frames, int max_frames, int64_t timeout_ns) {
  install_handler_at_first_sample();
  if (!stall_sampler_usable() || thread_blocks_signal(tid, g_signal)) return -1;
  refresh_readable_ranges();
  const uint64_t base = ++g_generation << 2;
  g_sample.tid.store(tid, std::memory_order_relaxed);
  g_sample.frame_count = 0;
  g_sample.word.store(base | kPhaseRequested, std::memory_order_release);
  if (syscall(SYS_tgkill, getpid(), tid, g_signal) != 0) {
    g_sample.word.store(base | kPhaseIdle, std::memory_order_release);
    return -1;
  }
  const int64_t deadline_ns = monotonic_ns() + timeout_ns;
  for (;;) {
    uint64_t word = g_sample.word.load(std::memory_order_acquire);
    if (word == (base | kPhaseDone)) break;
    if (monotonic_ns() >= deadline_ns) {
      word = base | kPhaseRequested;
      // Not started: withdraw. Being written: the walk is short, wait for it.
      if (g_sample.word.compare_exchange_strong(word, base | kPhaseIdle)) return -1;
    }
    sleep_briefly_ns(50'000);
  }
  const int count = g_sample.frame_count < max_frames ? g_sample.frame_count : max_frames;
  std::memcpy(frames, g_sample.frames, sizeof(uintptr_t) * static_cast<size_t>(count));
  g_sample.word.store(base | kPhaseIdle, std::memory_order_release);
  return count;
}

void stall_sampler_after_fork_child() {
  g_sample.word.store(0, std::memory_order_relaxed);
  g_sample.tid.store(0, std::memory_order_relaxed);
}

}  // namespace blockwatch::interpose
