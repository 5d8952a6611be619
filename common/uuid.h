#pragma once
// UUIDs for event ids, invite ids and claim ids: 16 bytes, canonical lower-case
// text form "8-4-4-4-12". New ids are version 4 from the OpenSSL CSPRNG, or version 7
// (time-ordered, its random bits from the same CSPRNG) where they are made to sort.

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace passage {

struct uuid {
  std::array<std::uint8_t, 16> bytes{};

  // A random (version 4, RFC 9562) UUID. Thread-safe.
  static uuid random();
  // A time-ordered (version 7, RFC 9562) UUID: the Unix time in milliseconds in its first
  // 48 bits, a 12-bit counter for the ids of one millisecond (section 6.2, method 1), then
  // 62 random bits. The ids one process makes sort (bytewise, and as text) in the order
  // they were made, also within a millisecond and when the clock steps back. For ids that
  // become keys of sorted stores: each goes in beside the one made before it (a new
  // learner's stream index entries, key store subject) instead of at a random place that
  // every insert searches for. It shows when the id was made. Thread-safe.
  static uuid time_ordered();
  // Parses the canonical 36-character form (either case); nullopt otherwise.
  static std::optional<uuid> parse(std::string_view text);

  std::string to_string() const;
  bool is_nil() const;
  std::string_view as_bytes() const {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
  }

  friend auto operator<=>(const uuid&, const uuid&) = default;
};

}  // namespace passage

template <>
struct std::hash<passage::uuid> {
  size_t operator()(const passage::uuid& u) const noexcept {
    std::uint64_t a, b;
    __builtin_memcpy(&a, u.bytes.data(), 8);
    __builtin_memcpy(&b, u.bytes.data() + 8, 8);
    return a ^ (b * 0x9E3779B97F4A7C15ull);
  }
};
