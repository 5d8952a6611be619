#pragma once
// Keyed hashes (HMAC-SHA256, truncated) for values that must never be kept in
// clear, such as client IPs (SPEC §6): rate-limiter keys and log fields. With
// the default random per-process key the output cannot be linked across restarts.
//
//   keyed_hasher h;                       // random key
//   std::uint64_t k = h.hash64(client_ip);
//   std::string tag = h.hex(client_ip, 12);

#include <cstdint>
#include <string>
#include <string_view>

namespace passage::api {

// Immutable after construction; safe to call from any thread.
class keyed_hasher {
 public:
  // A random 32-byte key from the CSPRNG.
  keyed_hasher();
  // A fixed key, e.g. to keep log tags stable across restarts.
  explicit keyed_hasher(std::string key);

  // The first 8 bytes of HMAC-SHA256(key, data).
  std::uint64_t hash64(std::string_view data) const;
  // The first `hex_chars` (at most 64) lower-case hex digits of HMAC-SHA256(key, data).
  std::string hex(std::string_view data, std::size_t hex_chars) const;

 private:
  std::string key_;
};

}  // namespace passage::api
