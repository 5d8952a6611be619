#include "service/signed_ids.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <cstring>

#include "common/encoding.h"

namespace passage::service {
namespace {

constexpr std::size_t kTagBytes = 16;
constexpr std::size_t kRawBytes = 32 + kTagBytes;

std::array<unsigned char, 32> tag_of(const std::string& secret, std::string_view context,
                                     const unsigned char* data, std::size_t n) {
  std::string input(context);
  input.append(reinterpret_cast<const char*>(data), n);
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), out.data(), &len);
  return out;
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
  auto tag = tag_of(secret, context, raw.data(), 32);
  std::memcpy(raw.data() + 32, tag.data(), kTagBytes);
  return std::string(prefix) + to_base64url(raw.data(), raw.size());
}

std::optional<std::pair<uuid, uuid>> verify_ids(const std::string& secret, std::string_view prefix,
                                                std::string_view context, std::string_view token) {
  if (!token.starts_with(prefix) || token.size() > 128) return std::nullopt;
  auto raw = from_base64url(token.substr(prefix.size()));
  if (!raw || raw->size() != kRawBytes) return std::nullopt;
  auto bytes = reinterpret_cast<const unsigned char*>(raw->data());
  auto tag = tag_of(secret, context, bytes, 32);
  if (CRYPTO_memcmp(tag.data(), bytes + 32, kTagBytes) != 0) return std::nullopt;
  std::pair<uuid, uuid> ids;
  std::memcpy(ids.first.bytes.data(), bytes, 16);
  std::memcpy(ids.second.bytes.data(), bytes + 16, 16);
  return ids;
}

}  // namespace passage::service
