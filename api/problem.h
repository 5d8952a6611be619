#pragma once
// RFC 9457 problem responses (application/problem+json) and JSON response
// helpers. The mapping from error code to HTTP status lives in one table
// (problem.cc, documented in api/README.md): add new codes there, nowhere else.
//
//   respond(problem_response(make_problem("not_found", "no invite with this id")));
//   respond(problem_response(rate_limited(std::chrono::seconds(42))));
//   auto res = json_response(http::status::ok, invite_json);
//   set_etag(res, invite.version);
//   respond(std::move(res));

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/http_types.h"
#include "common/result.h"

namespace passage::api {

inline constexpr std::string_view problem_type_base = "https://passage.dev/problems/";
inline constexpr std::string_view problem_content_type = "application/problem+json";
inline constexpr std::string_view json_content_type = "application/json";

// One problem detail. Plain value type.
struct problem {
  // Stable machine-readable reason ("not_found", "full", ...); `type` is
  // problem_type_base + code.
  std::string code;
  unsigned status = 500;
  // Short summary of the code; the same for every occurrence.
  std::string title;
  // Human-readable explanation of this occurrence. May be empty.
  std::string detail;
  // Further members of the JSON object, e.g. "errors" for per-field messages.
  nlohmann::json extra = nlohmann::json::object();
  // Sets the Retry-After header and a "retry_after" member (seconds).
  std::optional<std::chrono::seconds> retry_after;
  // Further response headers, e.g. Allow for a 405.
  std::vector<std::pair<std::string, std::string>> headers;
};

// The HTTP status of an error code; 500 for a code the table does not know.
unsigned status_for(std::string_view code);

// The title of an error code ("Not found"); "Internal error" for unknown codes.
std::string_view title_for(std::string_view code);

// A problem with the status and title of `code`.
problem make_problem(std::string_view code, std::string detail = {});

// 400 invalid_request; `errors` (optional) lists per-field messages, e.g.
// [{"field": "limit", "message": "must be between 1 and 1000"}].
problem invalid_request(std::string detail, nlohmann::json errors = nullptr);

// 429 rate_limited with Retry-After (rounded up to at least one second).
problem rate_limited(std::chrono::seconds retry_after, std::string detail = {});

// {"type", "title", "status", "code", "detail", ...extra, "retry_after"?}.
nlohmann::json to_json(const problem& p);

// The problem as an application/problem+json response with its headers.
response problem_response(const problem& p);

// A response whose body is `body` serialized, Content-Type application/json.
response json_response(http::status status, const nlohmann::json& body);

// A response with a text body and the given content type.
response text_response(http::status status, std::string body, std::string_view content_type);

// ETag: "<version>" (a strong validator over the aggregate's version).
void set_etag(response& res, std::uint64_t version);

// Retry-After: <seconds>, at least 1.
void set_retry_after(response& res, std::chrono::seconds after);

// The version named by an If-Match header: nullopt when the header is absent
// or "*"; a 400 invalid_request problem when it is not a single "<version>".
result<std::optional<std::uint64_t>, problem> if_match_version(const request& req);

}  // namespace passage::api
