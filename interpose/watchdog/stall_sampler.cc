// The fallback signal sampler (see stall_sampler.h).
//
// ASYNC-SIGNAL-SAFE CODE: handle_sample_signal() and everything it calls run in a
// signal handler on a target thread that may hold any lock (malloc's, the
// loader's, libunwind's). They allocate nothing, take no lock, call no function
// that might, touch only static memory, and preserve errno. The handler copies
// registers and at most kStackCopyBytes of the stack, bounded by the readable
// mapping holding sp (from a /proc/self/maps snapshot the watchdog takes before
// arming the timer), so it never faults; the unwinding happens later, on the
// watchdog thread.
#include "interpose/watchdog/stall_sampler.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "interpose/base/clock.h"
#include "interpose/base/proc_file.h"
#include "interpose/base/raw_syscall.h"
#include "interpose/core/thread_state.h"

namespace blockwatch::interpose {
namespace {

// Request phases, in the low two bits of the request word; the rest is a
// generation number so a handler that runs late cannot complete a newer request.
constexpr uint64_t kPhaseIdle = 0;
constexpr uint64_t kPhaseRequested = 1;
constexpr uint64_t kPhaseWriting = 2;
constexpr uint64_t kPhaseDone = 3;
constexpr uint64_t kPhaseMask = 3;

// The timer fires after this much of the thread's CPU time (the kernel checks
// at its next tick, so in practice after one tick of running).
constexpr long kTimerCpuNs = 50'000;

struct SampleBuffer {
  std::atomic<uint64_t> word{0};
  std::atomic<int32_t> tid{0};
  StackCopy copy;
};
constinit SampleBuffer g_sample;
constinit uint64_t g_generation = 0;  // watchdog thread only

constinit int g_signal = 0;         // installed
constinit int g_wanted_signal = 0;  // to install at the first sample
constinit bool g_install_tried = false;
using SampleHandler = void (*)(int, siginfo_t*, void*);
constinit SampleHandler g_installed_handler = nullptr;

// Per thread slot: the tid whose alternate stack is ready there, and our stack
// memory for it (mapped once, reused by the slot's next owner).
constinit std::atomic<int32_t> g_ready_tid[kMaxThreadSlots];
constinit std::atomic<void*> g_alt_stack[kMaxThreadSlots];

// Readable mappings, sorted (the kernel lists them in address order). Written by
// the watchdog only while no request is pending or being written.
constexpr int kMaxRanges = 8192;
constinit uintptr_t g_range_start[kMaxRanges];
constinit uintptr_t g_range_end[kMaxRanges];
constinit int g_range_count = 0;

// --- async-signal-safe part -------------------------------------------------

// End of the readable range holding `address`, or 0.
uintptr_t readable_end(uintptr_t address) {
  int low = 0, high = g_range_count - 1;
  while (low <= high) {
    const int mid = (low + high) / 2;
    if (address < g_range_start[mid]) {
      high = mid - 1;
    } else if (address >= g_range_end[mid]) {
      low = mid + 1;
    } else {
      return g_range_end[mid];
    }
  }
  return 0;
}

// Registers (DWARF numbering) and the top of the stack. No allocation.
void copy_interrupted_state(const void* context, StackCopy& copy) {
#if defined(__x86_64__)
  const greg_t* gregs = static_cast<const ucontext_t*>(context)->uc_mcontext.gregs;
  static constexpr int kGregOfDwarf[kStackCopyRegs] = {
      REG_RAX, REG_RDX, REG_RCX, REG_RBX, REG_RSI, REG_RDI, REG_RBP, REG_RSP, REG_R8,
      REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15, REG_RIP};
  for (int i = 0; i < kStackCopyRegs; ++i)
    copy.regs[i] = static_cast<uint64_t>(gregs[kGregOfDwarf[i]]);
  const uintptr_t sp = copy.regs[kRegRsp];
  const uintptr_t end = readable_end(sp);
  const size_t available = end > sp ? end - sp : 0;
  const size_t wanted = available < kStackCopyBytes ? available : kStackCopyBytes;
  copy.stack_start = sp;
  // Copied by the kernel (process_vm_readv on ourselves), one iovec per page:
  // memory unmapped or made inaccessible since the watchdog's maps snapshot
  // (a thread's guard page, a side stack's, an munmap) ends the copy at that
  // page instead of faulting in this handler. A plain memcpy crashed the
  // stress test's target about once in six runs.
  constexpr size_t kPage = 4096;
  iovec local{copy.stack, wanted};
  iovec remote[kStackCopyBytes / kPage + 1];
  int pieces = 0;
  for (uintptr_t at = sp, stop = sp + wanted;
       at < stop && pieces < static_cast<int>(sizeof remote / sizeof remote[0]);) {
    const uintptr_t next = std::min<uintptr_t>((at & ~(kPage - 1)) + kPage, stop);
    remote[pieces++] = iovec{reinterpret_cast<void*>(at), next - at};
    at = next;
  }
  const long copied =
      wanted == 0 ? 0
                  : raw_syscall6(SYS_process_vm_readv, getpid(), reinterpret_cast<long>(&local), 1,
                                 reinterpret_cast<long>(remote), pieces, 0);
  copy.stack_bytes = copied > 0 ? static_cast<size_t>(copied) : 0;
#else
  (void)context;
  copy.regs[kRegRip] = 0;  // no stack on this architecture
  copy.stack_bytes = 0;
#endif
}

void handle_sample_signal(int, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  uint64_t word = g_sample.word.load(std::memory_order_acquire);
  if ((word & kPhaseMask) == kPhaseRequested && info && info->si_code == SI_TIMER &&
      reinterpret_cast<uintptr_t>(info->si_value.sival_ptr) == (word >> 2) &&
      g_sample.tid.load(std::memory_order_relaxed) == gettid() &&
      g_sample.word.compare_exchange_strong(word, (word & ~kPhaseMask) | kPhaseWriting,
                                            std::memory_order_acq_rel)) {
    copy_interrupted_state(context, g_sample.copy);
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

// One line of /proc/self/maps: "start-end perms ...". Keeps readable ones.
void add_maps_line(const char* line) {
  const char* p = line;
  const uintptr_t start = parse_hex(p);
  if (*p++ != '-') return;
  const uintptr_t end = parse_hex(p);
  if (*p++ != ' ' || *p != 'r' || end <= start || g_range_count >= kMaxRanges) return;
  // Adjacent readable ranges merge: a copy may then run from one into the next.
  if (g_range_count > 0 && g_range_end[g_range_count - 1] == start) {
    g_range_end[g_range_count - 1] = end;
    return;
  }
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

// Does thread `tid` block `signal` right now ("SigBlk:" of its status)? Unknown:
// blocked.
bool thread_blocks_signal(int32_t tid, int signal) {
  char path[64], text[2048];
  task_file_path(tid, "status", path, sizeof path);
  if (read_small_file(path, text, sizeof text) < 0) return true;
  return parse_signal_blocked(text, signal);
}

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

size_t alt_stack_bytes() {
  const long minimum = sysconf(_SC_MINSIGSTKSZ);
  const size_t wanted = minimum > 0 ? static_cast<size_t>(minimum) * 4 : 0;
  return wanted > 64 * 1024 ? wanted : 64 * 1024;
}

// Arms a one-shot timer on `tid`'s CPU clock carrying `generation`. -1: failed.
bool arm_cpu_timer(int32_t tid, uint64_t generation, timer_t* timer) {
  sigevent event = {};
  event.sigev_notify = SIGEV_THREAD_ID;
  event.sigev_signo = g_signal;
  event.sigev_value.sival_ptr = reinterpret_cast<void*>(static_cast<uintptr_t>(generation));
  event._sigev_un._tid = tid;
  if (timer_create(thread_cpu_clock_id(tid), &event, timer) != 0) return false;
  const itimerspec once = {{0, 0}, {0, kTimerCpuNs}};
  if (timer_settime(*timer, 0, &once, nullptr) != 0) {
    timer_delete(*timer);
    return false;
  }
  return true;
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

void stall_sampler_prepare(int signal) { g_wanted_signal = signal; }

bool stall_sampler_install(int signal) { return install_handler(signal); }

bool stall_sampler_usable() {
  if (g_signal == 0) return false;
  struct sigaction current;
  if (sigaction(g_signal, nullptr, &current) != 0) return false;
  return (current.sa_flags & SA_SIGINFO) && current.sa_sigaction == g_installed_handler;
}

bool stall_sampler_kernel_is_safe() {
#if defined(__x86_64__)
  utsname name;
  if (uname(&name) != 0) return false;
  int major = 0, minor = 0;
  if (std::sscanf(name.release, "%d.%d", &major, &minor) != 2) return false;
  return major > 5 || (major == 5 && minor >= 11);
#else
  return false;
#endif
}

bool stall_sampler_prepare_thread(int index) {
  if (index < 0 || index >= kMaxThreadSlots) return false;
  stack_t current;
  if (sigaltstack(nullptr, &current) != 0) return false;
  if (!(current.ss_flags & SS_DISABLE)) {
    g_ready_tid[index].store(gettid(), std::memory_order_release);  // the program's own
    return true;
  }
  const size_t bytes = alt_stack_bytes();
  void* memory = g_alt_stack[index].load(std::memory_order_acquire);
  if (!memory) {
    memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) return false;
    g_alt_stack[index].store(memory, std::memory_order_release);
  }
  const stack_t ours = {memory, 0, bytes};
  if (sigaltstack(&ours, nullptr) != 0) return false;
  g_ready_tid[index].store(gettid(), std::memory_order_release);
  return true;
}

ThreadSyscall parse_thread_syscall(const char* text) {
  ThreadSyscall result;
  if (!text || std::strncmp(text, "running", 7) == 0) return result;
  char* end = nullptr;
  const long number = std::strtol(text, &end, 10);
  if (end == text || number < 0) return result;  // -1: blocked outside a syscall
  result.in_syscall = true;
  result.name = "syscall";
  struct Entry {
    long number;
    const char* name;
  };
  static constexpr Entry kNames[] = {
      {SYS_read, "read"},
      {SYS_write, "write"},
      {SYS_readv, "readv"},
      {SYS_writev, "writev"},
      {SYS_pread64, "pread64"},
      {SYS_pwrite64, "pwrite64"},
      {SYS_recvfrom, "recvfrom"},
      {SYS_sendto, "sendto"},
      {SYS_recvmsg, "recvmsg"},
      {SYS_sendmsg, "sendmsg"},
      {SYS_accept, "accept"},
      {SYS_accept4, "accept4"},
      {SYS_connect, "connect"},
      {SYS_openat, "openat"},
      {SYS_fsync, "fsync"},
      {SYS_fdatasync, "fdatasync"},
      {SYS_wait4, "wait4"},
      {SYS_waitid, "waitid"},
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
  for (const Entry& entry : kNames) {
    if (entry.number == number) result.name = entry.name;
  }
  return result;
}

ThreadSyscall read_thread_syscall(int32_t tid) {
  char path[64];
  task_file_path(tid, "syscall", path, sizeof path);
  char text[256];
  if (read_small_file(path, text, sizeof text) < 0) return ThreadSyscall{};  // gone
  return parse_thread_syscall(text);
}

int stall_sampler_sample(int32_t tid, int index, StackCopy* out, int64_t timeout_ns) {
  install_handler_at_first_sample();
  if (!stall_sampler_usable() || !stall_sampler_kernel_is_safe() || index < 0 ||
      index >= kMaxThreadSlots || g_ready_tid[index].load(std::memory_order_acquire) != tid ||
      thread_blocks_signal(tid, g_signal)) {
    return -1;
  }
  refresh_readable_ranges();
  const uint64_t generation = ++g_generation & (UINT64_MAX >> 2);
  const uint64_t base = generation << 2;
  g_sample.tid.store(tid, std::memory_order_relaxed);
  g_sample.word.store(base | kPhaseRequested, std::memory_order_release);
  timer_t timer;
  if (!arm_cpu_timer(tid, generation, &timer)) {
    g_sample.word.store(base | kPhaseIdle, std::memory_order_release);
    return -1;
  }
  const int64_t deadline_ns = monotonic_ns() + timeout_ns;
  int result = 0;
  for (;;) {
    uint64_t word = g_sample.word.load(std::memory_order_acquire);
    if (word == (base | kPhaseDone)) {
      std::memcpy(static_cast<void*>(out), &g_sample.copy, sizeof *out);
      result = 1;
      break;
    }
    if (monotonic_ns() >= deadline_ns) {
      word = base | kPhaseRequested;
      // Not started: withdraw. Being written: the copy is short, wait for it.
      if (g_sample.word.compare_exchange_strong(word, base | kPhaseIdle)) break;
    }
    sleep_briefly_ns(500'000);
  }
  timer_delete(timer);
  g_sample.word.store(base | kPhaseIdle, std::memory_order_release);
  return result;
}

void stall_sampler_after_fork_child() {
  g_sample.word.store(0, std::memory_order_relaxed);
  g_sample.tid.store(0, std::memory_order_relaxed);
  // Only the forking thread lives on, under a new tid: it is prepared again when
  // it is next classified as a worker.
  for (auto& tid : g_ready_tid) tid.store(0, std::memory_order_relaxed);
}

}  // namespace blockwatch::interpose
