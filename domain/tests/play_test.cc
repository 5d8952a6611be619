// PlayTrack, PauseTrack, ResumeTrack on the claim aggregate.
#include <gtest/gtest.h>

#include "domain/tests/fixtures.h"

namespace passage::domain {
namespace {

using namespace testing;
using std::chrono::hours;
using std::chrono::microseconds;

constexpr microseconds tick{1};
const timestamp t0 = at("2026-01-31T10:00:00Z");

// Given: a claim made at t0 on an invite with the given restrictions.
claim_state given_claim(const std::string& duration, std::int64_t plays, bool anonymous = false) {
  invite_draft d = basic_draft();
  d.tracks_ = {{"linux-vm", std::nullopt}, {"k8s-basics", std::nullopt}};
  d.access_duration_ = duration;
  d.plays_per_track_ = plays;
  invite_state s = given_invite(d, t0 - hours{1});
  auto out = decide(s, anonymous ? claim_anonymous(1) : claim_by_email("ada@example.com", 1), t0);
  EXPECT_TRUE(out);
  claim_state c;
  for (const auto& e : out->events_) c = evolve(std::move(c), e);
  EXPECT_TRUE(c.exists_);
  return c;
}

const uuid ada = id(6001);

claim_state then_apply(claim_state c, const domain_result<event_list>& r) {
  EXPECT_TRUE(r) << (r ? "" : r.error().message_);
  if (r) c = fold(*r, std::move(c));
  return c;
}

TEST(Play, CountsPlaysPerTrackUpToTheLimit) {
  claim_state c = given_claim("forever", 2);
  auto first = decide(c, play_track{ada, "linux-vm"}, t0);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->size(), 1u);
  auto played = std::get<track_played>((*first)[0]);
  EXPECT_EQ(played.play_number_, 1);
  EXPECT_EQ(played.claim_id_, c.claim_id_);
  EXPECT_EQ(stream_of((*first)[0]), claim_stream(c.claim_id_));
  c = fold(*first, c);
  EXPECT_EQ(plays_remaining(c, "linux-vm"), 1);
  c = then_apply(c, decide(c, play_track{ada, "linux-vm"}, t0));
  EXPECT_EQ(plays_remaining(c, "linux-vm"), 0);
  auto third = decide(c, play_track{ada, "linux-vm"}, t0);
  ASSERT_FALSE(third);
  EXPECT_EQ(third.error().code_, errc::play_limit_reached);
  // Each track has its own count.
  EXPECT_TRUE(decide(c, play_track{ada, "k8s-basics"}, t0));
  EXPECT_EQ(c.version_, 2u);
}

TEST(Play, UnlimitedPlays) {
  claim_state c = given_claim("forever", 0);
  for (int i = 0; i < 50; ++i) c = then_apply(c, decide(c, play_track{ada, "k8s-basics"}, t0));
  EXPECT_EQ(c.progress_.at("k8s-basics").plays_, 50);
  EXPECT_FALSE(plays_remaining(c, "k8s-basics"));
}

TEST(Play, AccessExpiresExactlyAtClaimedAtPlusDuration) {
  // Claimed Jan 31 with P1M: access ends Feb 28 at the same time of day.
  claim_state c = given_claim("P1M", 0);
  const timestamp expiry = at("2026-02-28T10:00:00Z");
  EXPECT_EQ(c.access_expires_at_, expiry);
  EXPECT_FALSE(access_expired(c, expiry - tick));
  EXPECT_TRUE(decide(c, play_track{ada, "linux-vm"}, expiry - tick));
  EXPECT_TRUE(access_expired(c, expiry));
  auto r = decide(c, play_track{ada, "linux-vm"}, expiry);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code_, errc::access_expired);
}

TEST(Play, ForeverNeverExpires) {
  claim_state c = given_claim("forever", 0);
  EXPECT_TRUE(decide(c, play_track{ada, "linux-vm"}, at("2999-01-01T00:00:00Z")));
}

TEST(Play, UnknownTrackOrOtherLearnerOrNoClaim) {
  claim_state c = given_claim("forever", 0);
  auto unknown = decide(c, play_track{ada, "docker"}, t0);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code_, errc::not_found);
  EXPECT_EQ(unknown.error().field_, "track_id");
  auto other = decide(c, play_track{id(1), "linux-vm"}, t0);
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code_, errc::not_found);  // not 403: the id is not confirmed
  EXPECT_EQ(other.error().field_, "claim_id");
  auto none = decide(claim_state{}, play_track{ada, "linux-vm"}, t0);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code_, errc::not_found);
}

