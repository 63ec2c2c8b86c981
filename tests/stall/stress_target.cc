// The program of the "sampling never changes what the program sees" stress test
// (stress_test.cc): run once without blockwatch and again under the preload with
// a 1 ms stall threshold and the hang dump on, its output must be identical.
//
// Two groups of threads do the same work: "pool-*" threads (workers, by the
// test's BLOCKWATCH_WORKERS rule; their work runs in tasks, so it stalls and is
// sampled) and "other-*" threads (not workers; only the hang dump looks at them):
//  - *-xfer / *-peer: blocking transfers of 1-4 MiB through a pipe, an AF_UNIX
//    socket pair and a loopback TCP connection, each in ONE write/send call while
//    the peer starts reading only after ~20 ms of CPU work, and the reverse
//    direction read with recv(MSG_WAITALL);
//  - *-loop: 2-14 ms of CPU work, then epoll_wait / poll / nanosleep of 2 ms
//    (nothing is ever ready: each must return 0, never EINTR);
//  - pool-small: a worker on a 64 KiB stack that stalls with ~3 KiB of it left.
// Every return value, byte count and errno is written to a per-thread transcript
// printed at the end in a fixed order (timing-dependent values such as how much
// one pipe read returned are summed first).
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "blockwatch/blockwatch.h"

