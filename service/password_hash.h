#pragma once
// Password hashes: scrypt (OpenSSL EVP_PBE_scrypt) with a random 16-byte salt, stored as
// "scrypt$<log2 N>$<r>$<p>$<salt hex>$<hash hex>" so the cost can be raised later without
// breaking older hashes. Deliberately slow (N = 2^15, r = 8, p = 1: 32 MiB and tens of
// milliseconds per hash); verification compares in constant time.
//
//   auto h = hash_password("correct horse battery");   // into LearnerPasswordSet
//   bool ok = verify_password(attempt, *h);

#include <optional>
#include <string>
#include <string_view>

namespace passage::service {

struct scrypt_cost {
  int log2_n = 15;
  int r = 8;
  int p = 1;
};

// nullopt only when OpenSSL fails (out of memory).
std::optional<std::string> hash_password(std::string_view password, scrypt_cost cost = {});
// False for a wrong password and for anything that is not a hash of this format. An empty
// `stored` still costs one hash, so an unknown account takes as long as a known one.
bool verify_password(std::string_view password, std::string_view stored);

}  // namespace passage::service
