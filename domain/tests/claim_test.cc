// ClaimInvite: open window, access rules, claim limit, repeat claims, learner registration,
// rejection events and lifecycle events. Given events -> when command -> then events.
#include <gtest/gtest.h>

#include <functional>

#include "domain/tests/fixtures.h"
#include "domain/text.h"

namespace passage::domain {
namespace {

using namespace testing;
using std::chrono::hours;
using std::chrono::microseconds;

constexpr microseconds tick{1};
const timestamp t0 = at("2026-02-01T10:00:00Z");

claim_decision claim_ok(const invite_state& s, const claim_invite& c, timestamp now) {
  auto r = decide(s, c, now);
  EXPECT_TRUE(r) << (r ? "" : r.error().message_);
  return r ? *r : claim_decision{};
}

void expect_rejected(const claim_decision& d, rejection_reason reason) {
  EXPECT_EQ(d.outcome_, claim_outcome::rejected);
  ASSERT_TRUE(d.rejection_);
  EXPECT_EQ(to_string(*d.rejection_), to_string(reason));
  ASSERT_EQ(d.events_.size(), 1u);
  const auto* e = std::get_if<claim_rejected>(&d.events_[0]);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->reason_, reason);
  EXPECT_EQ(e->invite_id_, invite_id);
  EXPECT_EQ(stream_of(d.events_[0]), invite_stream(invite_id));
}

TEST(Claim, NewEmailRegistersAStudentAndClaims) {
  invite_draft d = basic_draft();
  d.access_duration_ = "P30D";
  d.plays_per_track_ = 3;
  invite_state s = given_invite(d);

  claim_invite c = claim_by_email(" Ada@Example.com ", 1);
  c.first_name_ = "Ada";
  c.last_name_ = "Lovelace";
  auto out = claim_ok(s, c, t0);

  EXPECT_EQ(out.outcome_, claim_outcome::claimed);
  EXPECT_TRUE(out.learner_registered_);
  EXPECT_EQ(types_of(out.events_),
            (std::vector<std::string_view>{"LearnerRegistered", "InviteClaimed"}));
  auto reg = events_of<learner_registered>(out.events_).at(0);
  EXPECT_EQ(reg.learner_id_, c.new_learner_id_);
  EXPECT_EQ(reg.role_, learner_role::student);
  EXPECT_TRUE(reg.must_change_password_);
  EXPECT_EQ(reg.personal_data_.email_, "ada@example.com");
  EXPECT_EQ(reg.personal_data_.first_name_, "Ada");
  EXPECT_EQ(stream_of(out.events_[0]), learner_stream(c.new_learner_id_));

  auto claimed = events_of<invite_claimed>(out.events_).at(0);
  EXPECT_EQ(claimed.claim_id_, c.claim_id_);
  EXPECT_EQ(claimed.learner_id_, c.new_learner_id_);
  EXPECT_FALSE(claimed.anonymous_);
  EXPECT_EQ(claimed.claimed_at_, t0);
  EXPECT_EQ(claimed.personal_data_.email_, "ada@example.com");
  EXPECT_EQ(claimed.personal_data_.first_name_, "Ada");  // the acceptance list shows names
  EXPECT_EQ(claimed.personal_data_.last_name_, "Lovelace");
  EXPECT_EQ(claimed.restrictions_.plays_per_track_, 3);
  EXPECT_EQ(format_access_duration(claimed.restrictions_.access_duration_), "P30D");
  EXPECT_EQ(claimed.restrictions_.tracks_, s.settings_.tracks_);
  EXPECT_EQ(claimed.access_expires_at_, at("2026-03-03T10:00:00Z"));
  ASSERT_TRUE(out.claim_);
  EXPECT_EQ(out.claim_->claim_id_, c.claim_id_);
}

TEST(Claim, KnownEmailLinksToTheExistingLearner) {
  invite_state s = given_invite(basic_draft());
  claim_invite c = claim_by_email("ada@example.com", 1);
  c.existing_learner_id_ = id(42);
  auto out = claim_ok(s, c, t0);
  EXPECT_FALSE(out.learner_registered_);
  EXPECT_EQ(types_of(out.events_), (std::vector<std::string_view>{"InviteClaimed"}));
  EXPECT_EQ(events_of<invite_claimed>(out.events_).at(0).learner_id_, id(42));
}

TEST(Claim, SameLearnerAgainGetsTheSameClaimAndNoEvents) {
  invite_draft d = basic_draft();
  d.claim_limit_ = 1;
  invite_state s = given_invite(d);
  claim_invite first = claim_by_email("ada@example.com", 1);
  s = with_events(s, claim_ok(s, first, t0).events_);

  claim_invite again = claim_by_email("ADA@example.com", 2);  // new ids offered, not used
  again.existing_learner_id_ = first.new_learner_id_;
  auto out = claim_ok(s, again, t0 + hours{1});
  EXPECT_EQ(out.outcome_, claim_outcome::existing);
  EXPECT_TRUE(out.events_.empty());
  ASSERT_TRUE(out.claim_);
  EXPECT_EQ(out.claim_->claim_id_, first.claim_id_);
  EXPECT_EQ(out.claim_->claimed_at_, t0);
  EXPECT_EQ(s.claims_count(), 1);  // not a second use: the full invite still answers
}

TEST(Claim, RepeatClaimWorksEvenAfterExpiryOrDeactivation) {
  invite_draft d = basic_draft();
  d.expires_at_ = t0 + hours{1};
  invite_state s = given_invite(d);
  claim_invite c = claim_anonymous(1);
  s = with_events(s, claim_ok(s, c, t0).events_);
  s = with_events(s, *decide(s, deactivate_invite{}, t0));
  auto out = claim_ok(s, c, t0 + hours{2});
  EXPECT_EQ(out.outcome_, claim_outcome::existing);
  EXPECT_TRUE(out.events_.empty());
}

TEST(Claim, AnonymousClaimUsesTheCallersAnonymousId) {
  invite_state s = given_invite(basic_draft());
  auto out = claim_ok(s, claim_anonymous(1), t0);
  EXPECT_EQ(types_of(out.events_), (std::vector<std::string_view>{"InviteClaimed"}));
  auto claimed = events_of<invite_claimed>(out.events_).at(0);
  EXPECT_TRUE(claimed.anonymous_);
  EXPECT_EQ(claimed.learner_id_, id(7001));
  EXPECT_TRUE(claimed.personal_data_.empty());
  EXPECT_FALSE(data_subject(out.events_[0]));
}

TEST(Claim, AnonymousClaimWithoutIdIsMalformedAndNotRecorded) {
  invite_state s = given_invite(basic_draft());
  claim_invite c;
  c.claim_id_ = id(1);
  auto r = decide(s, c, t0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code_, errc::invalid_request);
  EXPECT_EQ(r.error().field_, "anonymous_learner_id");
}

TEST(Claim, MalformedEmailIsAnErrorNotARejection) {
  invite_state s = given_invite(basic_draft());
  auto r = decide(s, claim_by_email("ada-at-example.com", 1), t0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code_, errc::invalid_request);
  EXPECT_EQ(r.error().field_, "email");
}

TEST(Claim, UnknownInviteIsNotFound) {
  auto r = decide(invite_state{}, claim_anonymous(1), t0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code_, errc::not_found);
}

TEST(Claim, RequireAccountForcesEmail) {
  invite_draft d = basic_draft();
  d.require_account_ = true;
  invite_state s = given_invite(d);
  auto out = claim_ok(s, claim_anonymous(1), t0);
  expect_rejected(out, rejection_reason::details_missing);
  EXPECT_EQ(out.missing_field_, "email");
  EXPECT_EQ(claim_ok(s, claim_by_email("ada@example.com", 2), t0).outcome_, claim_outcome::claimed);
}

// --- windows -------------------------------------------------------------------------

TEST(Claim, SelfPacedExpiresExactlyAtExpiresAt) {
  invite_draft d = basic_draft();
  d.expires_at_ = at("2026-06-30T12:00:00Z");
  invite_state s = given_invite(d);
  EXPECT_EQ(claim_ok(s, claim_anonymous(1), *d.expires_at_ - tick).outcome_,
            claim_outcome::claimed);
  expect_rejected(claim_ok(s, claim_anonymous(2), *d.expires_at_), rejection_reason::expired);
}

TEST(Claim, LiveEventWindowOpens24HoursBeforeStartAndClosesAtEnd) {
  invite_draft d = basic_draft();
  d.type_ = invite_type::live_event;
  d.starts_at_ = at("2026-03-10T09:00:00Z");
  d.ends_at_ = at("2026-03-10T17:00:00Z");
  invite_state s = given_invite(d);
  const timestamp opens = *d.starts_at_ - hours{24};
  expect_rejected(claim_ok(s, claim_anonymous(1), opens - tick), rejection_reason::not_open_yet);
  EXPECT_EQ(claim_ok(s, claim_anonymous(2), opens).outcome_, claim_outcome::claimed);
  EXPECT_EQ(claim_ok(s, claim_anonymous(3), *d.ends_at_ - tick).outcome_, claim_outcome::claimed);
  expect_rejected(claim_ok(s, claim_anonymous(4), *d.ends_at_), rejection_reason::expired);
}

TEST(Claim, DeactivatedAndDeletedAreRejectedAndRecorded) {
  invite_state s = given_invite(basic_draft());
  invite_state off = with_events(s, *decide(s, deactivate_invite{}, t0));
  expect_rejected(claim_ok(off, claim_anonymous(1), t0), rejection_reason::deactivated);
  invite_state on = with_events(off, *decide(off, reactivate_invite{}, t0));
  EXPECT_EQ(claim_ok(on, claim_anonymous(1), t0).outcome_, claim_outcome::claimed);
  invite_state gone = with_events(s, *decide(s, delete_invite{}, t0));
  expect_rejected(claim_ok(gone, claim_anonymous(1), t0), rejection_reason::deleted);
}

// --- access rules ----------------------------------------------------------------------

struct allowed_case {
  const char* email;
  bool allowed;
};

class AllowedAccess : public ::testing::TestWithParam<allowed_case> {};

TEST_P(AllowedAccess, EmailsAndDomainsCaseInsensitiveDomainExact) {
  invite_draft d = basic_draft();
  d.access_ = access_mode::allowed;
  d.allowed_emails_ = {"Grace@Navy.mil"};
  d.allowed_domains_ = {"Example.com"};
  invite_state s = given_invite(d);
  auto out = claim_ok(s, claim_by_email(GetParam().email, 1), t0);
  if (GetParam().allowed) {
    EXPECT_EQ(out.outcome_, claim_outcome::claimed) << GetParam().email;
  } else {
    expect_rejected(out, rejection_reason::not_allowed);
    auto e = events_of<claim_rejected>(out.events_).at(0);
    EXPECT_EQ(e.personal_data_.email_, to_lower_ascii(GetParam().email));
    EXPECT_FALSE(e.learner_id_);  // an unknown email has no learner yet
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, AllowedAccess,
                         ::testing::Values(allowed_case{"grace@navy.mil", true},
                                           allowed_case{"GRACE@NAVY.MIL", true},
                                           allowed_case{"ada@example.com", true},
                                           allowed_case{"Ada@EXAMPLE.COM", true},
                                           allowed_case{"ada@sub.example.com", false},
                                           allowed_case{"ada@example.com.evil.org", false},
                                           allowed_case{"ada@notexample.com", false},
                                           allowed_case{"grace@navy.mil.org", false},
                                           allowed_case{"hopper@navy.mil", false}));

TEST(Claim, AllowedAccessNeedsAnEmail) {
  invite_draft d = basic_draft();
  d.access_ = access_mode::allowed;
  d.allowed_domains_ = {"example.com"};
  invite_state s = given_invite(d);
  expect_rejected(claim_ok(s, claim_anonymous(1), t0), rejection_reason::details_missing);
}

invite_state lead_invite() {
  invite_draft d = basic_draft();
  d.access_ = access_mode::lead_form;
  return given_invite(d);
}

lead_form company_form() {
  return lead_form{
      {{"company", "Company", true}, {"phone", "Phone", false}, {"consent", "I agree", true}}};
}

claim_invite lead_claim(std::uint64_t n) {
  claim_invite c = claim_by_email("ada@example.com", n);
  c.first_name_ = "Ada";
  c.last_name_ = "Lovelace";
  c.lead_form_ = company_form();
  c.lead_answers_ = {{"company", "Analytical Engines"}, {"consent", "true"}, {"extra", "x"}};
  return c;
}

TEST(Claim, LeadFormCapturesDetails) {
  invite_state s = lead_invite();
  auto out = claim_ok(s, lead_claim(1), t0);
  EXPECT_EQ(out.outcome_, claim_outcome::claimed);
  EXPECT_EQ(types_of(out.events_),
            (std::vector<std::string_view>{"LearnerRegistered", "LeadCaptured", "InviteClaimed"}));
  auto lead = events_of<lead_captured>(out.events_).at(0);
  EXPECT_EQ(lead.personal_data_.email_, "ada@example.com");
  EXPECT_EQ(lead.personal_data_.first_name_, "Ada");
  EXPECT_EQ(lead.personal_data_.last_name_, "Lovelace");
  // Only answers to fields of the form are kept.
  EXPECT_EQ(
      lead.personal_data_.answers_,
      (std::map<std::string, std::string>{{"company", "Analytical Engines"}, {"consent", "true"}}));
  EXPECT_EQ(lead.invite_id_, invite_id);
  EXPECT_EQ(stream_of(event{lead}), learner_stream(id(6001)));
}

struct lead_case {
  const char* name;
  std::function<void(claim_invite&)> change;
  const char* missing;
};

class LeadFormDetails : public ::testing::TestWithParam<lead_case> {};

TEST_P(LeadFormDetails, MissingDetailsAreRejected) {
  claim_invite c = lead_claim(1);
  GetParam().change(c);
  auto out = claim_ok(lead_invite(), c, t0);
  expect_rejected(out, rejection_reason::details_missing);
  EXPECT_EQ(out.missing_field_, GetParam().missing) << GetParam().name;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, LeadFormDetails,
    ::testing::Values(
        lead_case{"no email", [](claim_invite& c) { c.email_.reset(); }, "email"},
        lead_case{"blank email", [](claim_invite& c) { c.email_ = "  "; }, "email"},
        lead_case{"no first name", [](claim_invite& c) { c.first_name_ = ""; }, "first_name"},
        lead_case{"no last name", [](claim_invite& c) { c.last_name_ = " "; }, "last_name"},
        lead_case{"required field missing",
                  [](claim_invite& c) { c.lead_answers_.erase("company"); }, "company"},
        lead_case{"required field blank", [](claim_invite& c) { c.lead_answers_["company"] = " "; },
                  "company"},
        lead_case{"consent missing", [](claim_invite& c) { c.lead_answers_.erase("consent"); },
                  "consent"},
        lead_case{"consent false", [](claim_invite& c) { c.lead_answers_["consent"] = "false"; },
                  "consent"},
        lead_case{"consent optional in stored form still required",
                  [](claim_invite& c) {
                    c.lead_form_.fields_[2].required_ = false;
                    c.lead_answers_.erase("consent");
                  },
                  "consent"}));

TEST(Claim, OptionalLeadFieldMayBeOmitted) {
  claim_invite c = lead_claim(1);
  c.lead_answers_.erase("phone");
  EXPECT_EQ(claim_ok(lead_invite(), c, t0).outcome_, claim_outcome::claimed);
}

TEST(Claim, LeadFormIsNotAskedAgainOnceSubmittedInTheOrg) {
  claim_invite c = claim_by_email("ada@example.com", 1);
  c.existing_learner_id_ = id(42);
  c.lead_already_submitted_ = true;  // on another invite of the org
  c.lead_form_ = company_form();
  auto out = claim_ok(lead_invite(), c, t0);
  EXPECT_EQ(out.outcome_, claim_outcome::claimed);
  EXPECT_EQ(types_of(out.events_), (std::vector<std::string_view>{"InviteClaimed"}));
}

TEST(Claim, KnownLearnerWhoNeverFilledTheFormLeavesDetails) {
  claim_invite c = lead_claim(1);
  c.existing_learner_id_ = id(42);
  auto out = claim_ok(lead_invite(), c, t0);
  EXPECT_EQ(types_of(out.events_),
            (std::vector<std::string_view>{"LeadCaptured", "InviteClaimed"}));
  EXPECT_EQ(events_of<lead_captured>(out.events_).at(0).learner_id_, id(42));
}

// --- claim limit and lifecycle events ------------------------------------------------------

TEST(Claim, LimitCountsUniqueLearnersAndFullIsRecorded) {
  invite_draft d = basic_draft();
  d.claim_limit_ = 2;
  invite_state s = given_invite(d);
  s = with_events(s, claim_ok(s, claim_anonymous(1), t0).events_);
  // The same learner again does not use a spot.
  EXPECT_EQ(claim_ok(s, claim_anonymous(1), t0).outcome_, claim_outcome::existing);
  s = with_events(s, claim_ok(s, claim_anonymous(2), t0).events_);
  EXPECT_EQ(s.claims_count(), 2);
  auto out = claim_ok(s, claim_anonymous(3), t0);
  expect_rejected(out, rejection_reason::full);
  s = with_events(s, out.events_);
  EXPECT_EQ(s.rejections_, 1);
  EXPECT_EQ(s.claims_count(), 2);
}

TEST(Claim, CapacityWarningOnceAtEightyPercentAndFilledOnLastSpot) {
  invite_draft d = basic_draft();
  d.claim_limit_ = 5;  // 80 % = 4 claims
  invite_state s = given_invite(d);
  std::vector<std::vector<std::string_view>> seen;
  for (std::uint64_t n = 1; n <= 5; ++n) {
    auto out = claim_ok(s, claim_anonymous(n), t0);
    seen.push_back(types_of(out.events_));
    s = with_events(s, out.events_);
  }
  using v = std::vector<std::string_view>;
  EXPECT_EQ(seen[0], v{"InviteClaimed"});
  EXPECT_EQ(seen[2], v{"InviteClaimed"});
  EXPECT_EQ(seen[3], (v{"InviteClaimed", "InviteCapacityWarning"}));
  EXPECT_EQ(seen[4], (v{"InviteClaimed", "InviteFilled"}));
  EXPECT_TRUE(s.capacity_warned_);
}

// The claims_count of each capacity warning the next `claims` anonymous claims on `s` raise
// (learners numbered on from `n`), applied to `s`.
std::vector<std::int64_t> capacity_warnings_of(invite_state& s, std::uint64_t& n, int claims) {
  std::vector<std::int64_t> at;
  for (int i = 0; i < claims; ++i) {
    auto out = claim_ok(s, claim_anonymous(++n), t0);
    for (const auto& w : events_of<invite_capacity_warning>(out.events_)) {
      at.push_back(w.claims_count_);
    }
    s = with_events(s, out.events_);
  }
  return at;
}

// An edit of the limit or the share after the warning arms it again: the admin who raises a
// warned invite's limit is warned again near the new one. Other edits do not.
TEST(Claim, CapacityWarningArmedAgainByANewLimitOrShare) {
  invite_draft d = basic_draft();
  d.claim_limit_ = 5;  // 80 % = 4 claims
  invite_state s = given_invite(d);
  std::uint64_t n = 0;
  auto warnings_of_next_claims = [&](int claims) { return capacity_warnings_of(s, n, claims); };
  using v = std::vector<std::int64_t>;
  EXPECT_EQ(warnings_of_next_claims(4), v{4});

  update_invite title;
  title.patch_.title_ = "Renamed";
  s = with_events(s, *decide(s, title, t0));
  EXPECT_EQ(warnings_of_next_claims(1), v{});  // 5 of 5: filled, not warned twice

  update_invite raise;
  raise.patch_.claim_limit_ = 20;  // 80 % = 16 claims
  s = with_events(s, *decide(s, raise, t0));
  EXPECT_EQ(warnings_of_next_claims(12), v{16});

  update_invite share;
  share.patch_.capacity_warning_percent_ = 90;  // 90 % of 20 = 18 claims
  s = with_events(s, *decide(s, share, t0));
  EXPECT_EQ(warnings_of_next_claims(3), v{18});
  EXPECT_TRUE(s.capacity_warned_);
}

// A warning per crossing of the threshold, not per limit: a limit edited 10 -> 20 -> 10
// after the warning at 10 took the claims below the warning zone and back into it, so the
// admin is warned again near 10. An edit that leaves the claims in the zone (a lower limit
// or share) is no new crossing; no limit at all lifts the warning too.
TEST(Claim, CapacityWarningOncePerCrossingOfTheThreshold) {
  invite_draft d = basic_draft();
  d.claim_limit_ = 10;  // 80 % = 8 claims
  invite_state s = given_invite(d);
  std::uint64_t n = 0;
  auto warnings_of_next_claims = [&](int claims) { return capacity_warnings_of(s, n, claims); };
  auto edit = [&](std::int64_t limit, std::optional<std::int64_t> percent = std::nullopt) {
    update_invite u;
    u.patch_.claim_limit_ = limit;
    u.patch_.capacity_warning_percent_ = percent;
    auto r = decide(s, u, t0);
    ASSERT_TRUE(r) << r.error().message_;
    s = with_events(s, *r);
  };
  using v = std::vector<std::int64_t>;
  EXPECT_EQ(warnings_of_next_claims(8), v{8});

  edit(20);  // 8 claims, below 16: the warning is lifted
  EXPECT_FALSE(s.capacity_warned_);
  edit(10);  // back in the zone: the next claim crosses again
  EXPECT_EQ(warnings_of_next_claims(1), v{9});

  edit(12);  // 9 claims, threshold ceil(9.6) = 10: the next claim crosses again
  EXPECT_EQ(warnings_of_next_claims(1), v{10});
  edit(11);  // lowered, 10 of 11 still in the zone (threshold 9): no new crossing
  EXPECT_TRUE(s.capacity_warned_);
  edit(11, 50);  // a lower share: still in the zone
  edit(11, 80);
  EXPECT_EQ(warnings_of_next_claims(1), v{});  // 11 of 11: filled, not warned twice

  edit(0);  // no limit: nothing to warn about, the warning is lifted
  EXPECT_FALSE(s.capacity_warned_);
  EXPECT_EQ(warnings_of_next_claims(1), v{});  // unlimited: never warned
  edit(13);  // 12 claims of 13, threshold 11: warned at the next claim
  EXPECT_EQ(warnings_of_next_claims(1), v{13});
}

TEST(Claim, FilledNamesTheClaimThatTookTheLastSpot) {
  invite_draft d = basic_draft();
  d.claim_limit_ = 1;
  d.capacity_warning_percent_ = 100;
  invite_state s = given_invite(d);
  auto out = claim_ok(s, claim_anonymous(9), t0);
  EXPECT_EQ(types_of(out.events_), (std::vector<std::string_view>{
                                       "InviteClaimed", "InviteCapacityWarning", "InviteFilled"}));
  auto filled = events_of<invite_filled>(out.events_).at(0);
  EXPECT_EQ(filled.claim_id_, id(5009));
  EXPECT_EQ(filled.claim_limit_, 1);
}

TEST(Claim, ConfigurableWarningShare) {
  invite_draft d = basic_draft();
  d.claim_limit_ = 10;
  d.capacity_warning_percent_ = 50;
  invite_state s = given_invite(d);
  for (std::uint64_t n = 1; n <= 5; ++n) {
    auto out = claim_ok(s, claim_anonymous(n), t0);
    EXPECT_EQ(events_of<invite_capacity_warning>(out.events_).size(), n == 5 ? 1u : 0u) << n;
    s = with_events(s, out.events_);
  }
  auto warn_once = claim_ok(s, claim_anonymous(6), t0);
  EXPECT_TRUE(events_of<invite_capacity_warning>(warn_once.events_).empty());
}

TEST(Claim, UnlimitedInviteEmitsNoCapacityEvents) {
  invite_state s = given_invite(basic_draft());
  for (std::uint64_t n = 1; n <= 20; ++n) {
    auto out = claim_ok(s, claim_anonymous(n), t0);
    EXPECT_EQ(out.events_.size(), 1u);
    s = with_events(s, out.events_);
  }
}

TEST(Claim, RejectionOrderDeletedBeforeDeactivatedBeforeWindowBeforeAccessBeforeFull) {
  invite_draft d = basic_draft();
  d.access_ = access_mode::allowed;
  d.allowed_domains_ = {"example.com"};
  d.claim_limit_ = 1;
  d.expires_at_ = t0 + hours{1};
  invite_state s = given_invite(d);
  s = with_events(s, claim_ok(s, claim_by_email("a@example.com", 1), t0).events_);
  // full vs not_allowed: the access rule is checked first.
  expect_rejected(claim_ok(s, claim_by_email("x@other.org", 2), t0), rejection_reason::not_allowed);
  expect_rejected(claim_ok(s, claim_by_email("b@example.com", 3), t0), rejection_reason::full);
  // expired wins over access and full.
  expect_rejected(claim_ok(s, claim_by_email("x@other.org", 4), t0 + hours{2}),
                  rejection_reason::expired);
  s = with_events(s, *decide(s, deactivate_invite{}, t0));
  expect_rejected(claim_ok(s, claim_by_email("x@other.org", 5), t0 + hours{2}),
                  rejection_reason::deactivated);
  s = with_events(s, *decide(s, delete_invite{}, t0));
  expect_rejected(claim_ok(s, claim_by_email("x@other.org", 6), t0 + hours{2}),
                  rejection_reason::deleted);
}

TEST(Claim, RejectionOfAKnownLearnerNamesIt) {
  invite_draft d = basic_draft();
  d.access_ = access_mode::allowed;
  d.allowed_domains_ = {"example.com"};
  invite_state s = given_invite(d);
  claim_invite c = claim_by_email("x@other.org", 1);
  c.existing_learner_id_ = id(42);
  auto out = claim_ok(s, c, t0);
  expect_rejected(out, rejection_reason::not_allowed);
  EXPECT_EQ(events_of<claim_rejected>(out.events_).at(0).learner_id_, id(42));
  EXPECT_EQ(data_subject(out.events_[0]), id(42));
}

// --- snapshots ---------------------------------------------------------------------------

TEST(Claim, EditsDeactivationAndDeletionNeverChangeExistingClaims) {
  invite_draft d = basic_draft();
  d.tracks_ = {{"linux-vm", std::nullopt}, {"k8s-basics", std::nullopt}};
  d.access_duration_ = "P30D";
  d.plays_per_track_ = 2;
  invite_state s = given_invite(d);
  auto out = claim_ok(s, claim_by_email("ada@example.com", 1), t0);
  s = with_events(s, out.events_);
  const invite_claimed claimed = events_of<invite_claimed>(out.events_).at(0);
  const claim_record before = s.claims_by_learner_.at(id(6001));

  update_invite edit;
  edit.patch_.tracks_ = std::vector<invite_track_request>{{"docker", std::nullopt}};
  edit.patch_.access_duration_ = "PT1H";
  edit.patch_.plays_per_track_ = 1;
  edit.tracks_ = catalog();
  s = with_events(s, *decide(s, edit, t0 + hours{1}));
  s = with_events(s, *decide(s, deactivate_invite{}, t0 + hours{2}));
  s = with_events(s, *decide(s, delete_invite{}, t0 + hours{3}));
  EXPECT_EQ(s.claims_by_learner_.at(id(6001)), before);

  // The claim aggregate is seeded from the InviteClaimed event alone, so nothing the invite
  // does later reaches it: plays still follow the snapshot.
  claim_state c = evolve(claim_state{}, event{claimed});
  EXPECT_EQ(c.restrictions_.plays_per_track_, 2);
  EXPECT_EQ(c.restrictions_.tracks_.size(), 2u);
  auto play = decide(c, play_track{id(6001), "linux-vm"}, t0 + hours{24 * 10});
  ASSERT_TRUE(play);
  EXPECT_EQ(types_of(*play), (std::vector<std::string_view>{"TrackPlayed"}));
}

}  // namespace
}  // namespace passage::domain
