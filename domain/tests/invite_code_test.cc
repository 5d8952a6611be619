#include <gtest/gtest.h>

#include <array>
#include <map>
#include <random>
#include <vector>

#include "domain/invite_code.h"

namespace passage::domain {
namespace {

TEST(InviteCode, AlphabetHasNoLookAlikes) {
  EXPECT_EQ(invite_code_alphabet.size(), 31u);
  for (char c : std::string_view("01OIL")) {
    EXPECT_EQ(invite_code_alphabet.find(c), std::string_view::npos) << c;
  }
}

TEST(InviteCode, BuildsSevenSymbolsFromBytes) {
  std::vector<std::uint8_t> bytes = {0, 1, 2, 3, 4, 5, 6, 7, 8};
  auto code = make_invite_code(bytes);
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, "2345678");
  EXPECT_TRUE(is_valid_invite_code(*code));
}

TEST(InviteCode, RejectsBytesAbove247SoEverySymbolIsEquallyLikely) {
  // 248..255 would favour the first 8 symbols; they are skipped.
  std::vector<std::uint8_t> bytes = {248, 255, 30, 250, 61, 92, 123, 154, 185, 216};
  auto code = make_invite_code(bytes);
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, "ZZZZZZZ");
  // Each of the 31 symbols is hit by exactly 8 of the 248 accepted byte values.
  std::map<char, int> hits;
  for (int b = 0; b < 256; ++b) {
    std::vector<std::uint8_t> seven(7, static_cast<std::uint8_t>(b));
    if (auto c = make_invite_code(seven)) ++hits[(*c)[0]];
  }
  EXPECT_EQ(hits.size(), 31u);
  for (const auto& [symbol, n] : hits) EXPECT_EQ(n, 8) << symbol;
}

TEST(InviteCode, AsksForMoreBytesWhenTooFewAreUsable) {
  EXPECT_FALSE(make_invite_code(std::vector<std::uint8_t>{1, 2, 3}));
  EXPECT_FALSE(make_invite_code(std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6, 250, 251}));
  EXPECT_FALSE(make_invite_code(std::span<const std::uint8_t>{}));
}

TEST(InviteCode, RandomBytesGiveValidCodes) {
  std::mt19937 rng(42);
  for (int i = 0; i < 10000; ++i) {
    std::array<std::uint8_t, invite_code_random_bytes> bytes{};
    for (auto& b : bytes) b = static_cast<std::uint8_t>(rng());
    auto code = make_invite_code(bytes);
    ASSERT_TRUE(code);
    EXPECT_TRUE(is_valid_invite_code(*code)) << *code;
  }
}

TEST(InviteCode, Validation) {
  EXPECT_TRUE(is_valid_invite_code("AB2K7MZ"));
  for (const char* bad : {"", "AB2K7M", "AB2K7MZZ", "ab2k7mz", "AB0K7MZ", "ABOK7MZ", "AB1K7MZ",
                          "ABIK7MZ", "ABLK7MZ", "AB2K7M-"}) {
    EXPECT_FALSE(is_valid_invite_code(bad)) << bad;
  }
  EXPECT_EQ(normalize_invite_code("ab2k7mz"), "AB2K7MZ");
}

}  // namespace
}  // namespace passage::domain
