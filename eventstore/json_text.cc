#include "eventstore/json_text.h"

#include <nlohmann/json.hpp>

namespace passage::eventstore {

void append_json_string(std::string& out, std::string_view s, invalid_utf8 on_invalid) {
  for (unsigned char c : s) {
    if (c >= 0x80) {
      out +=
          nlohmann::json(std::string(s))
              .dump(-1, ' ', false,
                    on_invalid == invalid_utf8::replace ? nlohmann::json::error_handler_t::replace
                                                        : nlohmann::json::error_handler_t::strict);
      return;
    }
  }
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  // Runs of characters that need no escape (nearly all of them) are appended whole.
  std::size_t run = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
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
