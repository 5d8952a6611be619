// with_idempotency: what a retry with the same key gets, against a real store (RocksDB
// in a temp folder) and handlers that answer as the endpoints do.

#include "api/v1/idempotency.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "api/problem.h"
#include "tests/support/temp_dir.h"

namespace passage::api::v1 {
namespace {

class idempotency_test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = idempotency_store::open({.path = dir_.sub("idempotency")});
    ASSERT_TRUE(s) << s.error();
    store_ = std::move(*s);
  }

  // Runs `h` for a POST with `key`, returning the answer the client got (nullopt: none yet).
  std::optional<response> call(const handler& h, const std::string& key) {
    request req{http::verb::post, "/v1/things", 11};
    req.set("Idempotency-Key", key);
    req.body() = R"({"name":"x"})";
    request_context ctx;
    ctx.route = "/v1/things";
    std::optional<response> got;
    h(req, ctx, responder::capture([&](response r) { got = std::move(r); }));
    return got;
  }

  static idempotency_scope everyone() {
    return [](const request&, const request_context&) -> std::optional<std::string> {
      return "tenant";
    };
  }

  testing::temp_dir dir_;
  std::unique_ptr<idempotency_store> store_;
};

// A command stored durably whose read models lag: the client gets 503 at once; a retry
// while the answer is still to come is told so (409); once the continuation answers, a
// retry gets that answer, and the command runs only once.
TEST_F(idempotency_test, a_retry_after_a_lagging_answer_gets_the_commands_own_answer) {
  int runs = 0;
  std::optional<responder> held;  // the continuation's copy, answered later
  auto h = with_idempotency(
      *store_, everyone(), [&](const request&, request_context&, responder respond) {
        ++runs;
        held = respond;
        respond.provisionally(
            problem_response(make_problem("read_model_lagging", "recorded durably")));
      });
  auto first = call(h, "k1");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->result_int(), 503u);

  auto meanwhile = call(h, "k1");
  ASSERT_TRUE(meanwhile);
  EXPECT_EQ(meanwhile->result_int(), 409u);

  response created{http::status::created, 11};
  created.body() = R"({"id":"t-1"})";
  created.prepare_payload();
  EXPECT_FALSE((*held)(std::move(created)));  // not sent: the client has its answer
  held.reset();

  auto retried = call(h, "k1");
  ASSERT_TRUE(retried);
  EXPECT_EQ(retried->result_int(), 201u);
  EXPECT_EQ(retried->body(), R"({"id":"t-1"})");
  EXPECT_EQ((*retried)["Idempotent-Replayed"], "true");
  EXPECT_EQ(runs, 1);
}

// A provisional answer never settled (the node stopped before its read models caught up):
// the key is let go, and a retry runs the command.
TEST_F(idempotency_test, a_lagging_answer_that_never_settles_lets_the_key_go) {
  int runs = 0;
  auto h = with_idempotency(
      *store_, everyone(), [&](const request&, request_context&, responder respond) {
        ++runs;
        respond.provisionally(
            problem_response(make_problem("read_model_lagging", "recorded durably")));
      });
  ASSERT_EQ(call(h, "k2")->result_int(), 503u);
  ASSERT_EQ(call(h, "k2")->result_int(), 503u);  // ran again, not 409
  EXPECT_EQ(runs, 2);
}

TEST_F(idempotency_test,
       refusals_of_the_moment_are_not_kept_and_a_scope_less_request_is_not_keyed) {
  int runs = 0;
  http::status answer = http::status::too_many_requests;
  auto h = with_idempotency(
      *store_, everyone(), [&](const request&, request_context&, responder respond) {
        ++runs;
        respond(problem_response(make_problem(
            answer == http::status::too_many_requests ? "rate_limited" : "unauthorized", "")));
      });
  EXPECT_EQ(call(h, "k3")->result_int(), 429u);
  answer = http::status::unauthorized;
  EXPECT_EQ(call(h, "k3")->result_int(), 401u);
  EXPECT_EQ(runs, 2);

  int unscoped_runs = 0;
  auto nobody = with_idempotency(
      *store_, [](const request&, const request_context&) { return std::optional<std::string>{}; },
      [&](const request&, request_context&, responder respond) {
        ++unscoped_runs;
        respond(json_response(http::status::created, nlohmann::json::object()));
      });
  EXPECT_EQ(call(nobody, "k4")->result_int(), 201u);
  auto again = call(nobody, "k4");
  EXPECT_EQ(again->result_int(), 201u);
  EXPECT_TRUE((*again)["Idempotent-Replayed"].empty());
  EXPECT_EQ(unscoped_runs, 2);
}

// Routes anyone may call keep only what was acted on: a created claim and a refusal the
// domain records (ClaimRejected), not a malformed body or an unknown code, so requests that
// record nothing cannot fill the store (each kept answer is an fsynced write kept 24 h).
TEST_F(idempotency_test, public_routes_keep_only_answers_to_requests_acted_on) {
  int runs = 0;
  std::function<void(responder&)> answer;
  auto h = with_idempotency(
      *store_, everyone(),
      [&](const request&, request_context&, responder respond) {
        ++runs;
        answer(respond);
      },
      kept_answers::acted_on);
  auto twice = [&](const std::string& key) {
    runs = 0;
    auto first = call(h, key);
    auto second = call(h, key);
    EXPECT_TRUE(first && second);
    return std::pair{runs, second ? std::string((*second)["Idempotent-Replayed"]) : ""};
  };

  for (const char* code : {"invalid_request", "not_found", "forbidden"}) {
    answer = [&](responder& r) { r(problem_response(make_problem(code, "no"))); };
    EXPECT_EQ(twice(std::string("k-") + code), std::pair(2, std::string())) << code;
  }
  for (const char* code : {"full", "expired", "not_allowed", "details_missing"}) {
    answer = [&](responder& r) { r(problem_response(make_problem(code, "refused"))); };
    EXPECT_EQ(twice(std::string("k-") + code), std::pair(1, std::string("true"))) << code;
  }
  answer = [](responder& r) {
    r(json_response(http::status::created, nlohmann::json{{"claim_id", "c-1"}}));
  };
  EXPECT_EQ(twice("k-created"), std::pair(1, std::string("true")));

  // The same answers under the default policy: every settled 4xx is kept.
  int kept_runs = 0;
  auto settled = with_idempotency(*store_, everyone(),
                                  [&](const request&, request_context&, responder respond) {
                                    ++kept_runs;
                                    respond(problem_response(make_problem("invalid_request", "")));
                                  });
  call(settled, "k-settled");
  call(settled, "k-settled");
  EXPECT_EQ(kept_runs, 1);
}

}  // namespace
}  // namespace passage::api::v1
