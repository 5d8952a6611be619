#include "common/hmac.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#ifndef OPENSSL_NO_DEPRECATED_3_0  // see keyed_context
#include <openssl/sha.h>
#endif

#include <algorithm>
#include <array>
#include <cstddef>
#include <memory>
#include <string>

namespace passage {
namespace {

const EVP_MD* sha256_md() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);  // never freed
  return md;
}

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

constexpr std::size_t block_size = 64;  // SHA-256's

// Two implementations of the kept states. The default copies SHA256_CTX structs: the
// low-level SHA-256 functions are deprecated in OpenSSL 3 but still there (its own
// provider computes SHA-256 with them, SHA extensions included), and a SHA256_CTX is a
// plain struct: starting a message from a kept state is a copy of 112 bytes, where
// EVP_MD_CTX_copy_ex() frees and allocates the provider's context and goes through its
// dispatch for every step, twice per MAC (about half the cost of a short message: the
// email hash of every LearnerRegistered a replay reads). An OpenSSL built or used without
// the deprecated API (OPENSSL_NO_DEPRECATED_3_0, e.g. no-deprecated builds or
// OPENSSL_API_COMPAT=30000 with OPENSSL_NO_DEPRECATED) has no SHA256_CTX: there the states
// are EVP_MD_CTX copies. Those also go through provider selection, which the low-level
// functions bypass: a FIPS deployment (the FIPS provider's SHA-256 only) must build so.
// Both compute the same MACs (RFC 4231's vectors in the tests).
#ifndef OPENSSL_NO_DEPRECATED_3_0
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

// HMAC-SHA256 (RFC 2104) under one key, the key's padded blocks hashed once:
// H((K ^ opad) || H((K ^ ipad) || m)) starts from copies of `inner` and `outer`. That is
// what OpenSSL's own HMAC does inside EVP_MAC, without the MAC layer's parameter handling
// around every message.
struct keyed_context {
  SHA256_CTX inner{};
  SHA256_CTX outer{};
  std::string key;
  bool ready = false;  // `inner` and `outer` hold `key`'s pads
  keyed_context() = default;
  keyed_context(const keyed_context&) = delete;
  keyed_context& operator=(const keyed_context&) = delete;
  ~keyed_context() { wipe(); }

  void wipe() {
    OPENSSL_cleanse(key.data(), key.size());
    OPENSSL_cleanse(&inner, sizeof inner);
    OPENSSL_cleanse(&outer, sizeof outer);
  }

  bool set(std::string_view k) {
    wipe();
    key.clear();
    ready = false;
    std::array<unsigned char, block_size> pad{};
    bool ok = true;
    if (k.size() > block_size) {  // a long key is hashed first
      unsigned int len = 0;
      ok = sha256_md() != nullptr &&
           EVP_Digest(k.data(), k.size(), pad.data(), &len, sha256_md(), nullptr) == 1;
    } else {
      std::copy(k.begin(), k.end(), pad.begin());
    }
    for (auto& b : pad) b ^= 0x36;
    ok = ok && SHA256_Init(&inner) == 1 && SHA256_Update(&inner, pad.data(), pad.size()) == 1;
    for (auto& b : pad) b ^= 0x36 ^ 0x5c;
    ok = ok && SHA256_Init(&outer) == 1 && SHA256_Update(&outer, pad.data(), pad.size()) == 1;
    OPENSSL_cleanse(pad.data(), pad.size());
    if (ok) key.assign(k);
    ready = ok;
    return ok;
  }
};
#else
struct md_ctx_free {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }  // wipes the state
};
using md_ctx = std::unique_ptr<EVP_MD_CTX, md_ctx_free>;

// HMAC-SHA256 (RFC 2104) under one key, the key's padded blocks hashed once:
// H((K ^ opad) || H((K ^ ipad) || m)) starts from copies of `inner` and `outer`. That is
// what OpenSSL's own HMAC does inside EVP_MAC, without the MAC layer's parameter handling
// around every message (a fifth of the cost of a short message).
struct keyed_context {
  md_ctx inner{EVP_MD_CTX_new()};
  md_ctx outer{EVP_MD_CTX_new()};
  std::string key;
  bool ready = false;  // `inner` and `outer` hold `key`'s pads
  ~keyed_context() { OPENSSL_cleanse(key.data(), key.size()); }

  bool set(std::string_view k) {
    OPENSSL_cleanse(key.data(), key.size());
    key.clear();
    ready = false;
    if (!inner || !outer) return false;
    std::array<unsigned char, block_size> pad{};
    bool ok = true;
    if (k.size() > block_size) {  // a long key is hashed first
      unsigned int len = 0;
      ok = EVP_Digest(k.data(), k.size(), pad.data(), &len, sha256_md(), nullptr) == 1;
    } else {
      std::copy(k.begin(), k.end(), pad.begin());
    }
    for (auto& b : pad) b ^= 0x36;
    ok = ok && EVP_DigestInit_ex2(inner.get(), sha256_md(), nullptr) == 1 &&
         EVP_DigestUpdate(inner.get(), pad.data(), pad.size()) == 1;
    for (auto& b : pad) b ^= 0x36 ^ 0x5c;
    ok = ok && EVP_DigestInit_ex2(outer.get(), sha256_md(), nullptr) == 1 &&
         EVP_DigestUpdate(outer.get(), pad.data(), pad.size()) == 1;
    OPENSSL_cleanse(pad.data(), pad.size());
    if (ok) key.assign(k);
    ready = ok;
    return ok;
  }
};
#endif

