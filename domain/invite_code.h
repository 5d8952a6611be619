#pragma once
// Invite codes: 7 characters from an alphabet without look-alikes (no 0/O, 1/I/L), as in
// the public link /i/{code}. The domain stays pure: the caller supplies CSPRNG bytes
// (common/random.h) and checks uniqueness against its code index, retrying on collision.
//
//   std::array<std::uint8_t, invite_code_random_bytes> bytes;
//   secure_random_bytes(bytes);
//   auto code = make_invite_code(bytes);  // nullopt: too few usable bytes, draw again

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace passage::domain {

// 31 symbols: digits 2-9 and A-Z without I, L and O.
inline constexpr std::string_view invite_code_alphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ";
inline constexpr std::size_t invite_code_length = 7;
// Bytes worth drawing per attempt. Each byte is rejected with probability 8/256, so 16 bytes
// yield 7 usable ones except with probability < 1e-9; make_invite_code then returns nullopt
// and the caller simply draws again.
inline constexpr std::size_t invite_code_random_bytes = 16;

// Builds a code by rejection sampling: a byte b is used only when b < 248 (= 8 * 31), so
// every symbol is exactly equally likely; b % 31 picks the symbol. Returns nullopt when
// `random_bytes` holds fewer than 7 usable bytes.
std::optional<std::string> make_invite_code(std::span<const std::uint8_t> random_bytes);

// True for exactly 7 symbols of the alphabet (upper case).
bool is_valid_invite_code(std::string_view code);

// Upper-cases a code typed by a human so "ab2k7mz" finds "AB2K7MZ". Does not validate.
std::string normalize_invite_code(std::string_view code);

}  // namespace passage::domain
