#include "service/signed_ids.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <array>
#include <cstring>
#include <string>

#include "common/encoding.h"
#include "common/hmac.h"

namespace passage::service {
namespace {

constexpr std::size_t kTagBytes = 16;
constexpr std::size_t kRawBytes = 32 + kTagBytes;

// HMAC-SHA256 of context || data into `out`; false if OpenSSL could not compute it (no
// memory): a tag that could not be computed is never taken for one (all zeros would match
// a forged token's zeros).
bool tag_of(const std::string& secret, std::string_view context, const unsigned char* data,
            std::size_t n, std::array<unsigned char, 32>& out) {
  return hmac_sha256(secret, {context, {reinterpret_cast<const char*>(data), n}}, out);
}

// base64url without padding, from OpenSSL's standard base64.
std::string to_base64url(const unsigned char* data, std::size_t n) {
  std::string b64 = base64_encode({reinterpret_cast<const char*>(data), n});
  for (auto& c : b64) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  while (!b64.empty() && b64.back() == '=') b64.pop_back();
  return b64;
}

std::optional<std::string> from_base64url(std::string_view s) {
  std::string b64(s);
  for (auto& c : b64) {
    if (c == '-')
      c = '+';
    else if (c == '_')
      c = '/';
    else if (c == '+' || c == '/' || c == '=')
      return std::nullopt;
  }
  std::size_t pad = (4 - b64.size() % 4) % 4;
  if (pad == 3) return std::nullopt;
  b64.append(pad, '=');
  return base64_decode(b64);
}

}  // namespace

std::string sign_ids(const std::string& secret, std::string_view prefix, std::string_view context,
                     const uuid& a, const uuid& b) {
  std::array<unsigned char, kRawBytes> raw{};
  std::memcpy(raw.data(), a.bytes.data(), 16);
  std::memcpy(raw.data() + 16, b.bytes.data(), 16);
  std::array<unsigned char, 32> tag{};
  // Unsigned (no memory for OpenSSL): random bytes, a token that will not verify, rather
  // than none at all for an answer already decided.
  if (!tag_of(secret, context, raw.data(), 32, tag)) RAND_bytes(tag.data(), int(tag.size()));
  std::memcpy(raw.data() + 32, tag.data(), kTagBytes);
  return std::string(prefix) + to_base64url(raw.data(), raw.size());
}

std::optional<std::pair<uuid, uuid>> verify_ids(const std::string& secret, std::string_view prefix,
                                                std::string_view context, std::string_view token) {
  if (!token.starts_with(prefix) || token.size() > 128) return std::nullopt;
  auto raw = from_base64url(token.substr(prefix.size()));
  if (!raw || raw->size() != kRawBytes) return std::nullopt;
  auto bytes = reinterpret_cast<const unsigned char*>(raw->data());
  std::array<unsigned char, 32> tag{};
  if (!tag_of(secret, context, bytes, 32, tag)) return std::nullopt;
  if (CRYPTO_memcmp(tag.data(), bytes + 32, kTagBytes) != 0) return std::nullopt;
  std::pair<uuid, uuid> ids;
  std::memcpy(ids.first.bytes.data(), bytes, 16);
  std::memcpy(ids.second.bytes.data(), bytes + 16, 16);
  return ids;
}

}  // namespace passage::service
