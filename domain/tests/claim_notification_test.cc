// Claim notifications: the API key that creates an invite is recorded, keys may carry a
// contact email, and notify_on_claim needs the creating key to have one.
#include <gtest/gtest.h>

#include "domain/organization.h"
#include "domain/tests/fixtures.h"

namespace passage::domain {
namespace {

using namespace testing;

const timestamp t0 = at("2026-02-01T10:00:00Z");
const uuid creator = id(77);

invite_draft notifying_draft() {
  invite_draft d = basic_draft();
  d.notify_on_claim_ = true;
  return d;
}

create_invite creating(invite_draft d, bool creator_has_email) {
  create_invite c{org, invite_id, "AB2K7MZ", std::move(d), catalog()};
  c.created_by_ = creator;
  c.creator_has_email_ = creator_has_email;
  return c;
}

TEST(ClaimNotification, CreateRecordsTheCreatingKeyAndTheSetting) {
  auto r = decide(invite_state{}, creating(notifying_draft(), true), t0);
  ASSERT_TRUE(r) << r.error().message_;
  const auto& e = std::get<invite_created>(r->at(0));
  EXPECT_EQ(e.created_by_, creator);
  EXPECT_TRUE(e.settings_.notify_on_claim_);
  invite_state s = fold<invite_state>(*r);
  EXPECT_EQ(s.created_by_, creator);
  EXPECT_TRUE(s.settings_.notify_on_claim_);
}

TEST(ClaimNotification, DefaultIsOffAndNeedsNoEmail) {
  auto r = decide(invite_state{}, creating(basic_draft(), false), t0);
  ASSERT_TRUE(r);
  EXPECT_FALSE(std::get<invite_created>(r->at(0)).settings_.notify_on_claim_);
}

TEST(ClaimNotification, TurningItOnWithoutACreatorEmailIsRefused) {
  // Create.
  auto r = decide(invite_state{}, creating(notifying_draft(), false), t0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code_, errc::notify_email_missing);
  EXPECT_EQ(r.error().field_, "notify_on_claim");
  EXPECT_EQ(to_string(r.error().code_), "notify_email_missing");

  // Edit: turning it on is checked; other edits of a notifying invite are not.
  invite_state off =
      with_events(invite_state{}, *decide(invite_state{}, creating(basic_draft(), false), t0));
  update_invite on;
  on.patch_.notify_on_claim_ = true;
  auto refused = decide(off, on, t0);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code_, errc::notify_email_missing);
  on.creator_has_email_ = true;
  auto turned = decide(off, on, t0);
  ASSERT_TRUE(turned) << turned.error().message_;
  const auto& u = std::get<invite_updated>(turned->at(0));
  EXPECT_EQ(u.changed_fields_, (std::vector<std::string>{"notify_on_claim"}));
  invite_state notifying = with_events(off, *turned);
  update_invite title;
  title.patch_.title_ = "Renamed";
  EXPECT_TRUE(decide(notifying, title, t0));
  update_invite again;  // already on: nothing to record, nothing to check
  again.patch_.notify_on_claim_ = true;
  auto same = decide(notifying, again, t0);
  ASSERT_TRUE(same);
  EXPECT_TRUE(same->empty());
  update_invite stop;
  stop.patch_.notify_on_claim_ = false;
  EXPECT_TRUE(decide(notifying, stop, t0));

  // Duplicate: the duplicating key becomes the creator and needs an email to copy it on.
  auto refused_copy = decide(notifying, duplicate_invite{id(3000), "ZZZZZZZ", id(5), false}, t0);
  ASSERT_FALSE(refused_copy);
  EXPECT_EQ(refused_copy.error().code_, errc::notify_email_missing);
  auto copy = decide(notifying, duplicate_invite{id(3000), "ZZZZZZZ", id(5), true}, t0);
  ASSERT_TRUE(copy);
  const auto& c = std::get<invite_created>(copy->at(0));
  EXPECT_EQ(c.created_by_, id(5));
  EXPECT_TRUE(c.settings_.notify_on_claim_);
  // A copy of an invite that does not notify needs no email.
  EXPECT_TRUE(decide(off, duplicate_invite{id(3000), "ZZZZZZZ", id(5), false}, t0));
}

TEST(ClaimNotification, ApiKeysCarryAValidatedContactEmail) {
  auto org_events =
      decide(organization_state{},
             create_organization{org, "Acme", id(1), "first", std::string(64, 'a')}, t0);
  ASSERT_TRUE(org_events);
  organization_state s = fold<organization_state>(*org_events);
  EXPECT_FALSE(s.api_keys_.at(id(1)).email_);

  const std::string hash(64, 'b');
  auto r = decide(s, issue_api_key{id(2), role::professor, "prof", hash, " Prof@Example.ORG "}, t0);
  ASSERT_TRUE(r) << r.error().message_;
  EXPECT_EQ(std::get<api_key_issued>(r->at(0)).email_, "prof@example.org");
  for (const auto& e : *r) s = evolve(std::move(s), e);
  EXPECT_EQ(s.api_keys_.at(id(2)).email_, "prof@example.org");

  for (const char* bad : {"", "prof", "prof@", "a b@example.org", "prof@example"}) {
    auto refused = decide(s, issue_api_key{id(3), role::admin, "x", hash, bad}, t0);
    ASSERT_FALSE(refused) << bad;
    EXPECT_EQ(refused.error().field_, "email") << bad;
  }
  auto without = decide(s, issue_api_key{id(3), role::admin, "x", hash, std::nullopt}, t0);
  ASSERT_TRUE(without);
  EXPECT_FALSE(std::get<api_key_issued>(without->at(0)).email_);
}

}  // namespace
}  // namespace passage::domain
