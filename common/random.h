#pragma once
// Cryptographically secure random bytes (OpenSSL RAND_bytes). Used for ids,
// invite codes, API keys and learner tokens. Thread-safe.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace passage {

// Fills `out` from the CSPRNG. Throws std::runtime_error if the CSPRNG fails,
// which OpenSSL only does when the system cannot provide entropy at all.
void secure_random_bytes(std::span<std::uint8_t> out);

// `n` random bytes as lower-case hex (2n characters).
std::string secure_random_hex(std::size_t n);

}  // namespace passage
