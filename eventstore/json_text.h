#pragma once
// JSON string text written directly, for the hot writers (event encoding, the Kafka relay's
// CloudEvents): the same bytes as nlohmann::json(s).dump() without building a document.
// Plain ASCII goes through a small escaper (quote, backslash, \b \f \n \r \t, other control
// characters as \u00XX, as nlohmann writes them); any other text through nlohmann itself,
// which also checks the UTF-8.
//
//   std::string out;
//   append_json_string(out, title);                          // "\"Intro \\\"A\\\"\""
//   append_json_string(out, raw, invalid_utf8::replace);     // never throws

#include <string>
#include <string_view>

namespace passage::eventstore {

enum class invalid_utf8 {
  fail,     // throw nlohmann::json::type_error, as dump() does by default
  replace,  // write U+FFFD instead of each invalid sequence
};

void append_json_string(std::string& out, std::string_view s,
                        invalid_utf8 on_invalid = invalid_utf8::fail);

}  // namespace passage::eventstore