TEST(Pause, PauseAndResumeAPausableTrack) {
  claim_state c = given_claim("forever", 1);
  c = then_apply(c, decide(c, play_track{ada, "linux-vm"}, t0));
  auto paused = decide(c, pause_track{ada, "linux-vm"}, t0 + hours{1});
  ASSERT_TRUE(paused);
  EXPECT_EQ(types_of(*paused), (std::vector<std::string_view>{"TrackPaused"}));
  c = fold(*paused, c);
  // Paused: playing again is refused, resuming is the way back (and uses no play).
  auto play = decide(c, play_track{ada, "linux-vm"}, t0 + hours{2});
  ASSERT_FALSE(play);
  EXPECT_EQ(play.error().code_, errc::invalid_state);
  auto again = decide(c, pause_track{ada, "linux-vm"}, t0 + hours{2});
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code_, errc::invalid_state);
  auto resumed = decide(c, resume_track{ada, "linux-vm"}, t0 + hours{2});
  ASSERT_TRUE(resumed);
  EXPECT_EQ(types_of(*resumed), (std::vector<std::string_view>{"TrackResumed"}));
  c = fold(*resumed, c);
  EXPECT_EQ(c.progress_.at("linux-vm").plays_, 1);
  EXPECT_FALSE(c.progress_.at("linux-vm").paused_);
  auto resume_again = decide(c, resume_track{ada, "linux-vm"}, t0 + hours{2});
  ASSERT_FALSE(resume_again);
  EXPECT_EQ(resume_again.error().code_, errc::invalid_state);
}

TEST(Pause, NotBeforeFirstPlay) {
  claim_state c = given_claim("forever", 0);
  auto r = decide(c, pause_track{ada, "linux-vm"}, t0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code_, errc::invalid_state);
}

TEST(Pause, OnlyPausableTracks) {
  claim_state c = given_claim("forever", 0);
  c = then_apply(c, decide(c, play_track{ada, "k8s-basics"}, t0));
  auto r = decide(c, pause_track{ada, "k8s-basics"}, t0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code_, errc::not_pausable);
  auto r2 = decide(c, resume_track{ada, "k8s-basics"}, t0);
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().code_, errc::not_pausable);
}

TEST(Pause, InviteMaySwitchPausingOffForAPausableTrack) {
  invite_draft d = basic_draft();
  d.tracks_ = {{"linux-vm", false}};
  invite_state s = given_invite(d, t0 - hours{1});
  auto out = decide(s, claim_by_email("ada@example.com", 1), t0);
  ASSERT_TRUE(out);
  claim_state c = fold<claim_state>(out->events_);
  c = then_apply(c, decide(c, play_track{ada, "linux-vm"}, t0));
  auto r = decide(c, pause_track{ada, "linux-vm"}, t0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code_, errc::not_pausable);
}

TEST(Pause, AnonymousLearnersCannotPauseOrResume) {
  claim_state c = given_claim("forever", 0, /*anonymous=*/true);
  const uuid anon = id(7001);
  c = then_apply(c, decide(c, play_track{anon, "linux-vm"}, t0));
  auto r = decide(c, pause_track{anon, "linux-vm"}, t0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code_, errc::not_allowed);
  auto r2 = decide(c, resume_track{anon, "linux-vm"}, t0);
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().code_, errc::not_allowed);
}

TEST(Pause, NoPauseOrResumeAfterAccessExpiry) {
  claim_state c = given_claim("PT90M", 0);
  c = then_apply(c, decide(c, play_track{ada, "linux-vm"}, t0));
  c = then_apply(c, decide(c, pause_track{ada, "linux-vm"}, t0 + hours{1}));
  const timestamp expiry = t0 + std::chrono::minutes{90};
  EXPECT_TRUE(decide(c, resume_track{ada, "linux-vm"}, expiry - tick));
  auto r = decide(c, resume_track{ada, "linux-vm"}, expiry);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code_, errc::access_expired);
}

TEST(Play, RebuildingTheClaimFromItsEventsGivesTheSameState) {
  invite_draft d = basic_draft();
  d.tracks_ = {{"linux-vm", std::nullopt}};
  invite_state s = given_invite(d, t0 - hours{1});
  auto out = decide(s, claim_by_email("ada@example.com", 1), t0);
  ASSERT_TRUE(out);
  event_list all = out->events_;
  claim_state c = fold<claim_state>(all);
  for (int i = 0; i < 3; ++i) {
    auto p = decide(c, play_track{ada, "linux-vm"}, t0);
    ASSERT_TRUE(p);
    all.insert(all.end(), p->begin(), p->end());
    c = fold(*p, c);
  }
  EXPECT_EQ(fold<claim_state>(all), c);
  EXPECT_EQ(c.version_, 3u);
}

}  // namespace
}  // namespace passage::domain
