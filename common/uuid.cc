#include "common/uuid.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__) && defined(__x86_64__)
#include <emmintrin.h>
#endif

#include "common/random.h"
#include "common/uuid_text.h"

namespace passage {
namespace {

#if !(defined(__SSE2__) && defined(__x86_64__))
// Eight hex digits (memory order: the first digit in the lowest byte) to four bytes,
// eight at a time in a 64-bit word: parse() runs for several ids of every event
// replayed, and a table lookup per digit was a tenth of a decoder thread. False when
// any byte is not 0-9, a-f or A-F.
static_assert(std::endian::native == std::endian::little,
              "hex8 reads the first digit from the low byte");
constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
constexpr std::uint64_t kHigh = 0x8080808080808080ULL;

// Bytes of `x` (each below 0x80) strictly between m and n (m < n, both <= 0x80): their
// high bit set, the others' clear (the classic "has byte between" with no carries
// crossing bytes, since each byte's high bit is masked off first).
constexpr std::uint64_t between(std::uint64_t x, std::uint64_t m, std::uint64_t n) {
  const std::uint64_t low = x & ~kHigh;
  return (kOnes * (127 + n) - low) & ~x & (low + kOnes * (127 - m)) & kHigh;
}

constexpr bool hex8(std::uint64_t x, std::uint32_t& out) {
  if (x & kHigh) return false;  // not ASCII
  const std::uint64_t digit = between(x, '0' - 1, '9' + 1);
  // 'A'-'F' and 'a'-'f' both land on 'a'-'f' once 0x20 is set; nothing else does.
  const std::uint64_t letter = between(x | (kOnes * 0x20), 'a' - 1, 'f' + 1);
  if ((digit | letter) != kHigh) return false;
  // A letter's low nibble is 1-6 and its 0x40 bit is set: +9 makes it 10-15.
  const std::uint64_t v = (x & (kOnes * 0x0F)) + ((x >> 6) & kOnes) * 9;
  // Pairs of nibbles (first digit high) into the low byte of each 16-bit lane, then
  // the lanes' bytes packed together.
  std::uint64_t w = ((v << 4) | (v >> 8)) & 0x00FF00FF00FF00FFULL;
  w = (w | (w >> 8)) & 0x0000FFFF0000FFFFULL;
  w = (w | (w >> 16)) & 0x00000000FFFFFFFFULL;
  out = static_cast<std::uint32_t>(w);
  return true;
}

std::uint64_t load8(const char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

std::uint64_t load4(const char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

void store4(std::uint8_t* to, std::uint32_t v) { std::memcpy(to, &v, 4); }

#endif

// Where each byte's two digits start in the 36-character form.
constexpr std::array<std::uint8_t, 16> kDigitAt = {0,  2,  4,  6,  9,  11, 14, 16,
                                                   19, 21, 24, 26, 28, 30, 32, 34};

}  // namespace

uuid uuid::random() {
  uuid u;
  secure_random_bytes(u.bytes);
  u.bytes[6] = static_cast<std::uint8_t>((u.bytes[6] & 0x0F) | 0x40);
  u.bytes[8] = static_cast<std::uint8_t>((u.bytes[8] & 0x3F) | 0x80);
  return u;
}

uuid uuid::time_ordered() {
  // The last (milliseconds << 12 | counter) handed out: the next is the current
  // millisecond's first or, when that is not past it (the same millisecond, or the clock
  // stepped back), the one after it. A counter that runs out carries into the
  // milliseconds, which then run a little ahead of the clock until it catches up.
  static std::atomic<std::uint64_t> last{0};
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const auto ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
  const std::uint64_t fresh = (ms & 0xFFFF'FFFF'FFFFULL) << 12;
  std::uint64_t prev = last.load(std::memory_order_relaxed);
  std::uint64_t next;
  do {
    next = std::max(fresh, prev + 1);
  } while (!last.compare_exchange_weak(prev, next, std::memory_order_relaxed));
  uuid u;
  secure_random_bytes(u.bytes);
  const std::uint64_t stamp = next >> 12;
  for (int i = 0; i < 6; ++i) u.bytes[i] = static_cast<std::uint8_t>(stamp >> (40 - 8 * i));
  u.bytes[6] = static_cast<std::uint8_t>(0x70 | ((next >> 8) & 0x0F));
  u.bytes[7] = static_cast<std::uint8_t>(next & 0xFF);
  u.bytes[8] = static_cast<std::uint8_t>((u.bytes[8] & 0x3F) | 0x80);
  return u;
}

#if defined(__SSE2__) && defined(__x86_64__)
namespace {

// 16 characters of the text: which are hex digits (either case) and which are '-', one bit
// each (bit i: character i). A byte of 0x80 or above is negative as a signed char: it
// lands in neither digit range, nor does it once 0x20 is set.
struct char_classes {
  unsigned hex;
  unsigned dash;
};
[[gnu::always_inline]] inline char_classes classify(__m128i x) {
  const __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8('0' - 1)),
                                      _mm_cmplt_epi8(x, _mm_set1_epi8('9' + 1)));
  // 'A'-'F' and 'a'-'f' both land on 'a'-'f' once 0x20 is set; nothing else does.
  const __m128i folded = _mm_or_si128(x, _mm_set1_epi8(0x20));
  const __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(folded, _mm_set1_epi8('a' - 1)),
                                       _mm_cmplt_epi8(folded, _mm_set1_epi8('f' + 1)));
  return {static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(digit, letter))),
          static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8('-'))))};
}

