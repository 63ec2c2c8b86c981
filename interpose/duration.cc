// Duration parsing for BLOCKWATCH_* settings (see duration.h). Hand-written
// rather than strtod: it must not depend on the program's locale.
#include "interpose/duration.h"

namespace blockwatch::interpose {

std::optional<int64_t> parse_duration_ns(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  if (text.empty()) return std::nullopt;
  size_t pos = 0;
  uint64_t integer = 0;
  size_t integer_digits = 0;
  for (; pos < text.size() && text[pos] >= '0' && text[pos] <= '9'; ++pos, ++integer_digits) {
    if (integer > 1'000'000'000'000ULL) return std::nullopt;  // far beyond any sane value
    integer = integer * 10 + static_cast<uint64_t>(text[pos] - '0');
  }
  uint64_t fraction = 0;  // as an integer numerator over fraction_scale
  uint64_t fraction_scale = 1;
  size_t fraction_digits = 0;
  if (pos < text.size() && text[pos] == '.') {
    for (++pos; pos < text.size() && text[pos] >= '0' && text[pos] <= '9'; ++pos) {
      if (++fraction_digits > 9) return std::nullopt;
      fraction = fraction * 10 + static_cast<uint64_t>(text[pos] - '0');
      fraction_scale *= 10;
    }
    if (fraction_digits == 0) return std::nullopt;
  }
  if (integer_digits == 0) return std::nullopt;
  const std::string_view unit = text.substr(pos);
  uint64_t unit_ns;
  if (unit.empty()) {
    if (integer != 0 || fraction != 0) return std::nullopt;  // "5": 5 what?
    return 0;
  } else if (unit == "ns") {
    unit_ns = 1;
  } else if (unit == "us") {
    unit_ns = 1'000;
  } else if (unit == "ms") {
    unit_ns = 1'000'000;
  } else if (unit == "s") {
    unit_ns = 1'000'000'000;
  } else {
    return std::nullopt;
  }
  const uint64_t total = integer * unit_ns + fraction * unit_ns / fraction_scale;
  if (integer != 0 && total / unit_ns < integer) return std::nullopt;
  if (total > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  return static_cast<int64_t>(total);
}

}  // namespace blockwatch::interpose
