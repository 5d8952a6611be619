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
  for (unsigned char c : s) {
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
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0xf];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

}  // namespace passage::eventstore
