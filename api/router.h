#pragma once
// The router: a pure dispatcher from (method, request target) to a handler,
// testable without a socket. Path templates name parameters in braces; path
// segments are percent-decoded and checked (no "..", no encoded '/', no NUL or
// control characters, valid UTF-8) before matching. Unknown paths get a 404
// problem, known paths with another method a 405 problem with Allow.
//
//   router r;
//   r.add(http::verb::get, "/v1/invites/{id}", get_invite);
//   r.add(http::verb::post, "/v1/invites/{id}/claims", claim_invite);
//   http_server server(ioc, options, r.as_handler());
//
//   // in a handler:
//   auto limit = query_int(ctx.query, "limit", 1, 1000);
//   if (!limit) return respond(problem_response(limit.error()));
//   std::int64_t n = limit->value_or(50);

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/http_types.h"
#include "api/params.h"
#include "api/problem.h"
#include "common/result.h"

namespace passage::api {

// A successful match: the handler, its route template and decoded parameters.
struct route_match {
  const handler* target = nullptr;
  std::string route;
  param_map params;
  param_map query;
};

// Owned by the application. Register every route before serving; after that
// match() and dispatch() are const and safe to call from any number of threads.
class router {
 public:
  router();
  ~router();
  router(const router&) = delete;
  router& operator=(const router&) = delete;

  // Registers `h` for `method` on `path_template` ("/v1/invites/{id}/claims").
  // Literal segments take precedence over parameters. Throws
  // std::invalid_argument for a malformed template or a duplicate route
  // (start-up errors).
  router& add(http::verb method, std::string_view path_template, handler h);

  // Matches a request target (path and optional query). Errors: 400
  // invalid_request (path tricks, bad encoding), 404 not_found, 405
  // method_not_allowed with an Allow header.
  result<route_match, problem> match(http::verb method, std::string_view target) const;

  // The method and route template `target` matches ("POST /v1/invites/{id}/send"), as
  // routes() names them; nullopt when nothing matches.
  std::optional<std::string> route_of(http::verb method, std::string_view target) const;

  // Matches `req`, fills ctx.route/params/query and calls the handler, or
  // answers with the problem. Sets ctx.route even on a 405.
  void dispatch(const request& req, request_context& ctx, responder respond) const;

  // Rewrites every handler add() registers from now on (an empty filter stops it): one
  // place where, e.g., a read replica swaps its command routes for a refusal.
  using route_filter =
      std::function<handler(http::verb method, std::string_view path_template, handler h)>;
  void set_filter(route_filter filter) { filter_ = std::move(filter); }

  // A handler that dispatches through this router, which must outlive it.
  handler as_handler() const;

  // The registered route templates, in registration order ("GET /v1/invites/{id}").
  std::vector<std::string> routes() const;

 private:
  struct node;
  static const node* find_node(const node* n, const std::vector<std::string_view>& segs,
                               std::size_t i, const http::verb* method,
                               std::vector<std::string_view>& captured);

  std::unique_ptr<node> root_;
  std::vector<std::string> routes_;
  route_filter filter_;
};

// Percent-decodes `in`; '+' becomes a space when `plus_as_space`. nullopt for a
// '%' not followed by two hex digits.
std::optional<std::string> percent_decode(std::string_view in, bool plus_as_space);

// Whether `s` is well-formed UTF-8 (no overlong forms, surrogates or values
// past U+10FFFF).
bool is_valid_utf8(std::string_view s);

// Parses a query string (without the '?'): '&'-separated name=value pairs,
// percent-decoded with '+' as space; the first of duplicate names wins. Errors
// are 400 invalid_request problems (bad encoding, NUL, invalid UTF-8).
result<param_map, problem> parse_query(std::string_view query);

// The integer value of query parameter `name`: nullopt when absent, a 400
// invalid_request problem naming the parameter when it is not an integer in
// [min, max].
result<std::optional<std::int64_t>, problem> query_int(const param_map& query,
                                                       std::string_view name, std::int64_t min,
                                                       std::int64_t max);

}  // namespace passage::api
