// End to end over real loopback HTTP against a whole node (real RocksDB): the
// seed scenarios of the product, every access setting, limits and lifecycle.

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "common/time_format.h"
#include "tests/e2e/node_fixture.h"

namespace passage::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// A node listening on a wildcard address without --public-url would mail links to
// http://0.0.0.0:PORT: it says so at start.
TEST(ServerOptions, AWildcardListenWithoutPublicUrlIsWarnedAbout) {
  app::server_options o;
  o.address = "0.0.0.0";
  EXPECT_NE(app::unreachable_links_warning(o).find("--public-url"), std::string::npos);
  o.address = "::";
  EXPECT_FALSE(app::unreachable_links_warning(o).empty());
  o.public_url = "https://learn.example.com";
  EXPECT_EQ(app::unreachable_links_warning(o), "");
  o.public_url.clear();
  o.address = "127.0.0.1";
  EXPECT_EQ(app::unreachable_links_warning(o), "");
}

TEST_F(node_test, HealthAndReadiness) {
  EXPECT_EQ(client_->get("/healthz").status, 200u);
  auto ready = client_->get("/readyz");
  EXPECT_EQ(ready.status, 200u) << ready.body;
  auto sys = client_->get("/v1/system");
  EXPECT_EQ(sys.status, 200u);
  EXPECT_TRUE(sys.json().contains("log_position"));
}

TEST_F(node_test, AdminEndpointsNeedAKey) {
  auto r = client_->get("/v1/invites");
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(r.header("Content-Type"), "application/problem+json");
  EXPECT_EQ(r.json()["code"], "unauthorized");
  EXPECT_EQ(client_->get("/v1/invites", auth("psk_wrong")).status, 401u);
  EXPECT_EQ(client_->get("/v1/invites", auth(operator_)).status, 403u)
      << "the operator key can only create organizations";
}

TEST_F(node_test, CreateEditDuplicateDeactivateDelete) {
  make_track("k8s-basics");
  auto invite = make_invite({{"title", "Kubernetes 101 workshop"},
                             {"type", "self_paced"},
                             {"tracks", {{{"track_id", "k8s-basics"}}}},
                             {"access_duration", "P30D"},
                             {"plays_per_track", 3},
                             {"expires_at", "2026-12-31T23:59:00Z"},
                             {"claim_limit", 50},
                             {"access", "allowed"},
                             {"allowed_domains", {"example.com"}},
                             {"show_share_button", true},
                             {"internal_description", "secret notes"}});
  ASSERT_TRUE(invite.contains("id"));
  std::string id = invite["id"], code = invite["code"];
  EXPECT_EQ(code.size(), 7u);
  EXPECT_EQ(invite["link"], "/i/" + code);
  EXPECT_EQ(invite["status"], "active");
  EXPECT_EQ(invite["remaining_spots"], 50);
  EXPECT_EQ(invite["version"], 1);

  auto got = client_->get("/v1/invites/" + id, auth());
  ASSERT_EQ(got.status, 200u);
  EXPECT_EQ(got.header("ETag"), "\"1\"");

  // Stale If-Match -> 412; current -> 200 and a new version.
  auto stale = client_->patch("/v1/invites/" + id, R"({"title":"New"})",
                              {{"Authorization", "Bearer " + owner_}, {"If-Match", "\"7\""}});
  EXPECT_EQ(stale.status, 412u) << stale.body;
  EXPECT_EQ(stale.json()["code"], "version_conflict");
  auto edited = client_->patch("/v1/invites/" + id, R"({"title":"Kubernetes 102"})",
                               {{"Authorization", "Bearer " + owner_}, {"If-Match", "\"1\""}});
  ASSERT_EQ(edited.status, 200u) << edited.body;
  EXPECT_EQ(edited.json()["title"], "Kubernetes 102");
  EXPECT_EQ(edited.header("ETag"), "\"2\"");

  auto dup = client_->post("/v1/invites/" + id + "/duplicate", "", auth());
  ASSERT_EQ(dup.status, 201u) << dup.body;
  EXPECT_EQ(dup.json()["title"], "Kubernetes 102 (Copy)");
  EXPECT_NE(dup.json()["code"], code);
  EXPECT_EQ(dup.json()["claims_count"], 0);

  auto off = client_->post("/v1/invites/" + id + "/deactivate", "", auth());
  ASSERT_EQ(off.status, 200u) << off.body;
  EXPECT_EQ(off.json()["status"], "deactivated");
  auto refused = claim(code, {{"email", "ada@example.com"}});
  EXPECT_EQ(refused.status, 409u);
  EXPECT_EQ(refused.json()["code"], "deactivated");
  auto on = client_->post("/v1/invites/" + id + "/reactivate", "", auth());
  ASSERT_EQ(on.status, 200u);
  EXPECT_EQ(on.json()["status"], "active");

  auto list = client_->get("/v1/invites", auth());
  ASSERT_EQ(list.status, 200u);
  EXPECT_EQ(list.json()["invites"].size(), 2u);

  EXPECT_EQ(client_->del("/v1/invites/" + id, auth()).status, 204u);
  EXPECT_EQ(client_->get("/v1/invites", auth()).json()["invites"].size(), 1u)
      << "deleted invites are hidden by default";
  EXPECT_EQ(client_->get("/v1/invites?status=deleted", auth()).json()["invites"].size(), 1u);
  EXPECT_EQ(client_->get("/v1/public/invites/" + code).status, 404u);
}

TEST_F(node_test, ClaimWithEachAccessSettingAndPlayUntilTheLimit) {
  make_track("k8s-basics");
  make_track("helm", true);
  auto anyone = make_invite({{"title", "Open"},
                             {"tracks", {{{"track_id", "k8s-basics"}}, {{"track_id", "helm"}}}},
                             {"plays_per_track", 2},
                             {"access_duration", "P1D"}});
  auto allowed = make_invite({{"title", "Allowed"},
                              {"tracks", {{{"track_id", "k8s-basics"}}}},
                              {"access", "allowed"},
                              {"allowed_emails", {"grace@corp.io"}},
                              {"allowed_domains", {"example.com"}}});
  auto put_form = client_->put(
      "/v1/lead-form",
      R"({"fields":[{"name":"company","label":"Company","required":true},{"name":"consent","label":"I agree"}]})",
      auth());
  ASSERT_EQ(put_form.status, 200u) << put_form.body;
  auto lead = make_invite(
      {{"title", "Lead"}, {"tracks", {{{"track_id", "k8s-basics"}}}}, {"access", "lead_form"}});

  // anyone: anonymous works and returns a learner token
  auto anon = claim(anyone["code"], json::object());
  ASSERT_EQ(anon.status, 201u) << anon.body;
  EXPECT_TRUE(anon.json()["anonymous"].get<bool>());
  // The same browser (token) claiming again gets the same claim back.
  auto anon_again = claim(anyone["code"], {{"learner_token", anon.json()["learner_token"]}});
  ASSERT_EQ(anon_again.status, 200u) << anon_again.body;
  EXPECT_EQ(anon_again.json()["claim_id"], anon.json()["claim_id"]);

  // allowed: domain and email lists, case-insensitive
  EXPECT_EQ(claim(allowed["code"], {{"email", "Ada@EXAMPLE.com"}}).status, 201u);
  EXPECT_EQ(claim(allowed["code"], {{"email", "GRACE@corp.io"}}).status, 201u);
  auto outsider = claim(allowed["code"], {{"email", "eve@evil.example.com"}});
  EXPECT_EQ(outsider.status, 403u) << outsider.body;
  EXPECT_EQ(outsider.json()["code"], "not_allowed");
  auto no_email = claim(allowed["code"], json::object());
  EXPECT_EQ(no_email.json()["code"], "details_missing");

  // lead form: required fields, then remembered org-wide
  auto missing = claim(lead["code"],
                       {{"email", "lin@example.com"}, {"first_name", "Lin"}, {"last_name", "Wu"}});
  EXPECT_EQ(missing.status, 422u) << missing.body;
  EXPECT_EQ(missing.json()["code"], "details_missing");
  auto filled = claim(lead["code"], {{"email", "lin@example.com"},
                                     {"first_name", "Lin"},
                                     {"last_name", "Wu"},
                                     {"answers", {{"company", "Acme"}, {"consent", true}}}});
  ASSERT_EQ(filled.status, 201u) << filled.body;
  auto leads = client_->get("/v1/leads", auth());
  ASSERT_EQ(leads.status, 200u);
  EXPECT_EQ(leads.json()["leads"].size(), 1u);

  // plays until the limit, on the learner's token
  auto ada = claim(anyone["code"], {{"email", "ada@example.com"}});
  ASSERT_EQ(ada.status, 201u) << ada.body;
  std::string claim_id = ada.json()["claim_id"], token = ada.json()["learner_token"];
  EXPECT_EQ(ada.json()["tracks"][0]["plays_remaining"], 2);
  http_client::headers learner = {{"Authorization", "Bearer " + token}};
  for (int left : {1, 0}) {
    auto p = client_->post("/v1/public/claims/" + claim_id + "/plays",
                           R"({"track_id":"k8s-basics"})", learner);
    ASSERT_EQ(p.status, 201u) << p.body;
    EXPECT_EQ(p.json()["plays_remaining"], left);
  }
  auto over = client_->post("/v1/public/claims/" + claim_id + "/plays",
                            R"({"track_id":"k8s-basics"})", learner);
  EXPECT_EQ(over.json()["code"], "play_limit_reached") << over.body;
  EXPECT_EQ(
      client_->post("/v1/public/claims/" + claim_id + "/plays", R"({"track_id":"k8s-basics"})")
          .status,
      401u);

  // pause / resume a pausable track
  ASSERT_EQ(
      client_->post("/v1/public/claims/" + claim_id + "/plays", R"({"track_id":"helm"})", learner)
          .status,
      201u);
  auto paused = client_->post("/v1/public/claims/" + claim_id + "/tracks/helm/pause", "", learner);
  ASSERT_EQ(paused.status, 200u) << paused.body;
  EXPECT_TRUE(paused.json()["paused"].get<bool>());
  EXPECT_EQ(
      client_->post("/v1/public/claims/" + claim_id + "/tracks/helm/resume", "", learner).status,
      200u);
  EXPECT_NE(client_->post("/v1/public/claims/" + claim_id + "/tracks/k8s-basics/pause", "", learner)
                .status,
            200u);

  // usage and the acceptance list
  auto usage = client_->get("/v1/invites/" + anyone["id"].get<std::string>() + "/usage", auth());
  ASSERT_EQ(usage.status, 200u);
  EXPECT_EQ(usage.json()["claims"], 2);
  auto accepted =
      client_->get("/v1/invites/" + anyone["id"].get<std::string>() + "/claims", auth());
  ASSERT_EQ(accepted.status, 200u);
  EXPECT_EQ(accepted.json()["claims"].size(), 2u);
  auto csv = client_->get("/v1/invites/" + allowed["id"].get<std::string>() + "/claims",
                          {{"Authorization", "Bearer " + owner_}, {"Accept", "text/csv"}});
  ASSERT_EQ(csv.status, 200u);
  EXPECT_NE(csv.body.find("ada@example.com"), std::string::npos) << csv.body;
  auto rejections =
      client_->get("/v1/invites/" + allowed["id"].get<std::string>() + "/rejections", auth());
  EXPECT_EQ(rejections.json()["rejections"].size(), 2u) << rejections.body;
}

