#include "api/problem.h"

#include <algorithm>
#include <array>
#include <charconv>

namespace passage::api {
namespace {

// Beast 1.74 spells strings as boost::string_view.
boost::beast::string_view bsv(std::string_view s) { return {s.data(), s.size()}; }

struct code_entry {
  std::string_view code;
  unsigned status;
  std::string_view title;
};

// The one place where error codes meet HTTP statuses. Keep it sorted by
// status, document additions in api/README.md.
constexpr std::array<code_entry, 39> code_table{{
    {"invalid_request", 400, "Invalid request"},
    {"token_invalid", 400, "Invalid set-password link"},
    {"unauthorized", 401, "Unauthorized"},
    {"invalid_credentials", 401, "Wrong email or password"},
    {"forbidden", 403, "Forbidden"},
    {"not_allowed", 403, "Not allowed for this learner"},
    {"access_expired", 403, "Access expired"},
    {"play_limit_reached", 403, "Play limit reached"},
    {"not_found", 404, "Not found"},
    {"method_not_allowed", 405, "Method not allowed"},
    {"not_acceptable", 406, "Not acceptable"},
    {"request_timeout", 408, "Request timeout"},
    {"conflict", 409, "Conflict"},
    {"not_open_yet", 409, "Invite not open yet"},
    {"full", 409, "Invite is full"},
    {"deactivated", 409, "Invite deactivated"},
    {"already_exists", 409, "Already exists"},
    {"not_pausable", 409, "Track cannot be paused"},
    {"invalid_state", 409, "Not possible in the current state"},
    {"read_only_replica", 409, "Read-only replica"},
    {"expired", 410, "Invite expired"},
    {"deleted", 410, "Invite deleted"},
    {"forgotten", 410, "Learner forgotten"},
    {"token_used", 410, "Set-password link already used"},
    {"token_expired", 410, "Set-password link expired"},
    {"token_replaced", 410, "Set-password link replaced by a newer one"},
    {"version_conflict", 412, "Version conflict"},
    {"payload_too_large", 413, "Payload too large"},
    {"unsupported_media_type", 415, "Unsupported media type"},
    {"primary_only", 421, "Served by the primary only"},
    {"details_missing", 422, "Details missing"},
    {"idempotency_key_reused", 422, "Idempotency key reused"},
    {"notify_email_missing", 422, "Notification email missing"},
    {"rate_limited", 429, "Too many requests"},
    {"header_too_large", 431, "Request header fields too large"},
    {"internal", 500, "Internal error"},
    {"unavailable", 503, "Service unavailable"},
    {"read_model_lagging", 503, "Read models lagging"},
    {"timeout", 504, "Timeout"},
}};

const code_entry* find_code(std::string_view code) {
  auto it = std::find_if(code_table.begin(), code_table.end(),
                         [&](const code_entry& e) { return e.code == code; });
  return it == code_table.end() ? nullptr : &*it;
}

}  // namespace

unsigned status_for(std::string_view code) {
  const auto* e = find_code(code);
  return e ? e->status : 500;
}

std::string_view title_for(std::string_view code) {
  const auto* e = find_code(code);
  return e ? e->title : std::string_view("Internal error");
}

problem make_problem(std::string_view code, std::string detail) {
  problem p;
  p.code = std::string(code);
  p.status = status_for(code);
  p.title = std::string(title_for(code));
  p.detail = std::move(detail);
  return p;
}

problem invalid_request(std::string detail, nlohmann::json errors) {
  problem p = make_problem("invalid_request", std::move(detail));
  if (!errors.is_null()) p.extra["errors"] = std::move(errors);
  return p;
}

problem rate_limited(std::chrono::seconds retry_after, std::string detail) {
  problem p = make_problem("rate_limited", std::move(detail));
  p.retry_after = std::max(retry_after, std::chrono::seconds(1));
  return p;
}

nlohmann::json to_json(const problem& p) {
  nlohmann::json j = nlohmann::json::object();
  j["type"] = std::string(problem_type_base) + p.code;
  j["title"] = p.title;
  j["status"] = p.status;
  j["code"] = p.code;
  j["detail"] = p.detail;
  if (p.extra.is_object()) {
    for (const auto& [k, v] : p.extra.items()) {
      if (!j.contains(k)) j[k] = v;
    }
  }
  if (p.retry_after) j["retry_after"] = p.retry_after->count();
  return j;
}

response problem_response(const problem& p) {
  response res{static_cast<http::status>(p.status), 11};
  res.set(http::field::content_type, bsv(problem_content_type));
  res.set(http::field::cache_control, "no-store");
  for (const auto& [name, value] : p.headers) res.set(bsv(name), value);
  if (p.retry_after) set_retry_after(res, *p.retry_after);
  res.body() = to_json(p).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  res.prepare_payload();
  return res;
}

response json_response(http::status status, const nlohmann::json& body) {
  return text_response(status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                       json_content_type);
}

response text_response(http::status status, std::string body, std::string_view content_type) {
  response res{status, 11};
  res.set(http::field::content_type, bsv(content_type));
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

void set_etag(response& res, std::uint64_t version) {
  res.set(http::field::etag, "\"" + std::to_string(version) + "\"");
}

void set_retry_after(response& res, std::chrono::seconds after) {
  res.set(http::field::retry_after, std::to_string(std::max<std::int64_t>(after.count(), 1)));
}

result<std::optional<std::uint64_t>, problem> if_match_version(const request& req) {
  auto it = req.find(http::field::if_match);
  if (it == req.end()) return std::optional<std::uint64_t>{};
  std::string_view v(it->value().data(), it->value().size());
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (v == "*") return std::optional<std::uint64_t>{};
  auto bad = [] {
    return fail(invalid_request(
        "If-Match must be a single version in quotes, e.g. \"3\"",
        nlohmann::json::array({{{"field", "If-Match"}, {"message", "expected \"<version>\""}}})));
  };
  if (v.size() < 3 || v.front() != '"' || v.back() != '"') return bad();
  v = v.substr(1, v.size() - 2);
  std::uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || ptr != v.data() + v.size()) return bad();
  return std::optional<std::uint64_t>{n};
}

}  // namespace passage::api
