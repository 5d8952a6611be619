// Organizations, API keys, the lead form, tracks and learners (incl. forgetting).
#include <gtest/gtest.h>

#include "domain/learner.h"
#include "domain/organization.h"
#include "domain/tests/fixtures.h"
#include "domain/track.h"

namespace passage::domain {
namespace {

using namespace testing;

const timestamp t0 = at("2026-02-01T10:00:00Z");
const std::string hash_a(64, 'a');
const std::string hash_b(64, 'b');

organization_state given_org() {
  auto r =
      decide(organization_state{}, create_organization{org, "Acme", id(1), "first", hash_a}, t0);
  EXPECT_TRUE(r);
  return r ? fold<organization_state>(*r) : organization_state{};
}

TEST(Organization, CreateEmitsOrgAndFirstOwnerKey) {
  auto r =
      decide(organization_state{}, create_organization{org, " Acme ", id(1), "first", hash_a}, t0);
  ASSERT_TRUE(r);
  EXPECT_EQ(types_of(*r), (std::vector<std::string_view>{"OrganizationCreated", "ApiKeyIssued"}));
  EXPECT_EQ(std::get<organization_created>(r->at(0)).name_, "Acme");
  const auto& key = std::get<api_key_issued>(r->at(1));
  EXPECT_EQ(key.role_, role::owner);
  EXPECT_EQ(key.key_hash_, hash_a);
  for (const auto& e : *r) EXPECT_EQ(stream_of(e), organization_stream(org));
  organization_state s = fold<organization_state>(*r);
  EXPECT_TRUE(s.exists_);
  EXPECT_EQ(s.api_keys_.at(id(1)).role_, role::owner);
  EXPECT_EQ(decide(s, create_organization{org, "Acme", id(1), "x", hash_a}, t0).error().code_,
            errc::already_exists);
}

TEST(Organization, CreateValidates) {
  organization_state none;
  EXPECT_EQ(decide(none, create_organization{org, " ", id(1), "first", hash_a}, t0).error().field_,
            "name");
  EXPECT_EQ(
      decide(none, create_organization{uuid{}, "A", id(1), "first", hash_a}, t0).error().field_,
      "id");
  // The key itself (not a hash) is refused.
  EXPECT_EQ(decide(none, create_organization{org, "A", id(1), "first", "psg_live_secret"}, t0)
                .error()
                .field_,
            "key_hash");
}

TEST(ApiKeys, IssueAndRevoke) {
  organization_state s = given_org();
  auto r = decide(s, issue_api_key{id(2), role::professor, "prof", hash_b}, t0);
  ASSERT_TRUE(r);
  EXPECT_EQ(types_of(*r), (std::vector<std::string_view>{"ApiKeyIssued"}));
  s = fold(*r, s);
  EXPECT_EQ(decide(s, issue_api_key{id(2), role::admin, "again", hash_b}, t0).error().code_,
            errc::already_exists);
  EXPECT_EQ(decide(s, issue_api_key{id(3), role::operator_, "op", hash_b}, t0).error().field_,
            "role");
  EXPECT_EQ(decide(s, issue_api_key{id(3), role::admin, "", hash_b}, t0).error().field_, "name");
  EXPECT_EQ(
      decide(s, issue_api_key{id(3), role::admin, "x", std::string(64, 'G')}, t0).error().field_,
      "key_hash");

  auto rev = decide(s, revoke_api_key{id(2)}, t0);
  ASSERT_TRUE(rev);
  EXPECT_EQ(types_of(*rev), (std::vector<std::string_view>{"ApiKeyRevoked"}));
  s = fold(*rev, s);
  EXPECT_TRUE(s.api_keys_.at(id(2)).revoked_);
  EXPECT_TRUE(decide(s, revoke_api_key{id(2)}, t0)->empty());
  EXPECT_EQ(decide(s, revoke_api_key{id(99)}, t0).error().code_, errc::not_found);
}

TEST(ApiKeys, TheContactEmailIsSetChangedAndCleared) {
  organization_state s = given_org();
  s = fold(*decide(s, issue_api_key{id(2), role::admin, "staff", hash_b}, t0), s);
  auto set = decide(s, change_api_key_email{id(2), " Desk@Example.ORG "}, t0);
  ASSERT_TRUE(set);
  ASSERT_EQ(types_of(*set), (std::vector<std::string_view>{"ApiKeyEmailChanged"}));
  EXPECT_EQ(std::get<api_key_email_changed>(set->front()).email_, "desk@example.org");
  s = fold(*set, s);
  EXPECT_EQ(s.api_keys_.at(id(2)).email_, "desk@example.org");
  EXPECT_TRUE(decide(s, change_api_key_email{id(2), "desk@example.org"}, t0)->empty())
      << "unchanged: no event";
  EXPECT_EQ(decide(s, change_api_key_email{id(2), "not an email"}, t0).error().field_, "email");
  EXPECT_EQ(decide(s, change_api_key_email{id(99), std::nullopt}, t0).error().code_,
            errc::not_found);
  auto cleared = decide(s, change_api_key_email{id(2), std::nullopt}, t0);
  ASSERT_TRUE(cleared);
  ASSERT_EQ(cleared->size(), 1u);
  s = fold(*cleared, s);
  EXPECT_FALSE(s.api_keys_.at(id(2)).email_);
  s = fold(*decide(s, revoke_api_key{id(2)}, t0), s);
  EXPECT_EQ(decide(s, change_api_key_email{id(2), "desk@example.org"}, t0).error().code_,
            errc::invalid_state);
}

TEST(ApiKeys, TheLastOwnerKeyCannotBeRevoked) {
  organization_state s = given_org();
  EXPECT_EQ(decide(s, revoke_api_key{id(1)}, t0).error().code_, errc::invalid_state);
  s = fold(*decide(s, issue_api_key{id(2), role::owner, "second", hash_b}, t0), s);
  EXPECT_TRUE(decide(s, revoke_api_key{id(1)}, t0));
}

TEST(LeadForm, ChangeValidatesAndForcesConsentRequired) {
  organization_state s = given_org();
  lead_form form{{{"company", "Company", true}, {"consent", "I agree", false}}};
  auto r = decide(s, change_lead_form{form, std::nullopt}, t0);
  ASSERT_TRUE(r);
  const auto& e = std::get<lead_form_changed>(r->at(0));
  EXPECT_TRUE(e.form_.fields_.at(1).required_);
  s = fold(*r, s);
  EXPECT_EQ(s.lead_form_, e.form_);
  // Unchanged: no event.
  EXPECT_TRUE(decide(s, change_lead_form{form, std::nullopt}, t0)->empty());
  EXPECT_EQ(decide(s, change_lead_form{form, 1}, t0).error().code_, errc::version_conflict);
}

TEST(LeadForm, RejectsBadFields) {
  organization_state s = given_org();
  auto field_of = [&](lead_form f) {
    return decide(s, change_lead_form{f, {}}, t0).error().field_;
  };
  EXPECT_EQ(field_of({{{"email", "Email", true}}}), "fields[0].name");
  EXPECT_EQ(field_of({{{"first_name", "", true}}}), "fields[0].name");
  EXPECT_EQ(field_of({{{"a", "", true}, {"a", "", false}}}), "fields[1].name");
  EXPECT_EQ(field_of({{{"Bad Name", "", true}}}), "fields[0].name");
  EXPECT_EQ(field_of({{{"", "", true}}}), "fields[0].name");
  EXPECT_EQ(field_of({{{"ok", std::string(201, 'x'), true}}}), "fields[0].label");
}

TEST(Track, RegisterAndUpdate) {
  auto r = decide(track_state{},
                  register_track{org, "k8s-basics", "Kubernetes basics", false, id(7)}, t0);
  ASSERT_TRUE(r);
  EXPECT_EQ(types_of(*r), (std::vector<std::string_view>{"TrackRegistered"}));
  EXPECT_EQ(stream_of(r->at(0)), "track-" + org.to_string() + "-k8s-basics");
  track_state s = fold<track_state>(*r);
  EXPECT_EQ(to_fact(s).owner_, id(7));
  EXPECT_EQ(decide(s, register_track{org, "k8s-basics", "again", false, {}}, t0).error().code_,
            errc::already_exists);

  auto u = decide(s, update_track{std::nullopt, true, std::optional<uuid>{}}, t0);
  ASSERT_TRUE(u);
  const auto& e = std::get<track_updated>(u->at(0));
  EXPECT_TRUE(e.pausable_);
  EXPECT_FALSE(e.owner_);
  EXPECT_EQ(e.title_, "Kubernetes basics");
  s = fold(*u, s);
  EXPECT_TRUE(to_fact(s).pausable_);
  EXPECT_TRUE(
      decide(s, update_track{"Kubernetes basics", std::nullopt, std::nullopt}, t0)->empty());
  EXPECT_EQ(decide(s, update_track{" ", std::nullopt, std::nullopt}, t0).error().field_, "title");
  EXPECT_EQ(decide(track_state{}, update_track{}, t0).error().code_, errc::not_found);
  EXPECT_EQ(decide(track_state{}, register_track{org, "a b", "T", false, {}}, t0).error().field_,
            "id");
  EXPECT_EQ(decide(track_state{}, register_track{org, "ok", "", false, {}}, t0).error().field_,
            "title");
}

learner_state given_learner() {
  auto r =
      decide(learner_state{}, register_learner{org, id(50), "Ada@Example.com", "Ada", "L"}, t0);
  EXPECT_TRUE(r);
  return r ? fold<learner_state>(*r) : learner_state{};
}

TEST(Learner, RegisterCaptureLeadForget) {
  learner_state s = given_learner();
  EXPECT_EQ(s.email_, "ada@example.com");
  EXPECT_TRUE(s.must_change_password_);
  EXPECT_EQ(decide(s, register_learner{org, id(50), "a@b.co", "", ""}, t0).error().code_,
            errc::already_exists);

  lead_form form{{{"consent", "I agree", true}}};
  auto missing = decide(s, capture_lead{invite_id, "Ada", "L", {}, form}, t0);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code_, errc::details_missing);
  EXPECT_EQ(missing.error().field_, "consent");
  auto lead = decide(s, capture_lead{invite_id, "Ada", "L", {{"consent", "yes"}}, form}, t0);
  ASSERT_TRUE(lead);
  EXPECT_EQ(std::get<lead_captured>(lead->at(0)).personal_data_.email_, "ada@example.com");
  s = fold(*lead, s);
  EXPECT_TRUE(s.lead_submitted_);

