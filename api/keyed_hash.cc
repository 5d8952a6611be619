#include "api/keyed_hash.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <span>
#include <stdexcept>

#include "common/random.h"

namespace passage::api {
namespace {

std::array<unsigned char, 32> hmac_sha256(std::string_view key, std::string_view data) {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len)) {
    throw std::runtime_error("HMAC-SHA256 failed");
  }
  return out;
}

}  // namespace

keyed_hasher::keyed_hasher() {
  std::array<std::uint8_t, 32> k{};
  secure_random_bytes(k);
  key_.assign(reinterpret_cast<const char*>(k.data()), k.size());
}

keyed_hasher::keyed_hasher(std::string key) : key_(std::move(key)) {}

std::uint64_t keyed_hasher::hash64(std::string_view data) const {
  auto mac = hmac_sha256(key_, data);
  std::uint64_t v = 0;
  std::memcpy(&v, mac.data(), sizeof v);
  return v;
}

std::string keyed_hasher::hex(std::string_view data, std::size_t hex_chars) const {
  static constexpr char digits[] = "0123456789abcdef";
  auto mac = hmac_sha256(key_, data);
  hex_chars = std::min<std::size_t>(hex_chars, 64);
  std::string out;
  out.reserve(hex_chars);
  for (std::size_t i = 0; i < hex_chars; ++i) {
    unsigned char b = mac[i / 2];
    out.push_back(digits[i % 2 == 0 ? b >> 4 : b & 0xF]);
  }
  return out;
}

}  // namespace passage::api
