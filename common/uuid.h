#pragma once
// UUIDs for event ids, invite ids and claim ids: 16 bytes, canonical lower-case
// text form "8-4-4-4-12". New ids are version 4 from the OpenSSL CSPRNG.

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