namespace {

constexpr size_t kMiB = 1024 * 1024;
constexpr int kRounds = 2;

int64_t thread_cpu_ns() {
  timespec now;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

// CPU work: `cpu_ns` of this thread's CPU time.
__attribute__((noinline)) uint64_t stress_spin_site(int64_t cpu_ns) {
  const int64_t end = thread_cpu_ns() + cpu_ns;
  uint64_t sum = 0;
  while (thread_cpu_ns() < end) {
    for (int i = 0; i < 2000; ++i) sum += static_cast<uint64_t>(i) * 2654435761u;
  }
  return sum;
}

struct Log {
  std::vector<std::string> lines;
  void add(const char* what, long result, int error) {
    char line[160];
    std::snprintf(line, sizeof line, "%s=%ld%s%s", what, result, result < 0 ? " errno=" : "",
                  result < 0 ? std::to_string(error).c_str() : "");
    lines.push_back(line);
  }
};

// A task on workers (so the watchdog samples it), nothing elsewhere.
struct Scope {
  bool worker;
  explicit Scope(bool w, const char* label) : worker(w) {
    if (worker) blockwatch_task_begin(label);
  }
  ~Scope() {
    if (worker) blockwatch_task_end();
  }
};

struct Channel {
  int xfer_fd;  // the xfer thread's end
  int peer_fd;  // the peer thread's end
  bool is_pipe;
  const char* name;
};

struct Group {
  const char* prefix;  // "pool" or "other"
  bool worker;
  std::vector<Channel> channels;
  Log xfer_log, peer_log, loop_log;
};

std::vector<unsigned char> g_buffer_out(4 * kMiB, 0x5a);

void name_self(const Group& group, const char* role) {
  char name[16];
  std::snprintf(name, sizeof name, "%s-%s", group.prefix, role);
  pthread_setname_np(pthread_self(), name);
}

// Reads exactly `size` bytes (however many calls a pipe needs: how much one
// read returns depends on timing, so only the total is logged); EINTR, which
// must never happen, is counted and retried to keep both ends in step.
long read_fully(int fd, size_t size, std::vector<unsigned char>& in, int* eintr_count) {
  size_t total = 0;
  while (total < size) {
    const ssize_t n = read(fd, in.data() + total, size - total);
    if (n < 0 && errno == EINTR) {
      ++*eintr_count;
      continue;
    }
    if (n <= 0) return n < 0 ? -1 : static_cast<long>(total);
    total += static_cast<size_t>(n);
  }
  return static_cast<long>(total);
}

// Sends all of `size` bytes, logging what the FIRST call returned (one call is
// what the program expects to need); the rest keeps both ends in step if it
// came back short, so a difference shows in the transcript instead of a hang.
void send_logged(Log& log, const Channel& channel, size_t size) {
  const unsigned char* data = g_buffer_out.data();
  ssize_t sent =
      channel.is_pipe ? write(channel.xfer_fd, data, size) : send(channel.xfer_fd, data, size, 0);
  log.add(channel.name, sent, errno);
  for (size_t total = sent > 0 ? static_cast<size_t>(sent) : 0; total < size;) {
    sent = channel.is_pipe ? write(channel.xfer_fd, data + total, size - total)
                           : send(channel.xfer_fd, data + total, size - total, 0);
    if (sent > 0)
      total += static_cast<size_t>(sent);
    else if (errno != EINTR)
      return;
  }
}

// recv(MSG_WAITALL) of `size`, logged; a short result is completed the same way.
void recv_logged(Log& log, int fd, size_t size, std::vector<unsigned char>& in) {
  ssize_t received = recv(fd, in.data(), size, MSG_WAITALL);
  log.add("recv_waitall", received, errno);
  for (size_t total = received > 0 ? static_cast<size_t>(received) : 0; total < size;) {
    received = recv(fd, in.data() + total, size - total, MSG_WAITALL);
    if (received > 0)
      total += static_cast<size_t>(received);
    else if (received == 0 || errno != EINTR)
      return;
  }
}

void* xfer_main(void* arg) {
  Group& group = *static_cast<Group*>(arg);
  name_self(group, "xfer");
  std::vector<unsigned char> in(4 * kMiB);
  for (int round = 0; round < kRounds; ++round) {
    for (const Channel& channel : group.channels) {
      for (size_t mib = 1; mib <= 4; ++mib) {
        const size_t size = mib * kMiB;
        {
          Scope task(group.worker, "send");
          stress_spin_site(3'000'000);
          send_logged(group.xfer_log, channel, size);
        }
        if (channel.is_pipe) continue;
        Scope task(group.worker, "recv");
        recv_logged(group.xfer_log, channel.xfer_fd, size, in);
      }
    }
  }
  return nullptr;
}

void* peer_main(void* arg) {
  Group& group = *static_cast<Group*>(arg);
  name_self(group, "peer");
  std::vector<unsigned char> in(4 * kMiB);
  for (int round = 0; round < kRounds; ++round) {
    for (const Channel& channel : group.channels) {
      for (size_t mib = 1; mib <= 4; ++mib) {
        const size_t size = mib * kMiB;
        stress_spin_site(20'000'000);  // the writer blocks meanwhile
        if (channel.is_pipe) {
          int eintr_count = 0;
          const long total = read_fully(channel.peer_fd, size, in, &eintr_count);
          group.peer_log.add("read_total", total, errno);
          if (eintr_count) group.peer_log.add("read_eintr", eintr_count, 0);
          continue;
        }
        recv_logged(group.peer_log, channel.peer_fd, size, in);
        stress_spin_site(20'000'000);  // the reader blocks in recv(MSG_WAITALL)
        const Channel back = {channel.peer_fd, channel.xfer_fd, false, "send"};
        send_logged(group.peer_log, back, size);
      }
    }
  }
  return nullptr;
}

void* loop_main(void* arg) {
  Group& group = *static_cast<Group*>(arg);
  name_self(group, "loop");
  const int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  uint32_t seed = 12345;
  for (int i = 0; i < 60 * kRounds; ++i) {
    seed = seed * 1103515245 + 12345;
    const int64_t work_ns = 2'000'000 + static_cast<int64_t>((seed >> 16) % 12'000) * 1000;
    Scope task(group.worker, "turn");
    stress_spin_site(work_ns);
    long result = 0;
    switch (i % 3) {
      case 0: {
        epoll_event events[1];
        result = epoll_wait(epoll_fd, events, 1, 2);
        group.loop_log.add("epoll_wait", result, errno);
        break;
      }
      case 1:
        result = poll(nullptr, 0, 2);
        group.loop_log.add("poll", result, errno);
        break;
      default: {
        const timespec pause = {0, 2'000'000};
        result = nanosleep(&pause, nullptr);
        group.loop_log.add("nanosleep", result, errno);
      }
    }
  }
  close(epoll_fd);
  return nullptr;
}

// --- a worker with a 64 KiB stack that stalls with little of it left ----------

struct SmallStack {
  char* low = nullptr;  // lowest usable address of the thread's stack
  uint64_t result = 0;
  long nanosleep_result = -1;
};

__attribute__((noinline)) uint64_t deep_stall_site(SmallStack& state, int depth) {
  volatile char frame[512];
  frame[0] = static_cast<char>(depth);
  const char* here = const_cast<const char*>(frame);
  if (here - state.low > 3 * 1024 + 512) return deep_stall_site(state, depth + 1) + frame[0];
  return stress_spin_site(30'000'000) + frame[0];  // ~3 KiB left: stalls here
}

void* small_stack_main(void* arg) {
  auto& state = *static_cast<SmallStack*>(arg);
  pthread_setname_np(pthread_self(), "pool-small");
  const timespec pause = {0, 1'000'000};
  state.nanosleep_result = nanosleep(&pause, nullptr);  // a hook: classified as a worker
  pthread_attr_t attr;
  pthread_getattr_np(pthread_self(), &attr);
  void* stack_low = nullptr;
  size_t stack_size = 0;
  pthread_attr_getstack(&attr, &stack_low, &stack_size);
  pthread_attr_destroy(&attr);
  state.low = static_cast<char*>(stack_low);
  for (int i = 0; i < 5; ++i) {  // several stalls: a loaded machine may miss a sample
    blockwatch_task_begin("small_stack");
    state.result += deep_stall_site(state, 0);
    blockwatch_task_end();
  }
  return nullptr;
}

// --- set-up --------------------------------------------------------------------

void tcp_pair(int* a, int* b) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  listen(listener, 1);
  *a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  connect(*a, reinterpret_cast<sockaddr*>(&address), sizeof address);
  *b = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  close(listener);
}

void make_channels(Group& group) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) == 0) group.channels.push_back({fds[1], fds[0], true, "pipe_write"});
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0) {
    group.channels.push_back({fds[0], fds[1], false, "unix_send"});
  }
  tcp_pair(&fds[0], &fds[1]);
  group.channels.push_back({fds[0], fds[1], false, "tcp_send"});
}

