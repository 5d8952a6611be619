#pragma once
// Readable test values shared by the module tests: instants written as RFC 3339 and
// deterministic, distinct uuids.

#include <gtest/gtest.h>

#include <cstdint>
#include <string_view>

#include "common/time_format.h"
#include "common/uuid.h"

namespace passage::testing {

inline timestamp at(std::string_view rfc3339) {
  auto t = parse_rfc3339(rfc3339);
  EXPECT_TRUE(t.has_value()) << rfc3339;
  return t.value_or(timestamp{});
}

// A version-4-shaped uuid with `n` in its last bytes and `tag` in its first: id(1) != id(2),
// stable across runs; suites pick different tags so their ids never meet.
inline uuid numbered_uuid(std::uint64_t n, std::uint8_t tag) {
  uuid u;
  for (int i = 0; i < 8; ++i) u.bytes[15 - i] = static_cast<std::uint8_t>(n >> (8 * i));
  u.bytes[0] = tag;
  u.bytes[6] = 0x40;
  u.bytes[8] = 0x80 | (u.bytes[8] & 0x3F);
  return u;
}

// A uuid with `n` in its last 8 bytes and zeros before, as sequential ids would differ:
// they share most of their bits, so only a hash's mixing spreads them (the flat maps'
// tests), and their order is n's.
inline uuid sequential_uuid(std::uint64_t n) {
  uuid u;
  for (int i = 0; i < 8; ++i) u.bytes[15 - i] = static_cast<std::uint8_t>(n >> (8 * i));
  return u;
}

}  // namespace passage::testing
