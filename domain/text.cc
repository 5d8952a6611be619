#include "domain/text.h"

namespace passage::domain {

std::string to_lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string_view trim(std::string_view s) {
  const auto is_space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
  };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::string normalize_email(std::string_view email) {
  std::string out;
  append_normalized_email(out, email);
  return out;
}

void append_normalized_email(std::string& out, std::string_view email) {
  const std::string_view trimmed = trim(email);
  const std::size_t n = out.size();
  out.append(trimmed);
  for (std::size_t i = n; i < out.size(); ++i) {
    if (out[i] >= 'A' && out[i] <= 'Z') out[i] = static_cast<char>(out[i] - 'A' + 'a');
  }
}

bool is_valid_email(std::string_view email) {
  email = trim(email);
  if (email.empty() || email.size() > 254) return false;
  const auto at = email.find('@');
  if (at == std::string_view::npos || at == 0 ||
      email.find('@', at + 1) != std::string_view::npos) {
    return false;
  }
  const std::string_view domain = email.substr(at + 1);
  if (domain.empty() || domain.front() == '.' || domain.back() == '.') return false;
  if (domain.find('.') == std::string_view::npos) return false;
  for (char c : email) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return false;
  }
  return true;
}

std::string_view email_domain(std::string_view normalized_email) {
  const auto at = normalized_email.rfind('@');
  if (at == std::string_view::npos) return {};
  return normalized_email.substr(at + 1);
}

namespace {

bool is_id_char(char c, bool allow_upper) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' ||
         (allow_upper && c >= 'A' && c <= 'Z');
}

bool is_id(std::string_view s, bool allow_upper) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!is_id_char(c, allow_upper)) return false;
  }
  return true;
}

}  // namespace

bool is_valid_track_id(std::string_view id) { return is_id(id, true); }
bool is_valid_field_name(std::string_view name) { return is_id(name, false); }

}  // namespace passage::domain
