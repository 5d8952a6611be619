#include "common/uuid.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstring>

#include "common/random.h"
#include "common/uuid_text.h"

namespace passage {
namespace {

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

std::optional<uuid> uuid::parse(std::string_view text) {
  if (text.size() != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' ||
      text[23] != '-') {
    return std::nullopt;
  }
  // Bytes 0-3, 4-7 (two groups of 4 digits), 8-11 (two more) and 12-15.
  const char* t = text.data();
  std::uint32_t b[4];
  if (!hex8(load8(t), b[0]) || !hex8(load4(t + 9) | load4(t + 14) << 32, b[1]) ||
      !hex8(load4(t + 19) | load4(t + 24) << 32, b[2]) || !hex8(load8(t + 28), b[3])) {
    return std::nullopt;
  }
  uuid u;
  for (int i = 0; i < 4; ++i) store4(u.bytes.data() + 4 * i, b[i]);
  return u;
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