// This thread's context for `key`; nullptr if OpenSSL failed.
const keyed_context* keyed(std::string_view key) {
  thread_local std::array<keyed_context, 4> contexts;
  thread_local std::size_t next = 0;  // the slot a new key takes (round robin)
  for (auto& c : contexts) {
    if (c.ready && c.key == key) return &c;
  }
  auto& c = contexts[next];
  next = (next + 1) % contexts.size();
  return c.set(key) ? &c : nullptr;
}

#ifndef OPENSSL_NO_DEPRECATED_3_0
bool keyed_mac(std::string_view key, std::initializer_list<std::string_view> parts,
               std::array<unsigned char, 32>& out) {
  const keyed_context* c = keyed(key);
  if (c == nullptr) return false;
  std::array<unsigned char, 32> inner_hash{};
  SHA256_CTX work = c->inner;
  bool ok = true;
  for (auto part : parts) ok = ok && SHA256_Update(&work, part.data(), part.size()) == 1;
  ok = ok && SHA256_Final(inner_hash.data(), &work) == 1;
  work = c->outer;
  ok = ok && SHA256_Update(&work, inner_hash.data(), inner_hash.size()) == 1 &&
       SHA256_Final(out.data(), &work) == 1;
  // Neither the inner hash nor a state derived from the key's pads stays on the stack.
  OPENSSL_cleanse(inner_hash.data(), inner_hash.size());
  OPENSSL_cleanse(&work, sizeof work);
  return ok;
}
#pragma GCC diagnostic pop
#else
bool keyed_mac(std::string_view key, std::initializer_list<std::string_view> parts,
               std::array<unsigned char, 32>& out) {
  thread_local md_ctx work{EVP_MD_CTX_new()};
  const keyed_context* c = keyed(key);
  if (c == nullptr || !work) return false;
  std::array<unsigned char, 32> inner_hash{};
  unsigned int len = 0, outer_len = 0;
  bool ok = EVP_MD_CTX_copy_ex(work.get(), c->inner.get()) == 1;
  for (auto part : parts) ok = ok && EVP_DigestUpdate(work.get(), part.data(), part.size()) == 1;
  ok = ok && EVP_DigestFinal_ex(work.get(), inner_hash.data(), &len) == 1 &&
       len == inner_hash.size() && EVP_MD_CTX_copy_ex(work.get(), c->outer.get()) == 1 &&
       EVP_DigestUpdate(work.get(), inner_hash.data(), inner_hash.size()) == 1 &&
       EVP_DigestFinal_ex(work.get(), out.data(), &outer_len) == 1 && outer_len == out.size();
  OPENSSL_cleanse(inner_hash.data(), inner_hash.size());
  // Once finished, the work context holds only the result's state: the copy of a pad's
  // state was wiped by the next copy (EVP_MD_CTX_copy_ex frees what it replaces).
  return ok;
}
#endif

}  // namespace

std::array<unsigned char, 32> sha256(std::initializer_list<std::string_view> parts) {
  std::array<unsigned char, 32> digest{};
#ifndef OPENSSL_NO_DEPRECATED_3_0
  // On a SHA256_CTX (see keyed_context): for these short messages EVP's provider dispatch
  // cost more than the hash (two derived ids per welcome mail), and the one-shot SHA256()
  // runs through EVP_Q_digest in OpenSSL 3 (an algorithm fetch per call).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  SHA256_CTX c;
  SHA256_Init(&c);
  // Short parts are joined on the stack first: one SHA256_Update (~50 instructions each)
  // for the ~60 bytes of a derived id's four parts.
  char joined[128];
  std::size_t n = 0;
  for (auto part : parts) {
    if (part.size() > sizeof joined - n) {
      SHA256_Update(&c, joined, n);
      n = 0;
      if (part.size() > sizeof joined) {
        SHA256_Update(&c, part.data(), part.size());
        continue;
      }
    }
    std::copy(part.begin(), part.end(), joined + n);
    n += part.size();
  }
  SHA256_Update(&c, joined, n);
  SHA256_Final(digest.data(), &c);
#pragma GCC diagnostic pop
#else
  // One context per thread, reused: a new one per digest (EVP_Digest) costs more than the
  // digest of a few bytes.
  thread_local const md_ctx ctx{EVP_MD_CTX_new()};
  const EVP_MD* md = sha256_md() ? sha256_md() : EVP_sha256();
  unsigned int len = 0;
  // A failure of the reused context (not expected) leaves no error queued on the thread,
  // where a later caller's ERR_get_error() would take it for its own.
  ERR_set_mark();
  bool ok = ctx && EVP_DigestInit_ex2(ctx.get(), md, nullptr) == 1;
  for (auto part : parts) ok = ok && EVP_DigestUpdate(ctx.get(), part.data(), part.size()) == 1;
  if (ok && EVP_DigestFinal_ex(ctx.get(), digest.data(), &len) == 1) {
    ERR_clear_last_mark();
  } else {
    ERR_pop_to_mark();
    std::string input;
    for (auto part : parts) input.append(part);
    EVP_Digest(input.data(), input.size(), digest.data(), &len, md, nullptr);
  }
#endif
  return digest;
}

bool hmac_sha256(std::string_view key, std::initializer_list<std::string_view> parts,
                 std::array<unsigned char, 32>& out) {
  if (keyed_mac(key, parts, out)) return true;
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