// Whether every character is a hex digit but those at `dashes` (bits), which are '-'.
bool in_layout(char_classes c, unsigned dashes) {
  return ((c.hex & ~dashes) | (c.dash & dashes)) == 0xFFFF;
}

// Byte i: the value of the two hex digits at i and i + 1 (the first the high nibble), for
// characters already known to be digits; byte 15 is garbage (it has no second digit).
[[gnu::always_inline]] inline __m128i digit_pairs(__m128i x) {
  // A letter's low nibble is 1-6 and its 0x40 bit is set: +9 makes it 10-15. 16-bit
  // shifts, masked per byte, never carry a bit across bytes into the kept ones.
  const __m128i letter = _mm_and_si128(_mm_srli_epi16(x, 6), _mm_set1_epi8(1));
  const __m128i nibble = _mm_add_epi8(_mm_and_si128(x, _mm_set1_epi8(0x0F)),
                                      _mm_add_epi8(letter, _mm_slli_epi16(letter, 3)));
  const __m128i high =
      _mm_and_si128(_mm_slli_epi16(nibble, 4), _mm_set1_epi8(static_cast<char>(0xF0)));
  return _mm_or_si128(high, _mm_srli_si128(nibble, 1));
}

std::uint64_t low64(__m128i x) { return static_cast<std::uint64_t>(_mm_cvtsi128_si64(x)); }
std::uint64_t high64(__m128i x) { return low64(_mm_unpackhi_epi64(x, x)); }

}  // namespace
#endif

std::optional<uuid> uuid::parse(std::string_view text) {
  if (text.size() != 36) return std::nullopt;
  const char* t = text.data();
#if defined(__SSE2__) && defined(__x86_64__)
  // Three overlapping loads of 16 characters cover the 36 (0-15, 16-31, 20-35): parse()
  // runs for several ids of every event replayed, and checking and converting 16
  // characters at once costs about a sixth of the eight-at-a-time word code below.
  const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t));
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t + 16));
  const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(t + 20));
  // Dashes at 8 and 13 (a), 18 and 23 (b: 2 and 7), 23 (c: 3).
  if (!in_layout(classify(a), 1u << 8 | 1u << 13) || !in_layout(classify(b), 1u << 2 | 1u << 7) ||
      !in_layout(classify(c), 1u << 3)) {
    return std::nullopt;
  }
  // The pairs at even places of a and b, then at odd places (packus keeps the low byte of
  // each 16-bit lane: all fit, the high ones shifted down).
  const __m128i pa = digit_pairs(a), pb = digit_pairs(b);
  const __m128i mask = _mm_set1_epi16(0x00FF);
  const __m128i even = _mm_packus_epi16(_mm_and_si128(pa, mask), _mm_and_si128(pb, mask));
  const __m128i odd = _mm_packus_epi16(_mm_srli_epi16(pa, 8), _mm_srli_epi16(pb, 8));
  const __m128i tail = _mm_packus_epi16(_mm_and_si128(digit_pairs(c), mask), _mm_setzero_si128());
  // even: a0 a2 a4 a6 a8 a10 a12 a14 | b0 b2 b4 b6 b8 b10 b12 b14 (character places);
  // odd:  a1 a3 a5 a7 a9 a11 a13 a15 | b1 b3 b5 b7 b9 b11 b13 b15; tail: c0 c2 ... c14.
  // Bytes 0-3 at 0, 2, 4, 6; 4-5 at 9, 11; 6 at 14; 7 at 16 (b0); 8-9 at 19, 21 (b3, b5);
  // 10-13 at 24-30 (b8-b14); 14-15 at 32, 34 (c12, c14).
  const std::uint64_t e0 = low64(even), e1 = high64(even), o1 = high64(odd), o0 = low64(odd);
  const std::uint64_t lo =
      (e0 & 0xFFFF'FFFFull) | ((o0 >> 32) & 0xFFFF) << 32 | (e0 >> 56) << 48 | (e1 & 0xFF) << 56;
  const std::uint64_t hi = ((o1 >> 8) & 0xFFFF) | (e1 >> 32) << 16 | (low64(tail) >> 48) << 48;
  uuid u;
  std::memcpy(u.bytes.data(), &lo, 8);
  std::memcpy(u.bytes.data() + 8, &hi, 8);
  return u;
#else
  if (text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-') {
    return std::nullopt;
  }
  // Bytes 0-3, 4-7 (two groups of 4 digits), 8-11 (two more) and 12-15.
  std::uint32_t b[4];
  if (!hex8(load8(t), b[0]) || !hex8(load4(t + 9) | load4(t + 14) << 32, b[1]) ||
      !hex8(load4(t + 19) | load4(t + 24) << 32, b[2]) || !hex8(load8(t + 28), b[3])) {
    return std::nullopt;
  }
  uuid u;
  for (int i = 0; i < 4; ++i) store4(u.bytes.data() + 4 * i, b[i]);
  return u;
#endif
}

std::array<char, 36> uuid_chars(const uuid& u) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::array<char, 36> s;
  s.fill('-');  // written in place: a push_back per digit cost more than the rest
  for (size_t i = 0; i < 16; ++i) {
    s[kDigitAt[i]] = kHex[u.bytes[i] >> 4];
    s[kDigitAt[i] + 1] = kHex[u.bytes[i] & 0xF];
  }
  return s;
}

std::string uuid::to_string() const {
  const auto c = uuid_chars(*this);
  return std::string(c.data(), c.size());
}

bool uuid::is_nil() const {
  for (auto b : bytes)
    if (b != 0) return false;
  return true;
}

}  // namespace passage
