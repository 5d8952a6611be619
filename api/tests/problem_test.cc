#include "api/problem.h"

#include <gtest/gtest.h>

namespace passage::api {
namespace {

TEST(problem_test, status_table) {
  struct row {
    const char* code;
    unsigned status;
  };
  for (auto [code, status] :
       {row{"invalid_request", 400}, row{"unauthorized", 401}, row{"forbidden", 403},
        row{"not_found", 404}, row{"method_not_allowed", 405}, row{"version_conflict", 412},
        row{"payload_too_large", 413}, row{"rate_limited", 429}, row{"header_too_large", 431},
        row{"expired", 410}, row{"deleted", 410}, row{"not_open_yet", 409}, row{"full", 409},
        row{"deactivated", 409}, row{"not_allowed", 403}, row{"details_missing", 422},
        row{"notify_email_missing", 422}, row{"internal", 500}, row{"no_such_code", 500}}) {
    EXPECT_EQ(status_for(code), status) << code;
  }
}

TEST(problem_test, json_members_and_content_type) {
  auto p = make_problem("full", "the invite has no spots left");
  p.extra["remaining_spots"] = 0;
  auto res = problem_response(p);
  EXPECT_EQ(res.result_int(), 409u);
  EXPECT_EQ(res[http::field::content_type], "application/problem+json");
  auto j = nlohmann::json::parse(res.body());
  EXPECT_EQ(j["type"], "https://passage.dev/problems/full");
  EXPECT_EQ(j["title"], "Invite is full");
  EXPECT_EQ(j["status"], 409);
  EXPECT_EQ(j["code"], "full");
  EXPECT_EQ(j["detail"], "the invite has no spots left");
  EXPECT_EQ(j["remaining_spots"], 0);
  EXPECT_EQ(res[http::field::content_length], std::to_string(res.body().size()));
}

TEST(problem_test, extra_members_cannot_override_the_standard_ones) {
  auto p = make_problem("not_found");
  p.extra["status"] = 200;
  EXPECT_EQ(to_json(p)["status"], 404);
}

TEST(problem_test, validation_errors_and_rate_limits) {
  auto p = invalid_request("bad fields",
                           nlohmann::json::array({{{"field", "title"}, {"message", "required"}}}));
  EXPECT_EQ(to_json(p)["errors"][0]["field"], "title");

  auto limited = problem_response(rate_limited(std::chrono::seconds(42)));
  EXPECT_EQ(limited.result_int(), 429u);
  EXPECT_EQ(limited[http::field::retry_after], "42");
  EXPECT_EQ(nlohmann::json::parse(limited.body())["retry_after"], 42);
  EXPECT_EQ(problem_response(rate_limited(std::chrono::seconds(0)))[http::field::retry_after], "1");
}

TEST(problem_test, json_response_and_etag) {
  auto res = json_response(http::status::created, {{"id", "x"}, {"version", 3}});
  set_etag(res, 3);
  EXPECT_EQ(res.result(), http::status::created);
  EXPECT_EQ(res[http::field::content_type], "application/json");
  EXPECT_EQ(res[http::field::etag], "\"3\"");
  EXPECT_EQ(nlohmann::json::parse(res.body())["version"], 3);
}

TEST(problem_test, if_match_version) {
  request req{http::verb::patch, "/v1/invites/1", 11};
  auto none = if_match_version(req);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
  req.set(http::field::if_match, "\"7\"");
  auto seven = if_match_version(req);
  ASSERT_TRUE(seven);
  EXPECT_EQ(seven->value(), 7u);
  req.set(http::field::if_match, "*");
  EXPECT_FALSE(if_match_version(req)->has_value());
  for (const char* bad : {"7", "W/\"7\"", "\"x\"", "\"\"", "\"1\", \"2\""}) {
    req.set(http::field::if_match, bad);
    auto r = if_match_version(req);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().status, 400u);
  }
}

TEST(responder_test, answers_once_and_defaults_to_500_when_dropped) {
  int calls = 0;
  unsigned status = 0;
  {
    auto r = responder::capture([&](response res) {
      ++calls;
      status = res.result_int();
    });
    EXPECT_TRUE(r(text_response(http::status::ok, "a", "text/plain")));
    EXPECT_FALSE(r(text_response(http::status::ok, "b", "text/plain")));
    EXPECT_TRUE(r.answered());
  }
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(status, 200u);

  {
    auto dropped = responder::capture([&](response res) { status = res.result_int(); });
  }
  EXPECT_EQ(status, 500u);
}

}  // namespace
}  // namespace passage::api
