#include "common/uuid.h"

#include <array>
#include <cstdint>

#include "common/random.h"

namespace passage {
namespace {

// Hex digit values, -1 for anything else: parse() runs for every id of every event
// replayed, so it looks digits up instead of branching on ranges.
constexpr auto kHexValue = [] {
  std::array<std::int8_t, 256> t{};
  t.fill(-1);
  for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<std::int8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<std::int8_t>(c - 'a' + 10);
  for (int c = 'A'; c <= 'F'; ++c) t[c] = static_cast<std::int8_t>(c - 'A' + 10);
  return t;
}();

// Where each byte's two digits start in the 36-character form.
constexpr std::array<std::uint8_t, 16> kDigitAt = {0,  2,  4,  6,  9,  11, 14, 16,
                                                   19, 21, 24, 26, 28, 30, 32, 34};

}  // namespace

uuid uuid::random() {
  uuid u;
  secure_random_bytes(u.bytes);
  u.bytes[6] = static_cast<std::uint8_t>((u.bytes[6] & 0x0F) | 0x40);
  u.bytes[8] = static_cast<std::uint8_t>((u.bytes[8] & 0x3F) | 0x80);
  return u;
}

std::optional<uuid> uuid::parse(std::string_view text) {
  if (text.size() != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' ||
      text[23] != '-') {
    return std::nullopt;
  }
  uuid u;
  int bad = 0;  // any digit's -1 sets the sign bit: one test at the end
  for (std::size_t b = 0; b < 16; ++b) {
    const int hi = kHexValue[static_cast<unsigned char>(text[kDigitAt[b]])];
    const int lo = kHexValue[static_cast<unsigned char>(text[kDigitAt[b] + 1])];
    bad |= hi | lo;
    u.bytes[b] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  if (bad < 0) return std::nullopt;
  return u;
}

std::string uuid::to_string() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(36, '-');  // written in place: a push_back per digit cost more than the rest
  for (size_t i = 0; i < 16; ++i) {
    s[kDigitAt[i]] = kHex[bytes[i] >> 4];
    s[kDigitAt[i] + 1] = kHex[bytes[i] & 0xF];
  }
  return s;
}

bool uuid::is_nil() const {
  for (auto b : bytes)
    if (b != 0) return false;
  return true;
}

}  // namespace passage
