// The OpenAPI 3 document of the v1 API, built from the router's own routes so
// it can never list a route that does not exist; summaries come from a table
// that a test checks covers every route.

#include <map>
#include <string>

#include "api/v1/endpoints.h"

namespace passage::api::v1 {
namespace {

struct doc {
  const char* summary;
  bool admin;
};

const std::map<std::string, doc>& summaries() {
  static const std::map<std::string, doc> table = {
      {"GET /healthz", {"Liveness", false}},
      {"GET /readyz", {"Readiness: read models caught up", false}},
      {"GET /metrics", {"Prometheus metrics", false}},
      {"GET /openapi.json", {"This document", false}},
      {"GET /v1/system", {"Positions, publish lag, Kafka bootstrap", false}},
      {"POST /v1/orgs", {"Create an organization (operator key)", true}},
      {"POST /v1/api-keys",
       {"Issue an API key (owner): role, name, optional contact email (claim digests go there); "
        "the key is returned once",
        true}},
      {"GET /v1/api-keys", {"List the organization's API keys (owner)", true}},
      {"PATCH /v1/api-keys/{id}",
       {"Set or clear an API key's contact email (owner): {\"email\": \"…\" | null}; "
        "ApiKeyEmailChanged, claim digests go to the new address",
        true}},
      {"DELETE /v1/api-keys/{id}", {"Revoke an API key (owner)", true}},
      {"GET /v1/lead-form", {"The organization's lead form", true}},
      {"PUT /v1/lead-form", {"Replace the lead form (If-Match)", true}},
      {"GET /v1/leads", {"Captured leads", true}},
      {"POST /v1/tracks", {"Register a track", true}},
      {"GET /v1/tracks", {"List tracks", true}},
      {"POST /v1/invites",
       {"Create an invite; notify_on_claim (opt-in claim digests to the creating key's email, "
        "422 notify_email_missing without one)",
        true}},
      {"GET /v1/invites",
       {"List invites with status (status, track, type, q, limit, cursor)", true}},
      {"GET /v1/invites/{id}",
       {"One invite with status, claims and remaining spots; ETag = version", true}},
      {"PATCH /v1/invites/{id}",
       {"Edit an invite (If-Match); turning notify_on_claim on needs the creator's email (422)",
        true}},
      {"DELETE /v1/invites/{id}", {"Delete an invite (final)", true}},
      {"POST /v1/invites/{id}/deactivate", {"Deactivate an invite", true}},
      {"POST /v1/invites/{id}/reactivate", {"Reactivate an invite", true}},
      {"POST /v1/invites/{id}/duplicate",
       {"Duplicate an invite; the duplicating key becomes its creator (notify_on_claim: 422 "
        "without its email)",
        true}},
      {"GET /v1/invites/{id}/claims",
       {"Acceptance list (JSON or CSV); as_of answers as at that instant, rebuilt from the log",
        true}},
      {"GET /v1/invites/{id}/usage",
       {"Usage: claims, learners, plays per track, claims per day and hour, time to claim; as_of",
        true}},
      {"GET /v1/claims/history",
       {"The org's claims per hour or day (bucket, since, until), per invite, time to claim",
        true}},
      {"GET /v1/learners/{id}/history",
       {"A learner's claims, rejections and plays with times (audit)", true}},
      {"GET /v1/invites/{id}/rejections", {"Recorded rejected claims", true}},
      {"GET /v1/public/invites/{code}", {"Learner view of an invite", false}},
      {"POST /v1/public/invites/{code}/claims", {"Claim an invite", false}},
      {"GET /v1/public/claims/{claim_id}", {"A learner's claim (learner token)", false}},
      {"POST /v1/public/claims/{claim_id}/plays", {"Play a track (learner token)", false}},
      {"POST /v1/public/claims/{claim_id}/tracks/{track_id}/pause",
       {"Pause a pausable track", false}},
      {"POST /v1/public/claims/{claim_id}/tracks/{track_id}/resume",
       {"Resume a paused track", false}},
      {"POST /v1/learners/{id}/password-setup",
       {"A new one-time set-password link and welcome mail (the old link stops working); 202",
        true}},
      {"POST /v1/learners/{id}/forget",
       {"Erase a learner's personal data (crypto-shredding)", true}},
      {"GET /v1/events", {"The global log, in order, paged", true}},
      {"GET /v1/events/live", {"Live tail as Server-Sent Events (Last-Event-ID resumes)", true}},
      {"GET /v1/streams/{stream}", {"One stream's events", true}},
      {"GET /i/{code}", {"The learner's claim page (HTML)", false}},
      {"POST /i/{code}", {"The claim page's own form post, without scripts (HTML)", false}},
      {"GET /console", {"The admin console (HTML; signs in with an API key)", false}},
      {"GET /assets/{version}/{file}",
       {"Console and learner page scripts and styles (immutable, ETag)", false}},
      {"POST /v1/invites/{id}/send",
       {"Send private invitations by email (up to 10,000; on_existing resend | new; "
        "remind_after); 202 job",
        true}},
      {"GET /v1/jobs/{id}", {"A bulk send: status, total, processed, failed, dead letters", true}},
      {"POST /v1/public/invitations/{token}/claims",
       {"Claim through a personal link (only for its addressee)", false}},
      {"GET /p/{token}",
       {"Set-password page of a welcome mail's one-time link (HTML form, no scripts)", false}},
      {"POST /p/{token}",
       {"The set-password page's form post (password, password_confirm; HTML)", false}},
      {"POST /v1/public/password/{token}",
       {"Set the password through a one-time link ({\"password\"}); 410 token_used | "
        "token_expired | token_replaced, 400 token_invalid",
        false}},
      {"POST /v1/public/learners/login",
       {"Log in with email and password (org or code); the learner token; 401 "
        "invalid_credentials, rate-limited",
        false}},
  };
  return table;
}

}  // namespace

nlohmann::json openapi_document(const router& r) {
  nlohmann::json paths = nlohmann::json::object();
  for (const auto& route : r.routes()) {
    auto space = route.find(' ');
    std::string method = route.substr(0, space), path = route.substr(space + 1);
    std::string lower;
    for (char c : method)
      lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    auto it = summaries().find(route);
    nlohmann::json op = {{"summary", it == summaries().end() ? "" : it->second.summary},
                         {"responses",
                          {{"default",
                            {{"description", "RFC 9457 problem on error"},
                             {"content",
                              {{"application/problem+json",
                                {{"schema", {{"$ref", "#/components/schemas/Problem"}}}}}}}}}}}};
    if (it != summaries().end() && it->second.admin)
      op["security"] = {{{"apiKey", nlohmann::json::array()}}};
    nlohmann::json params = nlohmann::json::array();
    for (std::size_t p = path.find('{'); p != std::string::npos; p = path.find('{', p + 1)) {
      auto end = path.find('}', p);
      params.push_back({{"name", path.substr(p + 1, end - p - 1)},
                        {"in", "path"},
                        {"required", true},
                        {"schema", {{"type", "string"}}}});
    }
    if (!params.empty()) op["parameters"] = params;
    paths[path][lower] = op;
  }
  return {{"openapi", "3.0.3"},
          {"info",
           {{"title", "Passage"},
            {"version", "1.0.0"},
            {"description",
             "Track invites: links and short codes through which learners claim access to training "
             "content."}}},
          {"paths", paths},
          {"components",
           {{"securitySchemes", {{"apiKey", {{"type", "http"}, {"scheme", "bearer"}}}}},
            {"schemas",
             {{"Problem",
               {{"type", "object"},
                {"properties",
                 {{"type", {{"type", "string"}}},
                  {"title", {{"type", "string"}}},
                  {"status", {{"type", "integer"}}},
                  {"code", {{"type", "string"}}},
                  {"detail", {{"type", "string"}}}}}}}}}}}};
}

bool has_summary(const std::string& route) { return summaries().count(route) > 0; }

}  // namespace passage::api::v1
