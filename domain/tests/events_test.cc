// Event names, schema versions, streams and where personal data lives.
#include <gtest/gtest.h>

#include <set>

#include "domain/tests/fixtures.h"

namespace passage::domain {
namespace {

using namespace testing;

TEST(Events, NamesAreTheSpecContract) {
  const std::set<std::string_view> spec = {
      "TrackRegistered",       "TrackUpdated",        "InviteCreated",
      "InviteUpdated",         "InviteDeactivated",   "InviteReactivated",
      "InviteDeleted",         "InviteClaimed",       "ClaimRejected",
      "LearnerRegistered",     "LeadCaptured",        "LeadFormChanged",
      "TrackPlayed",           "TrackPaused",         "TrackResumed",
      "ApiKeyIssued",          "ApiKeyRevoked",       "LearnerForgotten",
      "PrivateInvitationSent", "EmailSent",           "EmailFailed",
      "InviteCapacityWarning", "InviteFilled",        "InviteExpired",
      "OrganizationCreated",   "PasswordSetupIssued", "LearnerPasswordSet",
      "ApiKeyEmailChanged"};
  auto all = all_event_types();
  EXPECT_EQ(std::set<std::string_view>(all.begin(), all.end()), spec);
  EXPECT_EQ(all.size(), spec.size());
}

TEST(Events, EverySchemaVersionIsOne) {
  EXPECT_EQ(invite_claimed::schema_version, 1);
  EXPECT_EQ(invite_claimed::type_name, "InviteClaimed");
  event e = track_played{};
  EXPECT_EQ(event_type(e), "TrackPlayed");
  EXPECT_EQ(event_schema_version(e), 1);
  std::visit([](const auto& v) { EXPECT_EQ(std::decay_t<decltype(v)>::schema_version, 1); },
             event{email_failed{}});
}

TEST(Events, StreamNames) {
  const uuid u = id(7);
  const std::string s = u.to_string();
  EXPECT_EQ(organization_stream(u), "org-" + s);
  EXPECT_EQ(invite_stream(u), "invite-" + s);
  EXPECT_EQ(claim_stream(u), "claim-" + s);
  EXPECT_EQ(learner_stream(u), "learner-" + s);
  EXPECT_EQ(email_job_stream(u), "job-" + s);
  EXPECT_EQ(track_stream(u, "k8s"), "track-" + s + "-k8s");

  invite_claimed c;
  c.invite_id_ = id(1);
  c.claim_id_ = id(2);
  EXPECT_EQ(stream_of(c), invite_stream(id(1)));  // claims are serialised per invite
  track_played p;
  p.claim_id_ = id(2);
  EXPECT_EQ(stream_of(p), claim_stream(id(2)));  // plays per claim
  lead_captured l;
  l.learner_id_ = id(3);
  EXPECT_EQ(stream_of(l), learner_stream(id(3)));
  email_sent m;
  m.job_id_ = id(4);
  EXPECT_EQ(stream_of(m), email_job_stream(id(4)));
  EXPECT_EQ(stream_of(invite_expired{}), invite_stream(uuid{}));
}

TEST(Events, PersonalDataIsConfinedToOneBlockPerEvent) {
  // Events that may carry personal data, and only these, have a personal_data_ block.
  const std::set<std::string_view> with_pii = {
      "InviteClaimed",         "ClaimRejected", "LearnerRegistered", "LeadCaptured",
      "PrivateInvitationSent", "EmailSent",     "EmailFailed"};
  std::set<std::string_view> found;
  auto check = [&](event e) {
    if (personal_data_of(e) != nullptr) found.insert(event_type(e));
  };
  std::apply(
      [&](auto... v) { (check(event{v}), ...); },
      std::tuple<organization_created, api_key_issued, api_key_revoked, lead_form_changed,
                 track_registered, track_updated, invite_created, invite_updated,
                 invite_deactivated, invite_reactivated, invite_deleted, invite_claimed,
                 claim_rejected, invite_capacity_warning, invite_filled, invite_expired,
                 private_invitation_sent, track_played, track_paused, track_resumed,
                 learner_registered, lead_captured, learner_forgotten, email_sent, email_failed>{});
  EXPECT_EQ(found, with_pii);
}

TEST(Events, DataSubjectIsTheLearnerWhoseKeyEncrypts) {
  learner_registered r;
  r.learner_id_ = id(5);
  r.personal_data_.email_ = "ada@example.com";
  EXPECT_EQ(data_subject(r), id(5));
  r.personal_data_ = {};
  EXPECT_FALSE(data_subject(r));  // nothing to encrypt

  claim_rejected unknown;
  unknown.personal_data_.email_ = "x@example.com";
  EXPECT_FALSE(data_subject(unknown));  // email of nobody known yet
  unknown.learner_id_ = id(6);
  EXPECT_EQ(data_subject(unknown), id(6));

  event e = lead_captured{};
  personal_data_of(e)->answers_["company"] = "Acme";
  EXPECT_EQ(std::get<lead_captured>(e).personal_data_.answers_.at("company"), "Acme");
  EXPECT_EQ(org_of(event{invite_created{id(8), {}, {}, {}, {}, {}}}), id(8));
}

TEST(Errors, StableCodes) {
  EXPECT_EQ(to_string(errc::invalid_request), "invalid_request");
  EXPECT_EQ(to_string(errc::version_conflict), "version_conflict");
  EXPECT_EQ(to_string(errc::details_missing), "details_missing");
  EXPECT_EQ(to_string(errc::not_open_yet), "not_open_yet");
  std::error_code ec = errc::full;
  EXPECT_EQ(ec.message(), "full");
  EXPECT_EQ(std::string(ec.category().name()), "passage.domain");
  for (auto r : {rejection_reason::expired, rejection_reason::not_open_yet, rejection_reason::full,
                 rejection_reason::not_allowed, rejection_reason::deactivated,
                 rejection_reason::deleted, rejection_reason::details_missing}) {
    EXPECT_EQ(to_string(to_errc(r)), to_string(r));
    EXPECT_EQ(parse_rejection_reason(to_string(r)), r);
  }
  EXPECT_EQ(to_string(role::operator_), "operator");
  EXPECT_EQ(parse_role("professor"), role::professor);
  EXPECT_EQ(parse_access_mode("lead_form"), access_mode::lead_form);
  EXPECT_EQ(parse_invite_type("live_event"), invite_type::live_event);
  EXPECT_FALSE(parse_role("root"));
}

}  // namespace
}  // namespace passage::domain
