// Small /proc files into caller buffers (see proc_file.h).
#include "interpose/base/proc_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

namespace blockwatch::interpose {

ssize_t read_small_file(const char* path, char* buffer, size_t bytes) {
  if (bytes == 0) return -1;
  buffer[0] = '\0';
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t total = 0;
  while (total + 1 < bytes) {  // /proc files may come in several reads
    const ssize_t n = read(fd, buffer + total, bytes - 1 - total);
    if (n <= 0) break;
    total += static_cast<size_t>(n);
  }
  close(fd);
  buffer[total] = '\0';
  return total == 0 ? -1 : static_cast<ssize_t>(total);
}

void task_file_path(int32_t tid, const char* leaf, char* path, size_t bytes) {
  std::snprintf(path, bytes, "/proc/self/task/%d/%s", static_cast<int>(tid), leaf);
}

void read_exe_path(char* path, size_t bytes) {
  if (bytes == 0) return;
  const ssize_t length = readlink("/proc/self/exe", path, bytes - 1);
  path[length > 0 ? length : 0] = '\0';
}

}  // namespace blockwatch::interpose
