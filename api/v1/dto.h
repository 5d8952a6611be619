#pragma once
// Request bodies of the v1 API -> commands, and command results -> response
// bodies (SPEC §4, §7). Parsing is strict: unknown members, wrong JSON types,
// numbers out of range and malformed times are refused with the field's name,
// so a client learns exactly what to fix and nothing half-valid reaches the log.

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "domain/invite.h"
#include "domain/types.h"
#include "service/command_service.h"

namespace passage::api::v1 {

struct field_error {
  std::string field;  // "claim_limit", "tracks[1].track_id", "" for the whole body
  std::string message;
};

template <typename T>
using dto_result = result<T, field_error>;

// Parses a request body; an empty body is an empty object when `allow_empty`.
dto_result<nlohmann::json> parse_body(std::string_view body, bool allow_empty = false);

dto_result<domain::invite_draft> parse_invite_draft(const nlohmann::json& body);
dto_result<domain::invite_patch> parse_invite_patch(const nlohmann::json& body);
dto_result<service::claim_input> parse_claim_input(const nlohmann::json& body);
// A public claim's request body (POST /v1/public/invites/{code}/claims; a private
// invitation's claim allows an empty body and goes the document path): parse_body() then
// parse_claim_input(), with the same result for every body. The common one (a flat object of plain
// ASCII strings among email, first_name, last_name and learner_token) is read without building a
// JSON document.
dto_result<service::claim_input> parse_claim_body(std::string_view body);
// parse_claim_body()'s direct reader alone: the claim input of a common body (as above:
// JSON whitespace, each member at most once, each value a string of printable ASCII
// without escapes), nullopt for any other body, which the document path then decides.
// Exposed for its test, which checks which bodies it takes.
std::optional<service::claim_input> plain_claim_body(std::string_view body);
dto_result<domain::lead_form> parse_lead_form(const nlohmann::json& body);

struct track_request {
  std::string track_id;
  std::string title;
  bool pausable = false;
};
dto_result<track_request> parse_track(const nlohmann::json& body);

struct api_key_request {
  domain::role role = domain::role::admin;
  std::string name;
  std::optional<std::string> email;  // contact address for claim digests
};
dto_result<api_key_request> parse_api_key_request(const nlohmann::json& body);
// PATCH /v1/api-keys/{id}: {"email": "…" | null}, the member required (null clears it).
struct api_key_patch {
  std::optional<std::string> email;
};
dto_result<api_key_patch> parse_api_key_patch(const nlohmann::json& body);

struct organization_request {
  std::string name;
};
dto_result<organization_request> parse_organization_request(const nlohmann::json& body);

struct play_request {
  std::string track_id;
};
dto_result<play_request> parse_play_request(const nlohmann::json& body);

// POST /v1/invites/{id}/send: {"emails": [...], "on_existing": "resend" | "new"}.
// Addresses are validated, normalised and de-duplicated (first occurrence kept).
inline constexpr std::size_t max_emails_per_send = 10000;
struct send_request {
  std::vector<std::string> emails;
  domain::on_existing_invitation on_existing = domain::on_existing_invitation::resend;
  std::optional<domain::access_duration> remind_after;  // ISO 8601, e.g. "P3D"; opt-in
};
dto_result<send_request> parse_send_request(const nlohmann::json& body);

// Response bodies.
nlohmann::json to_json(const service::claim_result& r);
nlohmann::json to_json(const service::play_result& r);
// to_json(r).dump() as a JSON API answer writes it (invalid UTF-8 replaced), written
// directly: a claim's answer without building a document of maps (a claim's hot path).
std::string to_json_text(const service::claim_result& r);

}  // namespace passage::api::v1
