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

// The standard base64 alphabet (RFC 4648 §4): the digit of each 6-bit value, in order.
inline constexpr std::string_view base64_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Standard base64 (RFC 4648 §4), padded, on one line.
std::string base64_encode(std::string_view bytes);
// The same appended to `out`, encoded in place (for a buffer reused or built piece by piece).
void base64_append(std::string& out, std::string_view bytes);
// The same in lines of 76 characters (57 bytes), each ended by CRLF, as MIME bodies are
// written (RFC 2045 §6.8), appended to `out`; the last line may be shorter. No bytes, no
// line. The text of base64_encode() of each 57-byte piece followed by CRLF.
//   base64_append_lines(wire, body);  // "Zm9vYmFy\r\n" for "foobar"
void base64_append_lines(std::string& out, std::string_view bytes);

// Standard padded base64 back to bytes; nullopt unless `text` is exactly that (length a
// multiple of 4, base64 alphabet, '=' only as padding). Strip MIME line breaks first.
std::optional<std::string> base64_decode(std::string_view text);

// Lower-case hex, two digits a byte.
std::string hex_encode(const unsigned char* bytes, std::size_t n);

}  // namespace passage
