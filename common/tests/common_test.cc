#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/crc32c.h"
#include "common/crc32c_internal.h"
#include "common/encoding.h"
#include "common/hmac.h"
#include "common/result.h"
#include "common/time_format.h"
#include "common/uuid.h"
#include "common/uuid_text.h"

namespace passage {
namespace {

using namespace std::chrono;

TEST(TimeFormat, FormatsWholeSecondsWithoutFraction) {
  timestamp t = sys_days{year{2026} / 11 / 20} + hours{9};
  EXPECT_EQ(format_rfc3339(t), "2026-11-20T09:00:00Z");
  EXPECT_EQ(format_rfc3339(t + microseconds{1500}), "2026-11-20T09:00:00.001500Z");
}

TEST(TimeFormat, FormatsTheEdgesOfFourDigitYearsAndBeyond) {
  EXPECT_EQ(format_rfc3339(sys_days{year{0} / 1 / 1}), "0000-01-01T00:00:00Z");
  EXPECT_EQ(format_rfc3339(sys_days{year{9999} / 12 / 31} + hours{23} + minutes{59} + seconds{59} +
                           microseconds{999999}),
            "9999-12-31T23:59:59.999999Z");
  EXPECT_EQ(format_rfc3339(sys_days{year{10000} / 1 / 1} + microseconds{7}),
            "10000-01-01T00:00:00.000007Z");
  std::string out = "at ";
  append_rfc3339(out, sys_days{year{2026} / 12 / 1} + seconds{5});
  EXPECT_EQ(out, "at 2026-12-01T00:00:05Z");
}

TEST(TimeFormat, ParsesOffsetsAndFractions) {
  auto t = parse_rfc3339("2026-11-20T10:30:00+01:30");
  ASSERT_TRUE(t);
  EXPECT_EQ(format_rfc3339(*t), "2026-11-20T09:00:00Z");
  auto f = parse_rfc3339("2026-11-20T09:00:00.123456789Z");
  ASSERT_TRUE(f);
  EXPECT_EQ(format_rfc3339(*f), "2026-11-20T09:00:00.123456Z");
}

TEST(TimeFormat, RejectsMalformed) {
  for (const char* bad : {"", "2026-11-20", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z",
                          "2026-11-20T24:00:00Z", "2026-11-20T09:00:00", "2026-11-20T09:00:00Zx",
                          "2026-11-20T09:00:00.Z", "2026-11-20 09:00:00Z"}) {
    EXPECT_FALSE(parse_rfc3339(bad)) << bad;
  }
}

TEST(Uuid, RoundTripsAndIsVersion4) {
  std::set<uuid> seen;
  for (int i = 0; i < 1000; ++i) {
    uuid u = uuid::random();
    EXPECT_EQ(u.bytes[6] >> 4, 4);
    auto text = u.to_string();
    auto back = uuid::parse(text);
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, u);
    seen.insert(u);
  }
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_FALSE(uuid::parse("not-a-uuid"));
  EXPECT_FALSE(uuid::parse("123e4567-e89b-12d3-a456-42661417400g"));
}

// Version 7: the current Unix milliseconds up front, then a counter, so that ids sort
// (as bytes and as text) in the order they were made, also many in one millisecond.
TEST(Uuid, TimeOrderedIdsAreVersion7CarryTheTimeAndSortInTheOrderMade) {
  const auto ms_now = [] {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
  };
  const std::uint64_t before = ms_now();
  std::vector<uuid> ids;
  for (int i = 0; i < 20000; ++i) ids.push_back(uuid::time_ordered());  // beyond 4096 per ms
  const std::uint64_t after = ms_now();
  std::set<std::uint64_t> randoms;
  std::uint64_t first_stamp = 0;
  for (int b = 0; b < 6; ++b) first_stamp = first_stamp << 8 | ids.front().bytes[b];
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const uuid& u = ids[i];
    EXPECT_EQ(u.bytes[6] >> 4, 7);
    EXPECT_EQ(u.bytes[8] >> 6, 2);  // the RFC 9562 variant
    std::uint64_t stamp = 0;
    for (int b = 0; b < 6; ++b) stamp = stamp << 8 | u.bytes[b];
    EXPECT_GE(stamp, before);
    // A counter run out carries into the milliseconds: at most 20000 / 4096 + 1 past the
    // clock or past the first id (ids made earlier in this process may have put the
    // process's last id ahead of the clock).
    EXPECT_LE(stamp, std::max(first_stamp, after) + 6);
    std::uint64_t tail = 0;
    for (int b = 8; b < 16; ++b) tail = tail << 8 | u.bytes[b];
    randoms.insert(tail);
    if (i > 0) {
      ASSERT_LT(ids[i - 1], u) << i;
      ASSERT_LT(ids[i - 1].to_string(), u.to_string()) << i;
    }
    ASSERT_EQ(uuid::parse(u.to_string()), u);
  }
  EXPECT_EQ(randoms.size(), ids.size());  // the last 62 bits are random
}

