#pragma once
// Text encodings shared by the modules: HTML escaping (the learner page, mail bodies)
// and base64 (ciphertexts in stored events, MIME bodies).

#include <string>
#include <string_view>

namespace passage {

// Escapes text for HTML element content and attribute values (& < > " ').
std::string html_escape(std::string_view text);

// Standard base64 (RFC 4648 §4), padded, on one line.
std::string base64_encode(std::string_view bytes);

}  // namespace passage
