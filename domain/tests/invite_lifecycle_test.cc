// Invite lifecycle: create, edit, deactivate <-> reactivate, delete (final), duplicate,
// expire (once), private invitations.
#include <gtest/gtest.h>

#include "domain/tests/fixtures.h"

namespace passage::domain {
namespace {

using namespace testing;
using std::chrono::hours;
using std::chrono::microseconds;

const timestamp t0 = at("2026-02-01T10:00:00Z");

TEST(InviteLifecycle, CreateEmitsInviteCreated) {
  auto r = decide(invite_state{},
                  create_invite{org, invite_id, "AB2K7MZ", basic_draft(), catalog()}, t0);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 1u);
  const auto& e = std::get<invite_created>((*r)[0]);
  EXPECT_EQ(e.code_, "AB2K7MZ");
  EXPECT_EQ(e.created_at_, t0);
  EXPECT_FALSE(e.duplicated_from_);
  EXPECT_EQ(stream_of((*r)[0]), "invite-" + invite_id.to_string());
  invite_state s = fold<invite_state>(*r);
  EXPECT_TRUE(s.exists_);
  EXPECT_EQ(s.version_, 1u);
  EXPECT_EQ(status_at(s, t0).status_, invite_status::active);
}

TEST(InviteLifecycle, CreateTwiceIsAlreadyExists) {
  invite_state s = given_invite(basic_draft());
  auto r = decide(s, create_invite{org, invite_id, "AB2K7MZ", basic_draft(), catalog()}, t0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code_, errc::already_exists);
}

TEST(InviteLifecycle, EditRecordsFullSettingsAndChangedFields) {
  invite_state s = given_invite(basic_draft());
  update_invite u;
  u.patch_.title_ = "Kubernetes 102";
  u.patch_.claim_limit_ = 10;
  u.patch_.tracks_ = std::vector<invite_track_request>{{"docker", std::nullopt}};
  u.tracks_ = catalog();
  auto r = decide(s, u, t0);
  ASSERT_TRUE(r);
  const auto& e = std::get<invite_updated>(r->at(0));
  EXPECT_EQ(e.changed_fields_, (std::vector<std::string>{"title", "tracks", "claim_limit"}));
  EXPECT_EQ(e.settings_.title_, "Kubernetes 102");
  EXPECT_EQ(e.settings_.tracks_, (std::vector<invite_track>{{"docker", true}}));
  s = with_events(s, *r);
  EXPECT_EQ(s.settings_.claim_limit_, 10);
  EXPECT_EQ(s.version_, 2u);
}

TEST(InviteLifecycle, EditValidatesLikeCreate) {
  invite_state s = given_invite(basic_draft());
  update_invite u;
  u.patch_.type_ = invite_type::live_event;  // needs starts_at and ends_at
  auto r = decide(s, u, t0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field_, "starts_at");
  u.patch_.starts_at_ = at("2026-03-01T09:00:00Z");
  u.patch_.ends_at_ = at("2026-03-01T08:00:00Z");
  r = decide(s, u, t0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field_, "ends_at");
  update_invite blank;
  blank.patch_.title_ = " ";
  r = decide(s, blank, t0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field_, "title");
  update_invite dur;
  dur.patch_.access_duration_ = "P1X";
  r = decide(s, dur, t0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field_, "access_duration");
}

TEST(InviteLifecycle, EditCanSwitchTypeAndClearInstants) {
  invite_draft d = basic_draft();
  d.expires_at_ = at("2026-12-31T00:00:00Z");
  invite_state s = given_invite(d);
  update_invite u;
  u.patch_.type_ = invite_type::live_event;
  u.patch_.expires_at_ = std::optional<timestamp>{};  // clear
  u.patch_.starts_at_ = at("2026-03-01T09:00:00Z");
  u.patch_.ends_at_ = at("2026-03-01T17:00:00Z");
  auto r = decide(s, u, t0);
  ASSERT_TRUE(r) << r.error().field_;
  s = with_events(s, *r);
  EXPECT_EQ(s.settings_.type_, invite_type::live_event);
  EXPECT_FALSE(s.settings_.expires_at_);
}

TEST(InviteLifecycle, UnchangedEditIsANoOp) {
  invite_state s = given_invite(basic_draft());
  update_invite u;
  u.patch_.title_ = s.settings_.title_;
  auto r = decide(s, u, t0);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->empty());
}