TEST(Uuid, TimeOrderedIdsOfManyThreadsAreDistinct) {
  std::vector<std::vector<uuid>> made(4);
  std::vector<std::thread> threads;
  for (auto& m : made) {
    threads.emplace_back([&m] {
      for (int i = 0; i < 5000; ++i) m.push_back(uuid::time_ordered());
    });
  }
  for (auto& t : threads) t.join();
  std::set<uuid> all;
  for (const auto& m : made) {
    EXPECT_TRUE(std::is_sorted(m.begin(), m.end()));
    all.insert(m.begin(), m.end());
  }
  EXPECT_EQ(all.size(), 20000u);
}

// The canonical text, lower case (the personal-data blocks' AAD is sealed with it:
// another form would no longer open them).
TEST(Uuid, UuidCharsAndToStringWriteTheCanonicalLowerCaseForm) {
  uuid u;
  for (std::size_t i = 0; i < 16; ++i) u.bytes[i] = static_cast<std::uint8_t>(0x10 * i + 0x0f - i);
  const std::string expected = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
  const auto chars = uuid_chars(u);
  EXPECT_EQ(std::string(chars.data(), chars.size()), expected);
  EXPECT_EQ(u.to_string(), expected);
  EXPECT_EQ(uuid{}.to_string(), "00000000-0000-0000-0000-000000000000");
}

TEST(Uuid, ParseTakesEitherCaseAndRefusesAnyOtherCharacter) {
  const std::string good = "123e4567-e89b-12d3-a456-42661417400f";
  auto u = uuid::parse(good);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->to_string(), good);
  auto upper = uuid::parse("123E4567-E89B-12D3-A456-42661417400F");
  ASSERT_TRUE(upper);
  EXPECT_EQ(*upper, *u);
  for (std::size_t i = 0; i < good.size(); ++i) {
    for (char c : {'g', 'G', '-', ' ', '\0', '/', ':', '@', '`', '\xff', '0'}) {
      std::string t = good;
      t[i] = c;
      const bool dash_place = i == 8 || i == 13 || i == 18 || i == 23;
      const bool valid = dash_place ? c == '-' : c == '0';
      EXPECT_EQ(uuid::parse(t).has_value(), valid) << i << " " << int(c);
    }
  }
  EXPECT_FALSE(uuid::parse(good.substr(1)));
  EXPECT_FALSE(uuid::parse(good + "0"));
  EXPECT_FALSE(uuid::parse("123e45678e89b-12d3-a456-42661417400f"));
}

// parse() reads eight digits at a time: every byte value at every place must be taken or
// refused exactly as a digit-by-digit reading would, and land in the right nibble.
TEST(Uuid, ParseAgreesWithADigitByDigitReadingForEveryByteAtEveryPlace) {
  auto digit = [](int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  const std::string good = "00112233-4455-6677-8899-aabbccddeeff";
  for (std::size_t i = 0; i < good.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) continue;
    const std::size_t pos = i - (i > 8) - (i > 13) - (i > 18) - (i > 23);  // digit number
    for (int c = 0; c < 256; ++c) {
      std::string t = good;
      t[i] = static_cast<char>(c);
      auto u = uuid::parse(t);
      const int d = digit(c);
      ASSERT_EQ(u.has_value(), d >= 0) << i << " " << c;
      if (!u) continue;
      auto want = *uuid::parse(good);
      const int shift = pos % 2 == 0 ? 4 : 0;
      want.bytes[pos / 2] =
          static_cast<std::uint8_t>((want.bytes[pos / 2] & ~(0xF << shift)) | (d << shift));
      EXPECT_EQ(*u, want) << i << " " << c;
    }
  }
  auto u = uuid::parse("0123abcd-ABCD-4567-89ef-EFcdAB012345");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->to_string(), "0123abcd-abcd-4567-89ef-efcdab012345");
}

