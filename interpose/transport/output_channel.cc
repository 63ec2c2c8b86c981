// The collector socket / output file of the sender (see output_channel.h). Sender
// thread only; every call is non-blocking towards the collector.
#include "interpose/transport/output_channel.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace blockwatch::interpose {
namespace {

constexpr int64_t kFirstBackoffNs = 20'000'000;   // 20 ms
constexpr int64_t kMaxBackoffNs = 1'000'000'000;  // 1 s

// Our fds live this far below min(RLIMIT_NOFILE, kHighFdCeiling), out of the
// range a program's next open() takes (a daemon that closed fds 3..N expects
// its next open to return 3). Not at the limit itself when that is huge: the
// kernel would grow this process's fd table to it.
constexpr int kHighFdCeiling = 1024;
constexpr int kHighFdBelowCeiling = 24;

int high_fd_floor() {
  rlimit limit{};
  int ceiling = kHighFdCeiling;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < static_cast<rlim_t>(ceiling)) {
    ceiling = static_cast<int>(limit.rlim_cur);
  }
  return ceiling - kHighFdBelowCeiling;
}

// Moves `fd` to a free number near the top (F_DUPFD_CLOEXEC: the lowest free fd
// at or above the floor) and closes the low one. Keeps `fd` when nothing up
// there is free.
int move_fd_high(int fd) {
  const int floor = high_fd_floor();
  if (fd >= floor || floor <= 2) return fd;
  const int high = fcntl(fd, F_DUPFD_CLOEXEC, floor);
  if (high < 0) return fd;
  close(fd);
  return high;
}

// Reads a varint at `pos`; false when the bytes end first.
bool read_varint(const unsigned char* data, size_t size, size_t& pos, uint64_t& value) {
  value = 0;
  for (int shift = 0; pos < size && shift < 64; shift += 7) {
    const unsigned char byte = data[pos++];
    value |= uint64_t{byte & 0x7fu} << shift;
    if (!(byte & 0x80)) return true;
  }
  return false;
}

}  // namespace

// The pid in the Hello that starts the file behind `fd`, or 0. Only what that
// needs of the wire format: frame length, Frame.hello (field 1), Hello.pid
// (field 4, varint); other Hello fields are skipped by wire type.
int file_hello_pid(int fd) {
  unsigned char data[4096];
  const ssize_t size = pread(fd, data, sizeof data, 0);
  if (size <= 0) return 0;
  size_t pos = 0;
  uint64_t frame_length = 0, tag = 0, hello_length = 0;
  if (!read_varint(data, size, pos, frame_length) || !read_varint(data, size, pos, tag) ||
      tag != ((1 << 3) | 2) || !read_varint(data, size, pos, hello_length)) {
    return 0;
  }
  const size_t hello_end = std::min<size_t>(size, pos + hello_length);
  while (pos < hello_end) {
    uint64_t field_tag = 0, value = 0;
    if (!read_varint(data, hello_end, pos, field_tag)) return 0;
    switch (field_tag & 7) {
      case 0:
        if (!read_varint(data, hello_end, pos, value)) return 0;
        if ((field_tag >> 3) == 4) return static_cast<int>(value);
        break;
      case 2:
        if (!read_varint(data, hello_end, pos, value)) return 0;
        pos += value;
        break;
      case 5:
        pos += 4;
        break;
      case 1:
        pos += 8;
        break;
      default:
        return 0;
    }
  }
  return 0;
}

std::string output_file_path(const std::string& path, int pid, bool forked_child) {
  std::string out;
  bool had_pid = false;
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '%' && i + 1 < path.size() && path[i + 1] == 'p') {
      out += std::to_string(pid);
      had_pid = true;
      ++i;
    } else {
      out += path[i];
    }
  }
  if (!had_pid && forked_child) out += "." + std::to_string(pid);
  return out;
}

void prepare_high_fd_range() {
  const int floor = high_fd_floor();
  if (floor <= 64) return;  // within the table every process starts with
  const int anchor = open("/", O_PATH | O_CLOEXEC);
  if (anchor < 0) return;
  const int high = fcntl(anchor, F_DUPFD_CLOEXEC, floor);
  if (high >= 0) close(high);
  close(anchor);
}

void OutputChannel::configure(std::string collector, std::string output_path, bool forked_child) {
  socket_path_.clear();
  file_path_.clear();
  forked_child_ = forked_child;
  if (collector.rfind("unix:", 0) == 0) {
    socket_path_ = collector.substr(5);
  } else if (!output_path.empty()) {
    file_path_ = output_file_path(output_path, getpid(), forked_child);
  }
}