TEST(InviteLifecycle, StaleVersionIsAConflict) {
  invite_state s = given_invite(basic_draft());
  update_invite u;
  u.patch_.title_ = "New";
  u.expected_version_ = 2;
  auto r = decide(s, u, t0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code_, errc::version_conflict);
  u.expected_version_ = 1;
  EXPECT_TRUE(decide(s, u, t0));
  EXPECT_EQ(decide(s, deactivate_invite{5}, t0).error().code_, errc::version_conflict);
  EXPECT_EQ(decide(s, delete_invite{0}, t0).error().code_, errc::version_conflict);
}

TEST(InviteLifecycle, UnchangedTracksAreKeptEvenIfTheCatalogChanged) {
  invite_draft d = basic_draft();
  d.tracks_ = {{"linux-vm", true}};
  invite_state s = given_invite(d);
  update_invite u;
  u.patch_.title_ = "Renamed";
  u.tracks_ = {};  // linux-vm no longer known/pausable: irrelevant, tracks not edited
  auto r = decide(s, u, t0);
  ASSERT_TRUE(r);
  EXPECT_EQ(std::get<invite_updated>(r->at(0)).settings_.tracks_, s.settings_.tracks_);
}

TEST(InviteLifecycle, DeactivateReactivateAreReversibleAndIdempotent) {
  invite_state s = given_invite(basic_draft());
  auto off = decide(s, deactivate_invite{}, t0);
  ASSERT_TRUE(off);
  EXPECT_EQ(types_of(*off), (std::vector<std::string_view>{"InviteDeactivated"}));
  s = with_events(s, *off);
  EXPECT_EQ(status_at(s, t0).status_, invite_status::deactivated);
  EXPECT_TRUE(decide(s, deactivate_invite{}, t0)->empty());
  auto on = decide(s, reactivate_invite{}, t0);
  ASSERT_TRUE(on);
  EXPECT_EQ(types_of(*on), (std::vector<std::string_view>{"InviteReactivated"}));
  s = with_events(s, *on);
  EXPECT_EQ(status_at(s, t0).status_, invite_status::active);
  EXPECT_TRUE(decide(s, reactivate_invite{}, t0)->empty());
  // Edits are allowed while deactivated.
  s = with_events(s, *decide(s, deactivate_invite{}, t0));
  update_invite u;
  u.patch_.title_ = "Edited while off";
  EXPECT_TRUE(decide(s, u, t0));
}

TEST(InviteLifecycle, DeleteIsFinal) {
  invite_state s = given_invite(basic_draft());
  auto del = decide(s, delete_invite{}, t0);
  ASSERT_TRUE(del);
  EXPECT_EQ(types_of(*del), (std::vector<std::string_view>{"InviteDeleted"}));
  s = with_events(s, *del);
  EXPECT_EQ(status_at(s, t0).status_, invite_status::deleted);
  update_invite u;
  u.patch_.title_ = "x";
  EXPECT_EQ(decide(s, u, t0).error().code_, errc::deleted);
  EXPECT_EQ(decide(s, deactivate_invite{}, t0).error().code_, errc::deleted);
  EXPECT_EQ(decide(s, reactivate_invite{}, t0).error().code_, errc::deleted);
  EXPECT_EQ(decide(s, delete_invite{}, t0).error().code_, errc::deleted);
  EXPECT_EQ(decide(s, duplicate_invite{id(3), "ZZZZZZZ"}, t0).error().code_, errc::deleted);
  EXPECT_EQ(decide(s, expire_invite{}, t0).error().code_, errc::deleted);
  EXPECT_EQ(decide(s, send_private_invitation{id(1), id(2), "a@example.com"}, t0).error().code_,
            errc::deleted);
}

TEST(InviteLifecycle, CommandsOnAMissingInviteAreNotFound) {
  invite_state none;
  EXPECT_EQ(decide(none, update_invite{}, t0).error().code_, errc::not_found);
  EXPECT_EQ(decide(none, deactivate_invite{}, t0).error().code_, errc::not_found);
  EXPECT_EQ(decide(none, delete_invite{}, t0).error().code_, errc::not_found);
  EXPECT_EQ(decide(none, duplicate_invite{id(3), "ZZZZZZZ"}, t0).error().code_, errc::not_found);
  EXPECT_EQ(decide(none, expire_invite{}, t0).error().code_, errc::not_found);
}

