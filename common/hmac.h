#pragma once
// SHA-256 and HMAC-SHA256 of messages given in parts, without OpenSSL's per-call algorithm
// fetch: derived ids, API key and request hashes, keyed email subjects, tokens.

#include <array>
#include <initializer_list>
#include <string_view>

namespace passage {

// SHA-256 of `parts` one after the other (no buffer to join them in). Through the
// low-level SHA-256 functions where OpenSSL still has them, else a context kept per thread
// (see hmac.cc: the same choice as for the HMAC's kept states).
//   const auto digest = sha256({"passage.mail|", id_text, "|", kind});
std::array<unsigned char, 32> sha256(std::initializer_list<std::string_view> parts);

// HMAC-SHA256 under `key` of `parts` one after the other, into `out`. Each thread keeps
// contexts set up for the last few keys it used (a node has a handful: the email pepper,
// the learner-token and link secrets): HMAC() fetched the algorithms and prepared the key
// on every call, which cost more than the hash. A kept context that fails is replaced by
// one-shot HMAC(). False only when OpenSSL cannot compute it at all (no memory): `out` is
// then no tag and must not be used as one.
bool hmac_sha256(std::string_view key, std::initializer_list<std::string_view> parts,
                 std::array<unsigned char, 32>& out);

}  // namespace passage
