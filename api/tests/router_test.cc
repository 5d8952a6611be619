#include "api/router.h"

#include <gtest/gtest.h>

#include <optional>
#include <stdexcept>
#include <string>

namespace passage::api {
namespace {

handler tagged(std::string tag) {
  return [tag](const request&, request_context& ctx, responder respond) {
    std::string body = tag;
    for (const auto& [k, v] : ctx.params) body += " " + k + "=" + v;
    respond(text_response(http::status::ok, body, "text/plain"));
  };
}

class router_test : public ::testing::Test {
 protected:
  router_test() {
    r_.add(http::verb::get, "/v1/invites", tagged("list"));
    r_.add(http::verb::post, "/v1/invites", tagged("create"));
    r_.add(http::verb::get, "/v1/invites/{id}", tagged("get"));
    r_.add(http::verb::patch, "/v1/invites/{id}", tagged("patch"));
    r_.add(http::verb::get, "/v1/invites/search", tagged("search"));
    r_.add(http::verb::post, "/v1/invites/{id}/claims", tagged("claim"));
    r_.add(http::verb::post, "/v1/public/claims/{claim_id}/tracks/{track_id}/pause",
           tagged("pause"));
    r_.add(http::verb::get, "/", tagged("root"));
  }

  // Dispatches and returns the response given synchronously.
  response call(http::verb method, std::string target, request_context* out_ctx = nullptr) {
    request req{method, target, 11};
    request_context ctx;
    std::optional<response> got;
    r_.dispatch(req, ctx, responder::capture([&](response res) { got = std::move(res); }));
    if (out_ctx) *out_ctx = ctx;
    EXPECT_TRUE(got.has_value());
    return got ? std::move(*got) : response{};
  }

  problem match_error(http::verb method, std::string_view target) {
    auto m = r_.match(method, target);
    EXPECT_FALSE(m.has_value()) << target;
    return m ? problem{} : m.error();
  }

  router r_;
};

TEST_F(router_test, matches_literal_and_parameter_routes) {
  auto m = r_.match(http::verb::get, "/v1/invites/abc-123");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->route, "/v1/invites/{id}");
  EXPECT_EQ(m->params.get("id"), "abc-123");

  auto claims = r_.match(http::verb::post, "/v1/invites/42/claims");
  ASSERT_TRUE(claims);
  EXPECT_EQ(claims->route, "/v1/invites/{id}/claims");
  EXPECT_EQ(claims->params.get("id"), "42");

  auto pause = r_.match(http::verb::post, "/v1/public/claims/c1/tracks/t%201/pause");
  ASSERT_TRUE(pause);
  EXPECT_EQ(pause->params.get("claim_id"), "c1");
  EXPECT_EQ(pause->params.get("track_id"), "t 1");

  auto root = r_.match(http::verb::get, "/");
  ASSERT_TRUE(root);
  EXPECT_EQ(root->route, "/");
}

// Segments are matched as views: of the target when nothing is encoded, of their decoded
// text otherwise. Several decoded segments in one path (short ones and ones too long for a
// string's inline buffer, literals and parameters) must all keep their own text.
TEST_F(router_test, matches_paths_with_several_encoded_segments) {
  auto m = r_.match(http::verb::post,
                    "/v1/%70ublic/claims/claim%2D0123456789abcdef%2D0123456789abcdef/tracks/"
                    "t%201/pa%75se?x=%41");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->route, "/v1/public/claims/{claim_id}/tracks/{track_id}/pause");
  EXPECT_EQ(m->params.get("claim_id"), "claim-0123456789abcdef-0123456789abcdef");
  EXPECT_EQ(m->params.get("track_id"), "t 1");
  EXPECT_EQ(m->query.get("x"), "A");

  auto plain = r_.match(http::verb::get, "/v1/invites/an-id-longer-than-fifteen-characters");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->params.get("id"), "an-id-longer-than-fifteen-characters");

  EXPECT_EQ(match_error(http::verb::get, "/v1/invites/%41/%2e%2e").code, "invalid_request");
  EXPECT_EQ(match_error(http::verb::get, "/v1/in%76ites/a%ZZ").code, "invalid_request");
}

