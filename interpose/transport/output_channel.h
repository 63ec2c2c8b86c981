// Where the sender's bytes go: a Unix socket to the collector
// (BLOCKWATCH_COLLECTOR=unix:PATH) or a file (BLOCKWATCH_OUTPUT). Sender thread
// only. Nothing here ever waits on the collector: the socket is non-blocking,
// sends use MSG_DONTWAIT|MSG_NOSIGNAL, connects that fail are retried with backoff.
//
// The target owns its fd table: it may close every fd or dup2() something over
// ours. Before each write we fstat() our fd and compare device and inode with what
// we opened; on a mismatch the fd is the program's now, so we forget it (never
// close or write it) and open a new stream. Our fd is moved to a high number
// (just below min(RLIMIT_NOFILE, 1024)), so the program's next open() still
// gets the lowest free number it expects.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace blockwatch::interpose {

class OutputChannel {
 public:
  enum class WriteResult { kAllWritten, kPartial, kStreamLost };

  // `collector` is "unix:PATH" or empty; `output_path` a file path or empty (the
  // collector wins when both are given). `pid` picks the file name, see
  // output_file_path().
  void configure(std::string collector, std::string output_path, bool forked_child);

  bool configured() const { return !socket_path_.empty() || !file_path_.empty(); }
  bool is_open() const { return fd_ >= 0; }

  // Opens the socket or file unless open or backing off after a failure. Returns
  // true when a new stream begins (the caller then writes Hello first).
  bool try_open(int64_t now_mono_ns);

  // Writes from the front of `bytes` what the kernel takes now, erasing it.
  WriteResult write_some(std::string& bytes);

  // False (and the fd forgotten, never closed: it is the program's now) when the
  // program closed our fd or dup2()'d over it. Lets the sender reopen before it
  // encodes into a stream that is already gone.
  bool still_ours();

  // Close our fd if it is still ours (identity checked), and back off.
  void close_stream(int64_t now_mono_ns);

  // Close our fd if it is still ours, ready to open again at once (the stream
  // ended for an exec; if the exec fails, the next stream starts right away).
  void close_without_backoff();

  // In a forked child: the fd is shared with the parent's stream. Close it if it is
  // still ours, without touching anything else.
  void abandon_inherited_fd();

  const std::string& file_path() const { return file_path_; }

 private:
  bool fd_is_still_ours() const;
  int open_socket();
  int open_file();

  std::string socket_path_;
  std::string file_path_;
  bool forked_child_ = false;
  bool truncate_on_next_open_ = true;  // only the first open of a file truncates it
  int fd_ = -1;
  dev_t fd_dev_ = 0;
  ino_t fd_ino_ = 0;
  int64_t retry_at_mono_ns_ = 0;
  int64_t backoff_ns_ = 0;
};

// Grows this process's fd table to cover the high range our fds use, now, while
// the caller is its only thread. Growing it later, from our sender while other
// threads share the table, makes the kernel wait for an RCU grace period (about
// 10 ms here) during which every thread's open()/socket()/accept() waits too.
// Call before starting the sender; cheap (three syscalls).
void prepare_high_fd_range();

// The file a process writes for BLOCKWATCH_OUTPUT=`path`: every `%p` replaced by
// the pid. Without `%p`, the first process to take the path's lock writes `path`;
// a forked child, or a process exec'd by a watched one while that one still
// writes `path`, writes `path.PID` instead.
std::string output_file_path(const std::string& path, int pid, bool forked_child);

// The pid of the Hello at the start of the file behind `fd`, 0 when none (exposed
// for tests). A process image that finds its own pid there was exec()'d by the
// writer of that stream and appends instead of truncating.
int file_hello_pid(int fd);

}  // namespace blockwatch::interpose