TEST(InviteLifecycle, DuplicateCopiesSettingsWithNewIdCodeAndNoClaims) {
  invite_draft d = basic_draft();
  d.claim_limit_ = 1;
  invite_state s = given_invite(d);
  s = with_events(s, decide(s, claim_anonymous(1), t0)->events_);
  s = with_events(s, *decide(s, deactivate_invite{}, t0));
  auto r = decide(s, duplicate_invite{id(3000), "ZZZZZZZ"}, t0 + hours{1});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 1u);
  const auto& e = std::get<invite_created>(r->at(0));
  EXPECT_EQ(e.invite_id_, id(3000));
  EXPECT_EQ(e.code_, "ZZZZZZZ");
  EXPECT_EQ(e.duplicated_from_, invite_id);
  EXPECT_EQ(e.settings_.title_, "Kubernetes 101 workshop (Copy)");
  invite_settings expected = s.settings_;
  expected.title_ += " (Copy)";
  EXPECT_EQ(e.settings_, expected);
  EXPECT_EQ(stream_of(r->at(0)), invite_stream(id(3000)));
  invite_state copy = fold<invite_state>(*r);
  EXPECT_EQ(copy.claims_count(), 0);
  EXPECT_FALSE(copy.deactivated_);
  EXPECT_EQ(status_at(copy, t0).status_, invite_status::active);
  // The source is untouched.
  EXPECT_EQ(s.claims_count(), 1);
}

// A title near the limit is cut (whole characters) so the copy's title fits and the copy
// can be edited; before, every edit of such a copy was refused ("title is longer than 200").
TEST(InviteLifecycle, DuplicateOfALongTitleStaysEditable) {
  invite_draft d = basic_draft();
  // 190 ASCII bytes then "é" (2 bytes) at bytes 190-191 and at 192-193, then 6 more: the
  // cut at 193 (200 - 7) falls inside the second "é".
  d.title_ = std::string(190, 'a') + "\xc3\xa9\xc3\xa9" + std::string(6, 'b');
  ASSERT_EQ(d.title_.size(), 200u);
  invite_state s = given_invite(d);
  auto r = decide(s, duplicate_invite{id(3000), "ZZZZZZZ"}, t0);
  ASSERT_TRUE(r);
  const auto& e = std::get<invite_created>(r->at(0));
  EXPECT_EQ(e.settings_.title_, std::string(190, 'a') + "\xc3\xa9 (Copy)");
  invite_state copy = fold<invite_state>(*r);
  update_invite edit;
  edit.patch_.claim_limit_ = 5;
  auto edited = decide(copy, edit, t0);
  ASSERT_TRUE(edited) << edited.error().message_;
  // A short title keeps all of it.
  EXPECT_EQ(
      std::get<invite_created>(
          decide(given_invite(basic_draft()), duplicate_invite{id(3001), "ZZZZZZY"}, t0)->at(0))
          .settings_.title_,
      "Kubernetes 101 workshop (Copy)");
}

TEST(InviteLifecycle, DuplicateNeedsAFreshIdAndCode) {
  invite_state s = given_invite(basic_draft());
  EXPECT_EQ(decide(s, duplicate_invite{invite_id, "ZZZZZZZ"}, t0).error().field_, "id");
  EXPECT_EQ(decide(s, duplicate_invite{id(3), "AB2K7MZ"}, t0).error().field_, "code");
  EXPECT_EQ(decide(s, duplicate_invite{id(3), "bad"}, t0).error().field_, "code");
}

