#include "common/encoding.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdint>

namespace passage {

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  base64_append(out, bytes);
  return out;
}

void base64_append(std::string& out, std::string_view bytes) {
  const std::size_t at = out.size();
  out.resize(at + 4 * ((bytes.size() + 2) / 3) + 1);  // EVP_EncodeBlock ends with a NUL
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data() + at),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(at + static_cast<std::size_t>(n));
}

// `out` grows once for the whole text and the characters are written in place (a call of
// base64_append per line resized `out` twice per line and went through EVP_EncodeBlock:
// ~5 % of the mailer's CPU per welcome mail, whose bodies are written so).
void base64_append_lines(std::string& out, std::string_view bytes) {
  constexpr std::size_t per_line = 57;  // 76 characters; a multiple of 3: '=' only at the end
  const std::size_t lines = (bytes.size() + per_line - 1) / per_line;
  const std::size_t at = out.size();
  out.resize(at + 4 * ((bytes.size() + 2) / 3) + 2 * lines);
  char* o = out.data() + at;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  for (std::size_t left = bytes.size(); left > 0;) {
    std::size_t n = std::min(left, per_line);
    left -= n;
    for (; n >= 3; n -= 3, p += 3) {
      const std::uint32_t v = (std::uint32_t{p[0]} << 16) | (std::uint32_t{p[1]} << 8) | p[2];
      o[0] = base64_alphabet[v >> 18];
      o[1] = base64_alphabet[(v >> 12) & 63];
      o[2] = base64_alphabet[(v >> 6) & 63];
      o[3] = base64_alphabet[v & 63];
      o += 4;
    }
    if (n > 0) {  // the last 1 or 2 bytes
      const std::uint32_t v = (std::uint32_t{p[0]} << 16) | (n == 2 ? std::uint32_t{p[1]} << 8 : 0);
      o[0] = base64_alphabet[v >> 18];
      o[1] = base64_alphabet[(v >> 12) & 63];
      o[2] = n == 2 ? base64_alphabet[(v >> 6) & 63] : '=';
      o[3] = '=';
      o += 4;
      p += n;
    }
    *o++ = '\r';
    *o++ = '\n';
  }
}

std::optional<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts the bytes the '=' padding stands for as zeros.
  std::size_t pad = 0;
  if (!text.empty() && text.back() == '=') ++pad;
  if (text.size() >= 2 && text[text.size() - 2] == '=') ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

std::string hex_encode(const unsigned char* bytes, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s;
  s.reserve(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    s.push_back(digits[bytes[i] >> 4]);
    s.push_back(digits[bytes[i] & 0xF]);
  }
  return s;
}

}  // namespace passage