// The dashes' places take '-' and nothing else; random ids in either case (and mixed)
// read back to their bytes, whatever the text around the 36 characters holds.
TEST(Uuid, ParseTakesOnlyDashesAtTheirPlacesAndReadsRandomIdsInAnyCase) {
  const std::string good = "00112233-4455-6677-8899-aabbccddeeff";
  for (std::size_t i : {8, 13, 18, 23}) {
    for (int c = 0; c < 256; ++c) {
      std::string t = good;
      t[i] = static_cast<char>(c);
      EXPECT_EQ(uuid::parse(t).has_value(), c == '-') << i << " " << c;
    }
  }
  for (int n = 0; n < 2000; ++n) {
    const uuid u = uuid::random();
    std::string text = u.to_string();
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (n % 3 != 0 && (n % 3 == 1 || i % 2 == 0)) {
        text[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(text[i])));
      }
    }
    // Inside a longer text: only its own 36 characters count.
    const std::string around = "\"" + text + "\"0123";
    auto back = uuid::parse(std::string_view(around).substr(1, 36));
    ASSERT_TRUE(back) << text;
    EXPECT_EQ(*back, u) << text;
    EXPECT_FALSE(uuid::parse(std::string_view(around).substr(1, 37)));
    EXPECT_FALSE(uuid::parse(std::string_view(around).substr(0, 36)));
  }
}

TEST(Crc32c, MatchesKnownVectors) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(""), 0u);
  std::string zeros(32, '\0');
  EXPECT_EQ(crc32c(zeros), 0x8A9136AAu);
}

// Bit by bit, as the polynomial defines it: what the table and the instruction paths
// (three blocks at once from 384 bytes on) must both give, at every length and seed.
std::uint32_t crc32c_bitwise(std::string_view data, std::uint32_t seed) {
  std::uint32_t c = ~seed;
  for (unsigned char byte : data) {
    c ^= byte;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return ~c;
}

// `crc` against the bitwise definition at every length up to 800 (then every 37th up to
// 2000), with seeds, and carried on as the seed of the rest of the input.
void check_against_bitwise(const std::function<std::uint32_t(std::string_view, std::uint32_t)>& crc,
                           const char* path) {
  std::mt19937 rng(11);
  std::string data(2000, '\0');
  for (auto& ch : data) ch = static_cast<char>(rng());
  for (std::size_t len = 0; len <= data.size(); len += (len < 800 ? 1 : 37)) {
    const std::string_view part(data.data(), len);
    const std::uint32_t seed = len % 3 == 0 ? 0 : static_cast<std::uint32_t>(rng());
    ASSERT_EQ(crc(part, seed), crc32c_bitwise(part, seed)) << path << ", length " << len;
    const std::size_t cut = len / 3;  // a CRC carried on as the seed of the rest
    ASSERT_EQ(crc(part.substr(cut), crc(part.substr(0, cut), seed)), crc32c_bitwise(part, seed))
        << path << ", chained at " << cut << " of " << len;
    // At an odd offset too: the instruction path reads 8 bytes at a time, unaligned.
    if (len > 1) {
      ASSERT_EQ(crc(part.substr(1), seed), crc32c_bitwise(part.substr(1), seed))
          << path << ", from byte 1 of " << len;
    }
  }
}

TEST(Crc32c, MatchesTheBitwiseDefinitionAtEveryLengthAndChains) {
  check_against_bitwise([](std::string_view d, std::uint32_t s) { return crc32c(d, s); },
                        "the CPU's choice");
}

TEST(Crc32c, TheTablePathMatchesTheBitwiseDefinition) {
  check_against_bitwise(
      [](std::string_view d, std::uint32_t s) { return crc32c_internal::by_table(d, s); }, "table");
}

TEST(Crc32c, TheSse42PathMatchesTheBitwiseDefinition) {
  if (!crc32c_internal::have_sse42()) GTEST_SKIP() << "no SSE4.2 on this CPU";
  check_against_bitwise(
      [](std::string_view d, std::uint32_t s) { return crc32c_internal::by_sse42(d, s); },
      "SSE4.2");
}

TEST(Result, CarriesValueOrError) {
  result<int, std::string> ok = 42;
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 42);
  result<int, std::string> bad = fail(std::string("boom"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), "boom");
  result<std::string, std::string> same = fail(std::string("e"));
  EXPECT_FALSE(same);
  result<void, std::string> v;
  EXPECT_TRUE(v);
}

