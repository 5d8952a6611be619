#include "service/signed_ids.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <array>
#include <cstring>
#include <memory>
#include <string>

#include "common/encoding.h"

namespace passage::service {
namespace {

constexpr std::size_t kTagBytes = 16;
constexpr std::size_t kRawBytes = 32 + kTagBytes;

struct mac_ctx_free {
  void operator()(EVP_MAC_CTX* c) const { EVP_MAC_CTX_free(c); }
};

EVP_MAC* hmac_algorithm() {
  static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);  // never freed
  return mac;
}

// An HMAC-SHA256 context of this thread, set up with `key`.
struct keyed_context {
  std::unique_ptr<EVP_MAC_CTX, mac_ctx_free> ctx;
  std::string key;
  ~keyed_context() { OPENSSL_cleanse(key.data(), key.size()); }
};

// This thread's context for `key`, initialised for a new message; nullptr if OpenSSL
// failed. HMAC() fetched SHA-256 and HMAC and prepared the key on every call, which cost
// more than the hash (a claim signs a learner token). A node has a few secrets (learner
// tokens, personal links, password setups): a handful of contexts per thread, reused.
EVP_MAC_CTX* keyed_mac(const std::string& key) {
  thread_local std::array<keyed_context, 4> contexts;
  thread_local std::size_t next = 0;  // the slot a new key takes (round robin)
  if (hmac_algorithm() == nullptr) return nullptr;
  for (auto& c : contexts) {
    if (c.ctx && c.key == key) {
      return EVP_MAC_init(c.ctx.get(), nullptr, 0, nullptr) == 1 ? c.ctx.get() : nullptr;
    }
  }
  auto& c = contexts[next];
  next = (next + 1) % contexts.size();
  OPENSSL_cleanse(c.key.data(), c.key.size());
  c.key.clear();
  if (!c.ctx) c.ctx.reset(EVP_MAC_CTX_new(hmac_algorithm()));
  if (!c.ctx) return nullptr;
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  if (EVP_MAC_init(c.ctx.get(), reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                   params) != 1) {
    return nullptr;
  }
  c.key = key;
  return c.ctx.get();
}

// HMAC-SHA256 of context || data into `out`; false if OpenSSL failed both ways (no memory):
// a tag that could not be computed is never taken for one (all zeros would match a forged
// token's zeros).
bool tag_of(const std::string& secret, std::string_view context, const unsigned char* data,
            std::size_t n, std::array<unsigned char, 32>& out) {
  std::size_t len = 0;
  EVP_MAC_CTX* mac = keyed_mac(secret);
  if (mac != nullptr &&
      EVP_MAC_update(mac, reinterpret_cast<const unsigned char*>(context.data()), context.size()) ==
          1 &&
      EVP_MAC_update(mac, data, n) == 1 && EVP_MAC_final(mac, out.data(), &len, out.size()) == 1 &&
      len == out.size()) {
    return true;
  }
  // OpenSSL failed: the one-shot path, as before, with this thread's error queue cleared.
  ERR_clear_error();
  std::string input(context);
  input.append(reinterpret_cast<const char*>(data), n);
  unsigned int one_shot_len = 0;
  return HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
              reinterpret_cast<const unsigned char*>(input.data()), input.size(), out.data(),
              &one_shot_len) != nullptr &&
         one_shot_len == out.size();
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
