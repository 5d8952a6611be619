#include "eventstore/json_text.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

namespace passage::eventstore {
namespace {

std::string written(std::string_view s, invalid_utf8 on_invalid = invalid_utf8::fail) {
  std::string out = "x";  // appends, keeps what was there
  append_json_string(out, s, on_invalid);
  return out.substr(1);
}

TEST(json_text, writes_the_bytes_nlohmann_writes) {
  std::string every_ascii;
  for (int c = 0; c < 0x80; ++c) every_ascii += static_cast<char>(c);
  for (std::string s : {std::string(), std::string("plain"), std::string("quote \" and \\ slash /"),
                        std::string("\b\f\n\r\t\x01\x1f\x7f"), every_ascii,
                        std::string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\xb5 \"\n"),
                        std::string("nul \0 inside", 12)}) {
    EXPECT_EQ(written(s), nlohmann::json(s).dump()) << s;
  }
}

// Text is scanned eight bytes at a time: every special byte at every offset of a longer
// string, ASCII or not, still comes out as nlohmann writes it.
TEST(json_text, every_special_byte_at_every_offset) {
  const std::string specials[] = {"\"",   "\\",       "\n",           std::string(1, '\0'), "\x1f",
                                  "\x7f", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x8e\xb5",   " ",
                                  "~"};
  for (const auto& special : specials) {
    for (std::size_t at = 0; at <= 19; ++at) {
      std::string s = std::string(at, 'a') + special + std::string(19 - at, 'Z');
      EXPECT_EQ(written(s), nlohmann::json(s).dump()) << at;
      std::string twice = s + special;
      EXPECT_EQ(written(twice), nlohmann::json(twice).dump()) << at;
    }
  }
  // Invalid UTF-8 late in a long string: refused whole, nothing appended.
  std::string out = "keep";
  EXPECT_THROW(append_json_string(out, std::string(30, 'x') + "\xff"), nlohmann::json::type_error);
  EXPECT_EQ(out, "keep");
}

TEST(json_text, invalid_utf8_throws_or_is_replaced_as_asked) {
  const std::string bad = "ok \xc3( \xff end";
  EXPECT_THROW(written(bad), nlohmann::json::type_error);
  EXPECT_EQ(written(bad, invalid_utf8::replace),
            nlohmann::json(bad).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  EXPECT_NE(written(bad, invalid_utf8::replace).find("\xef\xbf\xbd"), std::string::npos);
}

}  // namespace
}  // namespace passage::eventstore
