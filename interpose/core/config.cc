// Reads config() (config.h) from the BLOCKWATCH_* environment, once. A malformed
// value never breaks the program: one clear line on stderr, then the default.
// Strings are copied: the program may setenv/unsetenv later.
#include "interpose/core/config.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "common/duration.h"

namespace blockwatch::interpose {
namespace {

constexpr size_t kPathBytes = 4096;
char g_workers[kPathBytes];
char g_collector[kPathBytes];
char g_output[kPathBytes];
char g_pool_wait[kPathBytes];

const char* copy_env(const char* name, char* buffer) {
  const char* value = getenv(name);
  if (!value) return nullptr;
  std::strncpy(buffer, value, kPathBytes - 1);
  return buffer;
}

void read_duration(const char* name, int64_t* value_ns, const char* default_text) {
  const char* text = getenv(name);
  if (!text) return;
  if (auto parsed = duration::parse_duration_ns(text)) {
    *value_ns = *parsed;
    return;
  }
  fprintf(stderr, "blockwatch: %s='%s' is not a duration (examples: 0, 250us, 1ms, 2s); using %s\n",
          name, text, default_text);
}

void read_bool(const char* name, bool* value) {
  const char* text = getenv(name);
  if (!text) return;
  const std::string_view v = text;
  if (v == "1" || v == "true" || v == "yes" || v == "on") {
    *value = true;
  } else if (v == "0" || v == "false" || v == "no" || v == "off" || v.empty()) {
    *value = false;
  } else {
    fprintf(stderr, "blockwatch: %s='%s' is not a boolean (use 1 or 0); using %d\n", name, text,
            *value ? 1 : 0);
  }
}

Config load_config() {
  Config c;
  read_duration("BLOCKWATCH_THRESHOLD", &c.threshold_ns, "1ms");
  read_duration("BLOCKWATCH_STALL_THRESHOLD", &c.stall_threshold_ns, "0 (off)");
  read_duration("BLOCKWATCH_HANG_THRESHOLD", &c.hang_threshold_ns, "10s");
  if (const char* workers = copy_env("BLOCKWATCH_WORKERS", g_workers)) c.workers = workers;
  c.collector = copy_env("BLOCKWATCH_COLLECTOR", g_collector);
  c.output = copy_env("BLOCKWATCH_OUTPUT", g_output);
  if (c.output && !*c.output) c.output = nullptr;
  c.pool_wait = copy_env("BLOCKWATCH_POOL_WAIT", g_pool_wait);
  if (c.pool_wait && !*c.pool_wait) c.pool_wait = nullptr;
  if (c.collector && !*c.collector) c.collector = nullptr;
  read_bool("BLOCKWATCH_FOLLOW_CHILDREN", &c.follow_children);
  if (const char* action = getenv("BLOCKWATCH_ON_BLOCKING")) {
    const std::string_view v = action;
    if (v == "abort") {
      c.abort_on_blocking = true;
    } else if (v != "report" && !v.empty()) {
      fprintf(stderr,
              "blockwatch: BLOCKWATCH_ON_BLOCKING='%s' is not 'report' or 'abort'; using report\n",
              action);
    }
  }
  if (const char* timebase = getenv("BLOCKWATCH_TIMEBASE")) {
    const std::string_view v = timebase;
    if (v == "clock") {
      c.tsc_allowed = false;
    } else if (v != "tsc" && !v.empty()) {
      fprintf(stderr, "blockwatch: BLOCKWATCH_TIMEBASE='%s' is not 'tsc' or 'clock'; using tsc\n",
              timebase);
    }
  }
  if (long every = 0; read_env_count("BLOCKWATCH_TASK_TIMING_EVERY", 1, 1'000'000,
                                      "a count from 1 to 1000000", "the default", &every)) {
    c.task_timing_every = static_cast<uint32_t>(every);
  }
  bool disabled = false;
  read_bool("BLOCKWATCH_DISABLE", &disabled);
  c.enabled = !disabled;
  return c;
}

}  // namespace

bool read_env_count(const char* name, long low, long high, const char* what,
                    const char* fallback, long* value) {
  const char* text = getenv(name);
  if (text == nullptr) return false;
  char* end = nullptr;
  const long number = strtol(text, &end, 10);
  if (end != text && *end == '\0' && number >= low && number <= high) {
    *value = number;
    return true;
  }
  fprintf(stderr, "blockwatch: %s='%s' is not %s; using %s\n", name, text, what, fallback);
  return false;
}

const Config& config() {
  // The library constructor makes the first call, before any other thread of
  // ours exists; later calls only read.
  static const Config loaded = load_config();
  return loaded;
}

}  // namespace blockwatch::interpose
