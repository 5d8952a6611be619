#include "common/uuid.h"

#include "common/random.h"

namespace passage {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

uuid uuid::random() {
  uuid u;
  secure_random_bytes(u.bytes);
  u.bytes[6] = static_cast<std::uint8_t>((u.bytes[6] & 0x0F) | 0x40);
  u.bytes[8] = static_cast<std::uint8_t>((u.bytes[8] & 0x3F) | 0x80);
  return u;
}

std::optional<uuid> uuid::parse(std::string_view text) {
  if (text.size() != 36) return std::nullopt;
  uuid u;
  size_t b = 0;
  for (size_t i = 0; i < 36;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (text[i] != '-') return std::nullopt;
      ++i;
      continue;
    }
    int hi = hex_value(text[i]), lo = hex_value(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    u.bytes[b++] = static_cast<std::uint8_t>(hi << 4 | lo);
    i += 2;
  }
  return u;
}

std::string uuid::to_string() const {
  static constexpr char kHex[] = "0123456789abcdef";
  // Written in place: one allocation-free fill instead of 36 push_backs (ids are printed
  // several times per claim).
  std::string s(36, '-');
  for (size_t i = 0, at = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) ++at;
    s[at++] = kHex[bytes[i] >> 4];
    s[at++] = kHex[bytes[i] & 0xF];
  }
  return s;
}

bool uuid::is_nil() const {
  for (auto b : bytes)
    if (b != 0) return false;
  return true;
}

}  // namespace passage
