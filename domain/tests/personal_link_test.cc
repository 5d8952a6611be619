// Claims through personal links (private invitations): only for the addressee, only while
// the link is current, and a claimed link is bound to its learner.
#include <gtest/gtest.h>

#include "domain/tests/fixtures.h"

namespace passage::domain {
namespace {

using namespace testing;

const timestamp t0 = at("2026-02-01T10:00:00Z");

// Given: an allowed invite (listing only example.org) with invitations to ada and bob.
invite_state invited() {
  invite_draft d = basic_draft();
  d.access_ = access_mode::allowed;
  d.allowed_domains_ = {"example.org"};
  invite_state s = given_invite(d);
  s = with_events(s, *decide(s, send_private_invitation{id(900), id(901), "ada@example.com"}, t0));
  s = with_events(s, *decide(s, send_private_invitation{id(900), id(902), "bob@example.com"}, t0));
  return s;
}

claim_invite by_link(const uuid& invitation, std::uint64_t n) {
  claim_invite c;
  c.claim_id_ = id(5000 + n);
  c.new_learner_id_ = id(6000 + n);
  c.anonymous_learner_id_ = id(7000 + n);
  c.invitation_id_ = invitation;
  return c;
}

claim_decision claimed(const invite_state& s, const claim_invite& c) {
  auto r = decide(s, c, t0);
  EXPECT_TRUE(r.has_value());
  return r ? *r : claim_decision{};
}

TEST(PersonalLink, ClaimsForTheAddresseeEvenOutsideTheAccessList) {
  auto d = claimed(invited(), by_link(id(901), 1));
  ASSERT_EQ(d.outcome_, claim_outcome::claimed);
  auto claims = events_of<invite_claimed>(d.events_);
  ASSERT_EQ(claims.size(), 1u);
  EXPECT_EQ(claims[0].personal_data_.email_, "ada@example.com");
  EXPECT_EQ(claims[0].learner_id_, id(6001));
  EXPECT_EQ(events_of<learner_registered>(d.events_).at(0).personal_data_.email_,
            "ada@example.com");
}

TEST(PersonalLink, AnotherEmailThanTheAddresseeIsNotAllowed) {
  auto c = by_link(id(901), 1);
  c.email_ = "mallory@example.org";  // on the access list, but not ada
  auto d = claimed(invited(), c);
  EXPECT_EQ(d.outcome_, claim_outcome::rejected);
  EXPECT_EQ(d.rejection_, rejection_reason::not_allowed);
  c.email_ = "ADA@example.com";  // the addressee, written differently
  EXPECT_EQ(claimed(invited(), c).outcome_, claim_outcome::claimed);
}

TEST(PersonalLink, UnknownOrReplacedLinkIsNotAllowed) {
  invite_state s = invited();
  EXPECT_EQ(claimed(s, by_link(id(999), 1)).rejection_, rejection_reason::not_allowed);
  send_private_invitation renew{id(903), id(904), "ada@example.com"};
  renew.on_existing_ = on_existing_invitation::create_new;
  s = with_events(s, *decide(s, renew, t0));
  EXPECT_EQ(claimed(s, by_link(id(901), 1)).rejection_, rejection_reason::not_allowed);
  EXPECT_EQ(claimed(s, by_link(id(904), 1)).outcome_, claim_outcome::claimed);
}

TEST(PersonalLink, ResentLinkStillClaims) {
  invite_state s = invited();
  s = with_events(s, *decide(s, send_private_invitation{id(903), id(905), "ada@example.com"}, t0));
  EXPECT_EQ(s.private_invitations_.at("ada@example.com"), id(901));
  EXPECT_EQ(claimed(s, by_link(id(901), 1)).outcome_, claim_outcome::claimed);
}

TEST(PersonalLink, AClaimedLinkAnswersOnlyItsLearner) {
  invite_state s = invited();
  auto first = claimed(s, by_link(id(901), 1));
  s = with_events(s, first.events_);
  const uuid ada = id(6001);

  auto forwarded = by_link(id(901), 2);
  forwarded.existing_learner_id_ = ada;  // the app looks the email up: ada exists now
  auto d = claimed(s, forwarded);
  EXPECT_EQ(d.outcome_, claim_outcome::rejected);
  EXPECT_EQ(d.rejection_, rejection_reason::not_allowed);

  forwarded.presented_learner_id_ = id(6002);  // another learner's token
  EXPECT_EQ(claimed(s, forwarded).outcome_, claim_outcome::rejected);

  forwarded.presented_learner_id_ = ada;  // ada's own browser
  auto again = claimed(s, forwarded);
  EXPECT_EQ(again.outcome_, claim_outcome::existing);
  EXPECT_EQ(again.claim_->claim_id_, id(5001));
}

// Someone who read the code and the addressee's email off a forwarded mail cannot get
// the addressee's claim (and learner token) by claiming with that email by code.
TEST(PersonalLink, TheAddresseesEmailByCodeAnswersOnlyItsLearner) {
  invite_state s = invited();
  s = with_events(s, claimed(s, by_link(id(901), 1)).events_);
  const uuid ada = id(6001);

  claim_invite by_code;
  by_code.claim_id_ = id(5003);
  by_code.new_learner_id_ = id(6003);
  by_code.email_ = "ada@example.com";
  by_code.existing_learner_id_ = ada;
  auto d = claimed(s, by_code);
  EXPECT_EQ(d.outcome_, claim_outcome::rejected);
  EXPECT_EQ(d.rejection_, rejection_reason::not_allowed);

  by_code.presented_learner_id_ = ada;  // ada's own browser
  EXPECT_EQ(claimed(s, by_code).outcome_, claim_outcome::existing);
}

TEST(PersonalLink, LinksDoNotBypassTheInviteState) {
  invite_state s = invited();
  s = with_events(s, *decide(s, deactivate_invite{}, t0));
  EXPECT_EQ(claimed(s, by_link(id(901), 1)).rejection_, rejection_reason::deactivated);
}

TEST(PersonalLink, OtherInvitationsLinkToTheirOwnAddressee) {
  auto d = claimed(invited(), by_link(id(902), 1));
  ASSERT_EQ(d.outcome_, claim_outcome::claimed);
  EXPECT_EQ(events_of<invite_claimed>(d.events_).at(0).personal_data_.email_, "bob@example.com");
}

}  // namespace
}  // namespace passage::domain
