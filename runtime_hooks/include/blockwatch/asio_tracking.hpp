// Boost.Asio custom handler tracking that turns every handler invocation into a
// blockwatch task. Not included directly: compile every translation unit that
// includes Asio with
//   -DBOOST_ASIO_CUSTOM_HANDLER_TRACKING='"blockwatch/asio_tracking.hpp"'
// (the CMake target blockwatch::asio does it). All translation units of a program
// must agree, because tracking changes the layout of Asio's operation objects.
//
// Label of a task, first that applies:
//   1. the outermost BOOST_ASIO_HANDLER_LOCATION (or BLOCKWATCH_ASIO_LOCATION) in
//      force when the handler was created outside Asio's own headers:
//      "demo_service.cc:42 handle_request";
//   2. for the intermediate steps of a composed operation (async_read, ...), the
//      label of the handler that started it;
//   3. Asio's object and operation: "socket.async_receive", "io_context.post".
//
// Contract: the tracking hooks run inside Asio's scheduler on every handler. They
// never allocate, lock or block; without libblockwatch.so preloaded they do not
// format labels at all (one weak-symbol check per invocation).
#pragma once

#include <cstdint>
#include <cstring>

#include "blockwatch/blockwatch.h"

namespace blockwatch::asio_tracking {

inline constexpr std::size_t kLabelBytes = 96;

// Where a handler came from: static strings only, so it can be copied freely.
struct Site {
  const char* file = nullptr;  // nullptr: no source location
  int line = 0;
  const char* func = nullptr;
  const char* object_type = nullptr;
  const char* op_name = nullptr;
};

// A BOOST_ASIO_HANDLER_LOCATION on the calling thread's stack of locations.
class Location;
inline thread_local Location* tls_location_top = nullptr;
// The site of the handler the calling thread is invoking, for composed operations.
inline thread_local const Site* tls_invoking_site = nullptr;

class Location {
 public:
  Location(const char* file, int line, const char* func) noexcept
      : file_(file), line_(line), func_(func), next_(tls_location_top) {
    tls_location_top = this;
  }
  ~Location() { tls_location_top = next_; }
  Location(const Location&) = delete;
  Location& operator=(const Location&) = delete;

  const char* file_;
  int line_;
  const char* func_;
  Location* next_;
};

inline bool is_asio_internal(const char* file) noexcept {
  return file != nullptr && std::strstr(file, "boost/asio/") != nullptr;
}

// Appends `text` to buf[*used] within kLabelBytes - 1 characters.
inline void append(char* buf, std::size_t* used, const char* text) noexcept {
  while (text != nullptr && *text != '\0' && *used + 1 < kLabelBytes) buf[(*used)++] = *text++;
  buf[*used] = '\0';
}

inline void append_int(char* buf, std::size_t* used, int value) noexcept {
  char digits[12];
  int n = 0;
  unsigned v = value < 0 ? 0u : static_cast<unsigned>(value);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0 && n < 11);
  char text[12];
  for (int i = 0; i < n; ++i) text[i] = digits[n - 1 - i];
  text[n] = '\0';
  append(buf, used, text);
}

// Formats a site's label into `buf` (kLabelBytes). Does not allocate.
inline void format_label(const Site& site, char* buf) noexcept {
  std::size_t used = 0;
  buf[0] = '\0';
  if (site.file != nullptr) {
    const char* slash = std::strrchr(site.file, '/');
    append(buf, &used, slash != nullptr ? slash + 1 : site.file);
    append(buf, &used, ":");
    append_int(buf, &used, site.line);
    if (site.func != nullptr && site.func[0] != '\0') {
      append(buf, &used, " ");
      append(buf, &used, site.func);
    }
    return;
  }
  append(buf, &used, site.object_type != nullptr ? site.object_type : "asio");
  append(buf, &used, ".");
  append(buf, &used, site.op_name != nullptr ? site.op_name : "handler");
}

// Base of every Asio operation object (BOOST_ASIO_INHERIT_TRACKED_HANDLER).
class tracked_handler {
 public:
  Site bw_site_;

 protected:
  tracked_handler() noexcept = default;
  ~tracked_handler() = default;
};

