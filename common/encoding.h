#pragma once
// Text encodings shared by the modules: HTML escaping (the learner page, mail bodies),
// base64 (ciphertexts in stored events, MIME bodies) and lower-case hex (digests, keys).

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace passage {

// Escapes text for HTML element content and attribute values (& < > " ').
std::string html_escape(std::string_view text);

// Standard base64 (RFC 4648 §4), padded, on one line.
std::string base64_encode(std::string_view bytes);
// The same appended to `out`, encoded in place (for a buffer reused or built piece by piece).
void base64_append(std::string& out, std::string_view bytes);

// Standard padded base64 back to bytes; nullopt unless `text` is exactly that (length a
// multiple of 4, base64 alphabet, '=' only as padding). Strip MIME line breaks first.
std::optional<std::string> base64_decode(std::string_view text);

// Lower-case hex, two digits a byte.
std::string hex_encode(const unsigned char* bytes, std::size_t n);

}  // namespace passage