void print_log(const char* thread, const Log& log) {
  for (const std::string& line : log.lines) std::printf("%s %s\n", thread, line.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  // `no_small_stack`: leave the 64 KiB-stack worker out (to look at the rest alone).
  const bool small_stack = !(argc > 1 && std::strcmp(argv[1], "no_small_stack") == 0);
  Group groups[2] = {{"pool", true, {}, {}, {}, {}}, {"other", false, {}, {}, {}, {}}};
  std::vector<pthread_t> threads;
  for (Group& group : groups) {
    make_channels(group);
    for (void* (*body)(void*) : {xfer_main, peer_main, loop_main}) {
      pthread_t thread;
      pthread_create(&thread, nullptr, body, &group);
      threads.push_back(thread);
    }
  }
  SmallStack small;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  pthread_t small_thread;
  const int small_created =
      small_stack ? pthread_create(&small_thread, &attr, small_stack_main, &small) : -1;
  pthread_attr_destroy(&attr);
  for (pthread_t thread : threads) pthread_join(thread, nullptr);
  if (small_created == 0) pthread_join(small_thread, nullptr);
  for (const Group& group : groups) {
    std::string name = group.prefix;
    print_log((name + "-xfer").c_str(), group.xfer_log);
    print_log((name + "-peer").c_str(), group.peer_log);
    print_log((name + "-loop").c_str(), group.loop_log);
  }
  std::printf("pool-small created=%d nanosleep=%ld done=%d\n", small_created,
              small.nanosleep_result, small.result != 0);
  return 0;
}
