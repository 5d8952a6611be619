#include "domain/invite_code.h"

namespace passage::domain {

std::optional<std::string> make_invite_code(std::span<const std::uint8_t> random_bytes) {
  constexpr unsigned n = invite_code_alphabet.size();
  constexpr unsigned limit = (256 / n) * n;  // 248: largest multiple of 31 within a byte
  std::string code;
  code.reserve(invite_code_length);
  for (std::uint8_t b : random_bytes) {
    if (b >= limit) continue;
    code += invite_code_alphabet[b % n];
    if (code.size() == invite_code_length) return code;
  }
  return std::nullopt;
}

bool is_valid_invite_code(std::string_view code) {
  if (code.size() != invite_code_length) return false;
  for (char c : code) {
    if (invite_code_alphabet.find(c) == std::string_view::npos) return false;
  }
  return true;
}

std::string normalize_invite_code(std::string_view code) {
  std::string out(code);
  for (char& c : out) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

}  // namespace passage::domain
