#pragma once
// Value types shared by commands, events and aggregate states: invite settings, tracks of
// an invite, the org lead form, roles, rejection reasons and the personal_data block that
// a codec encrypts per learner (SPEC §6).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/uuid.h"
#include "domain/duration.h"

namespace passage::domain {

// Every piece of personal data an event carries lives here and nowhere else, so a codec
// can encrypt exactly this block with the data subject's key (see data_subject() in
// events.h) and show "forgotten" once that key is destroyed. Empty fields mean "not given".
struct personal_data {
  std::string email_;
  std::string first_name_;
  std::string last_name_;
  std::map<std::string, std::string> answers_;  // lead-form answers by field name
  // LearnerPasswordSet only: the slow salted hash of the password (service/password_hash.h).
  // Encoded only when set, so the blocks of every other event are unchanged.
  std::string password_hash_;

  bool empty() const {
    return email_.empty() && first_name_.empty() && last_name_.empty() && answers_.empty() &&
           password_hash_.empty();
  }
  friend bool operator==(const personal_data&, const personal_data&) = default;
};

enum class invite_type { self_paced, live_event };
enum class access_mode { anyone, lead_form, allowed };

// API key roles, plus the server operator (configured at start-up, never issued as a key
// of an organization), which may only create organizations.
enum class role { owner, admin, professor, operator_ };
enum class learner_role { student };

enum class rejection_reason {
  expired,
  not_open_yet,
  full,
  not_allowed,
  deactivated,
  deleted,
  details_missing
};

std::string_view to_string(invite_type v);
std::string_view to_string(access_mode v);
std::string_view to_string(role v);  // operator_ -> "operator"
std::string_view to_string(learner_role v);
std::string_view to_string(rejection_reason v);
std::optional<invite_type> parse_invite_type(std::string_view s);
std::optional<access_mode> parse_access_mode(std::string_view s);
std::optional<role> parse_role(std::string_view s);
std::optional<rejection_reason> parse_rejection_reason(std::string_view s);
// The errc a rejection reason surfaces as (expired -> errc::expired, ...).
errc to_errc(rejection_reason r);

// A track as an invite lists it; `pausable_` is resolved at validation (defaults to the
// track's own setting).
struct invite_track {
  std::string track_id_;
  bool pausable_ = false;
  friend bool operator==(const invite_track&, const invite_track&) = default;
};

// Validated invite configuration (SPEC §2), as stored in InviteCreated / InviteUpdated.
struct invite_settings {
  invite_type type_ = invite_type::self_paced;
  std::string title_;
  std::string public_description_;
  std::string internal_description_;  // never shown to learners
  std::string image_url_;
  std::vector<invite_track> tracks_;
  // Content restrictions, snapshotted into each claim.
  access_duration access_duration_;   // Default: forever
  std::int64_t plays_per_track_ = 0;  // Default: 0 = unlimited
  // Invite restrictions.
  std::optional<timestamp> expires_at_;  // self-paced only; Default: never
  std::int64_t claim_limit_ = 0;         // unique learners; Default: 0 = unlimited
  std::optional<timestamp> starts_at_;   // live events only, required there
  std::optional<timestamp> ends_at_;     // live events only, required there, > starts_at
  access_mode access_ = access_mode::anyone;
  // Lower-cased and de-duplicated. Personal data of people who may not be learners yet:
  // kept in invite settings because they are the org's configuration, not a learner's.
  std::vector<std::string> allowed_emails_;
  std::vector<std::string> allowed_domains_;
  bool require_account_ = false;  // forces an email even for access anyone
  bool show_share_button_ = false;
  // Share of claim_limit at which InviteCapacityWarning is emitted. Default: 80.
  std::int64_t capacity_warning_percent_ = 80;
  // Opt-in: mail a digest of new claims to the contact email of the API key that created
  // the invite (at most one mail per digest window). Default: false.
  bool notify_on_claim_ = false;

  friend bool operator==(const invite_settings&, const invite_settings&) = default;
};

// Content restrictions copied into a claim at claim time; later edits never touch it.
struct claim_snapshot {
  std::vector<invite_track> tracks_;
  access_duration access_duration_;
  std::int64_t plays_per_track_ = 0;
  friend bool operator==(const claim_snapshot&, const claim_snapshot&) = default;
};

// One configurable field of the org lead form (first name, last name and email are always
// collected and are not listed here).
struct lead_form_field {
  std::string name_;  // [a-z0-9_.-]{1,64}, the answers_ key
  std::string label_;
  bool required_ = false;  // forced true for "consent"
  friend bool operator==(const lead_form_field&, const lead_form_field&) = default;
};

struct lead_form {
  std::vector<lead_form_field> fields_;
  friend bool operator==(const lead_form&, const lead_form&) = default;
};

inline constexpr std::string_view consent_field_name = "consent";

}  // namespace passage::domain