  auto forget = decide(s, forget_learner{}, t0);
  ASSERT_TRUE(forget);
  EXPECT_EQ(types_of(*forget), (std::vector<std::string_view>{"LearnerForgotten"}));
  EXPECT_EQ(stream_of(forget->at(0)), learner_stream(id(50)));
  EXPECT_FALSE(personal_data_of(forget->at(0)));  // the forget event itself carries no PII
  s = fold(*forget, s);
  EXPECT_TRUE(s.forgotten_);
  EXPECT_TRUE(s.email_.empty());
}

TEST(Learner, AfterForgettingNoPersonalDataIsRecorded) {
  learner_state s = given_learner();
  s = fold(*decide(s, forget_learner{}, t0), s);
  EXPECT_EQ(decide(s, capture_lead{invite_id, "Ada", "L", {}, {}}, t0).error().code_,
            errc::forgotten);
  EXPECT_EQ(
      decide(s, register_learner{org, id(50), "ada@example.com", "Ada", "L"}, t0).error().code_,
      errc::forgotten);
  EXPECT_TRUE(decide(s, forget_learner{}, t0)->empty());  // forgetting twice: no-op
  EXPECT_EQ(decide(learner_state{}, forget_learner{}, t0).error().code_, errc::not_found);
}

TEST(Learner, RegisterValidatesEmail) {
  EXPECT_EQ(
      decide(learner_state{}, register_learner{org, id(1), "nope", "", ""}, t0).error().field_,
      "email");
}

}  // namespace
}  // namespace passage::domain
