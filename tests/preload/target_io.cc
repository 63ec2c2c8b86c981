// preload_target scenarios for I/O, durability and sleeps: a pipe read, fsync and
// fdatasync on a file, every sleep and poll flavour (epoll_wait is the idle wait,
// never reported), and EINTR reaching the program unchanged while a signal
// handler on the worker calls a hooked function.
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>

#include <cstdlib>

#include "tests/preload/target_support.h"

namespace preload_target {
namespace {

__attribute__((noinline)) void pipe_read_site(int read_fd) {
  char byte = 0;
  CHECK(read(read_fd, &byte, 1) == 1 && byte == 'x');
}

__attribute__((noinline)) void file_fsync_site() {
  char path[] = "/tmp/bw_preload_fsyncXXXXXX";
  const int fd = mkstemp(path);
  CHECK(fd >= 0);
  unlink(path);
  CHECK(write(fd, "data", 4) == 4);
  CHECK(fsync(fd) == 0);
  CHECK(fdatasync(fd) == 0);
  errno = 0;
  CHECK(read(-1, nullptr, 0) == -1 && errno == EBADF);
  CHECK(fsync(-1) == -1 && errno == EBADF);
  close(fd);
}

void scenario_io() {
  run_named_thread("worker-1", [] {
    int fds[2];
    CHECK(pipe(fds) == 0);
    std::thread writer([&] {
      sleep_ms(20);
      CHECK(write(fds[1], "x", 1) == 1);
    });
    pipe_read_site(fds[0]);
    writer.join();
    close(fds[0]);
    close(fds[1]);
    file_fsync_site();
  });
}

__attribute__((noinline)) void sleep_site() {
  CHECK(usleep(5000) == 0);
  timespec duration{0, 5'000'000};
  CHECK(nanosleep(&duration, nullptr) == 0);
  CHECK(clock_nanosleep(CLOCK_MONOTONIC, 0, &duration, nullptr) == 0);
  int fds[2];
  CHECK(pipe(fds) == 0);
  pollfd waiting{fds[0], POLLIN, 0};
  CHECK(poll(&waiting, 1, 5) == 0);
  CHECK(poll(&waiting, 1, 0) == 0);  // zero timeout: a check, never reported
  fd_set readable;
  FD_ZERO(&readable);
  FD_SET(fds[0], &readable);
  timeval five_ms{0, 5000};
  CHECK(select(fds[0] + 1, &readable, nullptr, nullptr, &five_ms) == 0);
  // epoll_wait is the executor's idle wait: never reported.
  const int epfd = epoll_create1(0);
  epoll_event event{};
  event.events = EPOLLIN;
  epoll_ctl(epfd, EPOLL_CTL_ADD, fds[0], &event);
  CHECK(epoll_wait(epfd, &event, 1, 5) == 0);
  close(epfd);
  close(fds[0]);
  close(fds[1]);
}

void scenario_sleep() { run_named_thread("worker-1", sleep_site); }

// EINTR must reach the program unchanged.
void on_alarm(int) {
  // A hook inside a signal handler on a worker: passes through.
  const char message[] = "";
  (void)!write(1, message, 0);
}

__attribute__((noinline)) void interrupted_sleep_site() {
  struct sigaction action {};
  action.sa_handler = on_alarm;
  sigaction(SIGALRM, &action, nullptr);
  const pthread_t self = pthread_self();
  std::thread interrupter([self] {
    sleep_ms(10);
    pthread_kill(self, SIGALRM);
  });
  timespec long_sleep{2, 0};
  timespec remaining{};
  errno = 0;
  CHECK(nanosleep(&long_sleep, &remaining) == -1 && errno == EINTR);
  CHECK(remaining.tv_sec >= 1);
  int fds[2];
  CHECK(pipe(fds) == 0);
  std::thread interrupter2([self] {
    sleep_ms(10);
    pthread_kill(self, SIGALRM);
  });
  char byte;
  errno = 0;
  CHECK(read(fds[0], &byte, 1) == -1 && errno == EINTR);
  interrupter.join();
  interrupter2.join();
  close(fds[0]);
  close(fds[1]);
}

void scenario_eintr() { run_named_thread("worker-1", interrupted_sleep_site); }

}  // namespace

void add_io_scenarios(ScenarioTable& table) {
  table.insert({
      {"io", ignoring_self(scenario_io)},
      {"sleep", ignoring_self(scenario_sleep)},
      {"eintr", ignoring_self(scenario_eintr)},
  });
}

}  // namespace preload_target
