// Claim history, point-in-time answers and the learner audit trail.

#include <gtest/gtest.h>

#include "projections/json_views.h"
#include "projections/point_in_time.h"
#include "projections/tests/fixture.h"

namespace passage::projections {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::at;
using testing::id;

const uuid org = id(1);
const uuid other_org = id(2);

class history_test : public testing::projections_test {
 protected:
  void SetUp() override {
    projections_test::SetUp();
    create_org(org, "Acme", 'a');
    create_org(other_org, "Globex", 'b');
    register_track(org, "k8s", "Kubernetes basics", false);
    register_track(org, "linux", "Linux on a VM", true);
    register_track(other_org, "k8s", "Kubernetes basics", false);
  }

  // What GET usage and GET claims answer now.
  std::pair<json, json> live(const uuid& inv) {
    catch_up();
    return {to_json(*models_->usage(org, inv)),
            to_json(std::span<const acceptance_row>(*models_->acceptance_list(org, inv)))};
  }

  std::pair<json, json> as_of(const uuid& inv, timestamp t) {
    auto then = invite_as_of(*store_, *codec_, inv, t);
    EXPECT_TRUE(then) << then.error().message;
    EXPECT_TRUE(then && *then) << "no invite at " << format_rfc3339(t);
    if (!then || !*then) return {};
    EXPECT_EQ((*then)->org_id(), org);
    auto rows = (*then)->acceptance_list();
    return {to_json((*then)->usage()), to_json(std::span<const acceptance_row>(rows))};
  }
};

TEST_F(history_test, point_in_time_answers_equal_the_live_answers_given_at_each_instant) {
  const uuid inv = id(100);
  auto d = draft("Workshop", {"k8s", "linux"});
  d.claim_limit_ = 5;
  create_invite(org, inv, "AB2K7MZ", d);
  std::vector<std::pair<timestamp, std::pair<json, json>>> seen;
  seen.emplace_back(clock_.now(), live(inv));

  clock_.advance(30min);
  auto ada = claim(inv, "ada@example.com", 1, "Ada", "Lovelace");
  claim(inv, std::nullopt, 2);
  play(ada.claim_->claim_id_, ada.claim_->learner_id_, "k8s");
  seen.emplace_back(clock_.now(), live(inv));

  clock_.advance(2h);
  auto bob = claim(inv, "bob@example.com", 3, "Bob", "Tables");
  on_invite(inv, domain::deactivate_invite{});
  claim(inv, "carol@example.com", 4);  // rejected: deactivated
  on_invite(inv, domain::reactivate_invite{});
  play(bob.claim_->claim_id_, bob.claim_->learner_id_, "linux");
  seen.emplace_back(clock_.now(), live(inv));

  clock_.advance(25h);
  claim(inv, "dan@example.com", 5);
  play(ada.claim_->claim_id_, ada.claim_->learner_id_, "k8s");
  seen.emplace_back(clock_.now(), live(inv));

  // The scenario goes on: more claims, plays and a full invite.
  clock_.advance(3h);
  claim(inv, "erin@example.com", 6);
  claim(inv, "frank@example.com", 7);
  claim(inv, "grace@example.com", 8);  // frank and grace: rejected, full
  play(bob.claim_->claim_id_, bob.claim_->learner_id_, "k8s");
  catch_up();
  ASSERT_EQ(models_->usage(org, inv)->claims, 5);

  for (const auto& [t, answers] : seen) {
    SCOPED_TRACE(format_rfc3339(t));
    auto then = as_of(inv, t);
    EXPECT_EQ(then.first, answers.first);
    EXPECT_EQ(then.second, answers.second);
    EXPECT_NE(then.first, live(inv).first) << "the answers did change since";
  }
  EXPECT_EQ(seen[1].second.first["claims"], 2);
  EXPECT_EQ(seen[2].second.first["rejections"], 1);

  // Before the invite existed there is no answer; another invite id neither.
  auto before = invite_as_of(*store_, *codec_, inv, seen[0].first - 1us);
  ASSERT_TRUE(before);
  EXPECT_FALSE(*before);
  auto unknown = invite_as_of(*store_, *codec_, id(999), clock_.now());
  ASSERT_TRUE(unknown);
  EXPECT_FALSE(*unknown);

  // A rebuild as of an instant, into a folder of its own, answers the same.
  auto copy = read_models::open({.path = dir_.sub("copy")}, *codec_);
  ASSERT_TRUE(copy) << copy.error().message;
  auto rebuilt = rebuild(*store_, **copy, {.as_of = seen[2].first});
  ASSERT_TRUE(rebuilt) << rebuilt.error().message;
  EXPECT_EQ(rebuilt->events_total, rebuilt->events_done);
  EXPECT_LT(rebuilt->events_done, store_->head_position());
  EXPECT_EQ(to_json(*(*copy)->usage(org, inv)), seen[2].second.first);
  EXPECT_EQ(to_json(std::span<const acceptance_row>(*(*copy)->acceptance_list(org, inv))),
            seen[2].second.second);
}

TEST_F(history_test, usage_counts_claims_per_hour_and_time_from_creation_to_claim) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Workshop"));
  claim(inv, "a@example.com", 1);
  clock_.advance(1h);
  claim(inv, "b@example.com", 2);
  clock_.advance(1h + 30s);
  claim(inv, std::nullopt, 3);
  clock_.advance(22h);
  claim(inv, "d@example.com", 4);
  catch_up();

