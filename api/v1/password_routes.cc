#include "api/v1/password_routes.h"

#include <nlohmann/json.hpp>

#include "api/problem.h"
#include "api/rate_limiter.h"
#include "api/v1/dto.h"
#include "common/encoding.h"
#include "domain/learner.h"
#include "domain/streams.h"
#include "domain/text.h"
#include "eventstore/event_codec.h"
#include "web/static_assets.h"

namespace passage::api::v1 {
namespace {

using nlohmann::json;
using deps_ptr = std::shared_ptr<const endpoint_deps>;

problem from_service(const service::service_error& e) {
  problem p = make_problem(e.code, e.message);
  if (!e.field.empty())
    p.extra["errors"] = json::array({{{"field", e.field}, {"message", e.message}}});
  return p;
}

service::request_meta meta_of(const request_context& ctx) {
  return {ctx.request_id.to_string(), ""};
}

// The page, with the learner pages' headers (no-store, no referrer: the token is in the URL).
response page_response(http::status status, std::string html) {
  auto res = text_response(status, std::move(html), "text/html; charset=utf-8");
  web::set_page_headers(res);
  return res;
}

// Why the link or the password was refused, in words for the page.
std::string refusal_text(const std::string& code, const std::string& detail) {
  if (code == "token_used")
    return "This link was used already: your password is set. Log in with your email and "
           "password.";
  if (code == "token_expired")
    return "This link has expired (links work for 7 days). Ask for a new one.";
  if (code == "token_replaced") return "A newer link was sent to you: please use the latest mail.";
  if (code == "token_invalid") return "This link is not valid. Check that you copied all of it.";
  if (code == "mismatch") return "The two passwords differ. Please type the same password twice.";
  if (code == "invalid_request") return "This password cannot be used: " + detail + ".";
  return "Something went wrong. Please try again in a moment.";
}

// The problem a JSON body or form gives when it has no usable "password" string.
std::optional<problem> missing_password(const json& body) {
  if (!body.contains("password") || !body["password"].is_string()) {
    return invalid_request("password is required",
                           json::array({{{"field", "password"}, {"message", "required"}}}));
  }
  return std::nullopt;
}

// Login abuse limits per client IP and per email (counted apart from claims).
std::optional<problem> login_limited(const endpoint_deps& d, const request_context& ctx,
                                     const std::string& email) {
  if (d.logins_per_ip) {
    if (auto wait = d.logins_per_ip(client_network(ctx.client_ip))) {
      return rate_limited(*wait, "too many attempts from this address");
    }
  }
  if (d.logins_per_email && !email.empty()) {
    if (auto wait = d.logins_per_email(domain::normalize_email(email))) {
      return rate_limited(*wait, "too many attempts for this email");
    }
  }
  return std::nullopt;
}

// What a post of the link `token` would find, decided read-only on the learner's events
// as set_password decides it: "" while the link can still set a password, else the
// problem code (token_invalid, token_used, token_expired, token_replaced). A node without
// a command side, or a log it cannot read now, shows the form: its post tells.
std::string link_state(const endpoint_deps& d, std::string_view token) {
  if (!d.commands || !d.store || !d.clock) return "";
  auto ref = d.commands->password_setups().verify(token);
  if (!ref) return std::string(domain::to_string(domain::errc::token_invalid));
  domain::learner_state s;
  constexpr std::size_t page_size = 256;
  for (std::uint64_t from = 1;;) {
    auto page = d.store->read_stream(domain::learner_stream(ref->learner_id), from,
                                     eventstore::read_direction::forward, page_size);
    if (!page) return "";
    for (const auto& rec : *page) {
      // The link's state needs no personal data: nothing is decrypted.
      auto e = eventstore::event_from_json_text(rec.type, rec.data, true);
      if (!e) return "";
      s = domain::evolve(std::move(s), *e);
    }
    if (page->size() < page_size) break;
    from = page->back().stream_version + 1;
  }
  auto usable = domain::decide(s, domain::set_password{ref->setup_id, "-"}, d.clock->now());
  return usable ? "" : std::string(domain::to_string(usable.error().code_));
}

}  // namespace

std::string password_page(bool done, const std::string& problem_code, const std::string& detail) {
  std::string html =
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<meta name=\"referrer\" content=\"no-referrer\">"
      "<title>Choose your password</title><link rel=\"stylesheet\" href=\"" +
      web::asset_url("passage.css") + "\"></head><body class=\"learner\"><main id=\"main\">\n";
  html += "<h1>Choose your password</h1>\n";
  if (done) {
    html +=
        "<p id=\"result\" class=\"notice ok\" role=\"status\">Your password is set. Log in "
        "with your email address and this password from now on.</p>\n";
    return html + "</main></body></html>\n";
  }
  const bool link_dead = problem_code.starts_with("token_");
  if (!problem_code.empty()) {
    html += "<p id=\"result\" class=\"notice error\" role=\"alert\">" +
            html_escape(refusal_text(problem_code, detail)) + "</p>\n";
  }
  if (link_dead) return html + "</main></body></html>\n";
  // Posts to this same URL (POST /p/{token}); no scripts needed.
  html +=
      "<form id=\"password\" class=\"card\" method=\"post\">\n"
      "<p id=\"policy\">At least 10 characters. A passphrase of a few words is easy to "
      "remember and hard to guess.</p>\n"
      "<label for=\"f-password\">New password</label>"
      "<input type=\"password\" id=\"f-password\" name=\"password\" autocomplete=\"new-password\" "
      "minlength=\"10\" required aria-required=\"true\" aria-describedby=\"policy\">\n"
      "<label for=\"f-password-confirm\">The same password again</label>"
      "<input type=\"password\" id=\"f-password-confirm\" name=\"password_confirm\" "
      "autocomplete=\"new-password\" minlength=\"10\" required aria-required=\"true\">\n"
      "<button type=\"submit\">Set password</button>\n</form>\n";
  return html + "</main></body></html>\n";
}

void password_routes(router& r, deps_ptr d) {
  // The form while the link can set a password; else what became of the link (used,
  // expired, replaced by a newer one, not valid), with the status its post would get.
  r.add(http::verb::get, "/p/{token}",
        [d](const request&, request_context& ctx, responder respond) {
          const auto state = link_state(*d, ctx.params.get_or("token", ""));
          if (state.empty()) {
            return respond(page_response(http::status::ok, password_page(false, "", ""))), void();
          }
          respond(page_response(http::status(status_for(state)), password_page(false, state, "")));
        });

  // The page's own form (application/x-www-form-urlencoded): password, password_confirm.
  r.add(http::verb::post, "/p/{token}",
        [d](const request& req, request_context& ctx, responder respond) {
          auto fields = parse_query(req.body());
          std::string password, confirm;
          if (fields) {
            password = std::string(fields->get_or("password", ""));
            confirm = std::string(fields->get_or("password_confirm", ""));
          }
          if (!fields || password != confirm) {
            return respond(page_response(http::status::bad_request,
                                         password_page(false, "mismatch", ""))),
                   void();
          }
          auto set = [d, token = std::string(ctx.params.get_or("token", "")),
                      password = std::move(password), meta = meta_of(ctx), respond]() mutable {
            d->commands->set_password(
                std::move(token), std::move(password), std::move(meta),
                [respond](service::service_result<service::password_set_result> res) {
                  if (!res) {
                    return respond(page_response(
                               http::status(status_for(res.error().code)),
                               password_page(false, res.error().code, res.error().message))),
                           void();
                  }
                  respond(page_response(http::status::ok, password_page(true, "", "")));
                });
          };
          run_off_io_thread(d->password_hashing, respond, std::move(set),
                            "too many passwords are being checked; retry in a moment");
        });

  r.add(http::verb::post, "/v1/public/password/{token}",
        [d](const request& req, request_context& ctx, responder respond) {
          auto body = parse_body(req.body());
          if (!body) {
            return respond(problem_response(invalid_request(body.error().message))), void();
          }
          if (auto p = missing_password(*body)) return respond(problem_response(*p)), void();
          auto set = [d, token = std::string(ctx.params.get_or("token", "")),
                      password = (*body)["password"].get<std::string>(), meta = meta_of(ctx),
                      respond]() mutable {
            d->commands->set_password(
                std::move(token), std::move(password), std::move(meta),
                [respond](service::service_result<service::password_set_result> res) {
                  if (!res) return respond(problem_response(from_service(res.error()))), void();
                  respond(
                      json_response(http::status::ok, {{"org_id", res->org_id.to_string()},
                                                       {"learner_id", res->learner_id.to_string()},
                                                       {"learner_token", res->learner_token}}));
                });
          };
          run_off_io_thread(d->password_hashing, respond, std::move(set),
                            "too many passwords are being checked; retry in a moment");
        });

  r.add(http::verb::post, "/v1/public/learners/login",
        [d](const request& req, request_context& ctx, responder respond) {
          auto body = parse_body(req.body());
          if (!body) {
            return respond(problem_response(invalid_request(body.error().message))), void();
          }
          service::login_input in;
          auto str = [&](const char* k) -> std::optional<std::string> {
            auto it = body->find(k);
            if (it == body->end() || !it->is_string()) return std::nullopt;
            return it->get<std::string>();
          };
          auto email = str("email");
          auto password = str("password");
          if (!email || !password) {
            return respond(problem_response(invalid_request(
                       "email and password are required",
                       json::array(
                           {{{"field", email ? "password" : "email"}, {"message", "required"}}})))),
                   void();
          }
          if (auto org = str("org")) {
            in.org_id = uuid::parse(*org);
            if (!in.org_id) {
              return respond(problem_response(invalid_request(
                         "org is not an id",
                         json::array({{{"field", "org"}, {"message", "not an id"}}})))),
                     void();
            }
          }
          in.code = str("code");
          if (auto limited = login_limited(*d, ctx, *email))
            return respond(problem_response(*limited)), void();
          in.email = std::move(*email);
          in.password = std::move(*password);
          auto check = [d, in = std::move(in), respond]() mutable {
            d->commands->login(
                std::move(in), [respond](service::service_result<service::login_result> res) {
                  if (!res) {
                    return respond(problem_response(from_service(res.error()))), void();
                  }
                  respond(
                      json_response(http::status::ok, {{"org_id", res->org_id.to_string()},
                                                       {"learner_id", res->learner_id.to_string()},
                                                       {"learner_token", res->learner_token}}));
                });
          };
          run_off_io_thread(d->password_hashing, respond, std::move(check),
                            "too many passwords are being checked; retry in a moment");
        });
}

}  // namespace passage::api::v1
