#include "api/v1/endpoints.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "api/problem.h"
#include "api/rate_limiter.h"
#include "api/v1/dto.h"
#include "api/v1/html.h"
#include "api/v1/live_tail.h"
#include "api/v1/password_routes.h"
#include "common/time_format.h"
#include "domain/invite_code.h"
#include "domain/text.h"
#include "eventstore/subscription.h"
#include "projections/csv.h"
#include "projections/json_views.h"
#include "projections/point_in_time.h"
#include "web/static_assets.h"

namespace passage::api::v1 {
namespace {

using nlohmann::json;
using deps_ptr = std::shared_ptr<const endpoint_deps>;

std::string_view sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

// ---- errors -------------------------------------------------------------------

problem from_service(const service::service_error& e) {
  problem p = make_problem(e.code, e.message);
  if (!e.field.empty())
    p.extra["errors"] = json::array({{{"field", e.field}, {"message", e.message}}});
  if (e.current_version) p.extra["current_version"] = *e.current_version;
  return p;
}

problem from_field(const field_error& e) {
  if (e.field.empty()) return invalid_request(e.message);
  return invalid_request(e.field + " " + e.message,
                         json::array({{{"field", e.field}, {"message", e.message}}}));
}

// ---- request pieces -------------------------------------------------------------

result<domain::principal, problem> authenticate(const endpoint_deps& d, const request& req,
                                                bool operator_allowed = false) {
  auto it = req.find(http::field::authorization);
  std::string_view value = it == req.end() ? std::string_view{} : sv(it->value());
  constexpr std::string_view kBearer = "Bearer ";
  if (value.size() <= kBearer.size() || !value.starts_with(kBearer)) {
    return make_problem("unauthorized", "an API key is required: Authorization: Bearer <key>");
  }
  std::string hash = service::hash_api_key(domain::trim(value.substr(kBearer.size())));
  if (!d.operator_key_hash.empty() && hash == d.operator_key_hash) {
    if (!operator_allowed) {
      return make_problem("forbidden", "the operator key may only create organizations");
    }
    return domain::principal{domain::role::operator_, uuid{}, uuid{}};
  }
  auto key = d.reads->api_key_by_hash(hash);
  if (!key || key->revoked) return make_problem("unauthorized", "unknown or revoked API key");
  return domain::principal{key->role, key->org_id, key->key_id};
}

result<uuid, problem> uuid_param(const request_context& ctx, std::string_view name) {
  auto v = ctx.params.get(name);
  auto id = v ? uuid::parse(*v) : std::nullopt;
  if (!id)
    return make_problem("not_found", "no such " + std::string(name == "id" ? "resource" : name));
  return *id;
}

service::request_meta meta_of(const request_context& ctx) {
  return {ctx.request_id.to_string(), ""};
}

// Runs `fn` once the read models show `position` (at once for 0); with d.applied, answers
// 503 read_model_lagging instead if they do not within its timeout.
void after_applied(const endpoint_deps& d, std::uint64_t position, const responder& respond,
                   std::function<void()> fn) {
  if (position == 0) {
    fn();
  } else if (d.applied) {
    d.applied->answer_when_applied(position, respond, std::move(fn));
  } else {
    d.reads->when_applied(position, std::move(fn));
  }
}

response created(const json& body, std::string location) {
  auto res = json_response(http::status::created, body);
  res.set(http::field::location, location);
  return res;
}

json error_body_for_claim(const service::claim_result& r) {
  json j;
  if (r.rejection) j["reason"] = domain::to_string(*r.rejection);
  if (!r.missing_field.empty()) j["missing_field"] = r.missing_field;
  return j;
}

// Wraps an admin handler: authenticates, then calls f(principal).
template <typename F>
handler admin(deps_ptr d, F f, bool operator_allowed = false) {
  return [d, f, operator_allowed](const request& req, request_context& ctx, responder respond) {
    auto who = authenticate(*d, req, operator_allowed);
    if (!who) {
      respond(problem_response(who.error()));
      return;
    }
    f(*who, req, ctx, std::move(respond));
  };
}

// Whose Idempotency-Keys an admin request's key is among: its API key's, or the operator's.
// nullopt without a valid key: admin() answers 401 and nothing is replayed or kept.
idempotency_scope key_scope(deps_ptr d, bool operator_allowed = false) {
  return [d, operator_allowed](const request& req,
                               const request_context&) -> std::optional<std::string> {
    auto who = authenticate(*d, req, operator_allowed);
    if (!who) return std::nullopt;
    if (who->role_ == domain::role::operator_) return std::string("operator");
    return who->key_id_.to_string();
  };
}

// An admin command's handler: admin(d, f, operator_allowed) behind its Idempotency-Key,
// kept in the scope of the request's key (key_scope).
template <typename F>
handler admin_command(deps_ptr d, F f, bool operator_allowed = false) {
  auto scope = key_scope(d, operator_allowed);
  auto& store = *d->idempotency;
  return with_idempotency(store, std::move(scope),
                          admin(std::move(d), std::move(f), operator_allowed));
}

// The request's JSON body as `parse` (one of dto.h's parse_*) reads it: parse_body()'s
// error, or parse's.
template <typename Parse>
auto parse_body_with(const request& req, Parse parse) -> decltype(parse(json())) {
  auto body = parse_body(req.body());
  if (!body) return body.error();
  return parse(*body);
}

// Where a command's result stands in the log: `written` is that place, the other results
// carry it as `at`.
std::uint64_t position_of(const service::written& w) { return w.position; }
template <typename Result>
std::uint64_t position_of(const Result& r) {
  return r.at.position;
}

// A command's callback: its error answered as a problem, its result with `ok(result)` once
// the read side has applied the result's events (a read after the answer sees them).
//   d->commands->create_invite(who, draft, meta, answer_applied(d, respond, [](const auto& c) {
//     return created(...);
//   }));
template <typename Ok>
auto answer_applied(deps_ptr d, responder respond, Ok ok) {
  return [d, respond, ok](auto res) {
    if (!res) return respond(problem_response(from_service(res.error()))), void();
    const std::uint64_t position = position_of(*res);
    after_applied(*d, position, respond, [respond, ok, c = std::move(*res)] { respond(ok(c)); });
  };
}

// A command result that answers with `written` facts once visible.
service::callback<service::written> answer_written(
    deps_ptr d, responder respond, std::function<response(const service::written&)> ok) {
  return answer_applied(std::move(d), std::move(respond), std::move(ok));
}

// `follows_clock` (if given) tells whether the body can change with no event moving the
// version (the ETag): an upcoming invite's days left, and its turn to active.
response invite_response(const endpoint_deps& d, const domain::principal& who, const uuid& id,
                         http::status status, bool* follows_clock = nullptr) {
  auto v = d.reads->invite(who.org_id_, id, d.clock->now());
  if (!v) return problem_response(make_problem("not_found", "no such invite"));
  if (follows_clock) *follows_clock = v->status.status_ == domain::invite_status::upcoming;
  // The body of an unchanged invite is built once (invite_body_cache.h).
  auto body = d.invite_bodies->find(*v);
  if (!body) {
    body = d.invite_bodies->store(
        *v, projections::to_json(*v).dump(-1, ' ', false, json::error_handler_t::replace));
  }
  auto res = text_response(status, *body, json_content_type);
  set_etag(res, v->version);
  if (status == http::status::created)
    res.set(http::field::location, "/v1/invites/" + id.to_string());
  return res;
}

bool wants_csv(const request& req) {
  auto it = req.find(http::field::accept);
  return it != req.end() && it->value().find("text/csv") != std::string_view::npos;
}

// Renders one stored event for the outside (API, SSE).
std::optional<json> event_json(const endpoint_deps& d, const eventstore::recorded_event& e) {
  auto data = d.codec->to_public_json(e);
  if (!data) return std::nullopt;
  return json{{"event_id", e.event_id.to_string()},
              {"type", e.type},
              {"schema_version", e.schema_version},
              {"stream", e.stream},
              {"stream_version", e.stream_version},
              {"position", e.position},
              {"recorded_at", format_rfc3339(e.recorded_at)},
              {"org_id", e.org_id},
              {"correlation_id", e.correlation_id},
              {"causation_id", e.causation_id},
              {"actor", e.actor},
              {"data", *data}};
}

// The learner page for a code that names no invite (or a deleted one).
response invite_not_found_page() {
  auto res = text_response(http::status::not_found, not_found_page(), "text/html; charset=utf-8");
  web::set_page_headers(res);  // as every learner page: CSP, no framing, no sniffing
  return res;
}

// The learner page of an invite, answering its own form post when `outcome` is set.
response claim_page_response(const endpoint_deps& d, const projections::invite_view& v,
                             http::status status, const claim_page_outcome* outcome,
                             std::string_view invitation) {
  auto form = d.reads->lead_form(v.org_id);
  auto res = text_response(status,
                           claim_page(projections::to_public_json(v, &form),
                                      projections::to_json(form), outcome, invitation),
                           "text/html; charset=utf-8");
  web::set_page_headers(res);
  return res;
}

std::uint64_t log_head(const endpoint_deps& d) {
  return d.store ? d.store->head_position() : d.log_position ? d.log_position() : 0;
}

// A read only the primary can answer (it needs the log), asked of a replica.
problem primary_only(const std::string& primary) {
  problem p = make_problem("primary_only", "a read replica cannot answer this; ask " + primary);
  p.extra["primary"] = primary;
  return p;
}

// On a replica, commands and the reads only the primary can answer are refused by name;
// the learner pages are sent to the primary.
router::route_filter read_only_filter(std::string primary) {
  // Where the learner pages are sent: --primary without its trailing slashes (a request's
  // target, appended to it, starts with one). Worked out once, not per request.
  std::string base = primary;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return [primary, base](http::verb method, std::string_view path, handler h) -> handler {
    static const std::set<std::string_view> primary_reads = {
        "/v1/events", "/v1/events/live", "/v1/streams/{stream}", "/v1/public/claims/{claim_id}",
        "/v1/jobs/{id}"};
    // Learner pages post to themselves and their script to the commands: served from
    // the primary, they work. 307 keeps a form post's method and body.
    static const std::set<std::string_view> learner_pages = {"/i/{code}", "/p/{token}"};
    if (learner_pages.contains(path)) {
      return [base](const request& req, request_context&, responder respond) {
        auto res = text_response(http::status::temporary_redirect,
                                 "this node is a read replica; the page is at " + base,
                                 "text/plain; charset=utf-8");
        res.set(http::field::location, base + std::string(req.target()));
        respond(std::move(res));
      };
    }
    const bool command = method != http::verb::get && method != http::verb::head;
    if (!command && !primary_reads.contains(path)) return h;
    return [primary, command](const request&, request_context&, responder respond) {
      if (!command) return respond(problem_response(primary_only(primary))), void();
      problem p = make_problem("read_only_replica",
                               "this node is a read replica; send commands to " + primary);
      p.extra["primary"] = primary;
      respond(problem_response(p));
    };
  };
}

bool may_read_log(const domain::principal& who) {
  return domain::authorize(who, domain::action::read_event_log, {who.org_id_, {}, {}}).has_value();
}

// An optional RFC 3339 query parameter.
result<std::optional<timestamp>, problem> time_param(const request_context& ctx,
                                                     std::string_view name) {
  auto v = ctx.query.get(name);
  if (!v) return std::optional<timestamp>{};
  auto t = parse_rfc3339(*v);
  if (!t) return invalid_request(std::string(name) + " must be an RFC 3339 time");
  return std::optional<timestamp>{*t};
}

// The invite as it stood at `as_of`, rebuilt from the log (point_in_time.h).
result<projections::invite_snapshot, problem> snapshot_of(const endpoint_deps& d,
                                                          const domain::principal& who,
                                                          const uuid& id, timestamp as_of) {
  if (!d.store) return primary_only(d.primary.value_or("the primary"));  // a replica
  auto s = projections::invite_as_of(*d.store, *d.codec, id, as_of);
  if (!s) return make_problem("unavailable", s.error().message);
  if (!*s || (*s)->org_id() != who.org_id_) {
    return make_problem("not_found", "no such invite at " + format_rfc3339(as_of));
  }
  return std::move(**s);
}

// Runs `answer` on the slow-query pool (deps.slow_queries), or here without one; a full
// pool answers 503 with Retry-After (nothing was read or changed).
void off_io_thread(const endpoint_deps& d, const responder& respond, std::function<void()> answer) {
  run_off_io_thread(d.slow_queries, respond, std::move(answer),
                    "too many point-in-time queries are running; retry in a moment");
}

// ---- routes -------------------------------------------------------------------

void health_routes(router& r, deps_ptr d) {
  r.add(http::verb::get, "/healthz", [](const request&, request_context&, responder respond) {
    respond(json_response(http::status::ok, {{"status", "ok"}}));
  });
  r.add(http::verb::get, "/readyz", [d](const request&, request_context&, responder respond) {
    const std::string why = d->not_ready ? d->not_ready() : "";
    respond(json_response(why.empty() ? http::status::ok : http::status::service_unavailable,
                          {{"status", why.empty() ? "ready" : why},
                           {"log_position", log_head(*d)},
                           {"read_model_position", d->reads->applied_position()}}));
  });
  r.add(http::verb::get, "/v1/system", [d](const request&, request_context&, responder respond) {
    json j = d->system_info ? d->system_info() : json::object();
    const auto head = log_head(*d);
    j["log_position"] = head;
    j["read_model_position"] = d->reads->applied_position();
    j["read_model_lag"] = head - std::min(head, d->reads->applied_position());
    j["time"] = format_rfc3339(d->clock->now());
    respond(json_response(http::status::ok, j));
  });
}

void organization_routes(router& r, deps_ptr d) {
  r.add(http::verb::post, "/v1/orgs",
        admin_command(
            d,
            [d](const domain::principal& who, const request& req, request_context& ctx,
                responder respond) {
              auto o = parse_body_with(req, parse_organization_request);
              if (!o) return respond(problem_response(from_field(o.error()))), void();
              d->commands->create_organization(
                  who, o->name, meta_of(ctx),
                  answer_applied(d, respond, [name = o->name](const auto& c) {
                    return created({{"id", c.org_id.to_string()},
                                    {"name", name},
                                    {"owner_key_id", c.owner_key_id.to_string()},
                                    {"owner_key", c.owner_key}},
                                   "/v1/orgs/" + c.org_id.to_string());
                  }));
            },
            true));

  r.add(http::verb::post, "/v1/api-keys",
        admin_command(d, [d](const domain::principal& who, const request& req, request_context& ctx,
                             responder respond) {
          auto k = parse_body_with(req, parse_api_key_request);
          if (!k) return respond(problem_response(from_field(k.error()))), void();
          d->commands->issue_api_key(who, k->role, k->name, k->email, meta_of(ctx),
                                     answer_applied(d, respond, [](const auto& c) {
                                       return created({{"id", c.key_id.to_string()},
                                                       {"role", domain::to_string(c.role)},
                                                       {"name", c.name},
                                                       {"email", c.email ? json(*c.email) : json()},
                                                       {"key", c.key}},
                                                      "/v1/api-keys/" + c.key_id.to_string());
                                     }));
        }));
  r.add(http::verb::get, "/v1/api-keys",
        admin(d, [d](const domain::principal& who, const request&, request_context&,
                     responder respond) {
          if (!domain::authorize(who, domain::action::manage_api_keys, {who.org_id_, {}, {}})) {
            return respond(problem_response(
                       make_problem("forbidden", "only an owner key manages keys"))),
                   void();
          }
          json keys = json::array();
          for (const auto& k : d->reads->api_keys(who.org_id_))
            keys.push_back(projections::to_json(k));
          respond(json_response(http::status::ok, {{"api_keys", keys}}));
        }));
  r.add(http::verb::delete_, "/v1/api-keys/{id}",
        admin_command(d, [d](const domain::principal& who, const request&, request_context& ctx,
                             responder respond) {
          auto id = uuid_param(ctx, "id");
          if (!id) return respond(problem_response(id.error())), void();
          if (!d->reads->api_key(who.org_id_, *id) &&
              domain::authorize(who, domain::action::manage_api_keys, {who.org_id_, {}, {}})) {
            return respond(problem_response(make_problem("not_found", "no such API key"))), void();
          }
          d->commands->revoke_api_key(who, *id, meta_of(ctx),
                                      answer_written(d, respond, [](const service::written&) {
                                        response res{http::status::no_content, 11};
                                        res.prepare_payload();
                                        return res;
                                      }));
        }));

  r.add(
      http::verb::patch, "/v1/api-keys/{id}",
      admin_command(d, [d](const domain::principal& who, const request& req, request_context& ctx,
                           responder respond) {
        auto id = uuid_param(ctx, "id");
        if (!id) return respond(problem_response(id.error())), void();
        auto p = parse_body_with(req, parse_api_key_patch);
        if (!p) return respond(problem_response(from_field(p.error()))), void();
        d->commands->change_api_key_email(
            who, *id, p->email, meta_of(ctx),
            answer_written(d, respond, [d, org = who.org_id_, key = *id](const service::written&) {
              auto k = d->reads->api_key(org, key);
              if (!k) return problem_response(make_problem("not_found", "no such API key"));
              return json_response(http::status::ok, projections::to_json(*k));
            }));
      }));

  r.add(http::verb::get, "/v1/lead-form",
        admin(d, [d](const domain::principal& who, const request&, request_context&,
                     responder respond) {
          if (!d->commands) {  // a replica: the form from the read models, no version
            return respond(json_response(http::status::ok,
                                         projections::to_json(d->reads->lead_form(who.org_id_)))),
                   void();
          }
          auto org = d->commands->organization(who.org_id_);
          if (!org) return respond(problem_response(from_service(org.error()))), void();
          auto res = json_response(http::status::ok, projections::to_json(org->lead_form_));
          set_etag(res, org->version_);
          respond(std::move(res));
        }));
  r.add(http::verb::put, "/v1/lead-form",
        admin_command(d, [d](const domain::principal& who, const request& req, request_context& ctx,
                             responder respond) {
          auto form = parse_body_with(req, parse_lead_form);
          if (!form) return respond(problem_response(from_field(form.error()))), void();
          auto expected = if_match_version(req);
          if (!expected) return respond(problem_response(expected.error())), void();
          d->commands->change_lead_form(
              who, *form, *expected, meta_of(ctx),
              answer_written(d, respond, [d, who](const service::written& w) {
                auto org = d->commands->organization(who.org_id_);
                auto res = json_response(
                    http::status::ok, org ? projections::to_json(org->lead_form_) : json::object());
                set_etag(res, w.version);
                return res;
              }));
        }));
  r.add(http::verb::get, "/v1/leads",
        admin(d, [d](const domain::principal& who, const request&, request_context&,
                     responder respond) {
          if (!domain::authorize(who, domain::action::manage_lead_form, {who.org_id_, {}, {}})) {
            return respond(problem_response(make_problem("forbidden", "owner or admin only"))),
                   void();
          }
          json rows = json::array();
          for (const auto& l : d->reads->leads(who.org_id_))
            rows.push_back(projections::to_json(l));
          respond(json_response(http::status::ok, {{"leads", rows}}));
        }));
}

void track_routes(router& r, deps_ptr d) {
  r.add(http::verb::post, "/v1/tracks",
        admin_command(d, [d](const domain::principal& who, const request& req, request_context& ctx,
                             responder respond) {
          auto t = parse_body_with(req, parse_track);
          if (!t) return respond(problem_response(from_field(t.error()))), void();
          auto id = t->track_id;
          d->commands->register_track(
              who, t->track_id, t->title, t->pausable, meta_of(ctx),
              answer_written(d, respond, [d, who, id](const service::written&) {
                auto v = d->reads->track(who.org_id_, id);
                return created(v ? projections::to_json(*v) : json{{"id", id}}, "/v1/tracks/" + id);
              }));
        }));
  r.add(http::verb::get, "/v1/tracks",
        admin(d, [d](const domain::principal& who, const request&, request_context&,
                     responder respond) {
          json tracks = json::array();
          for (const auto& t : d->reads->tracks(who.org_id_))
            tracks.push_back(projections::to_json(t));
          respond(json_response(http::status::ok, {{"tracks", tracks}}));
        }));
}

// A professor's read of an invite on a replica: the command side's ownership rule, over
// the read models' tracks.
std::optional<problem> readable_on_replica(const endpoint_deps& d, const domain::principal& who,
                                           const uuid& id) {
  auto v = d.reads->invite(who.org_id_, id, d.clock->now());
  if (!v) return make_problem("not_found", "no such invite");
  auto catalog = d.reads->track_catalog(who.org_id_);
  domain::access_target target{who.org_id_, {}, std::nullopt};
  for (const auto& t : v->settings.tracks_) {
    auto it = catalog.find(t.track_id_);
    target.track_owners_.push_back(it == catalog.end() ? std::nullopt : it->second.owner_);
  }
  auto ok = domain::authorize(who, domain::action::manage_invite, target);
  if (!ok) return from_service(service::from_domain(ok.error()));
  return std::nullopt;
}

// Reads of one invite (and of what hangs off it, e.g. its mail jobs) check professor
// ownership through the command side's authorization (404 across organizations).
std::optional<problem> invite_readable(const endpoint_deps& d, const domain::principal& who,
                                       const uuid& id) {
  if (who.role_ != domain::role::professor) {
    if (!d.reads->invite(who.org_id_, id, d.clock->now()))
      return make_problem("not_found", "no such invite");
    return std::nullopt;
  }
  if (!d.commands) return readable_on_replica(d, who, id);
  auto s = d.commands->invite_for(who, id);
  if (!s) return from_service(s.error());
  return std::nullopt;
}

void invite_routes(router& r, deps_ptr d) {
  r.add(http::verb::post, "/v1/invites",
        admin_command(d, [d](const domain::principal& who, const request& req, request_context& ctx,
                             responder respond) {
          auto draft = parse_body_with(req, parse_invite_draft);
          if (!draft) return respond(problem_response(from_field(draft.error()))), void();
          d->commands->create_invite(who, std::move(*draft), meta_of(ctx),
                                     answer_applied(d, respond, [d, who](const auto& c) {
                                       return invite_response(*d, who, c.invite_id,
                                                              http::status::created);
                                     }));
        }));

  r.add(http::verb::get, "/v1/invites",
        admin(d, [d](const domain::principal& who, const request&, request_context& ctx,
                     responder respond) {
          projections::invite_query q;
          if (auto s = ctx.query.get("status"); s && !s->empty()) {
            std::string_view rest = *s;
            while (!rest.empty()) {
              auto comma = rest.find(',');
              auto part = rest.substr(0, comma);
              bool found = false;
              for (auto st : {domain::invite_status::active, domain::invite_status::upcoming,
                              domain::invite_status::expired, domain::invite_status::full,
                              domain::invite_status::deactivated, domain::invite_status::deleted}) {
                if (domain::to_string(st) == part) {
                  q.statuses.push_back(st);
                  found = true;
                }
              }
              if (!found && part != "all") {
                return respond(
                           problem_response(invalid_request("status must be a comma-separated list "
                                                            "of active, upcoming, expired, full, "
                                                            "deactivated, deleted or all"))),
                       void();
              }
              if (part == "all") {
                q.statuses = {domain::invite_status::active,      domain::invite_status::upcoming,
                              domain::invite_status::expired,     domain::invite_status::full,
                              domain::invite_status::deactivated, domain::invite_status::deleted};
              }
              rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
            }
          }
          if (auto t = ctx.query.get("track")) q.track = std::string(*t);
          if (auto t = ctx.query.get("type")) {
            auto parsed = domain::parse_invite_type(*t);
            if (!parsed)
              return respond(problem_response(
                         invalid_request("type must be self_paced or live_event"))),
                     void();
            q.type = *parsed;
          }
          if (auto t = ctx.query.get("q")) q.q = std::string(*t);
          if (auto t = ctx.query.get("cursor")) q.cursor = std::string(*t);
          auto limit = query_int(ctx.query, "limit", 1,
                                 static_cast<std::int64_t>(projections::max_page_size));
          if (!limit) return respond(problem_response(limit.error())), void();
          if (*limit) q.limit = static_cast<std::size_t>(**limit);
          if (who.role_ == domain::role::professor) q.owned_by = who.key_id_;
          auto page = d->reads->list_invites(who.org_id_, q, d->clock->now());
          if (!page) {
            return respond(problem_response(
                       invalid_request(page.error().field + " " + page.error().message))),
                   void();
          }
          json items = json::array();
          for (const auto& v : page->invites) items.push_back(projections::to_json(v));
          respond(json_response(
              http::status::ok,
              {{"invites", items},
               {"next_cursor", page->next_cursor ? json(*page->next_cursor) : json(nullptr)}}));
        }));

  auto readable = [d](const domain::principal& who, const uuid& id) {
    return invite_readable(*d, who, id);
  };

  r.add(http::verb::get, "/v1/invites/{id}",
        admin(d, [d, readable](const domain::principal& who, const request& req,
                               request_context& ctx, responder respond) {
          auto id = uuid_param(ctx, "id");
          if (!id) return respond(problem_response(id.error())), void();
          // For other roles readable() is the lookup invite_response makes (the same 404):
          // only a professor's read needs the check first.
          if (who.role_ == domain::role::professor) {
            if (auto p = readable(who, *id)) return respond(problem_response(*p)), void();
          }
          bool follows_clock = false;
          auto res = invite_response(*d, who, *id, http::status::ok, &follows_clock);
          // 304 only for a body that cannot have changed while the version stood still.
          auto inm = req.find(http::field::if_none_match);
          auto etag = res.find(http::field::etag);
          if (!follows_clock && inm != req.end() && etag != res.end() &&
              inm->value() == etag->value()) {
            response nm{http::status::not_modified, req.version()};
            nm.set(http::field::etag, res[http::field::etag]);
            nm.prepare_payload();
            return respond(std::move(nm)), void();
          }
          respond(std::move(res));
        }));

  r.add(http::verb::patch, "/v1/invites/{id}",
        admin_command(d, [d](const domain::principal& who, const request& req, request_context& ctx,
                             responder respond) {
          auto id = uuid_param(ctx, "id");
          if (!id) return respond(problem_response(id.error())), void();
          auto patch = parse_body_with(req, parse_invite_patch);
          if (!patch) return respond(problem_response(from_field(patch.error()))), void();
          auto expected = if_match_version(req);
          if (!expected) return respond(problem_response(expected.error())), void();
          auto invite_id = *id;
          d->commands->update_invite(
              who, invite_id, std::move(*patch), *expected, meta_of(ctx),
              answer_written(d, respond, [d, who, invite_id](const service::written&) {
                return invite_response(*d, who, invite_id, http::status::ok);
              }));
        }));

  using lifecycle_fn = void (service::command_service::*)(
      const domain::principal&, const uuid&, std::optional<std::uint64_t>,
      const service::request_meta&, service::callback<service::written>);
  auto lifecycle = [d](lifecycle_fn fn, bool deleted) {
    return admin_command(d, [d, fn, deleted](const domain::principal& who, const request& req,
                                             request_context& ctx, responder respond) {
      auto id = uuid_param(ctx, "id");
      if (!id) return respond(problem_response(id.error())), void();
      auto expected = if_match_version(req);
      if (!expected) return respond(problem_response(expected.error())), void();
      auto invite_id = *id;
      ((*d->commands).*fn)(
          who, invite_id, *expected, meta_of(ctx),
          answer_written(d, respond, [d, who, invite_id, deleted](const service::written& w) {
            if (deleted) {
              response res{http::status::no_content, 11};
              set_etag(res, w.version);
              res.prepare_payload();
              return res;
            }
            return invite_response(*d, who, invite_id, http::status::ok);
          }));
    });
  };
  r.add(http::verb::post, "/v1/invites/{id}/deactivate",
        lifecycle(&service::command_service::deactivate_invite, false));
  r.add(http::verb::post, "/v1/invites/{id}/reactivate",
        lifecycle(&service::command_service::reactivate_invite, false));
  r.add(http::verb::delete_, "/v1/invites/{id}",
        lifecycle(&service::command_service::delete_invite, true));

  r.add(http::verb::post, "/v1/invites/{id}/duplicate",
        admin_command(d, [d](const domain::principal& who, const request&, request_context& ctx,
                             responder respond) {
          auto id = uuid_param(ctx, "id");
          if (!id) return respond(problem_response(id.error())), void();
          d->commands->duplicate_invite(
              who, *id, meta_of(ctx), answer_applied(d, respond, [d, who](const auto& c) {
                return invite_response(*d, who, c.invite_id, http::status::created);
              }));
        }));

  r.add(http::verb::get, "/v1/invites/{id}/claims",
        admin(d, [d, readable](const domain::principal& who, const request& req,
                               request_context& ctx, responder respond) {
          auto id = uuid_param(ctx, "id");
          if (!id) return respond(problem_response(id.error())), void();
          if (auto p = readable(who, *id)) return respond(problem_response(*p)), void();
          auto as_of = time_param(ctx, "as_of");
          if (!as_of) return respond(problem_response(as_of.error())), void();
          auto answer = [d, who, id = *id, as_of = *as_of, csv = wants_csv(req), respond] {
            std::optional<std::vector<projections::acceptance_row>> rows;
            if (as_of) {
              auto then = snapshot_of(*d, who, id, *as_of);
              if (!then) return respond(problem_response(then.error())), void();
              rows = then->acceptance_list();
            } else {
              rows = d->reads->acceptance_list(who.org_id_, id);
            }
            if (!rows)
              return respond(problem_response(make_problem("not_found", "no such invite"))), void();
            if (csv) {
              auto res = text_response(http::status::ok, projections::acceptance_csv(*rows),
                                       "text/csv; charset=utf-8");
              res.set(http::field::content_disposition,
                      "attachment; filename=\"acceptance-" + id.to_string() + ".csv\"");
              return respond(std::move(res)), void();
            }
            json items = json::array();
            for (const auto& row : *rows) items.push_back(projections::to_json(row));
            json body = {{"invite_id", id.to_string()}, {"claims", items}, {"count", rows->size()}};
            if (as_of) body["as_of"] = format_rfc3339(*as_of);
            respond(json_response(http::status::ok, body));
          };
          if (*as_of) return off_io_thread(*d, respond, std::move(answer));
          answer();
        }));

  r.add(http::verb::get, "/v1/invites/{id}/usage",
        admin(d, [d, readable](const domain::principal& who, const request&, request_context& ctx,
                               responder respond) {
          auto id = uuid_param(ctx, "id");
          if (!id) return respond(problem_response(id.error())), void();
          if (auto p = readable(who, *id)) return respond(problem_response(*p)), void();
          auto as_of = time_param(ctx, "as_of");
          if (!as_of) return respond(problem_response(as_of.error())), void();
          if (*as_of) {
            return off_io_thread(*d, respond, [d, who, id = *id, as_of = **as_of, respond] {
              auto then = snapshot_of(*d, who, id, as_of);
              if (!then) return respond(problem_response(then.error())), void();
              auto body = projections::to_json(then->usage());
              body["as_of"] = format_rfc3339(as_of);
              respond(json_response(http::status::ok, body));
            });
          }
          auto u = d->reads->usage(who.org_id_, *id);
          if (!u)
            return respond(problem_response(make_problem("not_found", "no such invite"))), void();
          respond(json_response(http::status::ok, projections::to_json(*u)));
        }));

  r.add(http::verb::get, "/v1/invites/{id}/rejections",
        admin(d, [d, readable](const domain::principal& who, const request&, request_context& ctx,
                               responder respond) {
          auto id = uuid_param(ctx, "id");
          if (!id) return respond(problem_response(id.error())), void();
          if (auto p = readable(who, *id)) return respond(problem_response(*p)), void();
          auto rows = d->reads->rejections(who.org_id_, *id);
          if (!rows)
            return respond(problem_response(make_problem("not_found", "no such invite"))), void();
          json items = json::array();
          for (const auto& row : *rows) items.push_back(projections::to_json(row));
          respond(json_response(http::status::ok,
                                {{"invite_id", id->to_string()}, {"rejections", items}}));
        }));
}

// Answers a claim (by code or by personal link): 201 new, 200 existing, problem rejected.
service::callback<service::claim_result> claim_answer(deps_ptr d, responder respond) {
  return answer_applied(d, respond, [](const service::claim_result& c) {
    if (c.outcome == domain::claim_outcome::rejected) {
      auto code =
          c.rejection ? std::string(domain::to_string(*c.rejection)) : std::string("not_allowed");
      problem p = make_problem(code, c.missing_field.empty() ? "the invite refused this claim"
                                                             : "missing: " + c.missing_field);
      p.extra.update(error_body_for_claim(c));
      return problem_response(p);
    }
    bool fresh = c.outcome == domain::claim_outcome::claimed;
    auto res = text_response(fresh ? http::status::created : http::status::ok, to_json_text(c),
                             json_content_type);
    if (fresh)
      res.set(http::field::location, "/v1/public/claims/" + c.claim->claim_id_.to_string());
    return res;
  });
}

// Claim abuse limits (SPEC §2); nullopt lets the claim through.
std::optional<problem> claim_limited(const endpoint_deps& d, const request_context& ctx,
                                     const service::claim_input& input) {
  if (d.claims_per_ip) {
    if (auto wait = d.claims_per_ip(client_network(ctx.client_ip))) {
      return rate_limited(*wait, "too many claims from this address");
    }
  }
  if (d.claims_per_email && input.email) {
    if (auto wait = d.claims_per_email(domain::normalize_email(*input.email))) {
      return rate_limited(*wait, "too many claims for this email");
    }
  }
  return std::nullopt;
}

void public_routes(router& r, deps_ptr d) {
  auto lookup = [d](std::string_view code) -> std::optional<projections::invite_view> {
    auto normalized = domain::normalize_invite_code(code);
    if (!domain::is_valid_invite_code(normalized)) return std::nullopt;
    auto ref = d->reads->invite_by_code(normalized);
    if (!ref) return std::nullopt;
    auto v = d->reads->invite(ref->org_id, ref->invite_id, d->clock->now());
    if (!v || v->deleted) return std::nullopt;
    return v;
  };

  r.add(http::verb::get, "/v1/public/invites/{code}",
        [d, lookup](const request&, request_context& ctx, responder respond) {
          auto v = lookup(ctx.params.get_or("code", ""));
          if (!v)
            return respond(problem_response(make_problem("not_found", "no invite has this code"))),
                   void();
          auto form = d->reads->lead_form(v->org_id);
          respond(json_response(http::status::ok, projections::to_public_json(*v, &form)));
        });

  r.add(http::verb::get, "/i/{code}",
        [d, lookup](const request&, request_context& ctx, responder respond) {
          auto code = ctx.params.get_or("code", "");
          auto v = lookup(code);
          if (!v) {
            return respond(invite_not_found_page()), void();
          }
          respond(claim_page_response(*d, *v, http::status::ok, nullptr,
                                      ctx.query.get_or("invitation", "")));
        });

  // The learner page's form without scripts (application/x-www-form-urlencoded):
  // the same claim as the JSON endpoint, answered with the page.
  r.add(http::verb::post, "/i/{code}",
        [d, lookup](const request& req, request_context& ctx, responder respond) {
          std::string code(ctx.params.get_or("code", ""));
          // Opened from a private invitation's personal link: claim through that link.
          std::string invitation(ctx.query.get_or("invitation", ""));
          auto v = lookup(code);
          if (!v) {
            return respond(invite_not_found_page()), void();
          }
          auto fields = parse_query(req.body());
          claim_page_outcome outcome;
          if (fields) {
            outcome.submitted = claim_form_body({fields->begin(), fields->end()});
          }
          auto input = fields ? parse_claim_input(outcome.submitted)
                              : dto_result<service::claim_input>(field_error{"", "bad form"});
          std::optional<problem> refused;
          if (!input) refused = invalid_request(input.error().message);
          if (input && !refused) refused = claim_limited(*d, ctx, *input);
          if (refused) {
            outcome.rejection = refused->code;
            auto page =
                claim_page_response(*d, *v, http::status(refused->status), &outcome, invitation);
            if (refused->retry_after) set_retry_after(page, *refused->retry_after);
            return respond(std::move(page)), void();
          }
          auto answer = [d, respond, code, lookup, outcome,
                         invitation](service::service_result<service::claim_result> res) mutable {
            if (!res) {
              outcome.rejection = res.error().code;
              auto now = lookup(code);
              if (!now) return respond(invite_not_found_page()), void();
              return respond(claim_page_response(*d, *now,
                                                 http::status(status_for(outcome.rejection)),
                                                 &outcome, invitation)),
                     void();
            }
            auto c = *res;
            after_applied(*d, c.at.position, respond,
                          [d, respond, code, lookup, outcome, invitation, c]() mutable {
                            auto now = lookup(code);
                            if (!now) return respond(invite_not_found_page()), void();
                            auto status = http::status::created;
                            if (c.outcome == domain::claim_outcome::rejected) {
                              outcome.rejection = c.rejection
                                                      ? std::string(domain::to_string(*c.rejection))
                                                      : std::string("not_allowed");
                              outcome.missing_field = c.missing_field;
                              status = http::status(status_for(outcome.rejection));
                            } else {
                              outcome.claim = to_json(c);
                              outcome.again = c.outcome != domain::claim_outcome::claimed;
                              if (outcome.again) status = http::status::ok;
                            }
                            respond(claim_page_response(*d, *now, status, &outcome, invitation));
                          });
          };
          if (invitation.empty()) {
            d->commands->claim(code, std::move(*input), meta_of(ctx), std::move(answer));
          } else {
            d->commands->claim_by_link(invitation, std::move(*input), meta_of(ctx),
                                       std::move(answer));
          }
        });

  r.add(http::verb::post, "/v1/public/invites/{code}/claims",
        with_idempotency(
            *d->idempotency,
            [](const request&, const request_context& ctx) {
              return "public:" + std::string(ctx.params.get_or("code", ""));
            },
            [d](const request& req, request_context& ctx, responder respond) {
              auto input = parse_claim_body(req.body());
              if (!input) return respond(problem_response(from_field(input.error()))), void();
              if (auto limited = claim_limited(*d, ctx, *input))
                return respond(problem_response(*limited)), void();
              d->commands->claim(std::string(ctx.params.get_or("code", "")), std::move(*input),
                                 meta_of(ctx), claim_answer(d, respond));
            },
            kept_answers::acted_on));

  auto learner_token = [](const request& req, const json* body) -> std::string {
    auto it = req.find(http::field::authorization);
    if (it != req.end() && it->value().starts_with("Bearer "))
      return std::string(it->value().substr(7));
    if (body && body->contains("learner_token") && (*body)["learner_token"].is_string()) {
      return (*body)["learner_token"].get<std::string>();
    }
    return {};
  };

  r.add(http::verb::get, "/v1/public/claims/{claim_id}",
        [d, learner_token](const request& req, request_context& ctx, responder respond) {
          auto id = uuid_param(ctx, "claim_id");
          if (!id) return respond(problem_response(id.error())), void();
          auto who = d->commands->tokens().verify(learner_token(req, nullptr));
          auto c = d->reads->claim_access(*id, d->clock->now());
          if (!who)
            return respond(problem_response(
                       make_problem("unauthorized", "a learner token is required"))),
                   void();
          if (!c || c->learner_id != who->learner_id || c->org_id != who->org_id) {
            return respond(problem_response(make_problem("not_found", "no such claim"))), void();
          }
          respond(json_response(http::status::ok, projections::to_json(*c)));
        });

  using claim_fn = void (service::command_service::*)(const uuid&, std::string_view, std::string,
                                                      const service::request_meta&,
                                                      service::callback<service::play_result>);
  auto claim_action = [d, learner_token](claim_fn fn, bool track_in_path) {
    return [d, fn, track_in_path, learner_token](const request& req, request_context& ctx,
                                                 responder respond) {
      auto id = uuid_param(ctx, "claim_id");
      if (!id) return respond(problem_response(id.error())), void();
      auto body = parse_body(req.body(), track_in_path);
      if (!body) return respond(problem_response(from_field(body.error()))), void();
      std::string track;
      if (track_in_path) {
        track = ctx.params.get_or("track_id", "");
      } else {
        json copy = *body;
        copy.erase("learner_token");
        auto p = parse_play_request(copy);
        if (!p) return respond(problem_response(from_field(p.error()))), void();
        track = p->track_id;
      }
      auto token = learner_token(req, &*body);
      ((*d->commands).*fn)(
          *id, token, track, meta_of(ctx),
          answer_applied(d, respond, [track_in_path](const service::play_result& p) {
            return json_response(track_in_path ? http::status::ok : http::status::created,
                                 to_json(p));
          }));
    };
  };
  // Whose Idempotency-Keys a learner's request is among: the learner its token names
  // (nullopt without a valid token: the command answers 401 and nothing is kept).
  auto learner_scope = [d, learner_token](const request& req,
                                          const request_context&) -> std::optional<std::string> {
    auto body = json::parse(req.body(), nullptr, false);
    auto who = d->commands->tokens().verify(learner_token(req, body.is_object() ? &body : nullptr));
    if (!who) return std::nullopt;
    return "learner:" + who->learner_id.to_string();
  };
  r.add(http::verb::post, "/v1/public/claims/{claim_id}/plays",
        with_idempotency(*d->idempotency, learner_scope,
                         claim_action(&service::command_service::play, false)));
  r.add(http::verb::post, "/v1/public/claims/{claim_id}/tracks/{track_id}/pause",
        with_idempotency(*d->idempotency, learner_scope,
                         claim_action(&service::command_service::pause, true)));
  r.add(http::verb::post, "/v1/public/claims/{claim_id}/tracks/{track_id}/resume",
        with_idempotency(*d->idempotency, learner_scope,
                         claim_action(&service::command_service::resume, true)));
}

void learner_routes(router& r, deps_ptr d) {
  r.add(http::verb::get, "/v1/learners/{id}/history",
        admin(d, [d](const domain::principal& who, const request&, request_context& ctx,
                     responder respond) {
          if (!may_read_log(who))
            return respond(problem_response(make_problem("forbidden", "owner or admin only"))),
                   void();
          auto id = uuid_param(ctx, "id");
          if (!id) return respond(problem_response(id.error())), void();
          auto h = d->reads->learner_history(who.org_id_, *id);
          if (!h)
            return respond(problem_response(make_problem("not_found", "no such learner"))), void();
          respond(json_response(http::status::ok, projections::to_json(*h)));
        }));

  // A new one-time set-password link (and welcome mail); the old link stops working.
  r.add(http::verb::post, "/v1/learners/{id}/password-setup",
        admin_command(d, [d](const domain::principal& who, const request&, request_context& ctx,
                             responder respond) {
          auto id = uuid_param(ctx, "id");
          if (!id) return respond(problem_response(id.error())), void();
          auto learner = *id;
          d->commands->issue_password_setup(
              who, learner, meta_of(ctx),
              answer_written(d, respond, [learner](const service::written&) {
                return json_response(http::status::accepted,
                                     {{"learner_id", learner.to_string()}, {"issued", true}});
              }));
        }));

  r.add(http::verb::post, "/v1/learners/{id}/forget",
        admin_command(d, [d](const domain::principal& who, const request&, request_context& ctx,
                             responder respond) {
          auto id = uuid_param(ctx, "id");
          if (!id) return respond(problem_response(id.error())), void();
          auto learner = *id;
          d->commands->forget_learner(
              who, learner, meta_of(ctx),
              answer_written(d, respond, [d, learner](const service::written&) {
                if (d->on_learner_forgotten) d->on_learner_forgotten(learner);
                return json_response(http::status::ok,
                                     {{"learner_id", learner.to_string()}, {"forgotten", true}});
              }));
        }));
}

void claim_history_routes(router& r, deps_ptr d) {
  r.add(http::verb::get, "/v1/claims/history",
        admin(d, [d](const domain::principal& who, const request&, request_context& ctx,
                     responder respond) {
          if (!may_read_log(who))
            return respond(problem_response(make_problem("forbidden", "owner or admin only"))),
                   void();
          projections::claim_history_query q;
          auto bucket = ctx.query.get("bucket");
          if (bucket && *bucket != "hour" && *bucket != "day")
            return respond(problem_response(invalid_request("bucket must be hour or day"))), void();
          if (bucket && *bucket == "hour") q.bucket = projections::claim_bucket::hour;
          for (auto [name, slot] : {std::pair{"since", &q.since}, std::pair{"until", &q.until}}) {
            auto t = time_param(ctx, name);
            if (!t) return respond(problem_response(t.error())), void();
            *slot = *t;
          }
          respond(json_response(http::status::ok,
                                projections::to_json(d->reads->claim_history(who.org_id_, q))));
        }));
}

// 503 for a live-tail client past the limit of connected ones.
response live_tail_full() {
  problem p = make_problem("unavailable", "too many live-tail clients are connected; retry later");
  p.retry_after = std::chrono::seconds(5);
  return problem_response(p);
}

void event_routes(router& r, deps_ptr d) {
  // One reading thread for every live-tail client (live_tail.h); none on a replica.
  std::shared_ptr<live_tail> tail;
  if (d->store) {
    tail = std::make_shared<live_tail>(
        *d->store,
        [d](const eventstore::recorded_event& e) -> std::optional<std::string> {
          auto j = event_json(*d, e);
          if (!j) return std::nullopt;
          return "id: " + std::to_string(e.position) + "\nevent: " + e.type +
                 "\ndata: " + j->dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
        },
        live_tail_options{.max_clients = d->live_tail_max_clients});
  }
  r.add(http::verb::get, "/v1/events",
        admin(d, [d](const domain::principal& who, const request&, request_context& ctx,
                     responder respond) {
          if (!may_read_log(who))
            return respond(problem_response(make_problem("forbidden", "owner or admin only"))),
                   void();
          auto from = query_int(ctx.query, "from", 0, INT64_MAX);
          auto limit = query_int(ctx.query, "limit", 1, 10000);
          if (!from) return respond(problem_response(from.error())), void();
          if (!limit) return respond(problem_response(limit.error())), void();
          eventstore::log_filter f;
          f.from_position = static_cast<std::uint64_t>(from->value_or(1));
          if (auto t = ctx.query.get("type")) {
            std::string_view rest = *t;
            while (!rest.empty()) {
              auto comma = rest.find(',');
              f.types.emplace_back(rest.substr(0, comma));
              rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
            }
          }
          // One stream, named whole: the store's prefix scan finds it, and the visit drops
          // the streams whose names merely begin with it (track-<org>-k8s-advanced for
          // track-<org>-k8s).
          std::string stream;
          if (auto s = ctx.query.get("stream")) f.stream_prefix = stream = std::string(*s);
          for (auto [name, slot] : {std::pair{"since", &f.since}, std::pair{"until", &f.until}}) {
            if (auto v = ctx.query.get(name)) {
              auto t = parse_rfc3339(*v);
              if (!t)
                return respond(problem_response(
                           invalid_request(std::string(name) + " must be an RFC 3339 time"))),
                       void();
              *slot = *t;
            }
          }
          std::size_t max = static_cast<std::size_t>(limit->value_or(100));
          const std::string org = who.org_id_.to_string();
          // The log is every organization's: a page examines a bounded stretch of it (on an
          // I/O thread), and a page of a small organization or a rare type may come back
          // short or empty with next_from <= head_position: go on from there.
          const std::uint64_t budget = d->events_page_scan;
          std::vector<std::string> types;  // filtered here rather than in the store
          if (!f.since) {
            f.to_position = f.from_position > UINT64_MAX - budget
                                ? UINT64_MAX
                                : std::max<std::uint64_t>(f.from_position, 1) + budget - 1;
          } else {
            // Where `since` starts in positions is the store's to find (its time index): the
            // budget then counts the events handed over, so every event examined must be
            // handed over, the type and stream filters applied here.
            types = std::move(f.types);
            f.types.clear();
            f.stream_prefix.clear();
          }
          std::uint64_t visited = 0;
          json items = json::array();
          std::uint64_t last = 0;
          bool failed = false;
          auto scanned = d->store->scan(f, [&](const eventstore::recorded_event& e) {
            last = e.position;
            if (e.org_id == org && (stream.empty() || e.stream == stream) &&
                (types.empty() || std::find(types.begin(), types.end(), e.type) != types.end())) {
              auto j = event_json(*d, e);
              if (!j) {
                failed = true;
                return false;
              }
              items.push_back(std::move(*j));
              if (items.size() >= max) return false;
            }
            return ++visited < budget;  // with `since` (no position bound): events examined
          });
          if (!scanned || failed) {
            return respond(problem_response(
                       make_problem("unavailable", "the event log could not be read"))),
                   void();
          }
          // Past what was read, and never before `from`: a client that is caught up keeps
          // its place instead of being sent back to the start of the log.
          std::uint64_t next = std::max({f.from_position, last + 1, *scanned + 1});
          respond(json_response(http::status::ok, {{"events", items},
                                                   {"next_from", next},
                                                   {"head_position", d->store->head_position()}}));
        }));

  r.add(http::verb::get, "/v1/streams/{stream}",
        admin(d, [d](const domain::principal& who, const request&, request_context& ctx,
                     responder respond) {
          if (!may_read_log(who))
            return respond(problem_response(make_problem("forbidden", "owner or admin only"))),
                   void();
          auto from = query_int(ctx.query, "from", 1, INT64_MAX);
          auto limit = query_int(ctx.query, "limit", 1, 10000);
          if (!from) return respond(problem_response(from.error())), void();
          if (!limit) return respond(problem_response(limit.error())), void();
          auto stream = ctx.params.get_or("stream", "");
          const auto first = static_cast<std::uint64_t>(from->value_or(1));
          const auto max = static_cast<std::size_t>(limit->value_or(1000));
          auto unavailable = [&](const std::string& why) {
            respond(problem_response(make_problem("unavailable", why)));
          };
          auto events =
              d->store->read_stream(stream, first, eventstore::read_direction::forward, max);
          auto version = d->store->stream_version(stream);
          if (!events) return unavailable(events.error().message);
          if (!version) return unavailable(version.error().message);
          // Whose stream it is, from its first event (the page may hold none: `from` past
          // its end gives an empty page of a stream that exists).
          auto head = events->empty() && *version > 0
                          ? d->store->read_stream(stream, 1, eventstore::read_direction::forward, 1)
                          : eventstore::store_result<std::vector<eventstore::recorded_event>>{
                                std::vector<eventstore::recorded_event>{}};
          if (!head) return unavailable(head.error().message);
          const std::string org = who.org_id_.to_string();
          const auto& owner = events->empty() ? *head : *events;
          if (owner.empty() || owner.front().org_id != org)
            return respond(problem_response(make_problem("not_found", "no such stream"))), void();
          json items = json::array();
          for (const auto& e : *events) {
            auto j = event_json(*d, e);
            if (!j) return unavailable("event cannot be decoded");
            items.push_back(std::move(*j));
          }
          // Paged as the global log: next_from is where the next page starts, and a
          // client has read the whole stream once next_from passes stream_version.
          const std::uint64_t next = events->empty() ? std::max<std::uint64_t>(first, *version + 1)
                                                     : events->back().stream_version + 1;
          respond(json_response(http::status::ok, {{"stream", stream},
                                                   {"events", items},
                                                   {"next_from", next},
                                                   {"stream_version", *version}}));
        }));

  // Live tail as Server-Sent Events; resumes after Last-Event-ID (a position).
  r.add(http::verb::get, "/v1/events/live",
        admin(d, [d, tail](const domain::principal& who, const request& req, request_context& ctx,
                           responder respond) {
          if (!may_read_log(who))
            return respond(problem_response(make_problem("forbidden", "owner or admin only"))),
                   void();
          auto from = query_int(ctx.query, "from", 0, INT64_MAX);
          if (!from) return respond(problem_response(from.error())), void();
          std::uint64_t start = static_cast<std::uint64_t>(from->value_or(0));
          if (auto it = req.find("Last-Event-ID"); it != req.end()) {
            // Digits only: a log position (what the stream's "id:" lines carry).
            std::string_view v(it->value().data(), it->value().size());
            std::uint64_t last = 0;
            auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), last);
            if (v.empty() || ec != std::errc() || end != v.data() + v.size() ||
                last >= static_cast<std::uint64_t>(INT64_MAX)) {
              return respond(
                         problem_response(invalid_request("Last-Event-ID must be a log position"))),
                     void();
            }
            start = last + 1;
          } else if (!from->has_value()) {
            start = d->store->head_position() + 1;  // live only
          }
          if (!tail)
            return respond(problem_response(primary_only(d->primary.value_or("")))), void();
          response_header h;
          h.result(http::status::ok);
          h.set(http::field::content_type, "text/event-stream");
          h.set(http::field::cache_control, "no-store");
          // A place is taken before the stream starts, so a client past the limit gets a
          // problem, not a cut stream, and one admitted keeps its place.
          auto place = tail->reserve();
          if (!place) return respond(live_tail_full()), void();
          // HEAD: the headers only (the server ends the response after them).
          if (req.method() == http::verb::head) return (void)respond.start_stream(std::move(h));
          auto stream = respond.start_stream(std::move(h));
          if (!stream) return;
          stream->send(": passage live tail\nretry: 2000\n\n");
          if (!tail->add(std::move(*place),
                         {.org = who.org_id_.to_string(), .from = start, .stream = stream})) {
            stream->close();  // stopping: the client retries
          }
        }));
}

