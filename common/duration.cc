// The duration grammar and format (see duration.h). Hand-written rather than
// strtod/printf: neither may depend on the program's locale.
#include "common/duration.h"

namespace blockwatch::duration {

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

namespace {

// Appends `text` to out[*length] while it fits (one byte kept for the NUL).
void append(const char* text, char* out, size_t size, size_t* length) {
  for (; *text != '\0' && *length + 1 < size; ++text) out[(*length)++] = *text;
}

void append_number(uint64_t value, char* out, size_t size, size_t* length) {
  char digits[24];
  int count = 0;
  do {
    digits[count++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  char text[24];
  for (int i = 0; i < count; ++i) text[i] = digits[count - 1 - i];
  text[count] = '\0';
  append(text, out, size, length);
}

}  // namespace

size_t format_duration(int64_t ns, char* out, size_t size) {
  if (size == 0) return 0;
  size_t length = 0;
  uint64_t magnitude = static_cast<uint64_t>(ns);
  if (ns < 0) {
    append("-", out, size, &length);
    magnitude = 0 - magnitude;
  }
  struct Unit {
    uint64_t ns;
    const char* name;
  };
  static constexpr Unit kUnits[] = {{1'000'000'000, "s"}, {1'000'000, "ms"}, {1'000, "us"}};
  const Unit* unit = nullptr;
  for (const Unit& candidate : kUnits) {
    if (magnitude >= candidate.ns) {
      unit = &candidate;
      break;
    }
  }
  if (unit == nullptr) {
    append_number(magnitude, out, size, &length);
    append("ns", out, size, &length);
    out[length] = '\0';
    return length;
  }
  // Three significant digits, rounded half up: value = magnitude / unit in
  // hundredths, then as many fraction digits as the integer part leaves.
  const uint64_t integer_part = magnitude / unit->ns;
  const int fraction_digits = integer_part >= 100 ? 0 : integer_part >= 10 ? 1 : 2;
  uint64_t scale = 1;
  for (int i = 0; i < fraction_digits; ++i) scale *= 10;
  // unit->ns / scale is exact: units are multiples of 1000 and scale <= 100.
  const uint64_t step = unit->ns / scale;
  uint64_t scaled = magnitude / step + (magnitude % step >= step / 2 ? 1 : 0);
  uint64_t whole = scaled / scale;
  uint64_t fraction = scaled % scale;
  int digits = fraction_digits;
  while (digits > 0 && fraction % 10 == 0) {  // "1.50ms" -> "1.5ms", "2.00s" -> "2s"
    fraction /= 10;
    --digits;
  }
  append_number(whole, out, size, &length);
  if (digits > 0) {
    append(".", out, size, &length);
    char text[4] = {};
    for (int i = digits - 1; i >= 0; --i, fraction /= 10)
      text[i] = static_cast<char>('0' + fraction % 10);
    append(text, out, size, &length);
  }
  append(unit->name, out, size, &length);
  out[length] = '\0';
  return length;
}

std::string format_duration(int64_t ns) {
  char text[32];
  const size_t length = format_duration(ns, text, sizeof text);
  return std::string(text, length);
}

}  // namespace blockwatch::duration
