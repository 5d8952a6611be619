// Set-password links and the password policy: issued with a claim's registration, used
// once, replaced by a newer link, expired after 7 days, dead once the learner is forgotten.
#include <gtest/gtest.h>

#include "domain/invite.h"
#include "domain/learner.h"
#include "domain/password.h"
#include "domain/tests/fixtures.h"

namespace passage::domain {
namespace {

using namespace testing;

const timestamp t0 = at("2026-02-01T10:00:00Z");
const std::string hash_a = "scrypt$a";
const std::string hash_b = "scrypt$b";

// A learner registered by a claim that issued the setup link id(90).
learner_state registered_by_claim() {
  auto open = given_invite(basic_draft());
  claim_invite c = claim_by_email("Ada@Example.com", 1);
  c.new_password_setup_id_ = id(90);
  auto d = decide(open, c, t0);
  EXPECT_TRUE(d);
  if (!d) return {};
  learner_state s;
  for (const auto& e : d->events_) {
    if (stream_of(e) == learner_stream(id(6001))) s = evolve(std::move(s), e);
  }
  return s;
}

TEST(PasswordSetup, AClaimThatRegistersALearnerIssuesASevenDayLink) {
  auto open = given_invite(basic_draft());
  claim_invite c = claim_by_email("Ada@Example.com", 1);
  c.new_password_setup_id_ = id(90);
  auto d = decide(open, c, t0);
  ASSERT_TRUE(d);
  const password_setup_issued* issued = nullptr;
  for (const auto& e : d->events_)
    if (auto* p = std::get_if<password_setup_issued>(&e)) issued = p;
  ASSERT_NE(issued, nullptr);
  EXPECT_EQ(issued->setup_id_, id(90));
  EXPECT_EQ(issued->learner_id_, id(6001));
  EXPECT_EQ(issued->invite_id_, invite_id);
  EXPECT_EQ(issued->expires_at_, t0 + std::chrono::hours(24 * 7));
  EXPECT_EQ(issued->personal_data_.email_, "ada@example.com");
  EXPECT_EQ(stream_of(event{*issued}), learner_stream(id(6001)));
  EXPECT_EQ(data_subject(event{*issued}), id(6001));

  // A returning learner registers nothing and gets no link.
  auto after = with_events(open, d->events_);
  claim_invite again = claim_by_email("ada@example.com", 2);
  again.existing_learner_id_ = id(6001);
  again.new_password_setup_id_ = id(91);
  auto d2 = decide(after, again, t0);
  ASSERT_TRUE(d2);
  for (const auto& e : d2->events_) EXPECT_FALSE(std::holds_alternative<password_setup_issued>(e));
}

TEST(PasswordSetup, TheLinkSetsThePasswordOnce) {
  auto s = registered_by_claim();
  ASSERT_TRUE(s.exists_);
  EXPECT_TRUE(s.must_change_password_);
  auto set = decide(s, set_password{id(90), hash_a}, t0 + std::chrono::hours(1));
  ASSERT_TRUE(set);
  ASSERT_EQ(set->size(), 1u);
  const auto& e = std::get<learner_password_set>(set->front());
  EXPECT_EQ(e.personal_data_.password_hash_, hash_a);
  EXPECT_TRUE(e.personal_data_.email_.empty());
  EXPECT_EQ(data_subject(set->front()), s.learner_id_);
  s = fold(*set, s);
  EXPECT_FALSE(s.must_change_password_);
  EXPECT_EQ(s.password_hash_, hash_a);
  auto again = decide(s, set_password{id(90), hash_b}, t0 + std::chrono::hours(2));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code_, errc::token_used);
}

TEST(PasswordSetup, TheLinkExpiresAfterSevenDays) {
  auto s = registered_by_claim();
  const auto deadline = t0 + std::chrono::hours(24 * 7);
  EXPECT_TRUE(decide(s, set_password{id(90), hash_a}, deadline - std::chrono::microseconds(1)));
  auto late = decide(s, set_password{id(90), hash_a}, deadline);
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code_, errc::token_expired);
}

