// SPEC §4 details a client relies on beyond each endpoint's main path: Idempotency-Key on
// every command (and what a retry gets back), the log's paging cursors, whole stream
// names, If-Match as HTTP defines it. Real loopback HTTP against a whole node.

#include <gtest/gtest.h>

#include <string>

#include "tests/e2e/node_fixture.h"

namespace passage::testing {
namespace {

using nlohmann::json;

// How many events of `type` the organization's log holds.
std::size_t count_events(http_client& c, const http_client::headers& auth,
                         const std::string& type) {
  auto r = c.get("/v1/events?limit=10000&type=" + type, auth);
  EXPECT_EQ(r.status, 200u) << r.body;
  return r.json()["events"].size();
}

TEST_F(node_test, APlayRetriedWithItsIdempotencyKeyIsCountedOnce) {
  make_track("k8s-basics", true);
  auto invite = make_invite(
      {{"title", "Plays"}, {"tracks", {{{"track_id", "k8s-basics"}}}}, {"plays_per_track", 3}});
  auto ada = claim(invite["code"], {{"email", "ada@example.com"}});
  ASSERT_EQ(ada.status, 201u) << ada.body;
  const std::string claim_id = ada.json()["claim_id"];
  const std::string path = "/v1/public/claims/" + claim_id;
  http_client::headers learner = {
      {"Authorization", "Bearer " + ada.json()["learner_token"].get<std::string>()},
      {"Idempotency-Key", "play-1"}};
  auto first = client_->post(path + "/plays", R"({"track_id":"k8s-basics"})", learner);
  auto again = client_->post(path + "/plays", R"({"track_id":"k8s-basics"})", learner);
  ASSERT_EQ(first.status, 201u) << first.body;
  ASSERT_EQ(again.status, 201u) << again.body;
  EXPECT_EQ(again.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(again.body, first.body);
  EXPECT_EQ(first.json()["plays_remaining"], 2);
  EXPECT_EQ(count_events(*client_, auth(), "TrackPlayed"), 1u);

  // Pause and resume take keys too; a key is the learner's, not a stranger's.
  learner["Idempotency-Key"] = "pause-1";
  EXPECT_EQ(client_->post(path + "/tracks/k8s-basics/pause", "", learner).status, 200u);
  auto paused_again = client_->post(path + "/tracks/k8s-basics/pause", "", learner);
  EXPECT_EQ(paused_again.status, 200u) << paused_again.body;
  EXPECT_EQ(paused_again.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(count_events(*client_, auth(), "TrackPaused"), 1u);
  auto stranger =
      client_->post(path + "/tracks/k8s-basics/pause", "", {{"Idempotency-Key", "pause-1"}});
  EXPECT_EQ(stranger.status, 401u) << stranger.body;
  EXPECT_TRUE(stranger.header("Idempotent-Replayed").empty());
}

TEST_F(node_test, AdminCommandsRetriedWithTheirKeyAppendOnce) {
  make_track("k8s-basics");
  auto invite = make_invite({{"title", "Admin"}, {"tracks", {{{"track_id", "k8s-basics"}}}}});
  auto ada = claim(invite["code"], {{"email", "ada@example.com"}});
  ASSERT_EQ(ada.status, 201u) << ada.body;
  const std::string learner = "/v1/learners/" + ada.json()["learner_id"].get<std::string>();
  wait_mails_sent(1);  // the welcome mail's own PasswordSetupIssued is in the log first
  const auto setups = count_events(*client_, auth(), "PasswordSetupIssued");

  auto keyed = auth();
  keyed["Idempotency-Key"] = "setup-1";
  ASSERT_EQ(client_->post(learner + "/password-setup", "", keyed).status, 202u);
  auto setup_again = client_->post(learner + "/password-setup", "", keyed);
  EXPECT_EQ(setup_again.status, 202u) << setup_again.body;
  EXPECT_EQ(setup_again.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(count_events(*client_, auth(), "PasswordSetupIssued"), setups + 1);

  keyed["Idempotency-Key"] = "forget-1";
  ASSERT_EQ(client_->post(learner + "/forget", "", keyed).status, 200u);
  auto forget_again = client_->post(learner + "/forget", "", keyed);
  EXPECT_EQ(forget_again.status, 200u) << forget_again.body;
  EXPECT_EQ(forget_again.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(count_events(*client_, auth(), "LearnerForgotten"), 1u);

  auto key = client_->post("/v1/api-keys", R"({"role":"admin","name":"ci"})", auth());
  ASSERT_EQ(key.status, 201u) << key.body;
  const std::string key_path = "/v1/api-keys/" + key.json()["id"].get<std::string>();
  keyed["Idempotency-Key"] = "email-1";
  ASSERT_EQ(client_->patch(key_path, R"({"email":"ci@example.com"})", keyed).status, 200u);
  EXPECT_EQ(client_->patch(key_path, R"({"email":"ci@example.com"})", keyed)
                .header("Idempotent-Replayed"),
            "true");
  keyed["Idempotency-Key"] = "revoke-1";
  ASSERT_EQ(client_->del(key_path, keyed).status, 204u);
  auto revoked_again = client_->del(key_path, keyed);
  EXPECT_EQ(revoked_again.status, 204u) << revoked_again.body;
  EXPECT_EQ(revoked_again.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(count_events(*client_, auth(), "ApiKeyRevoked"), 1u);
}

TEST_F(node_test, ARateLimitedClaimIsNotTheAnswerToItsKeyOnceTheLimitPasses) {
  restart("1/1m", "0");
  make_track("k8s-basics");
  auto invite = make_invite({{"title", "Limited"}, {"tracks", {{{"track_id", "k8s-basics"}}}}});
  ASSERT_EQ(claim(invite["code"], {{"email", "a@x.io"}}).status, 201u);
  const std::string path = "/v1/public/invites/" + invite["code"].get<std::string>() + "/claims";
  const std::string body = R"({"email":"b@x.io"})";
  http_client::headers keyed = {{"Idempotency-Key", "claim-b"}};
  auto limited = client_->post(path, body, keyed);
  ASSERT_EQ(limited.status, 429u) << limited.body;
  EXPECT_FALSE(limited.header("Retry-After").empty());
  clock_.advance(std::chrono::minutes(1));
  auto retried = client_->post(path, body, keyed);
  EXPECT_EQ(retried.status, 201u) << retried.body;
  EXPECT_TRUE(retried.header("Idempotent-Replayed").empty());
  auto replayed = client_->post(path, body, keyed);
  EXPECT_EQ(replayed.status, 201u);
  EXPECT_EQ(replayed.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(replayed.body, retried.body);
}

TEST_F(node_test, ANewOrganizationsOwnerKeyIsReplayedOnlyToTheOperator) {
  const std::string body = R"({"name":"Acme"})";
  http_client::headers op = {{"Authorization", "Bearer " + operator_},
                             {"Idempotency-Key", "org-1"}};
  auto created = client_->post("/v1/orgs", body, op);
  ASSERT_EQ(created.status, 201u) << created.body;
  ASSERT_TRUE(created.json().contains("owner_key"));

  auto anonymous = client_->post("/v1/orgs", body, {{"Idempotency-Key", "org-1"}});
  EXPECT_EQ(anonymous.status, 401u) << anonymous.body;
  EXPECT_EQ(anonymous.body.find(created.json()["owner_key"].get<std::string>()), std::string::npos);
  auto owner = client_->post("/v1/orgs", body,
                             {{"Authorization", "Bearer " + owner_}, {"Idempotency-Key", "org-1"}});
  EXPECT_EQ(owner.status, 403u) << owner.body;
  EXPECT_EQ(owner.body.find(created.json()["owner_key"].get<std::string>()), std::string::npos);

  auto again = client_->post("/v1/orgs", body, op);
  EXPECT_EQ(again.status, 201u);
  EXPECT_EQ(again.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(again.body, created.body);
}

TEST_F(node_test, ACaughtUpLogReaderKeepsItsPlace) {
  make_track("k8s-basics");
  auto all = client_->get("/v1/events?limit=10000", auth());
  ASSERT_EQ(all.status, 200u) << all.body;
  const auto head = all.json()["head_position"].get<std::uint64_t>();
  const auto next = all.json()["next_from"].get<std::uint64_t>();
  EXPECT_EQ(next, head + 1);

  auto caught_up = client_->get("/v1/events?from=" + std::to_string(next), auth());
  ASSERT_EQ(caught_up.status, 200u) << caught_up.body;
  EXPECT_TRUE(caught_up.json()["events"].empty());
  EXPECT_EQ(caught_up.json()["next_from"], next);

  // Nothing recorded before `until` from here on: the cursor stays, it does not rewind.
  auto bounded =
      client_->get("/v1/events?until=2000-01-01T00:00:00Z&from=" + std::to_string(next), auth());
  ASSERT_EQ(bounded.status, 200u) << bounded.body;
  EXPECT_EQ(bounded.json()["next_from"], next);
}

TEST_F(node_test, AStreamFilterNamesOneWholeStream) {
  make_track("k8s");
  make_track("k8s-advanced");
  auto registered = client_->get("/v1/events?type=TrackRegistered", auth());
  ASSERT_EQ(registered.json()["events"].size(), 2u) << registered.body;
  std::string k8s;
  const json events = registered.json()["events"];
  for (const auto& e : events) {
    if (e["data"]["track_id"] == "k8s") k8s = e["stream"];
  }
  ASSERT_FALSE(k8s.empty()) << registered.body;
  auto one = client_->get("/v1/events?stream=" + k8s, auth());
  ASSERT_EQ(one.status, 200u) << one.body;
  ASSERT_EQ(one.json()["events"].size(), 1u) << one.body;
  EXPECT_EQ(one.json()["events"][0]["stream"], k8s);
}

TEST_F(node_test, AStreamIsReadInPagesToItsEnd) {
  make_track("k8s-basics");
  auto invite = make_invite({{"title", "Paged"}, {"tracks", {{{"track_id", "k8s-basics"}}}}});
  for (const char* email : {"a@x.io", "b@x.io", "c@x.io"}) {
    ASSERT_EQ(claim(invite["code"], {{"email", email}}).status, 201u);
  }
  const std::string path = "/v1/streams/invite-" + invite["id"].get<std::string>();
  std::vector<std::uint64_t> versions;
  std::uint64_t from = 1, stream_version = 0;
  for (int page = 0; page < 10; ++page) {
    auto r = client_->get(path + "?limit=2&from=" + std::to_string(from), auth());
    ASSERT_EQ(r.status, 200u) << r.body;
    stream_version = r.json()["stream_version"].get<std::uint64_t>();
    EXPECT_LE(r.json()["events"].size(), 2u);
    const json events = r.json()["events"];
    for (const auto& e : events) versions.push_back(e["stream_version"]);
    from = r.json()["next_from"].get<std::uint64_t>();
    if (from > stream_version) break;
  }
  ASSERT_EQ(stream_version, 4u) << path;  // created, three claims
  EXPECT_EQ(versions, (std::vector<std::uint64_t>{1, 2, 3, 4}));

  auto past_the_end = client_->get(path + "?from=5", auth());
  ASSERT_EQ(past_the_end.status, 200u) << past_the_end.body;
  EXPECT_TRUE(past_the_end.json()["events"].empty());
  EXPECT_EQ(past_the_end.json()["next_from"], 5);
  EXPECT_EQ(client_->get("/v1/streams/invite-nobody?from=5", auth()).status, 404u);
  EXPECT_EQ(client_->get(path + "?limit=0", auth()).status, 400u);
}

// SPEC §2: a claim records who claimed (learner id, email or anonymous id). The learner
// page sends its stored token with every claim: a learner registered by email who claims
// another invite without typing the address again claims as themself, not anonymously.
TEST_F(node_test, AClaimWithARegisteredLearnersTokenIsTheirsNotAnonymous) {
  make_track("helm", true);
  auto first = make_invite({{"title", "First"}, {"tracks", {{{"track_id", "helm"}}}}});
  auto second = make_invite({{"title", "Second"}, {"tracks", {{{"track_id", "helm"}}}}});
  auto ada = claim(first["code"], {{"email", "ada@example.com"}});
  ASSERT_EQ(ada.status, 201u) << ada.body;
  const std::string token = ada.json()["learner_token"], learner = ada.json()["learner_id"];

  auto again = claim(second["code"], {{"learner_token", token}});
  ASSERT_EQ(again.status, 201u) << again.body;
  EXPECT_FALSE(again.json()["anonymous"].get<bool>()) << again.body;
  EXPECT_EQ(again.json()["learner_id"], learner);
  auto accepted =
      client_->get("/v1/invites/" + second["id"].get<std::string>() + "/claims", auth());
  ASSERT_EQ(accepted.status, 200u) << accepted.body;
  const json rows = accepted.json()["claims"];
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_FALSE(rows[0]["anonymous"].get<bool>());
  EXPECT_NE(accepted.body.find("ada@example.com"), std::string::npos) << accepted.body;

  // Identified, so the pausable track may be paused.
  const std::string path = "/v1/public/claims/" + again.json()["claim_id"].get<std::string>();
  const http_client::headers as_ada = {{"Authorization", "Bearer " + token}};
  ASSERT_EQ(client_->post(path + "/plays", R"({"track_id":"helm"})", as_ada).status, 201u);
  auto paused = client_->post(path + "/tracks/helm/pause", "", as_ada);
  EXPECT_EQ(paused.status, 200u) << paused.body;

  // A forgotten learner's token names nobody: the claim is a new anonymous one.
  ASSERT_EQ(client_->post("/v1/learners/" + learner + "/forget", "", auth()).status, 200u);
  auto third = make_invite({{"title", "Third"}, {"tracks", {{{"track_id", "helm"}}}}});
  auto after = claim(third["code"], {{"learner_token", token}});
  ASSERT_EQ(after.status, 201u) << after.body;
  EXPECT_TRUE(after.json()["anonymous"].get<bool>());
  EXPECT_NE(after.json()["learner_id"], learner);
}

TEST_F(node_test, IfMatchFollowsHttp) {
  make_track("k8s-basics");
  auto invite = make_invite({{"title", "Edit"}, {"tracks", {{{"track_id", "k8s-basics"}}}}});
  const std::string path = "/v1/invites/" + invite["id"].get<std::string>();
  auto edit = [&](const std::string& if_match, const std::string& title) {
    return client_->patch(path, json{{"title", title}}.dump(),
                          {{"Authorization", "Bearer " + owner_}, {"If-Match", if_match}});
  };
  auto any = edit("*", "Any version");
  EXPECT_EQ(any.status, 200u) << any.body;
  auto weak = edit("W/\"2\"", "Weak");
  EXPECT_EQ(weak.status, 400u) << weak.body;  // If-Match compares strongly: never a weak tag
  auto list = edit("\"2\", \"3\"", "List");
  EXPECT_EQ(list.status, 400u) << list.body;
  auto got = client_->get(path, auth());
  EXPECT_EQ(got.json()["title"], "Any version");
}

}  // namespace
}  // namespace passage::testing
