// Signal-free stack samples with perf_event_open (see perf_sampler.h).
//
// One event at a time: PERF_COUNT_SW_TASK_CLOCK on the thread (the kernel's
// hrtimer runs only while the thread is on a CPU), a sample every 20 us of its
// run time, exclude_kernel (a timer tick that lands inside a system call is
// dropped, so the copy is always of user-mode state), and a ring of 64 KiB:
// room for one sample of 32 KiB of stack. The watchdog enables the event, waits
// for the first sample (poll on the event fd), disables and closes it.
#include "interpose/watchdog/perf_sampler.h"

#include <fcntl.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "interpose/base/clock.h"

#if defined(__x86_64__)
#include <asm/perf_regs.h>
#endif

namespace blockwatch::interpose {
namespace {

#if defined(__x86_64__)
// The registers a sample carries, in the kernel's order (ascending bit), and
// where each goes in StackCopy::regs (DWARF numbering).
constexpr int kPerfRegs[] = {PERF_REG_X86_AX,  PERF_REG_X86_BX,  PERF_REG_X86_CX,  PERF_REG_X86_DX,
                             PERF_REG_X86_SI,  PERF_REG_X86_DI,  PERF_REG_X86_BP,  PERF_REG_X86_SP,
                             PERF_REG_X86_IP,  PERF_REG_X86_R8,  PERF_REG_X86_R9,  PERF_REG_X86_R10,
                             PERF_REG_X86_R11, PERF_REG_X86_R12, PERF_REG_X86_R13, PERF_REG_X86_R14,
                             PERF_REG_X86_R15};
constexpr int kDwarfOfPerfReg[] = {0, 3, 2,  1,  4,  5,  kRegRbp, kRegRsp, kRegRip,
                                   8, 9, 10, 11, 12, 13, 14,      15};
constexpr int kSampledRegs = sizeof kPerfRegs / sizeof kPerfRegs[0];
static_assert(kSampledRegs == sizeof kDwarfOfPerfReg / sizeof kDwarfOfPerfReg[0]);

constexpr uint64_t regs_mask() {
  uint64_t mask = 0;
  for (int reg : kPerfRegs) mask |= uint64_t{1} << reg;
  return mask;
}
#endif

constexpr uint64_t kSamplePeriodNs = 20'000;  // of the thread's run time
constexpr size_t kRingDataBytes = 64 * 1024;  // a power of two of pages, > one sample
constexpr int kFirstOwnFd = 900;              // keep our fd out of the program's low numbers

// 0 not tried, 1 available, 2 refused. Watchdog thread only.
constinit int g_availability = 0;
// One sample record, reassembled when it wraps around the ring. Watchdog only.
alignas(8) constinit unsigned char g_record[64 * 1024];

long perf_event_open(perf_event_attr* attr, int32_t tid) {
  return syscall(SYS_perf_event_open, attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
}

perf_event_attr sample_attr() {
  perf_event_attr attr = {};
  attr.size = sizeof attr;
  attr.type = PERF_TYPE_SOFTWARE;
  attr.config = PERF_COUNT_SW_TASK_CLOCK;
  attr.sample_period = kSamplePeriodNs;
  attr.sample_type =
      PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_REGS_USER | PERF_SAMPLE_STACK_USER;
#if defined(__x86_64__)
  attr.sample_regs_user = regs_mask();
#endif
  attr.sample_stack_user = kStackCopyBytes;
  attr.disabled = 1;
  attr.exclude_kernel = 1;
  attr.exclude_hv = 1;
  attr.exclude_callchain_kernel = 1;
  attr.wakeup_events = 1;
  return attr;
}

int move_fd_high(int fd) {
  const int high = fcntl(fd, F_DUPFD_CLOEXEC, kFirstOwnFd);
  if (high < 0) return fd;
  close(fd);
  return high;
}

// Copies `bytes` from ring offset `offset` (wrapping) into `out`.
void copy_from_ring(const unsigned char* data, uint64_t offset, void* out, size_t bytes) {
  const size_t start = offset % kRingDataBytes;
  const size_t first = bytes < kRingDataBytes - start ? bytes : kRingDataBytes - start;
  std::memcpy(out, data + start, first);
  std::memcpy(static_cast<unsigned char*>(out) + first, data, bytes - first);
}

template <typename T>
bool take(const unsigned char*& p, const unsigned char* end, T* value) {
  if (p + sizeof(T) > end) return false;
  std::memcpy(value, p, sizeof(T));
  p += sizeof(T);
  return true;
}

// Parses one PERF_RECORD_SAMPLE (TID | TIME | REGS_USER | STACK_USER) of `tid`.
bool parse_sample(const unsigned char* record, size_t bytes, int32_t tid, StackCopy* out) {
#if defined(__x86_64__)
  const unsigned char* p = record + sizeof(perf_event_header);
  const unsigned char* end = record + bytes;
  uint32_t pid_tid[2];
  uint64_t time = 0, abi = 0;
  if (!take(p, end, &pid_tid) || static_cast<int32_t>(pid_tid[1]) != tid || !take(p, end, &time) ||
      !take(p, end, &abi) || abi == PERF_SAMPLE_REGS_ABI_NONE) {
    return false;  // no user registers: the thread was a kernel thread, or 32-bit
  }
  *out = StackCopy{};
  for (int i = 0; i < kSampledRegs; ++i) {
    if (!take(p, end, &out->regs[kDwarfOfPerfReg[i]])) return false;
  }
  uint64_t size = 0, dynamic_size = 0;
  if (!take(p, end, &size) || size > kStackCopyBytes || p + size > end) return false;
  const unsigned char* stack = p;
  p += size;
  if (size != 0 && !take(p, end, &dynamic_size)) return false;
  out->stack_bytes = dynamic_size < size ? dynamic_size : size;
  std::memcpy(out->stack, stack, out->stack_bytes);
  out->stack_start = out->regs[kRegRsp];
  return true;
#else
  (void)record, (void)bytes, (void)tid, (void)out;
  return false;
#endif
}

// The first sample of `tid` in the ring, if any.
bool read_first_sample(void* ring, int32_t tid, StackCopy* out) {
  auto* meta = static_cast<perf_event_mmap_page*>(ring);
  const auto* data = static_cast<const unsigned char*>(ring) + sysconf(_SC_PAGESIZE);
  const uint64_t head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
  for (uint64_t offset = meta->data_tail; offset + sizeof(perf_event_header) <= head;) {
    perf_event_header header;
    copy_from_ring(data, offset, &header, sizeof header);
    if (header.size < sizeof header || offset + header.size > head) break;
    if (header.type == PERF_RECORD_SAMPLE) {
      copy_from_ring(data, offset, g_record, header.size);
      if (parse_sample(g_record, header.size, tid, out)) return true;
    }
    offset += header.size;
  }
  return false;
}

bool refused(int error) { return error == EACCES || error == EPERM || error == ENOSYS; }

}  // namespace

void perf_sampler_keep_warm() {
  static int warm_fd = -1;
  if (warm_fd >= 0 || !perf_sampler_available()) return;
  perf_event_attr attr = {};
  attr.size = sizeof attr;
  attr.type = PERF_TYPE_SOFTWARE;
  attr.config = PERF_COUNT_SW_TASK_CLOCK;
  attr.disabled = 1;
  attr.exclude_kernel = 1;
  attr.exclude_hv = 1;
  const long fd = perf_event_open(&attr, 0);
  if (fd >= 0) warm_fd = move_fd_high(static_cast<int>(fd));
}

bool perf_sampler_available() {
  if (g_availability == 0) {
    perf_event_attr attr = sample_attr();
    const long fd = perf_event_open(&attr, 0);
    g_availability = fd >= 0 ? 1 : 2;
    if (fd >= 0) close(static_cast<int>(fd));
  }
  return g_availability == 1;
}

PerfSampleResult perf_sample_thread(int32_t tid, StackCopy* out, int64_t timeout_ns,
                                    bool (*still_worth_waiting)(int32_t)) {
  if (!perf_sampler_available()) return PerfSampleResult::kUnavailable;
  perf_event_attr attr = sample_attr();
  const long opened = perf_event_open(&attr, tid);
  if (opened < 0) {
    if (refused(errno)) g_availability = 2;
    return PerfSampleResult::kUnavailable;
  }
  const int fd = move_fd_high(static_cast<int>(opened));
  const size_t map_bytes = static_cast<size_t>(sysconf(_SC_PAGESIZE)) + kRingDataBytes;
  void* ring = mmap(nullptr, map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  PerfSampleResult result = PerfSampleResult::kUnavailable;
  if (ring != MAP_FAILED) {
    auto* meta = static_cast<perf_event_mmap_page*>(ring);
    ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
    const int64_t deadline_ns = monotonic_ns() + timeout_ns;
    for (;;) {
      if (__atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE) != 0) break;
      const int64_t left_ns = deadline_ns - monotonic_ns();
      if (left_ns <= 0) break;
      pollfd ready = {fd, POLLIN, 0};
      const timespec slice = {0, left_ns < 1'000'000 ? left_ns : 1'000'000};
      if (ppoll(&ready, 1, &slice, nullptr) > 0 && (ready.revents & (POLLHUP | POLLERR))) break;
      if (still_worth_waiting && !still_worth_waiting(tid)) break;
    }
    ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
    result = read_first_sample(ring, tid, out) ? PerfSampleResult::kSampled
                                               : PerfSampleResult::kNoSample;
    munmap(ring, map_bytes);
  }
  close(fd);
  return result;
}

}  // namespace blockwatch::interpose
