// Run under the preload by timebase_preload_test.cc with BLOCKWATCH_WORKERS=main
// and a 1 ms threshold: the main thread makes blocking calls whose true start
// and length it brackets with its own clock_gettime(CLOCK_MONOTONIC), and prints
// "name before_ns after_ns" for each, so the test can check that the hooks'
// TSC-based times (interpose/timebase.h) come out as CLOCK_MONOTONIC ns.
//
//   sleep   nanosleep 5 ms
//   pipe    read on a pipe another thread fills after 8 ms
//   nested  the same read, interrupted after 2 ms by a signal whose handler
//           sleeps 3 ms: a worker's blocking call made inside a timed call,
//           which the library cannot record and must count (dropped_too_deep)
//   short   read on a pipe that already has data: not reported
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>

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
  pthread_t interrupt;  // signalled after 2 ms when `signal_first`
  bool signal_first;
};

void* write_later(void* arg) {
  const Writer* writer = static_cast<const Writer*>(arg);
  if (writer->signal_first) {
    sleep_ms(2);
    pthread_kill(writer->interrupt, SIGUSR1);
    sleep_ms(6);
  } else {
    sleep_ms(8);
  }
  const char byte = 'x';
  if (write(writer->fd, &byte, 1) != 1) perror("write");
  return nullptr;
}

void sleep_in_handler(int) { sleep_ms(3); }

// A read that another thread completes after 8 ms; brackets printed as `name`.
bool timed_pipe_read(const char* name, bool signal_first) {
  int fds[2];
  if (pipe(fds) != 0) return false;
  Writer writer{fds[1], pthread_self(), signal_first};
  pthread_t thread;
  pthread_create(&thread, nullptr, write_later, &writer);
  char byte;
  const int64_t before = mono_ns();
  const ssize_t n = read(fds[0], &byte, 1);
  const int64_t after = mono_ns();
  pthread_join(thread, nullptr);
  close(fds[0]);
  close(fds[1]);
  std::printf("%s %lld %lld\n", name, static_cast<long long>(before),
              static_cast<long long>(after));
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
  std::printf("sleep %lld %lld\n", static_cast<long long>(before), static_cast<long long>(after));

  if (!timed_pipe_read("pipe", false) || !timed_pipe_read("nested", true)) return 1;

  int fds[2];
  if (pipe(fds) != 0) return 1;
  const char byte_out = 'y';
  char byte_in;
  if (write(fds[1], &byte_out, 1) != 1) return 1;
  before = mono_ns();
  if (read(fds[0], &byte_in, 1) != 1) return 1;
  after = mono_ns();
  std::printf("short %lld %lld\n", static_cast<long long>(before), static_cast<long long>(after));
  return 0;
}
