// A program run under `blockwatch run` by run_e2e_test: its main thread (the
// worker with --workers main) blocks on a contended mutex and an fsync, then exits
// with the status given as argv[1]. With argv[2] == "fork" a forked child blocks
// too (one report covers both processes).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

namespace {

std::mutex g_mutex;

// The holder takes the lock, waits until main is about to lock it, then holds it
// 40 ms more: main's wait does not depend on how soon a loaded machine runs
// either thread (a fixed 10 ms head start for the holder did). Main waits for the
// holder with sched_yield, which blocks nothing (main is the worker).
__attribute__((noinline)) void contend_on_mutex() {
  std::atomic<bool> held{false}, main_locking{false};
  std::thread holder([&] {
    std::lock_guard lock(g_mutex);
    held = true;
    while (!main_locking) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
  });
  while (!held) std::this_thread::yield();
  main_locking = true;
  { std::lock_guard lock(g_mutex); }
  holder.join();
}

__attribute__((noinline)) void sync_a_file() {
  std::string path = "/tmp/bw-e2e-" + std::to_string(::getpid());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (::write(fd, "data", 4) != 4) std::abort();
  ::fsync(fd);
  ::close(fd);
  ::unlink(path.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  int status = argc > 1 ? std::atoi(argv[1]) : 0;
  contend_on_mutex();
  pid_t child = -1;
  if (argc > 2 && std::strcmp(argv[2], "fork") == 0) child = ::fork();
  sync_a_file();  // parent and child alike: one call site, one merged hotspot
  if (child == 0) return 0;
  if (child > 0) ::waitpid(child, nullptr, 0);
  return status;
}
