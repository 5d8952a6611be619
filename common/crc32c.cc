#include "common/crc32c.h"

#include "common/crc32c_internal.h"

#include <array>
#include <cstring>

namespace passage {
namespace {

constexpr std::array<std::uint32_t, 256> make_table() {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto kTable = make_table();

std::uint32_t crc_table(const unsigned char* p, size_t n, std::uint32_t c) {
  while (n--) c = kTable[(c ^ *p++) & 0xFF] ^ (c >> 8);
  return c;
}

#if defined(__x86_64__)
// The CRC instruction takes 3 cycles but can start one every cycle: over a long enough
// input, three independent CRCs of consecutive blocks run at once and are then combined
// (Mark Adler's crc32c.c does the same). Combining needs a CRC "shifted" over a block's
// length of zero bytes: a linear map of the 32-bit register, applied through four tables
// of 256 entries. Blocks of 128 bytes: a log record (a few hundred bytes, checked for
// every event a replay reads) has at least one group of three.
constexpr std::size_t kBlock = 128;

// GF(2) 32x32 matrices as 32 columns: the image of the register under the map.
constexpr std::uint32_t gf2_times(const std::array<std::uint32_t, 32>& mat, std::uint32_t vec) {
  std::uint32_t sum = 0;
  for (int i = 0; vec != 0; ++i, vec >>= 1) {
    if (vec & 1) sum ^= mat[static_cast<std::size_t>(i)];
  }
  return sum;
}

constexpr std::array<std::uint32_t, 32> gf2_square(const std::array<std::uint32_t, 32>& mat) {
  std::array<std::uint32_t, 32> sq{};
  for (std::size_t n = 0; n < 32; ++n) sq[n] = gf2_times(mat, mat[n]);
  return sq;
}

// The map of `bytes` zero bytes (a power of two) fed to the register, as tables: one per
// byte of the register.
constexpr std::array<std::array<std::uint32_t, 256>, 4> make_zeros_tables(std::size_t bytes) {
  std::array<std::uint32_t, 32> op{};  // one zero bit
  op[0] = 0x82F63B78u;
  for (std::size_t n = 1; n < 32; ++n) op[n] = 1u << (n - 1);
  for (std::size_t bits = 1; bits < 8 * bytes; bits *= 2) op = gf2_square(op);
  std::array<std::array<std::uint32_t, 256>, 4> t{};
  for (std::uint32_t n = 0; n < 256; ++n) {
    for (std::size_t b = 0; b < 4; ++b) t[b][n] = gf2_times(op, n << (8 * b));
  }
  return t;
}
constexpr auto kShiftBlock = make_zeros_tables(kBlock);

std::uint32_t shift_block(std::uint32_t c) {
  return kShiftBlock[0][c & 0xFF] ^ kShiftBlock[1][(c >> 8) & 0xFF] ^
         kShiftBlock[2][(c >> 16) & 0xFF] ^ kShiftBlock[3][c >> 24];
}

__attribute__((target("sse4.2"))) std::uint32_t crc_hw(const unsigned char* p, size_t n,
                                                       std::uint32_t c) {
  std::uint64_t c64 = c;
  while (n >= 3 * kBlock) {
    std::uint64_t c1 = 0, c2 = 0;
    for (std::size_t i = 0; i < kBlock; i += 8) {
      std::uint64_t v0, v1, v2;
      std::memcpy(&v0, p + i, 8);
      std::memcpy(&v1, p + kBlock + i, 8);
      std::memcpy(&v2, p + 2 * kBlock + i, 8);
      c64 = __builtin_ia32_crc32di(c64, v0);
      c1 = __builtin_ia32_crc32di(c1, v1);
      c2 = __builtin_ia32_crc32di(c2, v2);
    }
    // CRC(a b) = shift(CRC(a)) ^ CRC0(b), CRC0 started from 0 (the register is linear).
    std::uint32_t combined =
        shift_block(static_cast<std::uint32_t>(c64)) ^ static_cast<std::uint32_t>(c1);
    combined = shift_block(combined) ^ static_cast<std::uint32_t>(c2);
    c64 = combined;
    p += 3 * kBlock;
    n -= 3 * kBlock;
  }
  while (n >= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    c64 = __builtin_ia32_crc32di(c64, v);
    p += 8;
    n -= 8;
  }
  c = static_cast<std::uint32_t>(c64);
  while (n--) c = __builtin_ia32_crc32qi(c, *p++);
  return c;
}
const bool kHaveSse42 = __builtin_cpu_supports("sse4.2");
#endif

}  // namespace

std::uint32_t crc32c(std::string_view data, std::uint32_t seed) {
  auto p = reinterpret_cast<const unsigned char*>(data.data());
  std::uint32_t c = ~seed;
#if defined(__x86_64__)
  if (kHaveSse42) return ~crc_hw(p, data.size(), c);
#endif
  return ~crc_table(p, data.size(), c);
}

namespace crc32c_internal {

std::uint32_t by_table(std::string_view data, std::uint32_t seed) {
  return ~crc_table(reinterpret_cast<const unsigned char*>(data.data()), data.size(), ~seed);
}

bool have_sse42() {
#if defined(__x86_64__)
  return kHaveSse42;
#else
  return false;
#endif
}

std::uint32_t by_sse42(std::string_view data, std::uint32_t seed) {
#if defined(__x86_64__)
  if (kHaveSse42) {
    return ~crc_hw(reinterpret_cast<const unsigned char*>(data.data()), data.size(), ~seed);
  }
#endif
  return by_table(data, seed);  // no instruction: have_sse42() told the caller so
}

}  // namespace crc32c_internal

}  // namespace passage