TEST(Encoding, HtmlEscapeCoversMarkupAndQuotes) {
  EXPECT_EQ(html_escape(R"(<a href="x">Tom & Jerry's</a>)"),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;");
  EXPECT_EQ(html_escape("plain"), "plain");
}

// RFC 4648 §10's vectors, and bytes at both ends of the range.
const std::pair<std::string, std::string> base64_vectors[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
    {std::string("\0\xff", 2), "AP8="},
    {"\xfb\xef\xff", "++//"},
};

TEST(Encoding, Base64MatchesRfc4648Vectors) {
  for (const auto& [bytes, text] : base64_vectors) EXPECT_EQ(base64_encode(bytes), text);
}

TEST(Encoding, Base64AlphabetIsTheDigitOfEachSixBitValue) {
  ASSERT_EQ(base64_alphabet.size(), 64u);
  for (unsigned v = 0; v < 64; ++v) {
    // One byte v << 2: its first digit is v's, the second 0's.
    EXPECT_EQ(base64_encode(std::string(1, static_cast<char>(v << 2)))[0], base64_alphabet[v]);
  }
}

TEST(Encoding, Base64LinesMatchRfc4648VectorsOnOneLine) {
  for (const auto& [bytes, text] : base64_vectors) {
    std::string out;
    base64_append_lines(out, bytes);
    EXPECT_EQ(out, text.empty() ? "" : text + "\r\n") << text;
  }
}

TEST(Encoding, Base64LinesWrapAt76CharactersAndAppend) {
  const std::string full(57, '\xff');  // one whole line: 76 '/'
  const std::string line = std::string(76, '/') + "\r\n";
  std::string out = "x:";
  base64_append_lines(out, full);
  EXPECT_EQ(out, "x:" + line);
  out.clear();
  base64_append_lines(out, full + "f");
  EXPECT_EQ(out, line + "Zg==\r\n");
  out.clear();
  base64_append_lines(out, full + full);
  EXPECT_EQ(out, line + line);
  // Every length around a few lines, every byte: base64_encode() of each 57-byte piece.
  std::mt19937 gen(7);
  for (std::size_t n = 0; n <= 4 * 57 + 3; ++n) {
    std::string bytes(n, '\0');
    for (auto& c : bytes) c = static_cast<char>(gen());
    std::string expected;
    for (std::size_t i = 0; i < n; i += 57) expected += base64_encode(bytes.substr(i, 57)) + "\r\n";
    std::string got = "head";
    base64_append_lines(got, bytes);
    EXPECT_EQ(got, "head" + expected) << n;
  }
}

TEST(Encoding, Base64AppendsAfterWhatTheBufferHolds) {
  std::string out = "x:";
  base64_append(out, "fo");
  EXPECT_EQ(out, "x:Zm8=");
  base64_append(out, "");
  EXPECT_EQ(out, "x:Zm8=");
  base64_append(out, "foobar");
  EXPECT_EQ(out, "x:Zm8=Zm9vYmFy");
}

TEST(Encoding, Base64DecodesWhatItEncodesAndRefusesTheRest) {
  for (std::string s : {std::string(), std::string("f"), std::string("fo"), std::string("foo"),
                        std::string("foobar"), std::string("\0\xff", 2)}) {
    EXPECT_EQ(base64_decode(base64_encode(s)), s);
  }
  EXPECT_EQ(base64_decode("Zm9vYmFy"), "foobar");
  EXPECT_EQ(base64_decode("Zm8"), std::nullopt);       // unpadded
  EXPECT_EQ(base64_decode("Zm9v!mFy"), std::nullopt);  // not the alphabet
  EXPECT_EQ(base64_decode("Zm\r\n9v"), std::nullopt);  // line breaks are the caller's
}

std::string hex_of(const std::array<unsigned char, 32>& md) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : md) {
    out += hex[c >> 4];
    out += hex[c & 0xf];
  }
  return out;
}