  auto u = models_->usage(org, inv);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->claims_per_hour, (claim_counts{{"2026-03-01T10:00:00Z", 1},
                                              {"2026-03-01T11:00:00Z", 1},
                                              {"2026-03-01T12:00:00Z", 1},
                                              {"2026-03-02T10:00:00Z", 1}}));
  ASSERT_TRUE(u->time_to_claim);
  EXPECT_EQ(u->time_to_claim->count, 4);
  EXPECT_EQ(u->time_to_claim->min_seconds, 0);
  EXPECT_EQ(u->time_to_claim->median_seconds, 3600);  // nearest rank: 2nd of 4
  EXPECT_EQ(u->time_to_claim->p90_seconds, 86430);    // 4th of 4
  EXPECT_EQ(u->time_to_claim->max_seconds, 86430);
  auto j = to_json(*u);
  EXPECT_EQ(j["claims_per_hour"][2]["hour"], "2026-03-01T12:00:00Z");
  EXPECT_EQ(j["time_to_claim"]["median_seconds"], 3600);

  auto rows = *models_->acceptance_list(org, inv);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[2].seconds_since_invite_created, 7230);

  // Memory-only claim times come back after a restart.
  open_models();
  EXPECT_EQ(to_json(*models_->usage(org, inv)), j);

  const uuid empty = id(101);
  create_invite(org, empty, "CD3K8NP", draft("Nobody yet"));
  catch_up();
  EXPECT_FALSE(models_->usage(org, empty)->time_to_claim);
  EXPECT_TRUE(to_json(*models_->usage(org, empty))["time_to_claim"].is_null());
}

TEST_F(history_test, organization_claim_history_per_hour_and_day_and_per_invite) {
  const uuid a = id(100), b = id(101), foreign = id(102);
  create_invite(org, a, "AB2K7MZ", draft("A"));
  claim(a, "a1@example.com", 1);
  clock_.advance(2h);
  claim(a, "a2@example.com", 2);
  claim(a, "a3@example.com", 3);
  create_invite(org, b, "CD3K8NP", draft("B"));
  create_invite(other_org, foreign, "EF4M9QR", draft("Foreign"));
  claim(foreign, "x@example.com", 9);
  clock_.advance(22h);
  claim(a, "a4@example.com", 4);
  claim(b, "b1@example.com", 5);
  clock_.advance(30min);
  claim(b, "b2@example.com", 6);
  catch_up();

  auto days = models_->claim_history(org, {});
  EXPECT_EQ(days.claims, 6);
  EXPECT_EQ(days.buckets, (claim_counts{{"2026-03-01T00:00:00Z", 3}, {"2026-03-02T00:00:00Z", 3}}));
  ASSERT_EQ(days.invites.size(), 2u);
  EXPECT_EQ(days.invites[0].title, "B");  // newest first
  EXPECT_EQ(days.invites[0].claims, 2);
  EXPECT_EQ(days.invites[1].buckets,
            (claim_counts{{"2026-03-01T00:00:00Z", 3}, {"2026-03-02T00:00:00Z", 1}}));
  ASSERT_TRUE(days.time_to_claim);
  EXPECT_EQ(days.time_to_claim->count, 6);

  auto hours = models_->claim_history(org, {.bucket = claim_bucket::hour,
                                            .since = at("2026-03-01T11:00:00Z"),
                                            .until = at("2026-03-02T10:15:00Z")});
  EXPECT_EQ(hours.claims, 4);
  EXPECT_EQ(hours.buckets,
            (claim_counts{{"2026-03-01T12:00:00Z", 2}, {"2026-03-02T10:00:00Z", 2}}));
  auto j = to_json(hours);
  EXPECT_EQ(j["bucket"], "hour");
  EXPECT_EQ(j["buckets"][1]["start"], "2026-03-02T10:00:00Z");
  EXPECT_EQ(j["since"], "2026-03-01T11:00:00Z");

  EXPECT_EQ(models_->claim_history(other_org, {}).claims, 1);
  EXPECT_EQ(models_->claim_history(id(3), {}).claims, 0);
}

