#pragma once
// The organization aggregate (stream org-<org_id>): its creation by the operator, API keys
// (only a hash is ever stored) and the org lead form. Everything else in Passage belongs to
// exactly one organization.

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/uuid.h"
#include "domain/errors.h"
#include "domain/events.h"
#include "domain/types.h"

namespace passage::domain {

struct api_key_record {
  uuid key_id_;
  role role_ = role::admin;
  std::string name_;
  std::string key_hash_;
  bool revoked_ = false;
  timestamp issued_at_;
  std::optional<std::string> email_;  // contact address for notifications, if given
  friend bool operator==(const api_key_record&, const api_key_record&) = default;
};

struct organization_state {
  bool exists_ = false;
  uuid org_id_;
  std::string name_;
  lead_form lead_form_;
  std::map<uuid, api_key_record> api_keys_;
  std::uint64_t version_ = 0;
  friend bool operator==(const organization_state&, const organization_state&) = default;
};

organization_state evolve(organization_state state, const event& e);

// Emits OrganizationCreated and the first owner key's ApiKeyIssued.
struct create_organization {
  uuid org_id_;
  std::string name_;
  uuid owner_key_id_;
  std::string owner_key_name_ = "owner";
  std::string owner_key_hash_;  // lower-case hex SHA-256 of the generated key
};

struct issue_api_key {
  uuid key_id_;
  role role_ = role::admin;  // owner, admin or professor
  std::string name_;
  std::string key_hash_;  // lower-case hex SHA-256; the key itself never reaches the domain
  // Optional contact address of the staff member using the key (claim digests go there);
  // validated and stored lower-cased.
  std::optional<std::string> email_;
};

struct revoke_api_key {
  uuid key_id_;
};

// Sets (or, with nullopt, clears) the contact email of an active key.
struct change_api_key_email {
  uuid key_id_;
  std::optional<std::string> email_;
};

struct change_lead_form {
  lead_form form_;
  std::optional<std::uint64_t> expected_version_;
};

// Field names unique, [a-z0-9_.-]{1,64}, not first_name/last_name/email (always collected),
// at most 50 fields, labels at most 200 bytes. Returns the form to store, with `consent`
// forced to required.
domain_result<lead_form> validate_lead_form(const lead_form& form);

// Checks a lead-form submission against the org form: first and last name always, every
// required field, and `consent` (when the form has it) answered with true/yes/on/1.
// Returns the kept answers (trimmed, only fields of the form) or errc::details_missing with
// the first missing field's name.
domain_result<std::map<std::string, std::string>> check_lead_submission(
    const lead_form& form, std::string_view first_name, std::string_view last_name,
    const std::map<std::string, std::string>& answers);

// Accepts 64 lower-case hex digits.
bool is_valid_key_hash(std::string_view hash);

domain_result<event_list> decide(const organization_state& s, const create_organization& c,
                                 timestamp now);
domain_result<event_list> decide(const organization_state& s, const issue_api_key& c,
                                 timestamp now);
// Refuses (invalid_state) to revoke the last active owner key, which would lock the org out.
// Revoking a revoked key is a no-op.
domain_result<event_list> decide(const organization_state& s, const revoke_api_key& c,
                                 timestamp now);
// An unchanged email is a no-op; a revoked key's is refused (invalid_state).
domain_result<event_list> decide(const organization_state& s, const change_api_key_email& c,
                                 timestamp now);
// An unchanged form is a no-op.
domain_result<event_list> decide(const organization_state& s, const change_lead_form& c,
                                 timestamp now);

}  // namespace passage::domain