TEST(PasswordSetup, ANewerLinkReplacesTheOldOne) {
  auto s = registered_by_claim();
  auto reissued = decide(s, issue_password_setup{id(91), std::nullopt}, t0 + std::chrono::hours(3));
  ASSERT_TRUE(reissued);
  const auto& e = std::get<password_setup_issued>(reissued->front());
  EXPECT_EQ(e.expires_at_, t0 + std::chrono::hours(3 + 24 * 7));
  EXPECT_EQ(e.personal_data_.email_, "ada@example.com");
  s = fold(*reissued, s);
  auto old = decide(s, set_password{id(90), hash_a}, t0 + std::chrono::hours(4));
  ASSERT_FALSE(old);
  EXPECT_EQ(old.error().code_, errc::token_replaced);
  EXPECT_TRUE(decide(s, set_password{id(91), hash_a}, t0 + std::chrono::hours(4)));

  // A used link is replaced too: a new one sets the password again.
  s = fold(*decide(s, set_password{id(91), hash_a}, t0), s);
  s = fold(*decide(s, issue_password_setup{id(92), std::nullopt}, t0), s);
  auto set = decide(s, set_password{id(92), hash_b}, t0);
  ASSERT_TRUE(set);
  EXPECT_EQ(fold(*set, s).password_hash_, hash_b);
}

TEST(PasswordSetup, NoLinkWorksForAForgottenOrUnknownLearner) {
  EXPECT_EQ(decide(learner_state{}, set_password{id(90), hash_a}, t0).error().code_,
            errc::token_invalid);
  auto s = registered_by_claim();
  s = fold(*decide(s, set_password{id(90), hash_a}, t0), s);
  s = fold(*decide(s, forget_learner{}, t0), s);
  EXPECT_TRUE(s.password_hash_.empty()) << "forgetting drops the hash";
  EXPECT_EQ(decide(s, set_password{id(90), hash_a}, t0).error().code_, errc::token_invalid);
  EXPECT_EQ(decide(s, issue_password_setup{id(93), std::nullopt}, t0).error().code_,
            errc::forgotten);
  // A learner registered without a claim has no link to use.
  auto plain = fold<learner_state>(
      *decide(learner_state{}, register_learner{org, id(50), "b@c.de", "", ""}, t0));
  EXPECT_EQ(decide(plain, set_password{id(90), hash_a}, t0).error().code_, errc::token_invalid);
}

TEST(PasswordPolicy, LengthAndUtf8) {
  EXPECT_TRUE(check_password_policy("correct horse"));
  EXPECT_TRUE(check_password_policy(std::string(256, 'x')));
  EXPECT_TRUE(check_password_policy("pässwörtchen"));  // 12 characters, 14 bytes
  // 9 characters in 18 bytes: characters count, not bytes.
  EXPECT_FALSE(check_password_policy("ééééééééé"));
  EXPECT_FALSE(check_password_policy("short"));
  EXPECT_FALSE(check_password_policy(std::string(257, 'x')));
  EXPECT_FALSE(check_password_policy(std::string("abcdefghij\xff", 11)));          // not UTF-8
  EXPECT_FALSE(check_password_policy(std::string("abcdefghij\xc0\xaf", 12)));      // overlong
  EXPECT_FALSE(check_password_policy(std::string("abcdefghij\xed\xa0\x80", 13)));  // surrogate
  EXPECT_FALSE(check_password_policy(std::string("abcde\nfghijk")));  // control character
  EXPECT_FALSE(check_password_policy(std::string("abcdefghij\0k", 12)));
  auto err = check_password_policy("short").error();
  EXPECT_EQ(err.code_, errc::invalid_request);
  EXPECT_EQ(err.field_, "password");
}

}  // namespace
}  // namespace passage::domain
