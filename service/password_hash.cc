#include "service/password_hash.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <charconv>
#include <cstdint>
#include <vector>

#include "common/encoding.h"
#include "common/random.h"

namespace passage::service {
namespace {

constexpr std::size_t kSaltBytes = 16;
constexpr std::size_t kHashBytes = 32;
// Bounds on what a stored hash may ask for: a forged or corrupt one cannot make a login
// allocate gigabytes.
constexpr int kMaxLog2N = 20;
constexpr int kMaxR = 32;
constexpr int kMaxP = 16;

std::optional<std::vector<unsigned char>> unhex(std::string_view s) {
  if (s.size() % 2 != 0) return std::nullopt;
  std::vector<unsigned char> out(s.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    unsigned v = 0;
    auto r = std::from_chars(s.data() + 2 * i, s.data() + 2 * i + 2, v, 16);
    if (r.ec != std::errc() || r.ptr != s.data() + 2 * i + 2) return std::nullopt;
    out[i] = static_cast<unsigned char>(v);
  }
  return out;
}

bool derive(std::string_view password, const unsigned char* salt, std::size_t salt_len,
            const scrypt_cost& c, unsigned char* out, std::size_t out_len) {
  const std::uint64_t n = std::uint64_t{1} << c.log2_n;
  // scrypt needs 128 * r * (N + p + 2) bytes; allow that plus slack.
  const std::uint64_t maxmem =
      128ull * static_cast<std::uint64_t>(c.r) * (n + static_cast<std::uint64_t>(c.p) + 2) +
      (1u << 20);
  return EVP_PBE_scrypt(password.data(), password.size(), salt, salt_len, n,
                        static_cast<std::uint64_t>(c.r), static_cast<std::uint64_t>(c.p), maxmem,
                        out, out_len) == 1;
}

struct parsed {
  scrypt_cost cost;
  std::vector<unsigned char> salt;
  std::vector<unsigned char> hash;
};

std::optional<int> small_int(std::string_view s, int max) {
  int v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() || v < 1 || v > max) return std::nullopt;
  return v;
}

std::optional<parsed> parse(std::string_view stored) {
  std::array<std::string_view, 6> parts;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    auto dollar = stored.find('$');
    if ((dollar == std::string_view::npos) != (i + 1 == parts.size())) return std::nullopt;
    parts[i] = stored.substr(0, dollar);
    stored = dollar == std::string_view::npos ? std::string_view{} : stored.substr(dollar + 1);
  }
  if (parts[0] != "scrypt") return std::nullopt;
  auto log2_n = small_int(parts[1], kMaxLog2N);
  auto r = small_int(parts[2], kMaxR);
  auto p = small_int(parts[3], kMaxP);
  auto salt = unhex(parts[4]);
  auto hash = unhex(parts[5]);
  if (!log2_n || !r || !p || !salt || !hash || salt->empty() || hash->size() != kHashBytes) {
    return std::nullopt;
  }
  return parsed{{*log2_n, *r, *p}, std::move(*salt), std::move(*hash)};
}

}  // namespace

std::optional<std::string> hash_password(std::string_view password, scrypt_cost cost) {
  std::array<std::uint8_t, kSaltBytes> salt{};
  secure_random_bytes(salt);
  std::array<unsigned char, kHashBytes> out{};
  if (!derive(password, salt.data(), salt.size(), cost, out.data(), out.size())) {
    return std::nullopt;
  }
  return "scrypt$" + std::to_string(cost.log2_n) + "$" + std::to_string(cost.r) + "$" +
         std::to_string(cost.p) + "$" + hex_encode(salt.data(), salt.size()) + "$" +
         hex_encode(out.data(), out.size());
}

bool verify_password(std::string_view password, std::string_view stored) {
  auto p = parse(stored);
  if (!p) {
    // Same work as a real check, so timing does not tell whether the account exists.
    static const std::array<unsigned char, kSaltBytes> salt{};
    std::array<unsigned char, kHashBytes> out{};
    derive(password, salt.data(), salt.size(), scrypt_cost{}, out.data(), out.size());
    return false;
  }
  std::array<unsigned char, kHashBytes> out{};
  if (!derive(password, p->salt.data(), p->salt.size(), p->cost, out.data(), out.size())) {
    return false;
  }
  return CRYPTO_memcmp(out.data(), p->hash.data(), kHashBytes) == 0;
}

}  // namespace passage::service
