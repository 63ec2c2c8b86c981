// Incremental perf-map reading (see perf_map.h).
#include "collector/perf_map.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iterator>
#include <string_view>

namespace blockwatch::collector {
namespace {

// Per-entry overhead counted against kMaxPerfMapBytes (map node, strings).
constexpr size_t kEntryOverheadBytes = 96;
// A line longer than this is cut (names of JIT code are short; a corrupt file
// must not grow partial_ without bound).
constexpr size_t kMaxLineBytes = 4096;

bool parse_hex(std::string_view* text, uint64_t* value) {
  size_t i = 0;
  uint64_t result = 0;
  if (text->substr(0, 2) == "0x") i = 2;
  const size_t digits_start = i;
  for (; i < text->size(); ++i) {
    const char c = (*text)[i];
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else {
      break;
    }
    if (i - digits_start >= 16) return false;
    result = result << 4 | static_cast<uint64_t>(digit);
  }
  if (i == digits_start) return false;
  *value = result;
  text->remove_prefix(i);
  return true;
}

int64_t mtime_ns(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

}  // namespace

PerfMap::PerfMap(std::string path, int64_t not_before_unix_ns)
    : path_(std::move(path)), not_before_unix_ns_(not_before_unix_ns) {}

void PerfMap::reset() {
  entries_.clear();
  partial_.clear();
  offset_ = 0;
  bytes_ = 0;
  full_ = false;
}

// "START SIZE name": a later line replaces every entry its range overlaps.
void PerfMap::add_line(std::string_view line) {
  uint64_t start = 0, size = 0;
  if (!parse_hex(&line, &start) || line.empty() || line[0] != ' ') return;
  line.remove_prefix(1);
  if (!parse_hex(&line, &size) || size == 0 || line.empty() || line[0] != ' ') return;
  line.remove_prefix(1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const uint64_t end = start + size < start ? UINT64_MAX : start + size;
  auto it = entries_.lower_bound(start);
  if (it != entries_.begin() && std::prev(it)->second.end > start) --it;
  while (it != entries_.end() && it->first < end) {
    bytes_ -= kEntryOverheadBytes + it->second.name.size();
    it = entries_.erase(it);
  }
  bytes_ += kEntryOverheadBytes + line.size();
  entries_.emplace_hint(it, start, Entry{end, std::string(line)});
}

PerfMap::Status PerfMap::refresh() {
  // O_NONBLOCK and the regular-file check: a FIFO or device at that path must
  // not stall the collector.
  const int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    reset();
    return Status::kNoMap;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    reset();
    return Status::kNoMap;
  }
  if (mtime_ns(st) < not_before_unix_ns_) {
    close(fd);
    reset();
    return Status::kStale;
  }
  // Another file at the path, or this one cut short: start over.
  if (st.st_dev != device_ || st.st_ino != inode_ ||
      static_cast<uint64_t>(st.st_size) < offset_ + partial_.size()) {
    reset();
    device_ = st.st_dev;
    inode_ = st.st_ino;
  }
  char buffer[64 << 10];
  while (!full_ && offset_ + partial_.size() < static_cast<uint64_t>(st.st_size)) {
    const ssize_t got =
        pread(fd, buffer, sizeof buffer, static_cast<off_t>(offset_ + partial_.size()));
    if (got <= 0) break;
    std::string_view chunk(buffer, static_cast<size_t>(got));
    for (size_t newline; (newline = chunk.find('\n')) != std::string_view::npos;) {
      partial_.append(chunk.substr(0, newline));
      offset_ += partial_.size() + 1;
      if (partial_.size() > kMaxLineBytes) partial_.resize(kMaxLineBytes);
      add_line(partial_);
      partial_.clear();
      chunk.remove_prefix(newline + 1);
      if (bytes_ > kMaxPerfMapBytes) {
        full_ = true;
        break;
      }
    }
    if (full_) break;
    // An incomplete last line: kept until its newline arrives (the writer may be
    // in the middle of it). A line past kMaxLineBytes is skipped as a whole.
    if (partial_.size() + chunk.size() > kMaxLineBytes) {
      offset_ += partial_.size() + chunk.size();
      partial_.clear();
    } else {
      partial_.append(chunk);
    }
  }
  close(fd);
  return full_ ? Status::kTooLarge : Status::kFound;
}

PerfMap::Answer PerfMap::lookup(uint64_t address) {
  Answer answer;
  const Status file = refresh();
  if (file == Status::kNoMap || file == Status::kStale) {
    answer.status = file;
    return answer;
  }
  auto it = entries_.upper_bound(address);
  if (it != entries_.begin() && std::prev(it)->second.end > address) {
    answer.status = Status::kFound;
    answer.name = std::prev(it)->second.name;
    return answer;
  }
  answer.status = file == Status::kTooLarge ? Status::kTooLarge : Status::kNoEntry;
  return answer;
}

}  // namespace blockwatch::collector