// Private invitations (SPEC §4): a bulk send is recorded at once (202 with the job id);
// the mailer delivers it and GET /v1/jobs/{id} shows its progress. Personal links claim
// through /v1/public/invitations/{token}/claims.
void invitation_routes(router& r, deps_ptr d) {
  r.add(http::verb::post, "/v1/invites/{id}/send",
        admin_command(d, [d](const domain::principal& who, const request& req, request_context& ctx,
                             responder respond) {
          auto id = uuid_param(ctx, "id");
          if (!id) return respond(problem_response(id.error())), void();
          auto send = parse_body_with(req, parse_send_request);
          if (!send) return respond(problem_response(from_field(send.error()))), void();
          d->commands->send_private_invitations(
              who, *id, std::move(send->emails), send->on_existing, send->remind_after,
              meta_of(ctx), [d, respond](service::service_result<service::invitation_job> res) {
                if (!res) return respond(problem_response(from_service(res.error()))), void();
                const auto job = *res;
                if (d->on_invitation_job) d->on_invitation_job(job);
                auto out =
                    json_response(http::status::accepted, {{"job_id", job.job_id.to_string()},
                                                           {"invite_id", job.invite_id.to_string()},
                                                           {"status", "started"},
                                                           {"total", job.total}});
                out.set(http::field::location, "/v1/jobs/" + job.job_id.to_string());
                respond(std::move(out));
              });
        }));

  r.add(http::verb::get, "/v1/jobs/{id}",
        admin(d, [d](const domain::principal& who, const request&, request_context& ctx,
                     responder respond) {
          auto id = uuid_param(ctx, "id");
          if (!id) return respond(problem_response(id.error())), void();
          auto job = d->job_status ? d->job_status(who.org_id_, *id) : std::nullopt;
          if (!job)
            return respond(problem_response(make_problem("not_found", "no such job"))), void();
          // A professor sees the jobs of the invites they may read, and no other.
          if (who.role_ == domain::role::professor) {
            auto invite = uuid::parse(job->value("invite_id", std::string()));
            if (!invite || invite_readable(*d, who, *invite))
              return respond(problem_response(make_problem("not_found", "no such job"))), void();
          }
          respond(json_response(http::status::ok, *job));
        }));

  r.add(http::verb::post, "/v1/public/invitations/{token}/claims",
        with_idempotency(
            *d->idempotency,
            [](const request&, const request_context& ctx) {
              return "invitation:" + std::string(ctx.params.get_or("token", ""));
            },
            [d](const request& req, request_context& ctx, responder respond) {
              auto body = parse_body(req.body(), true);
              auto input = body ? parse_claim_input(*body) : body.error();
              if (!input) return respond(problem_response(from_field(input.error()))), void();
              if (auto limited = claim_limited(*d, ctx, *input))
                return respond(problem_response(*limited)), void();
              d->commands->claim_by_link(std::string(ctx.params.get_or("token", "")),
                                         std::move(*input), meta_of(ctx), claim_answer(d, respond));
            },
            kept_answers::acted_on));
}

}  // namespace

void register_routes(router& r, const endpoint_deps& deps) {
  auto d = std::make_shared<const endpoint_deps>(deps);
  if (d->primary) r.set_filter(read_only_filter(*d->primary));
  health_routes(r, d);
  organization_routes(r, d);
  track_routes(r, d);
  invite_routes(r, d);
  public_routes(r, d);
  learner_routes(r, d);
  claim_history_routes(r, d);
  event_routes(r, d);
  invitation_routes(r, d);
  password_routes(r, d);
  r.set_filter({});
}

}  // namespace passage::api::v1
