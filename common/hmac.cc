#include "common/hmac.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

#include <cstddef>
#include <memory>
#include <string>

namespace passage {
namespace {

struct mac_ctx_free {
  void operator()(EVP_MAC_CTX* c) const { EVP_MAC_CTX_free(c); }
};

EVP_MAC* hmac_algorithm() {
  static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);  // never freed
  return mac;
}

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// An HMAC-SHA256 context of this thread, set up with `key`.
struct keyed_context {
  std::unique_ptr<EVP_MAC_CTX, mac_ctx_free> ctx;
  std::string key;
  ~keyed_context() { OPENSSL_cleanse(key.data(), key.size()); }
};

// This thread's context for `key`, initialised for a new message; nullptr if OpenSSL
// failed.
EVP_MAC_CTX* keyed_mac(std::string_view key) {
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
  if (EVP_MAC_init(c.ctx.get(), bytes(key), key.size(), params) != 1) return nullptr;
  c.key.assign(key);
  return c.ctx.get();
}

}  // namespace

bool hmac_sha256(std::string_view key, std::initializer_list<std::string_view> parts,
                 std::array<unsigned char, 32>& out) {
  if (EVP_MAC_CTX* mac = keyed_mac(key)) {
    bool ok = true;
    for (auto part : parts) ok = ok && EVP_MAC_update(mac, bytes(part), part.size()) == 1;
    std::size_t len = 0;
    if (ok && EVP_MAC_final(mac, out.data(), &len, out.size()) == 1 && len == out.size()) {
      return true;
    }
  }
  // OpenSSL failed: the one-shot path, with this thread's error queue cleared.
  ERR_clear_error();
  std::string input;
  for (auto part : parts) input.append(part);
  unsigned int len = 0;
  return HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), bytes(input), input.size(),
              out.data(), &len) != nullptr &&
         len == out.size();
}

}  // namespace passage
