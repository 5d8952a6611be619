#pragma once
// JSON of the read-model views, shared by the HTTP api and the Kafka-fed replicas. Field
// names follow SPEC §2/§7 (snake_case, RFC 3339 UTC times, null for "none":
// remaining_spots of an unlimited invite, days_left unless upcoming). Admin views carry
// every setting including internal_description; to_public_json(invite_view) is the learner
// view and carries no internal field (no internal_description, allowed lists, counts or ids).
//
//   auto v = models.invite(org, id, now);
//   respond(200, to_json(*v).dump(), {{"ETag", "\"" + std::to_string(v->version) + "\""}});

#include <nlohmann/json.hpp>

#include <span>

#include "domain/types.h"
#include "projections/read_models.h"

namespace passage::projections {

nlohmann::json to_json(const domain::lead_form& form);  // {"fields": [{name, label, required}]}
nlohmann::json to_json(const domain::invite_settings& settings);

// Admin view: id, code, link, version, status, days_left, claims_count, remaining_spots,
// every setting, share_button_visible, duplicated_from, created_at, updated_at.
nlohmann::json to_json(const invite_view& v);
// Learner view (GET /v1/public/invites/{code}). With `form` (the org's lead form) and an
// invite of access lead_form, adds "lead_form".
nlohmann::json to_public_json(const invite_view& v, const domain::lead_form* form = nullptr);
nlohmann::json to_json(const invite_page& page);  // {"invites": [...], "next_cursor"}
// Usage: counts, plays per track, claims per day and per hour, time_to_claim (null
// before the first claim).
nlohmann::json to_json(const usage_view& v);
nlohmann::json to_json(const std::optional<claim_delay_stats>& s);  // null or {claims, ...}
std::string_view to_string(claim_bucket b);                         // "hour" | "day"
nlohmann::json to_json(const claim_history_view& h);
std::string_view to_string(learner_fact f);  // "claimed", "rejected", "played", ...
// A learner's audit trail; claims and rejections show the email used, or "forgotten".
nlohmann::json to_json(const learner_history_view& h);
// Rows show personal data decrypted, or "email": "forgotten" with "forgotten": true.
nlohmann::json to_json(const acceptance_row& r);
nlohmann::json to_json(std::span<const acceptance_row> rows);  // {"claims": [...]}
nlohmann::json to_json(const rejection_row& r);
nlohmann::json to_json(std::span<const rejection_row> rows);  // {"rejections": [...]}
nlohmann::json to_json(const lead_row& r);
nlohmann::json to_json(const claim_access_view& v);
nlohmann::json to_json(const track_view& v);
nlohmann::json to_json(const api_key_view& v);  // never the key hash
nlohmann::json to_json(const organization_view& v);
nlohmann::json to_json(const learner_view& v);

}  // namespace passage::projections
