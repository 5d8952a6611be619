#pragma once
// The events of Passage (SPEC §3). Names and schema versions are a public contract: Kafka
// consumers match on `type_name`. Each struct is plain data; `event` is their union, and
// stream_of() says which stream an event is appended to.
//
// Personal data sits only in `personal_data_` members (see types.h); data_subject() names
// the learner whose key encrypts it.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/clock.h"
#include "common/uuid.h"
#include "domain/types.h"

namespace passage::domain {

#define PASSAGE_EVENT(name)                           \
  static constexpr std::string_view type_name = name; \
  static constexpr int schema_version = 1

// --- organization stream: org-<org_id> ---

struct organization_created {
  PASSAGE_EVENT("OrganizationCreated");
  uuid org_id_;
  std::string name_;
  timestamp created_at_;
  friend bool operator==(const organization_created&, const organization_created&) = default;
};

// Only a hash of the key is ever stored; the key itself is shown once by the api.
struct api_key_issued {
  PASSAGE_EVENT("ApiKeyIssued");
  uuid org_id_;
  uuid key_id_;
  role role_ = role::admin;
  std::string name_;
  std::string key_hash_;  // lower-case hex SHA-256 of the key
  timestamp issued_at_;
  // The org staff member's work address for notifications (claim digests). Not a learner's
  // data (SPEC §6 covers learners), so stored in clear like the key's name; see
  // domain/README.md. Added later: older events decode without it.
  std::optional<std::string> email_;
  friend bool operator==(const api_key_issued&, const api_key_issued&) = default;
};

struct api_key_revoked {
  PASSAGE_EVENT("ApiKeyRevoked");
  uuid org_id_;
  uuid key_id_;
  timestamp revoked_at_;
  friend bool operator==(const api_key_revoked&, const api_key_revoked&) = default;
};

// The contact email of a key was set, changed or cleared (nullopt): claim digests go to
// the new one. Stored in clear like ApiKeyIssued's (the org's staff, not a learner).
struct api_key_email_changed {
  PASSAGE_EVENT("ApiKeyEmailChanged");
  uuid org_id_;
  uuid key_id_;
  std::optional<std::string> email_;
  timestamp changed_at_;
  friend bool operator==(const api_key_email_changed&, const api_key_email_changed&) = default;
};

struct lead_form_changed {
  PASSAGE_EVENT("LeadFormChanged");
  uuid org_id_;
  lead_form form_;
  timestamp changed_at_;
  friend bool operator==(const lead_form_changed&, const lead_form_changed&) = default;
};

// --- track stream: track-<org_id>-<track_id> ---

struct track_registered {
  PASSAGE_EVENT("TrackRegistered");
  uuid org_id_;
  std::string track_id_;
  std::string title_;
  bool pausable_ = false;
  std::optional<uuid> owner_;  // API key id of the owning professor, if any
  timestamp registered_at_;
  friend bool operator==(const track_registered&, const track_registered&) = default;
};

// Carries the full new values (not a diff) so consumers need no prior state.
struct track_updated {
  PASSAGE_EVENT("TrackUpdated");
  uuid org_id_;
  std::string track_id_;
  std::string title_;
  bool pausable_ = false;
  std::optional<uuid> owner_;
  timestamp updated_at_;
  friend bool operator==(const track_updated&, const track_updated&) = default;
};

// --- invite stream: invite-<invite_id> ---

struct invite_created {
  PASSAGE_EVENT("InviteCreated");
  uuid org_id_;
  uuid invite_id_;
  std::string code_;
  invite_settings settings_;
  std::optional<uuid> duplicated_from_;
  timestamp created_at_;
  // The API key that created (or duplicated) the invite: who claim digests go to. Added
  // later: older events decode without it.
  std::optional<uuid> created_by_;
  friend bool operator==(const invite_created&, const invite_created&) = default;
};

// Full settings after the edit, plus the names of the fields that changed.
struct invite_updated {
  PASSAGE_EVENT("InviteUpdated");
  uuid org_id_;
  uuid invite_id_;
  invite_settings settings_;
  std::vector<std::string> changed_fields_;
  timestamp updated_at_;
  friend bool operator==(const invite_updated&, const invite_updated&) = default;
};

struct invite_deactivated {
  PASSAGE_EVENT("InviteDeactivated");
  uuid org_id_;
  uuid invite_id_;
  timestamp deactivated_at_;
  friend bool operator==(const invite_deactivated&, const invite_deactivated&) = default;
};

struct invite_reactivated {
  PASSAGE_EVENT("InviteReactivated");
  uuid org_id_;
  uuid invite_id_;
  timestamp reactivated_at_;
  friend bool operator==(const invite_reactivated&, const invite_reactivated&) = default;
};

struct invite_deleted {
  PASSAGE_EVENT("InviteDeleted");
  uuid org_id_;
  uuid invite_id_;
  timestamp deleted_at_;
  friend bool operator==(const invite_deleted&, const invite_deleted&) = default;
};

// Also the first event of the claim aggregate (claim-<claim_id>), which folds it from the
// invite stream before its own TrackPlayed/TrackPaused/TrackResumed events.
struct invite_claimed {
  PASSAGE_EVENT("InviteClaimed");
  uuid org_id_;
  uuid invite_id_;
  uuid claim_id_;
  uuid learner_id_;  // the anonymous id for anonymous claims
  bool anonymous_ = false;
  timestamp claimed_at_;
  claim_snapshot restrictions_;
  std::optional<timestamp> access_expires_at_;  // claimed_at + access_duration; none = forever
  personal_data personal_data_;                 // email_ used to claim (empty if anonymous)
  friend bool operator==(const invite_claimed&, const invite_claimed&) = default;
};

struct claim_rejected {
  PASSAGE_EVENT("ClaimRejected");
  uuid org_id_;
  uuid invite_id_;
  rejection_reason reason_ = rejection_reason::not_allowed;
  std::optional<uuid> learner_id_;  // known learner (by email) or anonymous id, if any
  bool anonymous_ = false;
  timestamp rejected_at_;
  personal_data personal_data_;  // email_ tried, if any
  friend bool operator==(const claim_rejected&, const claim_rejected&) = default;
};

struct invite_capacity_warning {
  PASSAGE_EVENT("InviteCapacityWarning");
  uuid org_id_;
  uuid invite_id_;
  std::int64_t claims_count_ = 0;
  std::int64_t claim_limit_ = 0;
  std::int64_t threshold_percent_ = 0;
  timestamp warned_at_;
  friend bool operator==(const invite_capacity_warning&, const invite_capacity_warning&) = default;
};

struct invite_filled {
  PASSAGE_EVENT("InviteFilled");
  uuid org_id_;
  uuid invite_id_;
  uuid claim_id_;  // the claim that took the last spot
  std::int64_t claim_limit_ = 0;
  timestamp filled_at_;
  friend bool operator==(const invite_filled&, const invite_filled&) = default;
};

struct invite_expired {
  PASSAGE_EVENT("InviteExpired");
  uuid org_id_;
  uuid invite_id_;
  timestamp expired_at_;   // the deadline that passed (expires_at or ends_at)
  timestamp detected_at_;  // when ExpireInvite was decided (>= expired_at_)
  friend bool operator==(const invite_expired&, const invite_expired&) = default;
};

struct private_invitation_sent {
  PASSAGE_EVENT("PrivateInvitationSent");
  uuid org_id_;
  uuid invite_id_;
  uuid invitation_id_;  // the personal link's id; reused when resent
  uuid job_id_;
  bool resent_ = false;
  std::optional<uuid> learner_id_;  // known learner with this email, if any
  timestamp sent_at_;
  personal_data personal_data_;  // email_ of the recipient
  // Addresses of the bulk send this invitation belongs to (all recorded in one append), so a
  // reader of any one of them knows the size of the job.
  std::int64_t job_total_ = 1;
  // Opt-in reminder: when to remind the addressee if they have not claimed by then.
  std::optional<timestamp> remind_at_;
  friend bool operator==(const private_invitation_sent&, const private_invitation_sent&) = default;
};

// --- claim stream: claim-<claim_id> ---

struct track_played {
  PASSAGE_EVENT("TrackPlayed");
  uuid org_id_;
  uuid invite_id_;
  uuid claim_id_;
  uuid learner_id_;
  std::string track_id_;
  std::int64_t play_number_ = 0;  // 1 for the first play of this track in this claim
  timestamp played_at_;
  friend bool operator==(const track_played&, const track_played&) = default;
};

struct track_paused {
  PASSAGE_EVENT("TrackPaused");
  uuid org_id_;
  uuid invite_id_;
  uuid claim_id_;
  uuid learner_id_;
  std::string track_id_;
  timestamp paused_at_;
  friend bool operator==(const track_paused&, const track_paused&) = default;
};

struct track_resumed {
  PASSAGE_EVENT("TrackResumed");
  uuid org_id_;
  uuid invite_id_;
  uuid claim_id_;
  uuid learner_id_;
  std::string track_id_;
  timestamp resumed_at_;
  friend bool operator==(const track_resumed&, const track_resumed&) = default;
};

// --- learner stream: learner-<learner_id> ---

struct learner_registered {
  PASSAGE_EVENT("LearnerRegistered");
  uuid org_id_;
  uuid learner_id_;
  learner_role role_ = learner_role::student;
  bool must_change_password_ = true;
  timestamp registered_at_;
  personal_data personal_data_;  // email_, first_name_, last_name_
  friend bool operator==(const learner_registered&, const learner_registered&) = default;
};

// The learner submitted the org lead form (on `invite_id_`); the org remembers it by email.
struct lead_captured {
  PASSAGE_EVENT("LeadCaptured");
  uuid org_id_;
  uuid learner_id_;
  std::optional<uuid> invite_id_;
  timestamp captured_at_;
  personal_data personal_data_;  // email_, first_name_, last_name_, answers_
  friend bool operator==(const lead_captured&, const lead_captured&) = default;
};

// A one-time set-password link for a learner a claim registered (or a newer one replacing
// it). Only the random setup id is stored: the link is that id signed with the node
// secret (service/password_setup.h), so nothing in the log alone lets anyone set the
// password. The mailer sends the welcome mail with the link for each of these.
struct password_setup_issued {
  PASSAGE_EVENT("PasswordSetupIssued");
  uuid org_id_;
  uuid learner_id_;
  uuid setup_id_;
  std::optional<uuid> invite_id_;  // the invite whose claim registered the learner
  timestamp issued_at_;
  timestamp expires_at_;         // issued_at + password_setup_validity (7 days)
  personal_data personal_data_;  // email_, first_name_ of the addressee
  friend bool operator==(const password_setup_issued&, const password_setup_issued&) = default;
};

// The learner chose a password through the setup link `setup_id_` (now used up). The
// password is kept only as a slow salted hash, and that only encrypted under the
// learner's key (personal_data_.password_hash_), so forgetting the learner shreds it.
struct learner_password_set {
  PASSAGE_EVENT("LearnerPasswordSet");
  uuid org_id_;
  uuid learner_id_;
  uuid setup_id_;
  timestamp set_at_;
  personal_data personal_data_;  // password_hash_
  friend bool operator==(const learner_password_set&, const learner_password_set&) = default;
};

// Appended after the learner's key was destroyed (crypto-shredding, outside the domain).
struct learner_forgotten {
  PASSAGE_EVENT("LearnerForgotten");
  uuid org_id_;
  uuid learner_id_;
  timestamp forgotten_at_;
  friend bool operator==(const learner_forgotten&, const learner_forgotten&) = default;
};

// --- email job stream: job-<job_id> (written by the email sender, no aggregate rules) ---

struct email_sent {
  PASSAGE_EVENT("EmailSent");
  uuid org_id_;
  uuid job_id_;
  uuid message_id_;
  std::optional<uuid> invitation_id_;
  std::optional<uuid> learner_id_;
  timestamp sent_at_;
  personal_data personal_data_;  // email_ of the recipient
  friend bool operator==(const email_sent&, const email_sent&) = default;
};

struct email_failed {
  PASSAGE_EVENT("EmailFailed");
  uuid org_id_;
  uuid job_id_;
  uuid message_id_;
  std::optional<uuid> invitation_id_;
  std::optional<uuid> learner_id_;
  std::string error_;  // transport error text; must not contain the address
  timestamp failed_at_;
  personal_data personal_data_;  // email_ of the recipient
  friend bool operator==(const email_failed&, const email_failed&) = default;
};

#undef PASSAGE_EVENT

using event =
    std::variant<organization_created, api_key_issued, api_key_revoked, lead_form_changed,
                 track_registered, track_updated, invite_created, invite_updated,
                 invite_deactivated, invite_reactivated, invite_deleted, invite_claimed,
                 claim_rejected, invite_capacity_warning, invite_filled, invite_expired,
                 private_invitation_sent, track_played, track_paused, track_resumed,
                 learner_registered, lead_captured, learner_forgotten, email_sent, email_failed,
                 password_setup_issued, learner_password_set, api_key_email_changed>;

using event_list = std::vector<event>;

// "InviteClaimed", ... and 1.
std::string_view event_type(const event& e);
int event_schema_version(const event& e);
// Every type name, in variant order (for codecs and tests).
std::vector<std::string_view> all_event_types();

uuid org_of(const event& e);
// The stream the event belongs to (see streams.h).
std::string stream_of(const event& e);
// The learner whose key encrypts personal_data_; nullopt when the event carries none, or
// when it carries an email not (yet) tied to a learner (ClaimRejected of an unknown email,
// invitations and emails to new addresses).
std::optional<uuid> data_subject(const event& e);
// The personal data block of the event, or nullptr.
const personal_data* personal_data_of(const event& e);
personal_data* personal_data_of(event& e);

}  // namespace passage::domain
