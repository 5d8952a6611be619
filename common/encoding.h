#pragma once
// Text encodings shared by the modules: HTML escaping (the learner page, mail bodies),
// base64 (ciphertexts in stored events, MIME bodies) and lower-case hex (digests, keys).

#include <cstddef>
#include <string>
#include <string_view>

namespace passage {

// Escapes text for HTML element content and attribute values (& < > " ').
std::string html_escape(std::string_view text);

// Standard base64 (RFC 4648 §4), padded, on one line.
std::string base64_encode(std::string_view bytes);

// Lower-case hex, two digits a byte.
std::string hex_encode(const unsigned char* bytes, std::size_t n);

}  // namespace passage
