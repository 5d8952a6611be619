#include "eventstore/json_text.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstring>

namespace passage::eventstore {

namespace {

// Whether any of the 8 bytes of `w` needs attention: below 0x20 (escaped), '"' or '\\'
// (escaped), or 0x80 and above (not ASCII: nlohmann checks and writes the UTF-8).
// Classic SWAR: a byte b of `w - k*0x01..` borrows into bit 7 only when b < k, and
// `x ^ c*0x01..` has a zero byte exactly where x had c.
bool needs_attention(std::uint64_t w) {
  constexpr std::uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  const auto has_zero = [](std::uint64_t x) { return (x - ones) & ~x & highs; };
  return ((w - ones * 0x20) | has_zero(w ^ (ones * '"')) | has_zero(w ^ (ones * '\\')) | w) & highs;
}

}  // namespace

void append_json_string(std::string& out, std::string_view s, invalid_utf8 on_invalid) {
  static constexpr char hex[] = "0123456789abcdef";
  const std::size_t start = out.size();
  out.reserve(start + s.size() + 2);
  out += '"';
  // One pass: runs of characters that need no escape (nearly all of them) are appended
  // whole, found eight bytes at a time; text that is not ASCII goes to nlohmann instead.
  std::size_t run = 0, i = 0;
  while (i < s.size()) {
    if (i + 8 <= s.size()) {
      std::uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if (!needs_attention(w)) {
        i += 8;
        continue;
      }
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      out.resize(start);
      out +=
          nlohmann::json(std::string(s))
              .dump(-1, ' ', false,
                    on_invalid == invalid_utf8::replace ? nlohmann::json::error_handler_t::replace
                                                        : nlohmann::json::error_handler_t::strict);
      return;
    }
    if (c >= 0x20 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    out.append(s.data() + run, i - run);
    run = ++i;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default: {
        const char u[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
        out.append(u, sizeof u);
      }
    }
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

}  // namespace passage::eventstore