// Decides the site of a handler being created now (rules in the file comment).
inline void creation(tracked_handler& handler, const char* object_type,
                     const char* op_name) noexcept {
  Site site;
  site.object_type = object_type;
  site.op_name = op_name;
  const Location* outermost = nullptr;
  for (const Location* l = tls_location_top; l != nullptr; l = l->next_) outermost = l;
  if (outermost != nullptr && !is_asio_internal(outermost->file_)) {
    site.file = outermost->file_;
    site.line = outermost->line_;
    site.func = outermost->func_;
  } else if (outermost != nullptr && tls_invoking_site != nullptr &&
             tls_invoking_site->file != nullptr) {
    site = *tls_invoking_site;  // a composed operation's next step
  }
  handler.bw_site_ = site;
}

template <typename Context>
inline void creation(Context&, tracked_handler& handler, const char* object_type, void*,
                     std::uintmax_t, const char* op_name) noexcept {
  creation(handler, object_type, op_name);
}

// Lives on the stack of Asio's do_complete around one handler invocation. The
// operation object may be freed before the invocation, so the site is copied.
class completion {
 public:
  explicit completion(const tracked_handler& handler) noexcept : site_(handler.bw_site_) {}
  ~completion() {
    if (begun_) invocation_end();  // the handler threw
  }
  completion(const completion&) = delete;
  completion& operator=(const completion&) = delete;

  template <typename... Args>
  void invocation_begin(const Args&...) noexcept {
    saved_invoking_site_ = tls_invoking_site;
    tls_invoking_site = &site_;
    begun_ = true;
    if (bw_task_begin == nullptr) return;
    format_label(site_, label_);
    bw_task_begin(label_);
    in_task_ = true;
  }

  void invocation_end() noexcept {
    tls_invoking_site = saved_invoking_site_;
    begun_ = false;
    if (!in_task_) return;
    in_task_ = false;
    bw_task_end();
  }

 private:
  Site site_;
  const Site* saved_invoking_site_ = nullptr;
  bool begun_ = false;
  bool in_task_ = false;
  char label_[kLabelBytes] = {};
};

}  // namespace blockwatch::asio_tracking

#define BLOCKWATCH_ASIO_CONCAT_INNER(a, b) a##b
#define BLOCKWATCH_ASIO_CONCAT(a, b) BLOCKWATCH_ASIO_CONCAT_INNER(a, b)

// Names the handlers created in this scope: BLOCKWATCH_ASIO_LOCATION("accept").
#define BLOCKWATCH_ASIO_LOCATION(name)                                                       \
  ::blockwatch::asio_tracking::Location BLOCKWATCH_ASIO_CONCAT(bw_asio_location_, __LINE__)( \
      __FILE__, __LINE__, name)

// The macros Asio's detail/handler_tracking.hpp requires of a custom header.
#define BOOST_ASIO_INHERIT_TRACKED_HANDLER : public ::blockwatch::asio_tracking::tracked_handler
#define BOOST_ASIO_ALSO_INHERIT_TRACKED_HANDLER \
  , public ::blockwatch::asio_tracking::tracked_handler
#define BOOST_ASIO_HANDLER_TRACKING_INIT (void)0
#define BOOST_ASIO_HANDLER_LOCATION(args) \
  ::blockwatch::asio_tracking::Location BLOCKWATCH_ASIO_CONCAT(bw_asio_location_, __LINE__) args
#define BOOST_ASIO_HANDLER_CREATION(args) ::blockwatch::asio_tracking::creation args
#define BOOST_ASIO_HANDLER_COMPLETION(args) \
  ::blockwatch::asio_tracking::completion tracked_completion args
#define BOOST_ASIO_HANDLER_INVOCATION_BEGIN(args) tracked_completion.invocation_begin args
#define BOOST_ASIO_HANDLER_INVOCATION_END tracked_completion.invocation_end()
#define BOOST_ASIO_HANDLER_OPERATION(args) (void)0
#define BOOST_ASIO_HANDLER_REACTOR_REGISTRATION(args) (void)0
#define BOOST_ASIO_HANDLER_REACTOR_DEREGISTRATION(args) (void)0
#define BOOST_ASIO_HANDLER_REACTOR_READ_EVENT 1
#define BOOST_ASIO_HANDLER_REACTOR_WRITE_EVENT 2
#define BOOST_ASIO_HANDLER_REACTOR_ERROR_EVENT 4
#define BOOST_ASIO_HANDLER_REACTOR_EVENTS(args) (void)0
#define BOOST_ASIO_HANDLER_REACTOR_OPERATION(args) (void)0
