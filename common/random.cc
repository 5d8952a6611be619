#include "common/random.h"

#include <openssl/rand.h>

#include <climits>
#include <stdexcept>
#include <vector>

namespace passage {

void secure_random_bytes(std::span<std::uint8_t> out) {
  while (!out.empty()) {
    int n = out.size() > INT_MAX ? INT_MAX : static_cast<int>(out.size());
    if (RAND_bytes(out.data(), n) != 1) {
      throw std::runtime_error("OpenSSL RAND_bytes failed: no entropy available");
    }
    out = out.subspan(static_cast<size_t>(n));
  }
}

std::string secure_random_hex(std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::vector<std::uint8_t> buf(n);
  secure_random_bytes(buf);
  std::string s;
  s.reserve(2 * n);
  for (auto b : buf) {
    s.push_back(kHex[b >> 4]);
    s.push_back(kHex[b & 0xF]);
  }
  return s;
}

}  // namespace passage
