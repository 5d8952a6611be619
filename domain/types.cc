#include "domain/types.h"

#include <array>
#include <utility>

namespace passage::domain {

namespace {

template <typename E, std::size_t N>
std::optional<E> lookup(const std::array<std::pair<E, std::string_view>, N>& table,
                        std::string_view s) {
  for (const auto& [value, name] : table) {
    if (name == s) return value;
  }
  return std::nullopt;
}

template <typename E, std::size_t N>
std::string_view name_of(const std::array<std::pair<E, std::string_view>, N>& table, E v) {
  for (const auto& [value, name] : table) {
    if (value == v) return name;
  }
  return "unknown";
}

constexpr std::array<std::pair<invite_type, std::string_view>, 2> invite_types{{
    {invite_type::self_paced, "self_paced"},
    {invite_type::live_event, "live_event"},
}};

constexpr std::array<std::pair<access_mode, std::string_view>, 3> access_modes{{
    {access_mode::anyone, "anyone"},
    {access_mode::lead_form, "lead_form"},
    {access_mode::allowed, "allowed"},
}};

constexpr std::array<std::pair<role, std::string_view>, 4> roles{{
    {role::owner, "owner"},
    {role::admin, "admin"},
    {role::professor, "professor"},
    {role::operator_, "operator"},
}};

constexpr std::array<std::pair<rejection_reason, std::string_view>, 7> rejection_reasons{{
    {rejection_reason::expired, "expired"},
    {rejection_reason::not_open_yet, "not_open_yet"},
    {rejection_reason::full, "full"},
    {rejection_reason::not_allowed, "not_allowed"},
    {rejection_reason::deactivated, "deactivated"},
    {rejection_reason::deleted, "deleted"},
    {rejection_reason::details_missing, "details_missing"},
}};

}  // namespace

std::string_view to_string(invite_type v) { return name_of(invite_types, v); }
std::string_view to_string(access_mode v) { return name_of(access_modes, v); }
std::string_view to_string(role v) { return name_of(roles, v); }
std::string_view to_string(learner_role) { return "student"; }
std::string_view to_string(rejection_reason v) { return name_of(rejection_reasons, v); }

std::optional<invite_type> parse_invite_type(std::string_view s) { return lookup(invite_types, s); }
std::optional<access_mode> parse_access_mode(std::string_view s) { return lookup(access_modes, s); }
std::optional<role> parse_role(std::string_view s) { return lookup(roles, s); }
std::optional<rejection_reason> parse_rejection_reason(std::string_view s) {
  return lookup(rejection_reasons, s);
}

errc to_errc(rejection_reason r) {
  switch (r) {
    case rejection_reason::expired:
      return errc::expired;
    case rejection_reason::not_open_yet:
      return errc::not_open_yet;
    case rejection_reason::full:
      return errc::full;
    case rejection_reason::not_allowed:
      return errc::not_allowed;
    case rejection_reason::deactivated:
      return errc::deactivated;
    case rejection_reason::deleted:
      return errc::deleted;
    case rejection_reason::details_missing:
      return errc::details_missing;
  }
  return errc::invalid_request;
}

}  // namespace passage::domain