TEST(InviteLifecycle, ExpireOnlyAtOrAfterTheDeadlineAndOnce) {
  invite_draft d = basic_draft();
  d.expires_at_ = at("2026-06-30T12:00:00Z");
  invite_state s = given_invite(d);
  auto early = decide(s, expire_invite{}, *d.expires_at_ - microseconds{1});
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().code_, errc::invalid_state);
  auto r = decide(s, expire_invite{}, *d.expires_at_);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 1u);
  const auto& e = std::get<invite_expired>(r->at(0));
  EXPECT_EQ(e.expired_at_, *d.expires_at_);
  EXPECT_EQ(e.detected_at_, *d.expires_at_);
  s = with_events(s, *r);
  EXPECT_TRUE(decide(s, expire_invite{}, *d.expires_at_ + hours{5})->empty());

  // Extending the deadline re-arms it: InviteExpired is emitted once per deadline.
  update_invite u;
  u.patch_.expires_at_ = at("2026-07-31T12:00:00Z");
  s = with_events(s, *decide(s, u, *d.expires_at_ + hours{6}));
  EXPECT_EQ(status_at(s, *d.expires_at_ + hours{6}).status_, invite_status::active);
  EXPECT_EQ(decide(s, expire_invite{}, at("2026-07-31T12:00:00Z"))->size(), 1u);
}

TEST(InviteLifecycle, LiveEventExpiresAtEndsAt) {
  invite_draft d = basic_draft();
  d.type_ = invite_type::live_event;
  d.starts_at_ = at("2026-03-10T09:00:00Z");
  d.ends_at_ = at("2026-03-10T17:00:00Z");
  invite_state s = given_invite(d);
  EXPECT_FALSE(decide(s, expire_invite{}, *d.ends_at_ - microseconds{1}));
  auto r = decide(s, expire_invite{}, *d.ends_at_);
  ASSERT_TRUE(r);
  EXPECT_EQ(std::get<invite_expired>(r->at(0)).expired_at_, *d.ends_at_);
}

TEST(InviteLifecycle, NeverExpiringInviteCannotBeExpired) {
  invite_state s = given_invite(basic_draft());
  auto r = decide(s, expire_invite{}, at("2999-01-01T00:00:00Z"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code_, errc::invalid_state);
}

TEST(InviteLifecycle, PrivateInvitationsNeedAccessAllowed) {
  invite_state s = given_invite(basic_draft());
  auto r = decide(s, send_private_invitation{id(900), id(901), "ada@example.com"}, t0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code_, errc::invalid_state);
  EXPECT_EQ(r.error().field_, "access");
}

TEST(InviteLifecycle, PrivateInvitationsResendOrCreateNewLinks) {
  invite_draft d = basic_draft();
  d.access_ = access_mode::allowed;
  d.allowed_domains_ = {"example.org"};
  invite_state s = given_invite(d);
  send_private_invitation first{id(900), id(901), "Ada@Example.com"};
  auto r = decide(s, first, t0);
  ASSERT_TRUE(r);
  auto e = std::get<private_invitation_sent>(r->at(0));
  EXPECT_EQ(e.invitation_id_, id(901));
  EXPECT_FALSE(e.resent_);
  EXPECT_EQ(e.personal_data_.email_, "ada@example.com");
  s = with_events(s, *r);

  send_private_invitation resend{id(902), id(903), "ada@example.com"};
  auto again = std::get<private_invitation_sent>(decide(s, resend, t0)->at(0));
  EXPECT_EQ(again.invitation_id_, id(901));
  EXPECT_TRUE(again.resent_);

  resend.on_existing_ = on_existing_invitation::create_new;
  auto fresh = std::get<private_invitation_sent>(decide(s, resend, t0)->at(0));
  EXPECT_EQ(fresh.invitation_id_, id(903));
  EXPECT_FALSE(fresh.resent_);
  auto renewed = with_events(s, event_list{fresh});
  EXPECT_EQ(renewed.personal_links_.count(id(901)), 0u);  // the old link stops working
  EXPECT_EQ(renewed.personal_links_.at(id(903)), "ada@example.com");
  EXPECT_EQ(renewed.private_invitations_.at("ada@example.com"), id(903));

  EXPECT_FALSE(fresh.remind_at_);
  resend.remind_after_ = *parse_access_duration("P2D", "remind_after");
  EXPECT_EQ(std::get<private_invitation_sent>(decide(s, resend, t0)->at(0)).remind_at_,
            t0 + std::chrono::hours(48));

  EXPECT_EQ(decide(s, send_private_invitation{id(1), id(2), "nope"}, t0).error().field_, "email");
  s = with_events(s, *decide(s, deactivate_invite{}, t0));
  EXPECT_EQ(decide(s, first, t0).error().code_, errc::deactivated);
}

}  // namespace
}  // namespace passage::domain