TEST_F(history_test, learner_history_lists_claims_rejections_and_plays_and_survives_forget) {
  const uuid a = id(100), b = id(101);
  create_invite(org, a, "AB2K7MZ", draft("A", {"k8s", "linux"}));
  create_invite(org, b, "CD3K8NP", draft("B"));
  auto ada = claim(a, "ada.history@example.com", 1, "Ada", "Lovelace");
  const uuid learner = ada.claim_->learner_id_;
  clock_.advance(10min);
  play(ada.claim_->claim_id_, learner, "k8s");
  clock_.advance(10min);
  play(ada.claim_->claim_id_, learner, "k8s");
  on_invite(b, domain::deactivate_invite{});
  clock_.advance(1h);
  claim(b, "ada.history@example.com", 2);  // rejected, recorded under her learner id
  claim(a, "someone.else@example.com", 3);
  catch_up();

  auto h = models_->learner_history(org, learner);
  ASSERT_TRUE(h);
  EXPECT_FALSE(h->forgotten);
  EXPECT_EQ(h->claims, 1);
  EXPECT_EQ(h->plays, 2);
  EXPECT_EQ(h->rejections, 1);
  ASSERT_EQ(h->entries.size(), 4u);
  EXPECT_EQ(h->entries[0].fact, learner_fact::claimed);
  EXPECT_EQ(h->entries[0].who.email, "ada.history@example.com");
  EXPECT_EQ(h->entries[0].at, at("2026-03-01T10:00:00Z"));
  EXPECT_EQ(h->entries[2].fact, learner_fact::played);
  EXPECT_EQ(h->entries[2].play_number, 2);
  EXPECT_EQ(h->entries[2].track_id, "k8s");
  EXPECT_EQ(h->entries[2].at, at("2026-03-01T10:20:00Z"));
  EXPECT_EQ(h->entries[3].fact, learner_fact::rejected);
  EXPECT_EQ(h->entries[3].reason, domain::rejection_reason::deactivated);
  EXPECT_EQ(h->entries[3].invite_id, b);
  auto before = to_json(*h);
  EXPECT_NE(before.dump().find("ada.history@example.com"), std::string::npos);

  forget(learner);
  catch_up();
  auto after = models_->learner_history(org, learner);
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->forgotten);
  auto j = to_json(*after);
  EXPECT_EQ(j.dump().find("ada.history"), std::string::npos) << j.dump();
  EXPECT_EQ(j["history"][0]["email"], "forgotten");
  EXPECT_EQ(j["claims"], 1);
  EXPECT_EQ(j["plays"], 2);
  EXPECT_EQ(j["rejections"], 1);
  ASSERT_EQ(j["history"].size(), before["history"].size());
  for (std::size_t i = 0; i < j["history"].size(); ++i) {
    EXPECT_EQ(j["history"][i]["at"], before["history"][i]["at"]);
    EXPECT_EQ(j["history"][i]["fact"], before["history"][i]["fact"]);
  }

  EXPECT_FALSE(models_->learner_history(other_org, learner)) << "404 across organizations";
  EXPECT_FALSE(models_->learner_history(org, id(424242)));
  open_models();
  EXPECT_EQ(to_json(*models_->learner_history(org, learner)), j) << "kept across a restart";
}

