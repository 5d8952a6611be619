#include "domain/password.h"

#include <cstdint>

namespace passage::domain {
namespace {

// Code points of well-formed UTF-8 (no overlong forms, surrogates or values past
// U+10FFFF, no C0/C1 controls or DEL); nullopt when `s` is not.
std::optional<std::size_t> count_code_points(std::string_view s) {
  std::size_t count = 0;
  for (std::size_t i = 0; i < s.size(); ++count) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::uint32_t cp = 0;
    std::size_t len = 0;
    if (c < 0x80) {
      cp = c;
      len = 1;
    } else if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1F;
      len = 2;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0F;
      len = 3;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07;
      len = 4;
    } else {
      return std::nullopt;
    }
    if (i + len > s.size()) return std::nullopt;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return std::nullopt;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr std::uint32_t min_of_len[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_of_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return std::nullopt;
    }
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) return std::nullopt;
    i += len;
  }
  return count;
}

}  // namespace

domain_result<bool> check_password_policy(std::string_view password) {
  if (password.size() > password_max_bytes) {
    return make_error(errc::invalid_request, "password",
                      "at most " + std::to_string(password_max_bytes) + " bytes");
  }
  auto chars = count_code_points(password);
  if (!chars) {
    return make_error(errc::invalid_request, "password",
                      "must be UTF-8 text without control characters");
  }
  if (*chars < password_min_chars) {
    return make_error(errc::invalid_request, "password",
                      "at least " + std::to_string(password_min_chars) + " characters");
  }
  return true;
}

password_setup_issued issue_password_setup_for(const learner_registered& registered,
                                               const uuid& setup_id,
                                               std::optional<uuid> invite_id) {
  password_setup_issued e;
  e.org_id_ = registered.org_id_;
  e.learner_id_ = registered.learner_id_;
  e.setup_id_ = setup_id;
  e.invite_id_ = invite_id;
  e.issued_at_ = registered.registered_at_;
  e.expires_at_ = registered.registered_at_ + password_setup_validity;
  e.personal_data_.email_ = registered.personal_data_.email_;
  e.personal_data_.first_name_ = registered.personal_data_.first_name_;
  return e;
}

}  // namespace passage::domain