int OutputChannel::open_socket() {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket_path_.size() >= sizeof address.sun_path) return -1;
  memcpy(address.sun_path, socket_path_.data(), socket_path_.size());
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  // A Unix-socket connect completes or fails at once (EAGAIN: backlog full).
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Without %p, `path` is shared by every process of a run that inherits the
// environment. The writer holds an flock on it; a process that cannot take the
// lock (an exec'd child while its parent writes) writes `path.PID` instead, so no
// process ever truncates another's stream.
int OutputChannel::open_file() {
  int fd = open(file_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  const std::string pid_suffix = "." + std::to_string(getpid());
  const bool suffixed =
      file_path_.size() > pid_suffix.size() &&
      file_path_.compare(file_path_.size() - pid_suffix.size(), pid_suffix.size(), pid_suffix) == 0;
  if (flock(fd, LOCK_EX | LOCK_NB) != 0 && !suffixed) {
    close(fd);
    file_path_ += pid_suffix;
    fd = open(file_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    flock(fd, LOCK_EX | LOCK_NB);
  }
  // Reopened after the program closed our fd: append a new stream (a reader sees
  // a second Hello). The first open of this process starts the file afresh,
  // unless the file's stream is this pid's: an exec() without fork, whose new
  // image continues the file after the old image's Goodbye("exec").
  if (truncate_on_next_open_ && file_hello_pid(fd) == getpid()) truncate_on_next_open_ = false;
  if (truncate_on_next_open_) {
    if (ftruncate(fd, 0) != 0) { /* keep going: appending is still correct */
    }
    truncate_on_next_open_ = false;
  }
  lseek(fd, 0, SEEK_END);
  return fd;
}

bool OutputChannel::try_open(int64_t now_mono_ns) {
  if (fd_ >= 0 || !configured() || now_mono_ns < retry_at_mono_ns_) return false;
  int fd = socket_path_.empty() ? open_file() : open_socket();
  if (fd >= 0) fd = move_fd_high(fd);
  if (fd < 0) {
    backoff_ns_ = backoff_ns_ == 0 ? kFirstBackoffNs : std::min(backoff_ns_ * 2, kMaxBackoffNs);
    retry_at_mono_ns_ = now_mono_ns + backoff_ns_;
    return false;
  }
  struct stat st {};
  fstat(fd, &st);
  fd_ = fd;
  fd_dev_ = st.st_dev;
  fd_ino_ = st.st_ino;
  backoff_ns_ = 0;
  return true;
}

bool OutputChannel::fd_is_still_ours() const {
  struct stat st {};
  return fd_ >= 0 && fstat(fd_, &st) == 0 && st.st_dev == fd_dev_ && st.st_ino == fd_ino_;
}

bool OutputChannel::still_ours() {
  if (fd_ < 0) return false;
  if (fd_is_still_ours()) return true;
  fd_ = -1;
  return false;
}

OutputChannel::WriteResult OutputChannel::write_some(std::string& bytes) {
  if (fd_ < 0) return WriteResult::kStreamLost;
  if (!fd_is_still_ours()) {
    fd_ = -1;  // the program's fd now (closed, or dup2'd over): never touch it
    return WriteResult::kStreamLost;
  }
  size_t written_total = 0;
  while (written_total < bytes.size()) {
    const char* data = bytes.data() + written_total;
    const size_t size = bytes.size() - written_total;
    const ssize_t written = socket_path_.empty()
                                ? write(fd_, data, size)
                                : send(fd_, data, size, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (written > 0) {
      written_total += static_cast<size_t>(written);
    } else if (written < 0 && errno == EINTR) {
      continue;
    } else if (written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      break;
    } else {
      bytes.erase(0, written_total);
      return WriteResult::kStreamLost;
    }
  }
  bytes.erase(0, written_total);
  return bytes.empty() ? WriteResult::kAllWritten : WriteResult::kPartial;
}

void OutputChannel::close_stream(int64_t now_mono_ns) {
  if (fd_ < 0) return;  // forgotten (the program took the fd): reopen at once
  if (fd_is_still_ours()) close(fd_);
  fd_ = -1;
  backoff_ns_ = backoff_ns_ == 0 ? kFirstBackoffNs : std::min(backoff_ns_ * 2, kMaxBackoffNs);
  retry_at_mono_ns_ = now_mono_ns + backoff_ns_;
}

void OutputChannel::close_without_backoff() {
  if (fd_ >= 0 && fd_is_still_ours()) close(fd_);
  fd_ = -1;
  retry_at_mono_ns_ = 0;
  backoff_ns_ = 0;
}

void OutputChannel::abandon_inherited_fd() {
  if (fd_ >= 0 && fd_is_still_ours()) close(fd_);
  fd_ = -1;
  retry_at_mono_ns_ = 0;
  backoff_ns_ = 0;
}

}  // namespace blockwatch::interpose