TEST_F(router_test, literal_segment_wins_over_parameter) {
  EXPECT_EQ(call(http::verb::get, "/v1/invites/search").body(), "search");
  EXPECT_EQ(call(http::verb::get, "/v1/invites/other").body(), "get id=other");
  // The literal node lacks PATCH, so the parameter route takes it.
  EXPECT_EQ(call(http::verb::patch, "/v1/invites/search").body(), "patch id=search");
}

TEST_F(router_test, dispatch_sets_route_params_and_query) {
  request_context ctx;
  auto res = call(http::verb::get, "/v1/invites/x%2Dy?limit=5&q=a+b%21&limit=9", &ctx);
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(ctx.route, "/v1/invites/{id}");
  EXPECT_EQ(ctx.params.get("id"), "x-y");
  EXPECT_EQ(ctx.query.get("limit"), "5");  // first wins
  EXPECT_EQ(ctx.query.get("q"), "a b!");
}

TEST_F(router_test, unknown_path_is_404_problem) {
  for (const char* target : {"/nope", "/v1/invites/1/unknown", "/v1/invites/", "/v1//invites",
                             "/v1/invites/1/claims/2"}) {
    auto p = match_error(http::verb::get, target);
    EXPECT_EQ(p.status, 404u) << target;
    EXPECT_EQ(p.code, "not_found") << target;
  }
  auto res = call(http::verb::get, "/nope");
  EXPECT_EQ(res.result(), http::status::not_found);
  EXPECT_EQ(res[http::field::content_type], "application/problem+json");
  auto body = nlohmann::json::parse(res.body());
  EXPECT_EQ(body["code"], "not_found");
  EXPECT_EQ(body["type"], "https://passage.dev/problems/not_found");
}

TEST_F(router_test, known_path_with_other_method_is_405_with_allow) {
  auto p = match_error(http::verb::delete_, "/v1/invites/7");
  EXPECT_EQ(p.status, 405u);
  EXPECT_EQ(p.code, "method_not_allowed");
  request_context ctx;
  auto res = call(http::verb::delete_, "/v1/invites/7", &ctx);
  EXPECT_EQ(res.result(), http::status::method_not_allowed);
  EXPECT_EQ(res[http::field::allow], "GET, HEAD, PATCH");
  EXPECT_EQ(ctx.route, "/v1/invites/{id}");  // metrics still see the template
  EXPECT_FALSE(nlohmann::json::parse(res.body()).contains("route"));

  auto list = call(http::verb::put, "/v1/invites");
  EXPECT_EQ(list[http::field::allow], "GET, HEAD, POST");
}

TEST_F(router_test, head_is_answered_by_the_get_route) {
  request_context ctx;
  auto res = call(http::verb::head, "/v1/invites/7", &ctx);
  EXPECT_EQ(res.result(), http::status::ok);
  EXPECT_EQ(res.body(), "get id=7");  // the server drops the body, keeping its length
  EXPECT_EQ(ctx.route, "/v1/invites/{id}");
  // No GET, no HEAD.
  EXPECT_EQ(match_error(http::verb::head, "/v1/invites/7/claims").status, 405u);
}

TEST_F(router_test, a_trailing_slash_redirects_to_the_route_it_names) {
  auto res = call(http::verb::get, "/v1/invites/?status=active");
  EXPECT_EQ(res.result(), http::status::permanent_redirect);
  EXPECT_EQ(res[http::field::location], "/v1/invites?status=active");
  EXPECT_EQ(call(http::verb::head, "/v1/invites/7/").result(), http::status::permanent_redirect);
  // Only GET and HEAD, only when the route exists, never to another host.
  EXPECT_EQ(call(http::verb::post, "/v1/invites/").result(), http::status::not_found);
  EXPECT_EQ(call(http::verb::get, "/nope/").result(), http::status::not_found);
  EXPECT_EQ(call(http::verb::get, "//v1/invites/").result(), http::status::not_found);
}

