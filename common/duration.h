// The one duration grammar and the one duration format of blockwatch, for the
// injected library (BLOCKWATCH_THRESHOLD and friends) and the collector (flags,
// config, --fail-on rules, every report). Locale-free: integer arithmetic only,
// no strtod or printf("%g") whose decimal point follows LC_NUMERIC.
//
// Grammar: `0`, or a decimal number (at most 9 fraction digits) and a unit:
// `500ns`, `250us`, `1ms`, `1.5ms`, `2s`. A non-zero number without a unit is
// rejected: `5` could mean any unit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace blockwatch::duration {

// Nanoseconds, or nullopt for anything else (empty, no unit on a non-zero number,
// unknown unit, negative, overflow). Surrounding spaces are ignored.
// No allocation; async-signal-safe.
std::optional<int64_t> parse_duration_ns(std::string_view text);

// `ns` with three significant digits and the largest unit that keeps the number
// at least 1: "950ns", "12.3us", "1.5ms", "250ms", "2s". Writes at most `size`
// bytes including the NUL; returns the length. No allocation; async-signal-safe.
size_t format_duration(int64_t ns, char* out, size_t size);

// The same, as a string (collector side).
std::string format_duration(int64_t ns);

}  // namespace blockwatch::duration