// FIPS 180-4's examples ("abc", the two-block message), the empty message, and a message
// split into parts anywhere (also inside a 64-byte block): the digest of the parts joined.
TEST(Sha256, MatchesKnownDigestsWhereverTheMessageIsSplit) {
  EXPECT_EQ(hex_of(sha256({})), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex_of(sha256({"abc"})),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  const std::string digest = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
  EXPECT_EQ(hex_of(sha256({two_blocks})), digest);
  const std::string_view m = two_blocks;
  for (std::size_t i = 0; i <= m.size(); ++i) {
    EXPECT_EQ(hex_of(sha256({m.substr(0, i), "", m.substr(i)})), digest) << i;
  }
  const std::string long_message(1000, 'a');  // many blocks: as OpenSSL's one-shot digest
  std::array<unsigned char, 32> md{};
  unsigned int len = 0;
  ASSERT_EQ(
      EVP_Digest(long_message.data(), long_message.size(), md.data(), &len, EVP_sha256(), nullptr),
      1);
  EXPECT_EQ(sha256({long_message}), md);
  const std::string_view l = long_message;
  for (std::size_t i = 0; i <= l.size(); i += 7) {  // parts of every size, short and long
    EXPECT_EQ(sha256({l.substr(0, i), l.substr(i, 1), l.substr(i + 1)}), md) << i;
    EXPECT_EQ(sha256({l.substr(0, i % 200), l.substr(i % 200, 129), l.substr(i % 200 + 129)}), md)
        << i;
  }
}

// RFC 4231 test case 2, and tags under more keys than a thread keeps contexts for, each
// twice in a row (a new context, then the kept one), with the message in one part or two.
TEST(Hmac, Sha256MatchesRfc4231AndEveryKeyThroughKeptContexts) {
  std::array<unsigned char, 32> md{};
  ASSERT_TRUE(hmac_sha256("Jefe", {"what do ya want for nothing?"}, md));
  EXPECT_EQ(hex_of(md), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  const std::vector<std::pair<char, std::string>> expected = {
      {'a', "1abe6640da17e294fd901166fbd201df76c0a62164ae9a44968cda1d40afb88c"},
      {'b', "4a28350c3417f6ce58c0b4f06010ffdf60706158f07f9a12313f68d5cad2b2a8"},
      {'c', "bd2054fc3ee8c2982b105f81a7aedc7fc6171b874234000fb0bd0aa3dbd0500f"},
      {'d', "ebb7714f2b0f9941e94a94768e4ce73add0f114017df8c192a6651625f16ba73"},
      {'e', "3b62e5b24e279fdcd96b697b709d516f2e95101af0ca0364a8b7e22cf23b9f80"},
      {'f', "17998dfbf67371f4852b29905f8199a0ee4212164bd254df8e41952cf344b2f7"}};
  for (int round = 0; round < 2; ++round) {
    for (const auto& [k, tag] : expected) {
      const std::string key(32, k);
      ASSERT_TRUE(hmac_sha256(key, {"ctx|", "ids"}, md));
      EXPECT_EQ(hex_of(md), tag) << k;
      ASSERT_TRUE(hmac_sha256(key, {"ctx|ids"}, md));
      EXPECT_EQ(hex_of(md), tag) << k << " (kept context)";
    }
  }
}

// RFC 4231 test cases 1 (a short key) and 6 (a key longer than the block, hashed first),
// then every key length around the block size against OpenSSL's one-shot HMAC(), each key
// twice (set up, then kept) and the message in one part or three.
TEST(Hmac, Sha256MatchesOneShotHmacForShortBlockSizedAndLongKeys) {
  std::array<unsigned char, 32> md{};
  ASSERT_TRUE(hmac_sha256(std::string(20, '\x0b'), {"Hi There"}, md));
  EXPECT_EQ(hex_of(md), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  ASSERT_TRUE(hmac_sha256(std::string(131, '\xaa'),
                          {"Test Using Larger Than Block-Size Key - Hash Key First"}, md));
  EXPECT_EQ(hex_of(md), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  const std::string message = "org|someone@example.org";
  for (std::size_t n = 0; n <= 140; ++n) {
    std::string key;
    for (std::size_t i = 0; i < n; ++i) key += static_cast<char>('A' + (i * 7 + n) % 50);
    std::array<unsigned char, 32> expected{};
    unsigned int len = 0;
    ASSERT_NE(HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
                   reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                   expected.data(), &len),
              nullptr);
    ASSERT_TRUE(hmac_sha256(key, {message}, md));
    EXPECT_EQ(hex_of(md), hex_of(expected)) << n;
    ASSERT_TRUE(hmac_sha256(key, {"org|", "someone@", "example.org"}, md));
    EXPECT_EQ(hex_of(md), hex_of(expected)) << n << " (kept context)";
  }
}

}  // namespace
}  // namespace passage