TEST_F(node_test, AccessExpiresWithTheInjectedClockAndSurvivesDeletion) {
  make_track("k8s-basics");
  auto invite = make_invite({{"title", "Short"},
                             {"tracks", {{{"track_id", "k8s-basics"}}}},
                             {"access_duration", "PT90M"}});
  auto c = claim(invite["code"], {{"email", "ada@example.com"}});
  ASSERT_EQ(c.status, 201u);
  std::string claim_id = c.json()["claim_id"];
  http_client::headers learner = {
      {"Authorization", "Bearer " + c.json()["learner_token"].get<std::string>()}};
  // Deleting the invite never revokes the claim.
  ASSERT_EQ(client_->del("/v1/invites/" + invite["id"].get<std::string>(), auth()).status, 204u);
  auto before = client_->post("/v1/public/claims/" + claim_id + "/plays",
                              R"({"track_id":"k8s-basics"})", learner);
  EXPECT_EQ(before.status, 201u) << before.body;
  clock_.advance(std::chrono::minutes(90));
  auto after = client_->post("/v1/public/claims/" + claim_id + "/plays",
                             R"({"track_id":"k8s-basics"})", learner);
  EXPECT_EQ(after.json()["code"], "access_expired") << after.body;
}

TEST_F(node_test, TwoHundredConcurrentClaimsAgainstALimitOfFifty) {
  make_track("k8s-basics");
  auto invite = make_invite(
      {{"title", "Busy"}, {"tracks", {{{"track_id", "k8s-basics"}}}}, {"claim_limit", 50}});
  std::string code = invite["code"];
  std::atomic<int> created{0}, full{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      http_client c(node_->port());
      for (int i = 0; i < 25; ++i) {
        auto r = c.post("/v1/public/invites/" + code + "/claims",
                        json{{"email", "l" + std::to_string(t * 25 + i) + "@example.com"}}.dump());
        if (r.status == 201) {
          ++created;
        } else if (r.status == 409 && r.json()["code"] == "full") {
          ++full;
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(created, 50);
  EXPECT_EQ(full, 150);
  EXPECT_EQ(other, 0);
  auto list = client_->get("/v1/invites/" + invite["id"].get<std::string>() + "/claims", auth());
  EXPECT_EQ(list.json()["claims"].size(), 50u);
  auto got = client_->get("/v1/invites/" + invite["id"].get<std::string>(), auth());
  EXPECT_EQ(got.json()["status"], "full");
  EXPECT_EQ(got.json()["remaining_spots"], 0);
}

TEST_F(node_test, StateIsIdenticalAfterARestart) {
  make_track("k8s-basics");
  auto invite = make_invite(
      {{"title", "Keep"}, {"tracks", {{{"track_id", "k8s-basics"}}}}, {"claim_limit", 5}});
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(claim(invite["code"], {{"email", "p" + std::to_string(i) + "@x.io"}}).status, 201u);
  std::string id = invite["id"];
  auto before_invite = client_->get("/v1/invites/" + id, auth()).json();
  auto before_claims = client_->get("/v1/invites/" + id + "/claims", auth()).json();
  auto before_usage = client_->get("/v1/invites/" + id + "/usage", auth()).json();
  restart();
  EXPECT_EQ(client_->get("/v1/invites/" + id, auth()).json(), before_invite);
  EXPECT_EQ(client_->get("/v1/invites/" + id + "/claims", auth()).json(), before_claims);
  EXPECT_EQ(client_->get("/v1/invites/" + id + "/usage", auth()).json(), before_usage);
  // And the command side picks up where it was: the limit still holds.
  EXPECT_EQ(claim(invite["code"], {{"email", "p3@x.io"}}).status, 201u);
  EXPECT_EQ(claim(invite["code"], {{"email", "p4@x.io"}}).status, 201u);
  EXPECT_EQ(claim(invite["code"], {{"email", "p5@x.io"}}).json()["code"], "full");
}

TEST_F(node_test, OrganizationsAreIsolated) {
  make_track("k8s-basics");
  auto invite = make_invite({{"title", "Mine"}, {"tracks", {{{"track_id", "k8s-basics"}}}}});
  auto org = client_->post("/v1/orgs", R"({"name":"Other Co"})", auth(operator_));
  ASSERT_EQ(org.status, 201u) << org.body;
  std::string other = org.json()["owner_key"];
  std::string id = invite["id"];
  for (auto path :
       {"/v1/invites/" + id, "/v1/invites/" + id + "/claims", "/v1/invites/" + id + "/usage"}) {
    auto r = client_->get(path, auth(other));
    EXPECT_EQ(r.status, 404u) << path << " " << r.body;
  }
  EXPECT_EQ(client_->patch("/v1/invites/" + id, R"({"title":"x"})", auth(other)).status, 404u);
  EXPECT_EQ(client_->del("/v1/invites/" + id, auth(other)).status, 404u);
  EXPECT_EQ(client_->get("/v1/invites", auth(other)).json()["invites"].size(), 0u);
  EXPECT_EQ(client_->post("/v1/orgs", R"({"name":"x"})", auth()).status, 403u)
      << "only the operator";
}

TEST_F(node_test, ApiKeysAreOwnerOnlyAndRevocable) {
  auto admin = client_->post("/v1/api-keys", R"({"role":"admin","name":"ci"})", auth());
  ASSERT_EQ(admin.status, 201u) << admin.body;
  std::string key = admin.json()["key"], key_id = admin.json()["id"];
  EXPECT_EQ(client_->get("/v1/invites", auth(key)).status, 200u);
  EXPECT_EQ(client_->post("/v1/api-keys", R"({"role":"admin"})", auth(key)).status, 403u);
  EXPECT_EQ(client_->del("/v1/api-keys/" + key_id, auth()).status, 204u);
  EXPECT_EQ(client_->get("/v1/invites", auth(key)).status, 401u);
}

// PATCH /v1/api-keys/{id} sets, changes or clears a key's contact email (owner only);
// bad input is a problem+json and changes nothing; a revoked key's cannot change.
TEST_F(node_test, AnApiKeysContactEmailIsSetChangedAndCleared) {
  auto admin = client_->post("/v1/api-keys", R"({"role":"admin","name":"ci"})", auth());
  ASSERT_EQ(admin.status, 201u) << admin.body;
  const std::string key = admin.json()["key"], key_id = admin.json()["id"];
  const std::string path = "/v1/api-keys/" + key_id;
  auto listed = [&] {
    const json keys = client_->get("/v1/api-keys", auth()).json();
    for (const auto& k : keys["api_keys"])
      if (k["id"] == key_id) return k["email"];
    return json("missing");
  };
  auto set = client_->patch(path, R"({"email":" Desk@Example.ORG "})", auth());
  ASSERT_EQ(set.status, 200u) << set.body;
  EXPECT_EQ(set.json()["id"], key_id);
  EXPECT_EQ(set.json()["email"], "desk@example.org");
  EXPECT_EQ(listed(), json("desk@example.org"));
  const auto events = client_->get("/v1/events?type=ApiKeyEmailChanged", auth()).json();
  ASSERT_EQ(events["events"].size(), 1u) << events.dump();
  EXPECT_EQ(events["events"][0]["data"]["email"], "desk@example.org");

  for (const char* bad : {R"({"email":"not an email"})", R"({})", R"({"email":3})",
                          R"({"email":null,"role":"owner"})", "[]", "{"}) {
    auto r = client_->patch(path, bad, auth());
    EXPECT_EQ(r.status, 400u) << bad << " " << r.body;
    EXPECT_EQ(r.header("Content-Type"), "application/problem+json") << bad;
  }
  EXPECT_EQ(client_->patch(path, R"({"email":null})", auth(key)).status, 403u) << "owner only";
  EXPECT_EQ(
      client_->patch("/v1/api-keys/" + uuid::random().to_string(), R"({"email":null})", auth())
          .status,
      404u);
  EXPECT_EQ(listed(), json("desk@example.org")) << "refused changes store nothing";

  auto cleared = client_->patch(path, R"({"email":null})", auth());
  ASSERT_EQ(cleared.status, 200u) << cleared.body;
  EXPECT_TRUE(cleared.json()["email"].is_null()) << cleared.body;
  EXPECT_TRUE(listed().is_null());
  ASSERT_EQ(client_->del(path, auth()).status, 204u);
  auto revoked = client_->patch(path, R"({"email":"desk@example.org"})", auth());
  EXPECT_EQ(revoked.status, 409u) << revoked.body;
  EXPECT_EQ(client_->get("/v1/events?type=ApiKeyEmailChanged", auth()).json()["events"].size(), 2u);
}

// The data folder holds every learner's key, the node's secret and stored answers: closed to
// other users, also when it was made open (by hand, or by an older build) before a start.
TEST_F(node_test, TheDataFolderAndItsSecretsAreForTheNodesUserOnly) {
  namespace fs = std::filesystem;
  constexpr auto others = fs::perms::group_all | fs::perms::others_all;
  const fs::path data = dir_.sub("data");
  EXPECT_EQ(fs::status(data).permissions() & others, fs::perms::none);
  for (const char* secret : {"server.secret", "owner.token", "operator.token"}) {
    if (!fs::exists(data / secret)) continue;  // a token given in the options is not stored
    EXPECT_EQ(fs::status(data / secret).permissions() & ~fs::perms::owner_all, fs::perms::none)
        << secret;
  }
  stop();
  fs::permissions(data, fs::perms::all);
  start();
  EXPECT_EQ(fs::status(data).permissions() & others, fs::perms::none);
}

TEST_F(node_test, IdempotencyKeyReturnsTheFirstResponse) {
  make_track("k8s-basics");
  http_client::headers h = {{"Authorization", "Bearer " + owner_}, {"Idempotency-Key", "create-1"}};
  std::string body = R"({"title":"Once","tracks":[{"track_id":"k8s-basics"}]})";
  auto first = client_->post("/v1/invites", body, h);
  auto again = client_->post("/v1/invites", body, h);
  ASSERT_EQ(first.status, 201u);
  EXPECT_EQ(again.status, 201u);
  EXPECT_EQ(first.body, again.body);
  EXPECT_EQ(again.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(client_->get("/v1/invites", auth()).json()["invites"].size(), 1u);
  auto reused = client_->post("/v1/invites", R"({"title":"Other","tracks":["k8s-basics"]})", h);
  EXPECT_EQ(reused.status, 422u);
}

// On the public claim route a malformed body or an unknown code is not kept under its
// Idempotency-Key (anyone may send them: each kept answer is a synced write kept for a day);
// a claim is, and its retry gets the same answer without a second claim.
TEST_F(node_test, PublicClaimsKeepOnlyAnswersToClaimsActedOn) {
  make_track("k8s-basics");
  auto invite = make_invite({{"title", "Open"}, {"tracks", {{{"track_id", "k8s-basics"}}}}});
  const std::string path = "/v1/public/invites/" + invite["code"].get<std::string>() + "/claims";
  http_client::headers h = {{"Idempotency-Key", "claim-1"}};
  for (int i = 0; i < 2; ++i) {
    auto bad = client_->post(path, "{not json", h);
    EXPECT_EQ(bad.status, 400u) << bad.body;
    EXPECT_EQ(bad.header("Idempotent-Replayed"), "");
    auto unknown = client_->post("/v1/public/invites/ZZZZZZZ/claims", R"({"email":"u@x.io"})", h);
    EXPECT_EQ(unknown.status, 404u) << unknown.body;
    EXPECT_EQ(unknown.header("Idempotent-Replayed"), "");
  }
  http_client::headers h2 = {{"Idempotency-Key", "claim-2"}};
  auto first = client_->post(path, R"({"email":"ada@x.io"})", h2);
  auto again = client_->post(path, R"({"email":"ada@x.io"})", h2);
  ASSERT_EQ(first.status, 201u) << first.body;
  EXPECT_EQ(again.status, 201u);
  EXPECT_EQ(again.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(first.body, again.body);
}

// The events of the org in the log but those the mailer appends on its own time (a welcome
// mail's PasswordSetupIssued and its outcome, after the claim that caused it): what a
// request may have recorded.
std::size_t recorded_by_requests(http_client& client, const http_client::headers& auth) {
  std::size_t n = 0;
  const auto events = client.get("/v1/events?limit=10000", auth).json();
  for (const auto& e : events["events"]) {
    const std::string type = e["type"];
    n += type != "PasswordSetupIssued" && type != "EmailSent" && type != "EmailFailed";
  }
  return n;
}

std::size_t count_events(http_client& client, const http_client::headers& auth,
                         const std::string& type) {
  return client.get("/v1/events?limit=10000&type=" + type, auth).json()["events"].size();
}

TEST_F(node_test, ClaimsAreRateLimitedPerIpWithRetryAfter) {
  // The fixture turns the limits off; this node allows 2 claims per IP per minute.
  restart("2/1m", "0");
  make_track("k8s-basics");
  auto invite = make_invite({{"title", "Limited"}, {"tracks", {{{"track_id", "k8s-basics"}}}}});
  EXPECT_EQ(claim(invite["code"], {{"email", "a@x.io"}}).status, 201u);
  EXPECT_EQ(claim(invite["code"], {{"email", "b@x.io"}}).status, 201u);
  const auto recorded = recorded_by_requests(*client_, auth());
  const auto rejections = count_events(*client_, auth(), "ClaimRejected");
  auto limited = claim(invite["code"], {{"email", "c@x.io"}});
  EXPECT_EQ(limited.status, 429u);
  EXPECT_FALSE(limited.header("Retry-After").empty());
  EXPECT_EQ(limited.header("Content-Type"), "application/problem+json");
  EXPECT_EQ(limited.json()["code"], "rate_limited");
  // SPEC: rate-limited requests are not recorded as events.
  EXPECT_EQ(recorded_by_requests(*client_, auth()), recorded);
  EXPECT_EQ(count_events(*client_, auth(), "ClaimRejected"), rejections);
  clock_.advance(std::chrono::minutes(1));
  EXPECT_EQ(claim(invite["code"], {{"email", "c@x.io"}}).status, 201u);
}

TEST_F(node_test, ClaimsAreRateLimitedPerNormalisedEmailWithRetryAfter) {
  // 2 claims per email per minute; the per-IP limit stays off.
  restart("0", "2/1m");
  make_track("k8s-basics");
  auto a = make_invite({{"title", "A"}, {"tracks", {{{"track_id", "k8s-basics"}}}}});
  auto b = make_invite({{"title", "B"}, {"tracks", {{{"track_id", "k8s-basics"}}}}});
  auto c = make_invite({{"title", "C"}, {"tracks", {{{"track_id", "k8s-basics"}}}}});
  // Spellings of one address count together.
  EXPECT_EQ(claim(a["code"], {{"email", "Ada@Example.com"}}).status, 201u);
  EXPECT_EQ(claim(b["code"], {{"email", "  ada@example.COM "}}).status, 201u);
  const auto recorded = recorded_by_requests(*client_, auth());
  const auto rejections = count_events(*client_, auth(), "ClaimRejected");
  auto limited = claim(c["code"], {{"email", "ADA@EXAMPLE.COM"}});
  EXPECT_EQ(limited.status, 429u) << limited.body;
  EXPECT_FALSE(limited.header("Retry-After").empty());
  EXPECT_EQ(limited.header("Content-Type"), "application/problem+json");
  EXPECT_EQ(limited.json()["code"], "rate_limited");
  EXPECT_EQ(recorded_by_requests(*client_, auth()), recorded) << "nothing was stored";
  EXPECT_EQ(count_events(*client_, auth(), "ClaimRejected"), rejections);
  // Another address is not held back by Ada's limit.
  EXPECT_EQ(claim(c["code"], {{"email", "bob@example.com"}}).status, 201u);
  clock_.advance(std::chrono::minutes(1));
  EXPECT_EQ(claim(c["code"], {{"email", "ada@example.com"}}).status, 201u);
}

TEST_F(node_test, BadInputGetsAClearErrorAndChangesNothing) {
  make_track("k8s-basics");
  auto head = client_->get("/v1/system").json()["log_position"];
  struct bad {
    std::string body;
    std::string field;
  };
  std::vector<bad> cases = {
      {"{not json", ""},
      {"[1,2]", ""},
      {R"({"title":5,"tracks":["k8s-basics"]})", "title"},
      {R"({"title":"x","tracks":["k8s-basics"],"colour":"red"})", "colour"},
      {R"({"title":"x","tracks":["k8s-basics"],"claim_limit":1e400})", ""},
      {R"({"title":"x","tracks":["k8s-basics"],"claim_limit":99999999999999999999999})",
       "claim_limit"},
      {R"({"title":"x","tracks":["k8s-basics"],"claim_limit":-1})", "claim_limit"},
      {R"({"title":"x","tracks":["k8s-basics"],"expires_at":"tomorrow"})", "expires_at"},
      {R"({"title":"x","tracks":["nope"]})", "tracks[0].track_id"},
      {R"({"title":"","tracks":["k8s-basics"]})", "title"},
      {"{\"title\":\"\xff\xfe\",\"tracks\":[\"k8s-basics\"]}", ""},
      {R"({"title":"x","tracks":["k8s-basics"],"access_duration":"P1X"})", "access_duration"},
      // A name twice: refused (parsers disagree on which one counts).
      {R"({"title":"x","title":"y","tracks":["k8s-basics"]})", "title"},
      {R"({"title":"x","tracks":[{"track_id":"k8s-basics","track_id":"b"}]})",
       "tracks[0].track_id"},
  };
  for (const auto& c : cases) {
    auto r = client_->post("/v1/invites", c.body, auth());
    EXPECT_EQ(r.status / 100, 4u) << c.body << " -> " << r.status << " " << r.body;
    EXPECT_EQ(r.header("Content-Type"), "application/problem+json") << c.body;
    if (!c.field.empty()) {
      EXPECT_NE(r.body.find(c.field), std::string::npos) << c.body << " -> " << r.body;
    }
  }
  // Path tricks and unknown routes.
  EXPECT_EQ(client_->get("/v1/invites/..%2F..%2Fetc", auth()).status / 100, 4u);
  EXPECT_EQ(client_->get("/v1/invites/not-a-uuid", auth()).status, 404u);
  EXPECT_EQ(client_->get("/v1/nothing-here", auth()).status, 404u);
  EXPECT_EQ(client_->request(boost::beast::http::verb::put, "/v1/invites", "{}", auth()).status,
            405u);
  // Oversized body (the limit is 1 MiB: a bulk send carries up to 10,000 addresses).
  std::string huge =
      R"({"title":")" + std::string(1100 * 1024, 'a') + R"(","tracks":["k8s-basics"]})";
  EXPECT_EQ(client_->post("/v1/invites", huge, auth()).status, 413u);
  client_ = std::make_unique<http_client>(node_->port());
  EXPECT_EQ(client_->get("/healthz").status, 200u) << "the server stays up";
  EXPECT_EQ(client_->get("/v1/system").json()["log_position"], head) << "nothing was stored";
}

TEST_F(node_test, PublicViewAndClaimPageShowNoInternalFields) {
  make_track("k8s-basics");
  auto invite = make_invite({{"title", "Public <b>title</b>"},
                             {"tracks", {{{"track_id", "k8s-basics"}}}},
                             {"internal_description", "SECRET-NOTE"}});
  auto view = client_->get("/v1/public/invites/" + invite["code"].get<std::string>());
  ASSERT_EQ(view.status, 200u);
  EXPECT_EQ(view.body.find("SECRET-NOTE"), std::string::npos);
  auto page = client_->get("/i/" + invite["code"].get<std::string>());
  ASSERT_EQ(page.status, 200u);
  EXPECT_NE(page.header("Content-Type").find("text/html"), std::string::npos);
  EXPECT_EQ(page.body.find("SECRET-NOTE"), std::string::npos);
  EXPECT_NE(page.body.find("Public &lt;b&gt;title&lt;/b&gt;"), std::string::npos) << "escaped";
  EXPECT_NE(page.body.find("<label"), std::string::npos);
  auto missing = client_->get("/i/ZZZZZZZ");
  EXPECT_EQ(missing.status, 404u);
  // The not-found page is a learner page like the others: the same security headers.
  for (const char* h : {"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy"}) {
    EXPECT_EQ(missing.header(h), page.header(h)) << h;
    EXPECT_FALSE(missing.header(h).empty()) << h;
  }
}

TEST_F(node_test, OpenApiDocumentListsEveryRoute) {
  auto doc = client_->get("/openapi.json");
  ASSERT_EQ(doc.status, 200u);
  auto j = doc.json();
  EXPECT_EQ(j["openapi"], "3.0.3");
  for (auto [path, method] : std::vector<std::pair<std::string, std::string>>{
           {"/v1/invites", "post"},
           {"/v1/invites/{id}", "patch"},
           {"/v1/public/invites/{code}/claims", "post"},
           {"/v1/events/live", "get"}}) {
    EXPECT_TRUE(j["paths"].contains(path) && j["paths"][path].contains(method))
        << method << " " << path;
  }
  for (auto& [path, ops] : j["paths"].items()) {
    for (auto& [method, op] : ops.items()) {
      EXPECT_FALSE(op["summary"].get<std::string>().empty())
          << method << " " << path << " has no summary";
    }
  }
}

TEST_F(node_test, ForgottenLearnerShowsAsForgottenWithCountsIntact) {
  make_track("k8s-basics");
  auto invite = make_invite({{"title", "Forget"}, {"tracks", {{{"track_id", "k8s-basics"}}}}});
  auto c = claim(invite["code"], {{"email", "ada.lovelace@example.com"}, {"first_name", "Ada"}});
  ASSERT_EQ(c.status, 201u);
  std::string id = invite["id"];
  auto before = client_->get("/v1/invites/" + id + "/claims", auth());
  ASSERT_NE(before.body.find("ada.lovelace@example.com"), std::string::npos);
  const json rows = before.json()["claims"];
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["first_name"], "Ada");  // names entered with the claim
  auto forgot = client_->post(
      "/v1/learners/" + c.json()["learner_id"].get<std::string>() + "/forget", "", auth());
  ASSERT_EQ(forgot.status, 200u) << forgot.body;
  auto list = client_->get("/v1/invites/" + id + "/claims", auth());
  EXPECT_EQ(list.body.find("ada.lovelace@example.com"), std::string::npos) << list.body;
  EXPECT_EQ(list.body.find("\"Ada\""), std::string::npos) << list.body;
  EXPECT_NE(list.body.find("forgotten"), std::string::npos) << list.body;
  EXPECT_EQ(list.json()["claims"].size(), 1u);
  EXPECT_EQ(client_->get("/v1/invites/" + id + "/usage", auth()).json()["claims"], 1);
  auto events = client_->get("/v1/events?limit=1000", auth());
  EXPECT_EQ(events.body.find("ada.lovelace@example.com"), std::string::npos);
  EXPECT_NE(events.body.find("LearnerForgotten"), std::string::npos);
}

// A page of GET /v1/events examines a bounded stretch of the log (every organization's):
// a rare type's page stops there, short or empty, with next_from where to go on; paging
// to head_position still finds every event, once each, in order.
TEST_F(node_test, EventPagesExamineABoundedStretchOfTheLog) {
  configure_ = [](app::server_options& o) { o.events_page_scan = 4; };
  restart();
  make_track("k8s-basics");
  for (int i = 0; i < 5; ++i) {
    auto invite = make_invite({{"title", "Page " + std::to_string(i)}, {"tracks", {"k8s-basics"}}});
    auto off =
        client_->post("/v1/invites/" + invite["id"].get<std::string>() + "/deactivate", "", auth());
    ASSERT_EQ(off.status / 100, 2u) << off.body;
  }
  std::vector<std::string> titles;
  std::uint64_t from = 1, pages = 0;
  for (;;) {
    auto page =
        client_->get("/v1/events?type=InviteCreated&limit=100&from=" + std::to_string(from), auth())
            .json();
    ++pages;
    for (const auto& e : page["events"]) titles.push_back(e["data"]["settings"]["title"]);
    const std::uint64_t next = page["next_from"];
    ASSERT_GT(next, from);
    EXPECT_LE(next - from, 4u) << "examined past the bound";
    from = next;
    if (from > page["head_position"].get<std::uint64_t>()) break;
  }
  EXPECT_EQ(titles, (std::vector<std::string>{"Page 0", "Page 1", "Page 2", "Page 3", "Page 4"}));
  EXPECT_GT(pages, 3u);
  auto everything = client_->get("/v1/events?limit=100", auth()).json();
  EXPECT_LE(everything["events"].size(), 4u);
  EXPECT_EQ(everything["next_from"], 5);
  // With `since` (a time, found through the time index) a page is bounded too, also when
  // its type or stream names nothing: four events examined from the first one at `since`.
  for (const char* filter : {"&type=NoSuchType", "&stream=invite-nothing", ""}) {
    auto page =
        client_
            ->get("/v1/events?since=1970-01-01T00:00:00Z&limit=100" + std::string(filter), auth())
            .json();
    EXPECT_LE(page["events"].size(), 4u) << filter;
    EXPECT_EQ(page["next_from"], 5) << filter << " " << page.dump();
  }
  auto since_created = client_->get(
      "/v1/events?since=1970-01-01T00:00:00Z&type=InviteCreated&limit=100&from=1", auth());
  // Kept in a variable: a range-for over a member of a temporary would dangle.
  const auto since_page = since_created.json();
  for (const auto& e : since_page["events"]) EXPECT_EQ(e["type"], "InviteCreated");
}

TEST_F(node_test, EmbeddedKafkaBrokerCarriesEveryEvent) {
  stop();
  start("0", "0", "");  // embedded broker
  ASSERT_FALSE(node_->kafka_bootstrap().empty());
  make_track("k8s-basics");
  auto invite = make_invite({{"title", "Kafka"}, {"tracks", {{{"track_id", "k8s-basics"}}}}});
  ASSERT_EQ(claim(invite["code"], {{"email", "ada@example.com"}}).status, 201u);
  wait_mails_sent(1);  // the welcome mail's EmailSent is in the log too
  json sys;
  for (int i = 0; i < 500; ++i) {
    sys = client_->get("/v1/system").json();
    if (sys["kafka"]["published_position"] == sys["log_position"]) break;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(sys["kafka"]["published_position"], sys["log_position"]) << sys.dump();
  EXPECT_EQ(sys["kafka"]["bootstrap"], node_->kafka_bootstrap());
  EXPECT_TRUE(sys["kafka"]["embedded"].get<bool>());
  // scripts/setup.sh installs kcat: without it this check must fail, not pass unseen.
  ASSERT_EQ(std::system("command -v kcat >/dev/null 2>&1"), 0)
      << "kcat not installed: run scripts/setup.sh";
  std::string cmd = "kcat -b " + node_->kafka_bootstrap() +
                    " -C -t passage.events -o beginning -e -q -f '%s\\n' 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  pclose(p);
  std::size_t messages = 0;
  for (std::size_t at = out.find("\"specversion\""); at != std::string::npos;
       at = out.find("\"specversion\"", at + 1)) {
    ++messages;
  }
  EXPECT_EQ(messages, sys["log_position"].get<std::size_t>()) << out.substr(0, 500);
  EXPECT_NE(out.find("io.passage.InviteClaimed.v1"), std::string::npos);
}

TEST_F(node_test, InviteExpiredIsEmittedOnTimeAndOnceAcrossARestart) {
  make_track("k8s-basics");
  auto count_expired = [&](const std::string& invite_id) {
    auto events = client_->get("/v1/events?limit=10000&type=InviteExpired", auth()).json();
    int n = 0;
    for (const auto& e : events["events"]) n += e["stream"] == "invite-" + invite_id;
    return n;
  };
  auto wait_for = [&](const std::string& invite_id, int want) {
    for (int i = 0; i < 100 && count_expired(invite_id) < want; ++i)
      std::this_thread::sleep_for(50ms);
    return count_expired(invite_id);
  };
  auto deadline = format_rfc3339(clock_.now() + std::chrono::minutes(1));
  auto a = make_invite({{"title", "A"}, {"tracks", {"k8s-basics"}}, {"expires_at", deadline}});
  std::string a_id = a["id"];
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(count_expired(a_id), 0) << "not before its deadline";
  clock_.advance(std::chrono::seconds(61));
  EXPECT_EQ(wait_for(a_id, 1), 1);
  EXPECT_EQ(client_->get("/v1/invites/" + a_id + "?", auth()).json()["status"], "expired");

  // A restart that straddles B's deadline still emits it, once.
  auto b = make_invite({{"title", "B"},
                        {"tracks", {"k8s-basics"}},
                        {"expires_at", format_rfc3339(clock_.now() + std::chrono::minutes(1))}});
  std::string b_id = b["id"];
  stop();
  clock_.advance(std::chrono::minutes(2));
  start();
  EXPECT_EQ(wait_for(b_id, 1), 1);
  restart();
  std::this_thread::sleep_for(600ms);
  EXPECT_EQ(count_expired(b_id), 1) << "never twice";
  EXPECT_EQ(count_expired(a_id), 1);
}

TEST_F(node_test, AfterForgetNoFileOfTheDataFolderHoldsThePersonalData) {
  auto form =
      client_->put("/v1/lead-form", R"({"fields":[{"name":"company","required":true}]})", auth());
  ASSERT_EQ(form.status, 200u);
  make_track("k8s-basics");
  auto invite =
      make_invite({{"title", "Leads"}, {"tracks", {"k8s-basics"}}, {"access", "lead_form"}});
  const std::string email = "zelda.quartermaine@example.org";
  auto c = claim(invite["code"], {{"email", email},
                                  {"first_name", "Zeldarine"},
                                  {"last_name", "Quartermaine"},
                                  {"answers", {{"company", "Hyrulecorp Industries"}}}});
  ASSERT_EQ(c.status, 201u) << c.body;
  // A rejection recorded under the email too (before and after forgetting).
  ASSERT_EQ(
      client_->post("/v1/invites/" + invite["id"].get<std::string>() + "/deactivate", "", auth())
          .status,
      200u);
  ASSERT_EQ(claim(invite["code"], {{"email", email}}).status, 200u)
      << "a returning learner keeps the claim";
  ASSERT_NE(client_->get("/v1/leads", auth()).body.find("Hyrulecorp"), std::string::npos)
      << "shown in clear before the forget";
  auto forgot = client_->post(
      "/v1/learners/" + c.json()["learner_id"].get<std::string>() + "/forget", "", auth());
  ASSERT_EQ(forgot.status, 200u);
  auto events = client_->get("/v1/events?limit=1000", auth());
  for (const char* secret : {"zelda.quartermaine", "Zeldarine", "Quartermaine", "Hyrulecorp"}) {
    EXPECT_EQ(events.body.find(secret), std::string::npos) << secret << " in /v1/events";
  }
  stop();
  std::size_t files = 0;
  for (const auto& f : std::filesystem::recursive_directory_iterator(dir_.sub("data"))) {
    if (!f.is_regular_file()) continue;
    ++files;
    std::ifstream in(f.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const char* secret : {"zelda.quartermaine", "Zeldarine", "Quartermaine", "Hyrulecorp"}) {
      EXPECT_EQ(bytes.find(secret), std::string::npos) << secret << " in " << f.path();
    }
  }
  EXPECT_GT(files, 10u);
}

// Reads SSE frames from a raw connection and collects their ids (log positions).
class sse_reader {
 public:
  sse_reader(unsigned short port, const std::string& target, const std::string& key,
             std::optional<std::uint64_t> last_event_id)
      : socket_(ioc_) {
    boost::asio::ip::tcp::resolver resolver(ioc_);
    boost::asio::connect(socket_, resolver.resolve("127.0.0.1", std::to_string(port)));
    std::string req =
        "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + key + "\r\n";
    if (last_event_id) req += "Last-Event-ID: " + std::to_string(*last_event_id) + "\r\n";
    req += "\r\n";
    boost::asio::write(socket_, boost::asio::buffer(req));
  }
  // Reads until an id >= `until` was seen.
  void read_until(std::uint64_t until) {
    while (ids_.empty() || ids_.back() < until) {
      char buf[8192];
      auto n = socket_.read_some(boost::asio::buffer(buf));
      pending_.append(buf, n);
      for (auto at = pending_.find("\nid: "); at != std::string::npos;
           at = pending_.find("\nid: ")) {
        auto end = pending_.find('\n', at + 5);
        if (end == std::string::npos) break;
        ids_.push_back(std::stoull(pending_.substr(at + 5, end - at - 5)));
        pending_.erase(0, end);
      }
    }
  }
  const std::vector<std::uint64_t>& ids() const { return ids_; }
  // The response status (reads the status line if not read yet).
  unsigned status() {
    while (pending_.find("\r\n") == std::string::npos && head_.empty()) {
      char buf[4096];
      boost::system::error_code ec;
      auto n = socket_.read_some(boost::asio::buffer(buf), ec);
      if (ec) return 0;
      pending_.append(buf, n);
    }
    if (head_.empty()) head_ = pending_.substr(0, pending_.find("\r\n"));
    return head_.size() >= 12 ? static_cast<unsigned>(std::stoul(head_.substr(9, 3))) : 0;
  }

 private:
  std::string head_;
  boost::asio::io_context ioc_;
  boost::asio::ip::tcp::socket socket_;
  std::string pending_;
  std::vector<std::uint64_t> ids_;
};

TEST_F(node_test, LiveTailResumesAfterADroppedConnectionWithoutGapOrDuplicate) {
  make_track("k8s-basics");
  auto invite = make_invite({{"title", "Live"}, {"tracks", {"k8s-basics"}}});
  auto head = [&] {
    return client_->get("/v1/system").json()["log_position"].get<std::uint64_t>();
  };
  std::vector<std::uint64_t> seen;
  std::uint64_t last;
  {
    sse_reader a(node_->port(), "/v1/events/live?from=1", owner_, std::nullopt);
    a.read_until(head());
    for (int i = 0; i < 5; ++i)
      ASSERT_EQ(claim(invite["code"], {{"email", "a" + std::to_string(i) + "@x.io"}}).status, 201u);
    a.read_until(head() - 3);
    seen = a.ids();
    last = seen.back();
  }  // dropped mid-stream
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(claim(invite["code"], {{"email", "b" + std::to_string(i) + "@x.io"}}).status, 201u);
  sse_reader b(node_->port(), "/v1/events/live", owner_, last);
  const std::uint64_t end = head();  // welcome mails' outcomes may still come after it
  b.read_until(end);
  seen.insert(seen.end(), b.ids().begin(), b.ids().end());
  ASSERT_EQ(b.ids().front(), last + 1) << "resumes right after Last-Event-ID";
  for (std::size_t i = 0; i < seen.size(); ++i)
    ASSERT_EQ(seen[i], i + 1) << "gap or duplicate at " << i;
  EXPECT_GE(seen.back(), end);
}

// Threads of this process (the node runs in it).
std::size_t thread_count() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& t : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

TEST_F(node_test, ManyLiveTailClientsShareOneReaderAndEachGetsEveryEventInOrder) {
  make_track("k8s-basics");
  auto invite = make_invite({{"title", "Live"}, {"tracks", {"k8s-basics"}}});
  auto head = [&] {
    return client_->get("/v1/system").json()["log_position"].get<std::uint64_t>();
  };
  const std::uint64_t start = head();
  const std::size_t threads_before = thread_count();
  std::vector<std::unique_ptr<sse_reader>> from_start, live;
  for (int i = 0; i < 20; ++i) {
    from_start.push_back(std::make_unique<sse_reader>(node_->port(), "/v1/events/live?from=1",
                                                      owner_, std::nullopt));
    live.push_back(std::make_unique<sse_reader>(
        node_->port(), "/v1/events/live?from=" + std::to_string(start + 1), owner_, std::nullopt));
  }
  for (int i = 0; i < 10; ++i)
    ASSERT_EQ(claim(invite["code"], {{"email", "c" + std::to_string(i) + "@x.io"}}).status, 201u);
  const std::uint64_t end = head();
  for (auto& r : from_start) {
    r->read_until(end);  // the mailer may append welcome-mail outcomes after `end`
    ASSERT_GE(r->ids().size(), end);
    for (std::size_t i = 0; i < r->ids().size(); ++i) ASSERT_EQ(r->ids()[i], i + 1);
  }
  for (auto& r : live) {
    r->read_until(end);
    ASSERT_GE(r->ids().size(), end - start);
    for (std::size_t i = 0; i < r->ids().size(); ++i) ASSERT_EQ(r->ids()[i], start + 1 + i);
  }
  // Forty clients, no thread each (the HTTP I/O threads and the one reader serve them).
  EXPECT_LT(thread_count(), threads_before + 5);
}

TEST_F(node_test, LiveTailRefusesALastEventIdThatIsNotAPosition) {
  for (const char* bad : {"-1", "+1", "5abc", "", "18446744073709551615"}) {
    auto a = auth();
    a["Last-Event-ID"] = bad;
    auto r = client_->get("/v1/events/live", a);
    EXPECT_EQ(r.status, 400u) << bad;
    EXPECT_EQ(r.json()["code"], "invalid_request") << bad;
  }
}

class live_tail_limit_test : public node_test {
 protected:
  void SetUp() override {
    configure_ = [](app::server_options& o) { o.max_live_clients = 2; };
    node_test::SetUp();
  }
};

TEST_F(live_tail_limit_test, ClientsPastTheLimitGet503UntilOneLeaves) {
  auto first =
      std::make_unique<sse_reader>(node_->port(), "/v1/events/live?from=1", owner_, std::nullopt);
  sse_reader second(node_->port(), "/v1/events/live?from=1", owner_, std::nullopt);
  first->read_until(1);
  second.read_until(1);
  auto refused = client_->get("/v1/events/live", auth());
  EXPECT_EQ(refused.status, 503u) << refused.body;
  EXPECT_EQ(refused.json()["code"], "unavailable");
  EXPECT_EQ(refused.header("Retry-After"), "5");
  first.reset();  // leaves: its place is given back once the reader notices
  for (int i = 0; i < 500; ++i) {
    sse_reader again(node_->port(), "/v1/events/live?from=1", owner_, std::nullopt);
    if (again.status() == 200u) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  FAIL() << "the place of the client that left was never given back";
}

// A place is taken before the response starts and given back when no client takes it
// (HEAD answers with the headers only): HEADs and refusals never use the limit up.
TEST_F(live_tail_limit_test, HeadRequestsAndRefusalsHoldNoPlace) {
  auto head = [&] {
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::socket socket(ioc);
    boost::asio::ip::tcp::resolver resolver(ioc);
    boost::asio::connect(socket, resolver.resolve("127.0.0.1", std::to_string(node_->port())));
    const std::string req =
        "HEAD /v1/events/live HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Authorization: Bearer " +
        owner_ + "\r\nConnection: close\r\n\r\n";
    boost::asio::write(socket, boost::asio::buffer(req));
    std::string got;
    char buf[4096];
    boost::system::error_code ec;
    while (got.find("\r\n") == std::string::npos && !ec) {
      got.append(buf, socket.read_some(boost::asio::buffer(buf), ec));
    }
    return got.substr(0, got.find("\r\n"));
  };
  for (int i = 0; i < 5; ++i) EXPECT_EQ(head(), "HTTP/1.1 200 OK");
  sse_reader first(node_->port(), "/v1/events/live?from=1", owner_, std::nullopt);
  first.read_until(1);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(head(), "HTTP/1.1 200 OK");
  sse_reader second(node_->port(), "/v1/events/live?from=1", owner_, std::nullopt);
  second.read_until(1);
  EXPECT_EQ(head(), "HTTP/1.1 503 Service Unavailable");
  EXPECT_EQ(client_->get("/v1/events/live", auth()).status, 503u);
  EXPECT_EQ(client_->get("/v1/system", auth()).status, 200u);
}

TEST_F(node_test, IfNoneMatchGets304OnlyWhileTheInviteBodyIsUnchanged) {
  make_track("k8s-basics");
  auto invite = make_invite({{"title", "Cached"}, {"tracks", {"k8s-basics"}}});
  const std::string path = "/v1/invites/" + invite["id"].get<std::string>();
  auto with = [&](const std::string& etag) {
    auto h = auth();
    h["If-None-Match"] = etag;
    return client_->get(path, h);
  };
  auto first = client_->get(path, auth());
  const std::string etag = first.header("ETag");
  auto same = with(etag);
  EXPECT_EQ(same.status, 304u);
  EXPECT_EQ(same.header("ETag"), etag);
  EXPECT_TRUE(same.body.empty());
  ASSERT_EQ(claim(invite["code"], {{"email", "a@x.io"}}).status, 201u);
  auto changed = with(etag);
  EXPECT_EQ(changed.status, 200u) << "a claim moved the version";
  EXPECT_EQ(changed.json()["claims_count"], 1);
  // An empty If-None-Match names no version; a missing invite stays 404.
  EXPECT_EQ(with("").status, 200u);
  auto h = auth();
  h["If-None-Match"] = "";
  EXPECT_EQ(client_->get("/v1/invites/" + uuid::random().to_string(), h).status, 404u);

  // An upcoming live event counts its days down with no event: never 304.
  auto live = make_invite({{"title", "Live"},
                           {"tracks", {"k8s-basics"}},
                           {"type", "live_event"},
                           {"starts_at", "2026-09-26T12:00:00Z"},
                           {"ends_at", "2026-09-26T18:00:00Z"}});
  const std::string live_path = "/v1/invites/" + live["id"].get<std::string>();
  auto before = client_->get(live_path, auth());
  ASSERT_EQ(before.json()["status"], "upcoming") << before.body;
  const auto days = before.json()["days_left"].get<int>();
  clock_.advance(std::chrono::hours(24));
  auto lh = auth();
  lh["If-None-Match"] = before.header("ETag");
  auto later = client_->get(live_path, lh);
  EXPECT_EQ(later.status, 200u);
  EXPECT_EQ(later.json()["days_left"], days - 1) << later.body;
  EXPECT_EQ(later.header("ETag"), before.header("ETag")) << "same version";
}

TEST_F(node_test, MetricsExposeRequestsByRoute) {
  client_->get("/healthz");
  // A request is counted once its response is written, which may be just after the
  // client has read it: look again for a little while.
  auto m = client_->get("/metrics");
  for (int i = 0; i < 100 && m.body.find("route=\"/healthz\"") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    m = client_->get("/metrics");
  }
  ASSERT_EQ(m.status, 200u);
  EXPECT_NE(m.body.find("passage_http_requests_total"), std::string::npos);
  EXPECT_NE(m.body.find("route=\"/healthz\""), std::string::npos);
  for (const char* name :
       {"passage_log_position", "passage_read_model_lag_events", "passage_append_duration_seconds",
        "passage_log_fsync_duration_seconds", "passage_http_request_duration_seconds"}) {
    EXPECT_NE(m.body.find(name), std::string::npos) << name;
  }
}

TEST_F(node_test, ClaimPageFormPostClaimsWithoutScripts) {
  make_track("k8s-basics");
  auto invite = make_invite({{"title", "No script"},
                             {"tracks", {{{"track_id", "k8s-basics"}}}},
                             {"plays_per_track", 2},
                             {"access", "allowed"},
                             {"allowed_domains", {"example.com"}}});
  std::string page = "/i/" + invite["code"].get<std::string>();
  const http_client::headers form = {{"Content-Type", "application/x-www-form-urlencoded"}};

  auto get = client_->get(page);
  EXPECT_NE(get.body.find("method=\"post\" action=\"" + page + "\""), std::string::npos);
  EXPECT_EQ(get.body.find("<script>"), std::string::npos) << "no inline script";
  EXPECT_EQ(get.header("Content-Security-Policy").find("unsafe-inline"), std::string::npos);

  auto first = client_->post(page, "email=ada%40example.com", form);
  EXPECT_EQ(first.status, 201u) << first.body;
  EXPECT_NE(first.header("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(first.body.find("You have access."), std::string::npos);
  EXPECT_NE(first.body.find("2 plays left"), std::string::npos);
  EXPECT_NE(first.body.find("data-claim-id=\""), std::string::npos);
  EXPECT_EQ(first.header("Cache-Control"), "no-store") << "the page holds a learner token";

  auto again = client_->post(page, "email=ADA%40example.com", form);
  EXPECT_EQ(again.status, 200u);
  EXPECT_NE(again.body.find("Welcome back"), std::string::npos);
  auto id = invite["id"].get<std::string>();
  EXPECT_EQ(client_->get("/v1/invites/" + id + "/claims", auth()).json()["count"], 1)
      << "the same learner, one claim";

  auto refused = client_->post(page, "email=%3Cb%3Eeve%40elsewhere.org", form);
  EXPECT_EQ(refused.status, 403u);
  EXPECT_NE(refused.body.find("not available for your email address"), std::string::npos);
  EXPECT_NE(refused.body.find("value=\"&lt;b&gt;eve@elsewhere.org\""), std::string::npos)
      << "what was typed comes back, escaped";
  EXPECT_EQ(refused.body.find("<b>eve"), std::string::npos);

  EXPECT_EQ(client_->post("/i/ZZZZZZZ", "email=a%40example.com", form).status, 404u);
}

// Request bodies are limited to 64 KiB, except a bulk send's (up to 10,000 addresses: 1 MiB).
TEST_F(node_test, OnlyTheBulkSendTakesALargeBody) {
  make_track("k8s-basics");
  auto invite = make_invite({{"title", "Large"},
                             {"tracks", {{{"track_id", "k8s-basics"}}}},
                             {"access", "allowed"},
                             {"allowed_domains", {"example.com"}}});
  // Valid JSON padded with whitespace to the size wanted.
  auto padded = [](const json& j, std::size_t bytes) {
    std::string body = j.dump();
    body.insert(1, bytes - body.size(), ' ');
    return body;
  };
  const json claim_body = {{"email", "ada@example.com"}};
  auto claim_large =
      client_->post("/v1/public/invites/" + invite["code"].get<std::string>() + "/claims",
                    padded(claim_body, 100 * 1024));
  EXPECT_EQ(claim_large.status, 413u) << claim_large.body;
  EXPECT_EQ(claim_large.json()["code"], "payload_too_large");
  EXPECT_NE(claim_large.json()["detail"].get<std::string>().find("65536"), std::string::npos);

  const std::string send = "/v1/invites/" + invite["id"].get<std::string>() + "/send";
  const json send_body = {{"emails", {"ada@example.com"}}};
  auto sent = client_->post(send, padded(send_body, 600 * 1024), auth());
  EXPECT_EQ(sent.status, 202u) << sent.body;
  auto too_large = client_->post(send, padded(send_body, (1u << 20) + 1), auth());
  EXPECT_EQ(too_large.status, 413u) << too_large.body;
  EXPECT_EQ(claim(invite["code"], claim_body).status, 201u) << "a small body still goes through";
}

TEST_F(node_test, ClaimPageFormPostRateLimitedSaysWhenToRetry) {
  // The fixture turns the limits off; this node allows 1 claim per IP per minute.
  restart("1/1m", "0");
  make_track("k8s-basics");
  auto invite = make_invite({{"title", "Limited"}, {"tracks", {{{"track_id", "k8s-basics"}}}}});
  std::string page = "/i/" + invite["code"].get<std::string>();
  const http_client::headers form = {{"Content-Type", "application/x-www-form-urlencoded"}};
  EXPECT_EQ(client_->post(page, "email=ada%40example.com", form).status, 201u);
  auto limited = client_->post(page, "email=bob%40example.com", form);
  EXPECT_EQ(limited.status, 429u);
  EXPECT_NE(limited.header("Content-Type").find("text/html"), std::string::npos);
  ASSERT_FALSE(limited.header("Retry-After").empty());
  EXPECT_GE(std::stoi(limited.header("Retry-After")), 1);
}

}  // namespace
}  // namespace passage::testing

namespace passage::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class audit_test : public node_test {
 protected:
  http_reply play(const json& claimed, const std::string& track) {
    return client_->post(
        "/v1/public/claims/" + claimed["claim_id"].get<std::string>() + "/plays",
        json{{"track_id", track}}.dump(),
        {{"Authorization", "Bearer " + claimed["learner_token"].get<std::string>()}});
  }
  // GET usage and claims as the server answers them now.
  std::pair<json, json> answers(const std::string& id, const std::string& query = "") {
    auto u = client_->get("/v1/invites/" + id + "/usage" + query, auth());
    auto c = client_->get("/v1/invites/" + id + "/claims" + query, auth());
    EXPECT_EQ(u.status, 200u) << u.body;
    EXPECT_EQ(c.status, 200u) << c.body;
    auto uj = u.json(), cj = c.json();
    uj.erase("as_of");
    cj.erase("as_of");
    return {uj, cj};
  }
};

TEST_F(audit_test, UsageAndClaimsAsOfAnswerAsTheServerDidAtEachInstant) {
  make_track("k8s-basics");
  auto invite = make_invite(
      {{"title", "As of"}, {"tracks", {"k8s-basics"}}, {"claim_limit", 4}, {"plays_per_track", 5}});
  const std::string id = invite["id"], code = invite["code"];
  std::vector<std::pair<std::string, std::pair<json, json>>> seen;
  auto capture = [&] { seen.emplace_back(format_rfc3339(clock_.now()), answers(id)); };
  capture();
  clock_.advance(10min);
  auto ada = claim(code, {{"email", "ada@example.com"}}).json();
  ASSERT_EQ(play(ada, "k8s-basics").status, 201u);
  capture();
  clock_.advance(1h);
  auto bob = claim(code, {{"email", "bob@example.com"}}).json();
  ASSERT_EQ(client_->post("/v1/invites/" + id + "/deactivate", "", auth()).status, 200u);
  EXPECT_EQ(claim(code, {{"email", "carl@example.com"}}).status, 409u);
  ASSERT_EQ(client_->post("/v1/invites/" + id + "/reactivate", "", auth()).status, 200u);
  capture();
  clock_.advance(26h);
  ASSERT_EQ(play(bob, "k8s-basics").status, 201u);
  ASSERT_EQ(play(ada, "k8s-basics").status, 201u);
  ASSERT_EQ(claim(code, {{"email", "dora@example.com"}}).status, 201u);
  capture();
  // The scenario goes on after the last capture.
  clock_.advance(2h);
  ASSERT_EQ(claim(code, {{"email", "emil@example.com"}}).status, 201u);
  EXPECT_EQ(claim(code, {{"email", "fay@example.com"}}).status, 409u) << "full";
  ASSERT_EQ(play(bob, "k8s-basics").status, 201u);

  for (const auto& [t, then] : seen) {
    SCOPED_TRACE(t);
    auto asked = answers(id, "?as_of=" + t);
    EXPECT_EQ(asked.first, then.first);
    EXPECT_EQ(asked.second, then.second);
    EXPECT_NE(asked.first, answers(id).first);
  }
  EXPECT_EQ(seen[2].second.first["rejections"], 1);
  EXPECT_EQ(seen[3].second.first["claims"], 3);
  EXPECT_EQ(
      client_->get("/v1/invites/" + id + "/usage?as_of=" + seen[1].first, auth()).json()["as_of"],
      seen[1].first);

  auto before = client_->get("/v1/invites/" + id + "/usage?as_of=2020-01-01T00:00:00Z", auth());
  EXPECT_EQ(before.status, 404u) << "the invite did not exist yet";
  auto bad = client_->get("/v1/invites/" + id + "/usage?as_of=yesterday", auth());
  EXPECT_EQ(bad.status, 400u);
  EXPECT_EQ(bad.json()["code"], "invalid_request");
  auto org = client_->post("/v1/orgs", R"({"name":"Other Co"})", auth(operator_));
  ASSERT_EQ(org.status, 201u);
  EXPECT_EQ(client_
                ->get("/v1/invites/" + id + "/usage?as_of=" + seen[3].first,
                      auth(org.json()["owner_key"]))
                .status,
            404u);
}

TEST_F(audit_test, PointInTimeAnswersPastTheSlowQueryLimitGet503WithRetryAfter) {
  configure_ = [](app::server_options& o) { o.slow_query_limit = 0; };
  restart();
  make_track("k8s-basics");
  auto id = make_invite({{"title", "Busy"}, {"tracks", {"k8s-basics"}}})["id"].get<std::string>();
  for (const char* path : {"/usage?as_of=", "/claims?as_of="}) {
    auto busy = client_->get("/v1/invites/" + id + path + "2026-01-01T00:00:00Z", auth());
    EXPECT_EQ(busy.status, 503u) << path;
    EXPECT_EQ(busy.json()["code"], "unavailable") << path;
    EXPECT_EQ(busy.header("Retry-After"), "1") << path;
  }
  auto csv_auth = auth();
  csv_auth["Accept"] = "text/csv";
  EXPECT_EQ(
      client_->get("/v1/invites/" + id + "/claims?as_of=2026-01-01T00:00:00Z", csv_auth).status,
      503u);
  // Answers from the read models do not take the slow-query pool.
  EXPECT_EQ(client_->get("/v1/invites/" + id + "/usage", auth()).status, 200u);
  EXPECT_EQ(client_->get("/v1/invites/" + id + "/claims", auth()).status, 200u);
}

TEST_F(audit_test, ClaimHistoryPerHourAndDayForTheOrganizationAndTimeToClaim) {
  make_track("k8s-basics");
  auto a = make_invite({{"title", "A"}, {"tracks", {"k8s-basics"}}});
  clock_.advance(90min);
  ASSERT_EQ(claim(a["code"], {{"email", "a1@example.com"}}).status, 201u);
  auto b = make_invite({{"title", "B"}, {"tracks", {"k8s-basics"}}});
  clock_.advance(1h);
  ASSERT_EQ(claim(a["code"], {{"email", "a2@example.com"}}).status, 201u);
  ASSERT_EQ(claim(b["code"], {{"email", "b1@example.com"}}).status, 201u);

  auto usage = client_->get("/v1/invites/" + a["id"].get<std::string>() + "/usage", auth()).json();
  ASSERT_EQ(usage["claims_per_hour"].size(), 2u) << usage.dump();
  EXPECT_EQ(usage["time_to_claim"]["min_seconds"], 5400);
  EXPECT_EQ(usage["time_to_claim"]["max_seconds"], 9000);
  auto rows = client_->get("/v1/invites/" + a["id"].get<std::string>() + "/claims", auth()).json();
  EXPECT_EQ(rows["claims"][1]["seconds_since_invite_created"], 9000);

  auto hours = client_->get("/v1/claims/history?bucket=hour", auth());
  ASSERT_EQ(hours.status, 200u) << hours.body;
  auto h = hours.json();
  EXPECT_EQ(h["claims"], 3);
  EXPECT_EQ(h["bucket"], "hour");
  ASSERT_EQ(h["buckets"].size(), 2u) << h.dump();
  EXPECT_EQ(h["buckets"][0]["claims"], 1);
  EXPECT_EQ(h["buckets"][1]["claims"], 2);
  ASSERT_EQ(h["invites"].size(), 2u);
  EXPECT_EQ(h["invites"][0]["title"], "B");
  EXPECT_EQ(h["time_to_claim"]["claims"], 3);
  auto days = client_->get("/v1/claims/history", auth()).json();
  EXPECT_EQ(days["bucket"], "day");
  EXPECT_EQ(days["buckets"].size(), 1u);
  auto since = format_rfc3339(clock_.now() - 30min);
  EXPECT_EQ(client_->get("/v1/claims/history?since=" + since, auth()).json()["claims"], 2);

  EXPECT_EQ(client_->get("/v1/claims/history?bucket=week", auth()).status, 400u);
  EXPECT_EQ(client_->get("/v1/claims/history?until=soon", auth()).status, 400u);
  EXPECT_EQ(client_->get("/v1/claims/history").status, 401u);
  auto org = client_->post("/v1/orgs", R"({"name":"Other Co"})", auth(operator_));
  ASSERT_EQ(org.status, 201u);
  EXPECT_EQ(client_->get("/v1/claims/history", auth(org.json()["owner_key"])).json()["claims"], 0);
}

TEST_F(audit_test, LearnerHistoryAcrossInvitesShowsForgottenWithTimesAndCountsIntact) {
  make_track("k8s-basics");
  auto a = make_invite({{"title", "A"}, {"tracks", {"k8s-basics"}}});
  auto b = make_invite({{"title", "B"}, {"tracks", {"k8s-basics"}}});
  const std::string email = "hedwig.audit@example.org";
  auto c = claim(a["code"], {{"email", email}}).json();
  const std::string learner = c["learner_id"];
  clock_.advance(5min);
  ASSERT_EQ(play(c, "k8s-basics").status, 201u);
  ASSERT_EQ(
      client_->post("/v1/invites/" + b["id"].get<std::string>() + "/deactivate", "", auth()).status,
      200u);
  clock_.advance(5min);
  EXPECT_EQ(claim(b["code"], {{"email", email}}).status, 409u);

  auto history = client_->get("/v1/learners/" + learner + "/history", auth());
  ASSERT_EQ(history.status, 200u) << history.body;
  auto h = history.json();
  EXPECT_EQ(h["claims"], 1);
  EXPECT_EQ(h["plays"], 1);
  EXPECT_EQ(h["rejections"], 1);
  EXPECT_FALSE(h["forgotten"].get<bool>());
  ASSERT_EQ(h["history"].size(), 3u) << h.dump();
  EXPECT_EQ(h["history"][0]["fact"], "claimed");
  EXPECT_EQ(h["history"][0]["email"], email);
  EXPECT_EQ(h["history"][1]["fact"], "played");
  EXPECT_EQ(h["history"][2]["fact"], "rejected");
  EXPECT_EQ(h["history"][2]["reason"], "deactivated");
  EXPECT_EQ(h["history"][2]["invite_id"], b["id"]);

  auto org = client_->post("/v1/orgs", R"({"name":"Other Co"})", auth(operator_));
  ASSERT_EQ(org.status, 201u);
  EXPECT_EQ(
      client_->get("/v1/learners/" + learner + "/history", auth(org.json()["owner_key"])).status,
      404u)
      << "another org's learner is not found";
  EXPECT_EQ(client_->get("/v1/learners/" + learner + "/history").status, 401u);
  EXPECT_EQ(client_->get("/v1/learners/not-an-id/history", auth()).status, 404u);

  ASSERT_EQ(client_->post("/v1/learners/" + learner + "/forget", "", auth()).status, 200u);
  auto after = client_->get("/v1/learners/" + learner + "/history", auth());
  ASSERT_EQ(after.status, 200u);
  EXPECT_EQ(after.body.find("hedwig"), std::string::npos) << after.body;
  auto f = after.json();
  EXPECT_TRUE(f["forgotten"].get<bool>());
  EXPECT_EQ(f["history"][0]["email"], "forgotten");
  for (const char* k : {"claims", "plays", "rejections"}) EXPECT_EQ(f[k], h[k]) << k;
  ASSERT_EQ(f["history"].size(), h["history"].size());
  for (std::size_t i = 0; i < h["history"].size(); ++i) {
    EXPECT_EQ(f["history"][i]["at"], h["history"][i]["at"]);
    EXPECT_EQ(f["history"][i]["fact"], h["history"][i]["fact"]);
  }
}

TEST_F(audit_test, KafkaMessagesPublishedAfterForgetCarryNoPersonalDataOfTheLearner) {
  // scripts/setup.sh installs kcat: without it this check must fail, not pass unseen.
  ASSERT_EQ(std::system("command -v kcat >/dev/null 2>&1"), 0)
      << "kcat not installed: run scripts/setup.sh";
  stop();
  start("0", "0", "");  // embedded broker
  auto read_topic = [&] {
    json sys;
    for (int i = 0; i < 500; ++i) {
      sys = client_->get("/v1/system").json();
      if (sys["kafka"]["published_position"] == sys["log_position"]) break;
      std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(sys["kafka"]["published_position"], sys["log_position"]) << sys.dump();
    std::string cmd = "kcat -b " + node_->kafka_bootstrap() +
                      " -C -t passage.events -o beginning -e -q -f '%s\\n' 2>/dev/null";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    EXPECT_NE(p, nullptr) << cmd;
    if (!p) return out;
    char buf[4096];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
    return out;
  };
  const std::vector<std::string> secrets = {"quintessa.kafka", "Quintessa", "Marchbanks",
                                            "Vandelay Industries"};
  ASSERT_EQ(
      client_->put("/v1/lead-form", R"({"fields":[{"name":"company","required":true}]})", auth())
          .status,
      200u);
  make_track("k8s-basics");
  auto invite =
      make_invite({{"title", "Leads"}, {"tracks", {"k8s-basics"}}, {"access", "lead_form"}});
  const std::string id = invite["id"];
  auto c = claim(invite["code"], {{"email", "quintessa.kafka@example.org"},
                                  {"first_name", "Quintessa"},
                                  {"last_name", "Marchbanks"},
                                  {"answers", {{"company", "Vandelay Industries"}}}});
  ASSERT_EQ(c.status, 201u) << c.body;
  auto before = read_topic();
  for (const auto& s : secrets) ASSERT_NE(before.find(s), std::string::npos) << s;

  const std::string learner = c.json()["learner_id"];
  ASSERT_EQ(client_->post("/v1/learners/" + learner + "/forget", "", auth()).status, 200u);
  // Activity after the forget: her token tries a play, the invite changes, others claim and
  // are refused.
  const auto played = play(c.json(), "k8s-basics").status;
  EXPECT_TRUE(played == 201u || played == 410u) << played;
  ASSERT_EQ(
      client_->patch("/v1/invites/" + id, json{{"title", "Leads, renamed"}}.dump(), auth()).status,
      200u);
  ASSERT_EQ(claim(invite["code"], {{"email", "other@example.org"},
                                   {"first_name", "Otto"},
                                   {"last_name", "Other"},
                                   {"answers", {{"company", "Globex"}}}})
                .status,
            201u);
  ASSERT_EQ(client_->post("/v1/invites/" + id + "/deactivate", "", auth()).status, 200u);
  EXPECT_EQ(claim(invite["code"], {{"email", "late@example.org"}}).status, 409u);
  // Messages of events after the LearnerForgotten, by log position (partitions interleave).
  std::vector<json> messages;
  auto topic = read_topic();
  for (std::size_t at = 0, end; at < topic.size(); at = end + 1) {
    end = topic.find('\n', at);
    if (end == std::string::npos) end = topic.size();
    auto m = json::parse(topic.substr(at, end - at), nullptr, false);
    if (!m.is_discarded() && m.is_object()) messages.push_back(std::move(m));
  }
  std::uint64_t forgotten_at = 0;
  for (const auto& m : messages) {
    if (m["type"] == "io.passage.LearnerForgotten.v1") {
      forgotten_at = m["position"].get<std::uint64_t>();
    }
  }
  ASSERT_GT(forgotten_at, 0u);
  std::string published_after;
  for (const auto& m : messages) {
    if (m["position"].get<std::uint64_t>() > forgotten_at) published_after += m.dump() + "\n";
  }
  EXPECT_NE(published_after.find("io.passage.InviteUpdated.v1"), std::string::npos);
  EXPECT_NE(published_after.find("io.passage.ClaimRejected.v1"), std::string::npos);
  EXPECT_NE(published_after.find("Globex"), std::string::npos) << "others' data flows on";
  for (const auto& s : secrets) EXPECT_EQ(published_after.find(s), std::string::npos) << s;

  // A fresh broker gets the whole log published again after the forget: she is forgotten
  // in every message, her events still there.
  restart("0", "0", "");
  auto republished = read_topic();
  EXPECT_NE(republished.find(learner), std::string::npos);
  EXPECT_NE(republished.find("\"forgotten\":true"), std::string::npos);
  for (const auto& s : secrets) EXPECT_EQ(republished.find(s), std::string::npos) << s;
}

}  // namespace
}  // namespace passage::testing
