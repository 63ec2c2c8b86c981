// Parses the durations of BLOCKWATCH_THRESHOLD and friends: `0`, `500ns`, `250us`,
// `1ms`, `1.5ms`, `2s`. Runs at startup only; allocates nothing.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace blockwatch::interpose {

// Nanoseconds, or nullopt for anything else (empty, no unit on a non-zero number,
// unknown unit, negative, overflow).
std::optional<int64_t> parse_duration_ns(std::string_view text);

}  // namespace blockwatch::interpose
