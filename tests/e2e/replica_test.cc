// End to end: a primary publishing to the embedded Kafka-protocol broker and a read
// replica (`passage replica`) fed from it over loopback, both answering over real HTTP.
// The replica answers the queries of SPEC §4 exactly as the primary does at the same
// position, refuses commands by name, keeps no clear personal data of a forgotten
// learner, and resumes after a restart.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "app/replica.h"
#include "consumers/cloudevent.h"
#include "consumers/embedded_broker.h"
#include "consumers/tests/kafka_reader.h"
#include "eventstore/event_codec.h"
#include "eventstore/key_store.h"
#include "projections/read_models.h"
#include "tests/e2e/node_fixture.h"

namespace passage::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

class replica_e2e : public node_test {
 protected:
  void SetUp() override { start("0", "0", ""); }  // embedded broker
  void TearDown() override {
    replica_client_.reset();
    replica_.reset();
    node_test::TearDown();
  }

  // A replica of the node, in `folder` of the test's temp dir.
  app::replica_node_options replica_options(const std::string& folder) {
    app::replica_node_options o;
    o.data_dir = dir_.sub(folder);
    o.port = 0;
    o.kafka_brokers = node_->kafka_bootstrap();
    o.primary = "http://127.0.0.1:" + std::to_string(node_->port());
    o.clock = &clock_;
    o.access_log = false;
    o.say = [](const std::string&) {};
    return o;
  }

  void start_replica() {
    auto r = app::replica_node::start(replica_options("replica"));
    ASSERT_TRUE(r) << r.error();
    replica_ = std::move(*r);
    replica_client_ = std::make_unique<http_client>(replica_->port());
  }
  void stop_replica() {
    replica_client_.reset();
    replica_->stop();
    replica_.reset();
  }

