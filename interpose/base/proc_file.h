// Reading small /proc files without allocating: the watchdog reads
// /proc/self/task/TID/{stat,status,schedstat,comm,syscall} and /proc/self/maps,
// the sender /proc/self/exe and cmdline. open/read/close into the caller's
// buffer: no allocation, no lock, async-signal-safe; the fd is O_CLOEXEC and
// closed before return.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace blockwatch::interpose {

// Reads at most `bytes - 1` bytes of `path` into `buffer`, NUL-terminated.
// Returns the byte count, or -1 when the file cannot be opened or is empty.
ssize_t read_small_file(const char* path, char* buffer, size_t bytes);

// "/proc/self/task/<tid>/<leaf>" into `path`.
void task_file_path(int32_t tid, const char* leaf, char* path, size_t bytes);

// readlink("/proc/self/exe") NUL-terminated; "" when unreadable.
void read_exe_path(char* path, size_t bytes);

}  // namespace blockwatch::interpose
