// Run under the preload by timebase_preload_test.cc with BLOCKWATCH_WORKERS=main
// and a 1 ms threshold: the main thread makes blocking calls whose true start
// and length it brackets with its own clock_gettime(CLOCK_MONOTONIC), and prints
// "name before_ns after_ns earliest_end_ns" for each (the call cannot have
// returned before earliest_end_ns: the sleep's end, the moment the other thread
// wrote), so the test can check that the hooks' TSC-based times
// (interpose/base/timebase.h) come out as CLOCK_MONOTONIC ns.
//
//   sleep   nanosleep 5 ms
//   pipe    read on a pipe another thread fills 8 ms after the read began
//   nested  the same read, interrupted after 2 ms by a signal whose handler
//           sleeps 3 ms: a worker's blocking call made inside a timed call,
//           which the library cannot record and must count (dropped_too_deep)
//   short   read on a pipe that already has data: not reported
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace {

int64_t mono_ns() {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

void sleep_ms(int ms) {
  const timespec duration{0, ms * 1'000'000L};
  nanosleep(&duration, nullptr);
}

struct Writer {
  int fd;
  pid_t reader_tid;
  pthread_t interrupt;  // signalled after 2 ms when `signal_first`
  bool signal_first;
  int64_t write_ns = 0;  // just before the write: the read cannot end earlier
};

// Waits until thread `tid` sits in the read syscall (/proc/self/task/TID/syscall
// starts with its number), so a busy machine cannot make the write come first.
void wait_until_in_read(pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/syscall", static_cast<int>(tid));
  for (int attempt = 0; attempt < 20'000; ++attempt) {
    char text[32] = {};
    if (FILE* file = std::fopen(path, "r")) {
      if (!std::fgets(text, sizeof text, file)) text[0] = '\0';
      std::fclose(file);
    }
    if (std::atol(text) == SYS_read && text[0] >= '0' && text[0] <= '9') return;
    usleep(100);
  }
}

void* write_later(void* arg) {
  Writer* writer = static_cast<Writer*>(arg);
  wait_until_in_read(writer->reader_tid);
  if (writer->signal_first) {
    sleep_ms(2);
    pthread_kill(writer->interrupt, SIGUSR1);
    sleep_ms(6);
  } else {
    sleep_ms(8);
  }
  const char byte = 'x';
  writer->write_ns = mono_ns();
  if (write(writer->fd, &byte, 1) != 1) perror("write");
  return nullptr;
}

void sleep_in_handler(int) { sleep_ms(3); }

// A read that another thread completes after 8 ms; brackets printed as `name`.
bool timed_pipe_read(const char* name, bool signal_first) {
  int fds[2];
  if (pipe(fds) != 0) return false;
  Writer writer{fds[1], static_cast<pid_t>(gettid()), pthread_self(), signal_first};
  pthread_t thread;
  pthread_create(&thread, nullptr, write_later, &writer);
  char byte;
  const int64_t before = mono_ns();
  const ssize_t n = read(fds[0], &byte, 1);
  const int64_t after = mono_ns();
  pthread_join(thread, nullptr);
  close(fds[0]);
  close(fds[1]);
  std::printf("%s %lld %lld %lld\n", name, static_cast<long long>(before),
              static_cast<long long>(after), static_cast<long long>(writer.write_ns));
  return n == 1;
}

}  // namespace

int main() {
  struct sigaction action = {};
  action.sa_handler = sleep_in_handler;
  action.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &action, nullptr);

  int64_t before = mono_ns();
  sleep_ms(5);
  int64_t after = mono_ns();
  std::printf("sleep %lld %lld %lld\n", static_cast<long long>(before),
              static_cast<long long>(after), static_cast<long long>(before + 5'000'000));

  if (!timed_pipe_read("pipe", false) || !timed_pipe_read("nested", true)) return 1;

  int fds[2];
  if (pipe(fds) != 0) return 1;
  const char byte_out = 'y';
  char byte_in;
  if (write(fds[1], &byte_out, 1) != 1) return 1;
  before = mono_ns();
  if (read(fds[0], &byte_in, 1) != 1) return 1;
  after = mono_ns();
  std::printf("short %lld %lld %lld\n", static_cast<long long>(before),
              static_cast<long long>(after), static_cast<long long>(before));
  return 0;
}