// A learner's claims (from the claim records: a claim has no history row) fall in log
// order among the rows of plays and rejections, live, after a restart (records loaded
// from the folder) and in a rebuild into another folder.
TEST_F(history_test, learner_history_puts_claims_in_log_order_among_the_other_facts) {
  const uuid a = id(100), b = id(101), c = id(102);
  create_invite(org, a, "AB2K7MZ", draft("A", {"k8s", "linux"}));
  create_invite(org, b, "CD3K8NP", draft("B"));
  create_invite(org, c, "EF4K9QR", draft("C", {"linux"}));
  auto first = claim(a, "ada.order@example.com", 1);
  const uuid learner = first.claim_->learner_id_;
  clock_.advance(1min);
  play(first.claim_->claim_id_, learner, "k8s");
  on_invite(b, domain::deactivate_invite{});
  clock_.advance(1min);
  claim(b, "ada.order@example.com", 2);  // rejected
  clock_.advance(1min);
  auto second = claim(c, "ada.order@example.com", 3);
  ASSERT_EQ(second.claim_->learner_id_, learner);
  clock_.advance(1min);
  play(first.claim_->claim_id_, learner, "linux");
  play(second.claim_->claim_id_, learner, "linux");
  catch_up();

  auto facts = [&](const learner_history_view& h) {
    std::vector<std::pair<learner_fact, uuid>> out;
    for (const auto& x : h.entries) out.emplace_back(x.fact, x.invite_id);
    return out;
  };
  const std::vector<std::pair<learner_fact, uuid>> expected{
      {learner_fact::claimed, a}, {learner_fact::played, a}, {learner_fact::rejected, b},
      {learner_fact::claimed, c}, {learner_fact::played, a}, {learner_fact::played, c}};
  auto h = models_->learner_history(org, learner);
  ASSERT_TRUE(h);
  EXPECT_EQ(facts(*h), expected);
  for (std::size_t i = 1; i < h->entries.size(); ++i) {
    EXPECT_LT(h->entries[i - 1].position, h->entries[i].position);
  }
  EXPECT_EQ(h->entries[3].claim_id, second.claim_->claim_id_);
  EXPECT_EQ(h->entries[3].who.email, "ada.order@example.com");
  EXPECT_EQ(h->entries[3].at, at("2026-03-01T10:03:00Z"));
  EXPECT_EQ(h->claims, 2);
  const auto live = to_json(*h);

  open_models();
  EXPECT_EQ(to_json(*models_->learner_history(org, learner)), live) << "after a restart";
  auto rebuilt = read_models::open({.path = dir_.sub("rebuilt")}, *codec_);
  ASSERT_TRUE(rebuilt) << rebuilt.error().message;
  ASSERT_TRUE(rebuild(*store_, **rebuilt, {.batch_size = 2}));
  EXPECT_EQ(to_json(*(*rebuilt)->learner_history(org, learner)), live) << "rebuilt";
}

// One claim id claimed twice (a corrupt log or Kafka feed), by two learners: the claim
// record is the last claimer's, and the first learner's history never shows it (it
// would show the other learner's email); a claim id is listed once.
TEST_F(history_test, a_claim_id_reused_for_another_learner_stays_out_of_the_first_ones_history) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Twice"));
  auto ada = claim(inv, "ada.twice@example.com", 1);
  const uuid claim_id = ada.claim_->claim_id_, ada_id = ada.claim_->learner_id_;
  clock_.advance(1min);
  domain::claim_invite c;
  c.claim_id_ = claim_id;
  c.new_learner_id_ = id(6002);
  c.email_ = "bob.twice@example.com";
  c.first_name_ = "Bob";
  c.last_name_ = "Tables";
  c.lead_form_ = models_->lead_form(org);
  auto bob = must(domain::decide(invites_[inv], c, clock_.now()));
  ASSERT_TRUE(bob.claim_);
  const uuid bob_id = bob.claim_->learner_id_;
  ASSERT_NE(bob_id, ada_id);
  append(bob.events_);
  catch_up();

  auto emails = [](const learner_history_view& h) {
    std::vector<std::string> out;
    for (const auto& x : h.entries) out.push_back(x.who.email);
    return out;
  };
  for (int pass = 0; pass < 2; ++pass) {
    SCOPED_TRACE(pass == 0 ? "live" : "after a restart");
    auto of_ada = models_->learner_history(org, ada_id);
    ASSERT_TRUE(of_ada);
    EXPECT_EQ(emails(*of_ada), std::vector<std::string>{}) << to_json(*of_ada);
    auto of_bob = models_->learner_history(org, bob_id);
    ASSERT_TRUE(of_bob);
    EXPECT_EQ(emails(*of_bob), std::vector<std::string>{"bob.twice@example.com"});
    EXPECT_EQ(of_bob->claims, 1);
    open_models();
  }
}

}  // namespace
}  // namespace passage::projections
