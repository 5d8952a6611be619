#pragma once
// Errors of the domain module: a stable code, the offending field and a human message.
// Rule violations are values (result<T, domain_error>), never exceptions; the api module
// maps each errc to an HTTP status in one place.

#include <string>
#include <string_view>
#include <system_error>

#include "common/result.h"

namespace passage::domain {

// Stable snake_case codes (see to_string); never renumber or rename, clients match on them.
enum class [[nodiscard]] errc{
    invalid_request = 1,  // malformed or invalid command field
    not_found,            // no such aggregate (or it belongs to another organization)
    forbidden,            // the caller's role may not do this
    version_conflict,     // expected version does not match the stream
    already_exists,       // creating an aggregate that exists
    expired,              // invite past expires_at / ends_at
    not_open_yet,         // live event more than 24 h before starts_at
    full,                 // claim limit reached
    not_allowed,          // access rule refused the learner
    deactivated,          // invite is deactivated
    deleted,              // invite is deleted
    details_missing,      // email or lead-form details required but absent
    access_expired,       // claim's access duration is over
    play_limit_reached,   // plays_per_track used up
    not_pausable,         // track of the claim may not be paused
    invalid_state,        // command does not fit the aggregate's current state
    forgotten,            // learner was forgotten; personal data can no longer be recorded
    token_invalid,        // a set-password link that was never issued (or its learner is gone)
    token_used,           // a set-password link already used
    token_expired,        // a set-password link past its 7 days
    token_replaced,       // a set-password link replaced by a newer one
    // notify_on_claim turned on while the invite's creating API key has no contact email
    notify_email_missing,
};

std::string_view to_string(errc code);

struct domain_error {
  errc code_ = errc::invalid_request;
  std::string field_;    // offending field ("claim_limit", "tracks[1].track_id"), may be empty
  std::string message_;  // for humans; not a contract

  friend bool operator==(const domain_error&, const domain_error&) = default;
};

[[nodiscard]] inline domain_error make_error(errc code, std::string field, std::string message) {
  return domain_error{code, std::move(field), std::move(message)};
}

template <typename T>
using domain_result = result<T, domain_error>;

// std::error_code integration, so other modules can carry domain codes generically.
const std::error_category& domain_category() noexcept;
inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), domain_category()};
}

}  // namespace passage::domain

template <>
struct std::is_error_code_enum<passage::domain::errc> : std::true_type {};