TEST_F(router_test, rejects_path_tricks_with_400) {
  for (const char* target : {
           "/v1/invites/..",          // dot-dot
           "/v1/invites/%2e%2E",      // encoded dot-dot
           "/v1/../invites",          // in the middle
           "/v1/invites/.",           // dot
           "/v1/invites/a%2Fb",       // encoded slash
           "/v1/invites/a%2fb",       // lower-case too
           "/v1/invites/a%00b",       // NUL
           "/v1/invites/a%0Ab",       // control character
           "/v1/invites/%C0%AF",      // overlong '/'
           "/v1/invites/%E9",         // Latin-1, not UTF-8
           "/v1/invites/%ED%A0%80",   // surrogate
           "/v1/invites/%zz",         // bad escape
           "/v1/invites/%4",          // truncated escape
           "/v1/invites?q=%ff",       // invalid UTF-8 in the query
           "/v1/invites?q=%00",       // NUL in the query
           "/v1/invites?q=%g0",       // bad escape in the query
           "http://evil/v1/invites",  // absolute form
           "*",                       // asterisk form
           "/v1/invites#frag",        // fragment
       }) {
    auto p = match_error(http::verb::get, target);
    EXPECT_EQ(p.status, 400u) << target;
    EXPECT_EQ(p.code, "invalid_request") << target;
  }
  // Valid multi-byte UTF-8 is fine.
  auto ok = r_.match(http::verb::get, "/v1/invites/caf%C3%A9");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->params.get("id"), "caf\xC3\xA9");
}

TEST_F(router_test, bad_templates_and_duplicates_throw) {
  router r;
  r.add(http::verb::get, "/a/{id}", tagged("a"));
  EXPECT_THROW(r.add(http::verb::get, "/a/{id}", tagged("dup")), std::invalid_argument);
  EXPECT_THROW(r.add(http::verb::get, "a", tagged("x")), std::invalid_argument);
  EXPECT_THROW(r.add(http::verb::get, "/a/{", tagged("x")), std::invalid_argument);
  EXPECT_THROW(r.add(http::verb::get, "/a/{x}/{x}", tagged("x")), std::invalid_argument);
  EXPECT_THROW(r.add(http::verb::get, "/a//b", tagged("x")), std::invalid_argument);
  EXPECT_THROW(r.add(http::verb::get, "/a/..", tagged("x")), std::invalid_argument);
  EXPECT_THROW(r.add(http::verb::get, "/a?x=1", tagged("x")), std::invalid_argument);
  EXPECT_NO_THROW(r.add(http::verb::post, "/a/{id}", tagged("post")));
  EXPECT_EQ(r.routes(), (std::vector<std::string>{"GET /a/{id}", "POST /a/{id}"}));
}

TEST(query_test, parses_decodes_and_keeps_first_duplicate) {
  auto q = parse_query("a=1&b=x+y&a=2&&c&d=%E2%9C%93&=skip");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->get("a"), "1");
  EXPECT_EQ(q->get("b"), "x y");
  EXPECT_EQ(q->get("c"), "");
  EXPECT_EQ(q->get("d"), "\xE2\x9C\x93");
  EXPECT_EQ(q->size(), 4u);
  EXPECT_FALSE(q->get("missing"));
}

TEST(query_test, query_int_checks_type_and_range) {
  auto q = parse_query("limit=20&neg=-3&big=99999999999999999999&word=ten&empty=&plus=+5");
  ASSERT_TRUE(q);
  auto limit = query_int(*q, "limit", 1, 100);
  ASSERT_TRUE(limit);
  EXPECT_EQ(limit->value(), 20);
  auto absent = query_int(*q, "cursor", 0, 10);
  ASSERT_TRUE(absent);
  EXPECT_FALSE(absent->has_value());
  auto neg = query_int(*q, "neg", -5, 5);
  ASSERT_TRUE(neg);
  EXPECT_EQ(neg->value(), -3);

  for (const char* name : {"big", "word", "empty", "plus"}) {
    auto bad = query_int(*q, name, 0, 1000);
    ASSERT_FALSE(bad) << name;
    EXPECT_EQ(bad.error().status, 400u);
    EXPECT_EQ(bad.error().code, "invalid_request");
    EXPECT_NE(bad.error().detail.find(name), std::string::npos);
    EXPECT_EQ(bad.error().extra["errors"][0]["field"], name);
  }
  auto out_of_range = query_int(*q, "limit", 1, 10);
  ASSERT_FALSE(out_of_range);
  EXPECT_NE(out_of_range.error().detail.find("between 1 and 10"), std::string::npos);
}

TEST(utf8_test, validates) {
  EXPECT_TRUE(is_valid_utf8("plain"));
  EXPECT_TRUE(is_valid_utf8("\xF0\x9F\x98\x80"));   // emoji
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xE2\x9C"));          // truncated
  EXPECT_FALSE(is_valid_utf8("\x80"));              // stray continuation
}

}  // namespace
}  // namespace passage::api