  // Waits until the replica has applied the primary's whole log. The head is read again
  // each round: the primary's mailer appends EmailSent events of its own (in the
  // background, at low priority), also after the scenario's last request.
  std::uint64_t wait_for_replica() {
    std::uint64_t head = 0;
    for (int i = 0; i < 1500; ++i) {
      head = client_->get("/v1/system").json()["log_position"];
      if (replica_->stats().applied_position == head) return head;
      std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(replica_->stats().applied_position, head) << replica_->stats().last_error;
    return head;
  }

  // A scripted scenario: lead form, tracks, claims up to a limit, a rejection, an edit,
  // plays, a deactivation and a forgotten learner. Returns the invite ids.
  std::vector<std::string> scenario() {
    EXPECT_EQ(
        client_->put("/v1/lead-form", R"({"fields":[{"name":"company","required":true}]})", auth())
            .status,
        200u);
    make_track("k8s-basics");
    make_track("helm", true);
    auto a = make_invite({{"title", "Workshop"},
                          {"tracks", {{{"track_id", "k8s-basics"}}, {{"track_id", "helm"}}}},
                          {"plays_per_track", 3},
                          {"claim_limit", 3},
                          {"access_duration", "P30D"}});
    auto b = make_invite({{"title", "Leads"}, {"tracks", {"k8s-basics"}}, {"access", "lead_form"}});
    std::string token, claim_id;
    for (const auto& [email, first, last] :
         {std::tuple{"ada@example.com", "Ada", "Lovelace"},
          std::tuple{"bartholomew.quist@example.org", "Bartholomew", "Quistington"},
          std::tuple{"carol@example.com", "Carol", "Shaw"}}) {
      auto c = claim(a["code"], {{"email", email}, {"first_name", first}, {"last_name", last}});
      EXPECT_EQ(c.status, 201u) << c.body;
      if (token.empty()) {
        token = c.json()["learner_token"];
        claim_id = c.json()["claim_id"];
      }
      clock_.advance(std::chrono::hours(25));  // claims on different days
    }
    EXPECT_EQ(claim(a["code"], {{"email", "dave@example.com"}}).json()["code"], "full");
    auto lead = claim(b["code"], {{"email", "bartholomew.quist@example.org"},
                                  {"first_name", "Bartholomew"},
                                  {"last_name", "Quistington"},
                                  {"answers", {{"company", "Quistington Holdings"}}}});
    EXPECT_EQ(lead.status, 201u) << lead.body;
    for (int i = 0; i < 2; ++i) {
      EXPECT_EQ(client_
                    ->post("/v1/public/claims/" + claim_id + "/plays",
                           R"({"track_id":"k8s-basics"})", {{"Authorization", "Bearer " + token}})
                    .status,
                201u);
    }
    std::string a_id = a["id"], b_id = b["id"];
    auto etag = client_->get("/v1/invites/" + a_id, auth()).header("ETag");
    auto edited = client_->patch("/v1/invites/" + a_id, R"({"title":"Workshop, edited"})",
                                 {{"Authorization", "Bearer " + owner_}, {"If-Match", etag}});
    EXPECT_EQ(edited.status, 200u) << edited.body;
    EXPECT_EQ(client_->post("/v1/invites/" + b_id + "/deactivate", "", auth()).status, 200u);
    auto forgot = client_->post(
        "/v1/learners/" + lead.json()["learner_id"].get<std::string>() + "/forget", "", auth());
    EXPECT_EQ(forgot.status, 200u) << forgot.body;
    return {a_id, b_id, a["code"], b["code"]};
  }

  std::unique_ptr<app::replica_node> replica_;
  std::unique_ptr<http_client> replica_client_;
};

TEST_F(replica_e2e, AnswersEveryQueryAsThePrimaryDoesAtTheSamePosition) {
  auto ids = scenario();
  start_replica();
  const auto head = wait_for_replica();

  const std::string a = ids[0], b = ids[1];
  std::vector<std::string> paths = {"/v1/invites",
                                    "/v1/invites?status=all",
                                    "/v1/invites?q=workshop",
                                    "/v1/invites/" + a,
                                    "/v1/invites/" + b,
                                    "/v1/invites/" + a + "/claims",
                                    "/v1/invites/" + b + "/claims",
                                    "/v1/invites/" + a + "/usage",
                                    "/v1/invites/" + b + "/usage",
                                    "/v1/invites/" + a + "/rejections",
                                    "/v1/claims/history?bucket=day",
                                    "/v1/claims/history?bucket=hour",
                                    "/v1/tracks",
                                    "/v1/leads",
                                    "/v1/api-keys",
                                    "/v1/public/invites/" + ids[2],
                                    "/v1/public/invites/" + ids[3]};
  for (const auto& path : paths) {
    auto primary = client_->get(path, auth());
    auto replica = replica_client_->get(path, auth());
    ASSERT_EQ(primary.status, 200u) << path << primary.body;
    EXPECT_EQ(replica.status, primary.status) << path << replica.body;
    EXPECT_EQ(replica.json(), primary.json()) << path;
    EXPECT_EQ(replica.header("ETag"), primary.header("ETag")) << path;
  }
  auto csv_primary = client_->get("/v1/invites/" + a + "/claims",
                                  {{"Authorization", "Bearer " + owner_}, {"Accept", "text/csv"}});
  auto csv_replica =
      replica_client_->get("/v1/invites/" + a + "/claims",
                           {{"Authorization", "Bearer " + owner_}, {"Accept", "text/csv"}});
  EXPECT_EQ(csv_replica.body, csv_primary.body);
  EXPECT_NE(csv_replica.body.find("ada@example.com"), std::string::npos);
  EXPECT_EQ(csv_replica.body.find("bartholomew"), std::string::npos) << "forgotten";
  // The lead form without its version (the replica has no command side).
  EXPECT_EQ(replica_client_->get("/v1/lead-form", auth()).json(),
            client_->get("/v1/lead-form", auth()).json());
  auto usage = replica_client_->get("/v1/invites/" + a + "/usage", auth()).json();
  EXPECT_EQ(usage["claims"], 3);
  EXPECT_EQ(usage["plays"], 2);
  EXPECT_EQ(usage["claims_per_day"].size(), 3u);
  EXPECT_EQ(usage["rejections"], 1);

  // The same keys: none, unknown, and revoked-on-the-primary are refused alike.
  EXPECT_EQ(replica_client_->get("/v1/invites").status, 401u);
  EXPECT_EQ(replica_client_->get("/v1/invites", auth("psk_not_a_key_0123456789")).status, 401u);
  auto key = client_->post("/v1/api-keys", R"({"role":"admin","name":"ops"})", auth()).json();
  const std::string admin_key = key["key"];
  wait_for_replica();
  EXPECT_EQ(replica_client_->get("/v1/invites", auth(admin_key)).status, 200u);
  ASSERT_EQ(client_->del("/v1/api-keys/" + key["id"].get<std::string>(), auth()).status, 204u);
  wait_for_replica();
  EXPECT_EQ(replica_client_->get("/v1/invites", auth(admin_key)).status, 401u);

  // A professor reads its own invites only, on either node alike.
  const std::string prof =
      client_->post("/v1/api-keys", R"({"role":"professor","name":"prof"})", auth()).json()["key"];
  ASSERT_EQ(client_->post("/v1/tracks", R"({"track_id":"own","title":"Own"})", auth(prof)).status,
            201u);
  auto own = make_invite({{"title", "Own"}, {"tracks", {"own"}}}, prof);
  wait_for_replica();
  for (const auto& path : {"/v1/invites/" + own["id"].get<std::string>(), "/v1/invites/" + a,
                           "/v1/invites/" + a + "/usage", std::string("/v1/invites")}) {
    auto primary = client_->get(path, auth(prof));
    auto replica = replica_client_->get(path, auth(prof));
    EXPECT_EQ(replica.status, primary.status) << path << replica.body;
    EXPECT_EQ(replica.json(), primary.json()) << path;
  }
  EXPECT_EQ(replica_client_->get("/v1/invites/" + a, auth(prof)).status,
            client_->get("/v1/invites/" + a, auth(prof)).status);
  EXPECT_NE(replica_client_->get("/v1/invites/" + a, auth(prof)).status, 200u);

  auto ready = replica_client_->get("/readyz");
  EXPECT_EQ(ready.status, 200u) << ready.body;
  auto sys = replica_client_->get("/v1/system").json();
  EXPECT_EQ(sys["role"], "replica");
  EXPECT_GT(sys["replica"]["applied_position"].get<std::uint64_t>(), head);
  EXPECT_EQ(sys["replica"]["applied_position"], sys["replica"]["last_seen_position"]);
  EXPECT_EQ(sys["replica"]["lag_events"], 0);
  EXPECT_EQ(sys["read_model_lag"], 0);
  EXPECT_EQ(sys["replica"]["partitions"], 12);
  auto metrics = replica_client_->get("/metrics").body;
  EXPECT_NE(metrics.find("passage_replica_applied_position"), std::string::npos);
  EXPECT_NE(metrics.find("passage_replica_lag_seconds"), std::string::npos);
}

// Replicas side by side each read every partition (no shared consumer group splits
// them), so each builds the whole read models and answers as the primary does.
// A replica that stopped applying (an event its read models cannot take) would serve
// ever older answers: /readyz takes it out of rotation, naming why.
TEST_F(replica_e2e, AReplicaThatStoppedApplyingIsNotReady) {
  // A broker of the test's own, so that it outlives the primary.
  auto broker = consumers::embedded_broker::start({});
  ASSERT_TRUE(broker) << broker.error().message;
  restart("0", "0", (*broker)->bootstrap_servers());
  make_track("k8s-basics");
  start_replica();
  wait_for_replica();
  ASSERT_EQ(replica_client_->get("/readyz").status, 200u);
  stop();  // the primary: nothing else is published
  // The replica has applied all it will see: the position the bad event must take. The
  // deadline only bounds a hang.
  std::uint64_t seen = 0;
  bool quiet = false;
  for (const auto deadline = std::chrono::steady_clock::now() + 60s;
       !quiet && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(50ms);
    auto st = replica_->stats();
    quiet = st.applied_position == st.last_seen_position && st.applied_position == seen;
    seen = st.applied_position;
  }
  ASSERT_TRUE(quiet) << "the replica kept applying after the primary stopped: "
                     << replica_->stats().last_error;

  // The next position, an InviteClaimed whose data is not one.
  eventstore::recorded_event bad;
  bad.event_id = uuid::random();
  bad.type = "InviteClaimed";
  bad.stream = "invite-" + uuid::random().to_string();
  bad.stream_version = 1;
  bad.position = seen + 1;
  bad.recorded_at = clock_.now();
  bad.org_id = "00000000-0000-0000-0000-000000000001";
  consumers::testing::raw_producer out((*broker)->bootstrap_servers());
  out.produce(0, bad.stream, consumers::to_cloudevent_json(bad, json{{"invite_id", "nope"}}));
  out.flush();
  for (int i = 0; i < 600 && !replica_->stats().failed; ++i) std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(replica_->stats().failed) << replica_->stats().last_error;

  auto ready = replica_client_->get("/readyz");
  EXPECT_EQ(ready.status, 503u) << ready.body;
  EXPECT_EQ(ready.json()["status"], "failed") << ready.body;
}

TEST_F(replica_e2e, TwoReplicasSideBySideEachAnswerTheWholeLog) {
  auto ids = scenario();
  start_replica();
  auto second = app::replica_node::start(replica_options("replica-2"));
  ASSERT_TRUE(second) << second.error();
  const auto head = wait_for_replica();
  for (int i = 0; i < 1500 && (*second)->stats().applied_position < head; ++i)
    std::this_thread::sleep_for(20ms);
  // At least the head: the primary's mailer may have appended more since.
  ASSERT_GE((*second)->stats().applied_position, head) << (*second)->stats().last_error;

  http_client second_client((*second)->port());
  for (const std::string& path : {"/v1/invites/" + ids[0] + "/claims",
                                  "/v1/invites/" + ids[0] + "/usage", std::string("/v1/invites")}) {
    auto primary = client_->get(path, auth());
    ASSERT_EQ(primary.status, 200u) << path << primary.body;
    EXPECT_EQ(replica_client_->get(path, auth()).json(), primary.json()) << path;
    EXPECT_EQ(second_client.get(path, auth()).json(), primary.json()) << path;
  }
  (*second)->stop();
}

TEST_F(replica_e2e, CommandsAndLogReadsAreRefusedNamingThePrimary) {
  auto ids = scenario();
  start_replica();
  wait_for_replica();
  const std::string primary = "http://127.0.0.1:" + std::to_string(node_->port());
  std::vector<http_reply> commands = {
      replica_client_->post("/v1/invites", R"({"title":"x","tracks":["k8s-basics"]})", auth()),
      replica_client_->patch("/v1/invites/" + ids[0], R"({"title":"x"})", auth()),
      replica_client_->del("/v1/invites/" + ids[0], auth()),
      replica_client_->post("/v1/invites/" + ids[1] + "/reactivate", "", auth()),
      replica_client_->put("/v1/lead-form", R"({"fields":[]})", auth()),
      replica_client_->post("/v1/public/invites/" + ids[2] + "/claims", R"({"email":"e@x.io"})"),
      replica_client_->post("/v1/learners/" + ids[0] + "/forget", "", auth())};
  for (const auto& r : commands) {
    EXPECT_EQ(r.status, 409u) << r.body;
    EXPECT_EQ(r.header("Content-Type"), "application/problem+json");
    EXPECT_EQ(r.json()["code"], "read_only_replica") << r.body;
    EXPECT_EQ(r.json()["primary"], primary);
  }
  // The learner pages are the primary's (their form posts and scripts are commands): a
  // learner sent to a replica lands there, a form post keeping its method (307).
  const std::string code = client_->get("/v1/invites/" + ids[0], auth()).json()["code"];
  std::vector<std::pair<std::string, http_reply>> pages = {
      {"/i/" + code + "?lang=en", replica_client_->get("/i/" + code + "?lang=en")},
      {"/i/" + code,
       replica_client_->post("/i/" + code, "email=e%40x.io",
                             {{"Content-Type", "application/x-www-form-urlencoded"}})},
      {"/p/some-token", replica_client_->get("/p/some-token")}};
  for (const auto& [target, r] : pages) {
    EXPECT_EQ(r.status, 307u) << target << r.body;
    EXPECT_EQ(r.header("Location"), primary + target);
  }
  // Answers as of an instant are rebuilt from the log, which only the primary holds.
  for (const auto& path : std::vector<std::string>{
           "/v1/events", "/v1/streams/invite-" + ids[0],
           "/v1/invites/" + ids[0] + "/claims?as_of=2026-09-22T12:00:00Z",
           "/v1/invites/" + ids[0] + "/usage?as_of=2026-09-22T12:00:00Z", "/v1/jobs/" + ids[0]}) {
    auto r = replica_client_->get(path, auth());
    EXPECT_EQ(r.status, 421u) << path << r.body;
    EXPECT_EQ(r.json()["code"], "primary_only");
  }
  // Nothing was appended anywhere by the refused commands: whatever the primary's log
  // holds past what the replica had applied is the primary's own mailer reporting on the
  // scenario's mails (it appends outcomes when its batch is done, possibly after the
  // replica caught up), never an invite, lead form, claim or forget.
  const auto before = replica_->stats().applied_position;
  std::this_thread::sleep_for(200ms);
  const auto later =
      client_->get("/v1/events?limit=1000&from=" + std::to_string(before + 1), auth()).json();
  ASSERT_TRUE(later.contains("events")) << later.dump();
  for (const auto& e : later["events"]) {
    const auto type = e["type"].get<std::string>();
    EXPECT_TRUE(type == "EmailSent" || type == "EmailFailed") << e.dump();
  }
}

TEST_F(replica_e2e, AfterForgetNoFileOfTheReplicaFolderHoldsThePersonalData) {
  scenario();  // Bartholomew is forgotten on the primary
  start_replica();
  wait_for_replica();
  auto leads = replica_client_->get("/v1/leads", auth()).body;
  EXPECT_EQ(leads.find("Quistington"), std::string::npos) << leads;
  EXPECT_NE(leads.find("forgotten"), std::string::npos) << leads;
  stop_replica();
  std::size_t files = 0;
  for (const auto& f : std::filesystem::recursive_directory_iterator(dir_.sub("replica"))) {
    if (!f.is_regular_file()) continue;
    ++files;
    std::ifstream in(f.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (const char* secret : {"bartholomew.quist", "Bartholomew", "Quistington"}) {
      EXPECT_EQ(bytes.find(secret), std::string::npos) << secret << " in " << f.path();
    }
  }
  EXPECT_GT(files, 10u);
}

TEST_F(replica_e2e, StopClosesTheReadModelsWithEverythingAppliedAndFreesTheirFolder) {
  scenario();
  start_replica();
  const auto head = wait_for_replica();
  const auto applied = replica_->stats().applied_position;
  ASSERT_GE(applied, head);
  replica_client_.reset();
  replica_->stop();  // the node object stays; its read models must not
  auto keys = eventstore::open_key_store({.path = dir_.sub("other-keys"), .sync_new_keys = false});
  ASSERT_TRUE(keys) << keys.error().message;
  eventstore::event_codec codec(**keys, std::string(48, 'p'));
  auto models =
      projections::read_models::open({.path = dir_.sub("replica") + "/readmodels"}, codec);
  ASSERT_TRUE(models) << models.error().message;
  EXPECT_EQ((*models)->applied_position(), applied);
}

TEST_F(replica_e2e, ARestartResumesWhereItStoppedAndFollowsNewEvents) {
  auto ids = scenario();
  start_replica();
  const auto head = wait_for_replica();
  const auto stopped_at = replica_->stats().applied_position;  // >= head: EmailSent may follow
  stop_replica();
  ASSERT_EQ(claim(ids[2], {{"email", "erin@example.com"}}).json()["code"], "full");
  start_replica();
  // The rejection, and any EmailSent the primary's mailer appended since the stop.
  const auto now = wait_for_replica();
  EXPECT_GE(now, head + 1);
  auto st = replica_->stats();
  EXPECT_EQ(st.messages, now - stopped_at) << "only the events published since the stop";
  EXPECT_EQ(st.duplicates, 0u);
  EXPECT_EQ(replica_client_->get("/v1/invites/" + ids[0] + "/rejections", auth()).json(),
            client_->get("/v1/invites/" + ids[0] + "/rejections", auth()).json());
}

}  // namespace
}  // namespace passage::testing
