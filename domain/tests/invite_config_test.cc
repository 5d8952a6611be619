// Invite configuration validation: one precise error per field.
#include <gtest/gtest.h>

#include <functional>

#include "domain/tests/fixtures.h"

namespace passage::domain {
namespace {

using namespace testing;

struct config_case {
  const char* name;
  std::function<void(invite_draft&)> change;
  const char* field;
};

class InviteConfig : public ::testing::TestWithParam<config_case> {};

TEST_P(InviteConfig, RejectsWithFieldName) {
  const auto& c = GetParam();
  invite_draft d = basic_draft();
  c.change(d);
  auto r = validate_invite(d, catalog());
  ASSERT_FALSE(r) << c.name;
  EXPECT_EQ(r.error().code_, errc::invalid_request) << c.name;
  EXPECT_EQ(r.error().field_, c.field) << c.name << ": " << r.error().message_;
  EXPECT_FALSE(r.error().message_.empty());
}

void live(invite_draft& d) {
  d.type_ = invite_type::live_event;
  d.starts_at_ = at("2026-03-01T09:00:00Z");
  d.ends_at_ = at("2026-03-01T17:00:00Z");
}

INSTANTIATE_TEST_SUITE_P(
    Fields, InviteConfig,
    ::testing::Values(
        config_case{"title empty", [](invite_draft& d) { d.title_ = ""; }, "title"},
        config_case{"title blank", [](invite_draft& d) { d.title_ = "   "; }, "title"},
        config_case{"title too long", [](invite_draft& d) { d.title_ = std::string(201, 'x'); },
                    "title"},
        config_case{"public description too long",
                    [](invite_draft& d) { d.public_description_ = std::string(5001, 'x'); },
                    "public_description"},
        config_case{"internal description too long",
                    [](invite_draft& d) { d.internal_description_ = std::string(5001, 'x'); },
                    "internal_description"},
        config_case{"image url not http", [](invite_draft& d) { d.image_url_ = "ftp://x/y.png"; },
                    "image_url"},
        config_case{"image url with space",
                    [](invite_draft& d) { d.image_url_ = "https://x/a b.png"; }, "image_url"},
        config_case{"no tracks", [](invite_draft& d) { d.tracks_.clear(); }, "tracks"},
        config_case{"unknown track",
                    [](invite_draft& d) {
                      d.tracks_.push_back({"nope", std::nullopt});
                    },
                    "tracks[1].track_id"},
        config_case{"empty track id",
                    [](invite_draft& d) {
                      d.tracks_ = {{"", std::nullopt}};
                    },
                    "tracks[0].track_id"},
        config_case{"malformed track id",
                    [](invite_draft& d) {
                      d.tracks_ = {{"a/b", std::nullopt}};
                    },
                    "tracks[0].track_id"},
        config_case{"duplicate track",
                    [](invite_draft& d) {
                      d.tracks_ = {{"docker", std::nullopt},
                                   {"k8s-basics", std::nullopt},
                                   {"docker", false}};
                    },
                    "tracks[2].track_id"},
        config_case{"pausable on non-pausable track",
                    [](invite_draft& d) {
                      d.tracks_ = {{"docker", true}, {"k8s-basics", true}};
                    },
                    "tracks[1].pausable"},
        config_case{"malformed duration", [](invite_draft& d) { d.access_duration_ = "30 days"; },
                    "access_duration"},
        config_case{"fractional duration", [](invite_draft& d) { d.access_duration_ = "P1.5D"; },
                    "access_duration"},
        config_case{"empty duration", [](invite_draft& d) { d.access_duration_ = ""; },
                    "access_duration"},
        config_case{"negative plays", [](invite_draft& d) { d.plays_per_track_ = -1; },
                    "plays_per_track"},
        config_case{"negative claim limit", [](invite_draft& d) { d.claim_limit_ = -1; },
                    "claim_limit"},
        config_case{"starts_at on self-paced",
                    [](invite_draft& d) { d.starts_at_ = at("2026-03-01T09:00:00Z"); },
                    "starts_at"},
        config_case{"ends_at on self-paced",
                    [](invite_draft& d) { d.ends_at_ = at("2026-03-01T09:00:00Z"); }, "ends_at"},
        config_case{"expires_at on live event",
                    [](invite_draft& d) {
                      live(d);
                      d.expires_at_ = at("2026-03-02T00:00:00Z");
                    },
                    "expires_at"},
        config_case{"live without starts_at",
                    [](invite_draft& d) {
                      live(d);
                      d.starts_at_.reset();
                    },
                    "starts_at"},
        config_case{"live without ends_at",
                    [](invite_draft& d) {
                      live(d);
                      d.ends_at_.reset();
                    },
                    "ends_at"},
        config_case{"ends_at equal to starts_at",
                    [](invite_draft& d) {
                      live(d);
                      d.ends_at_ = d.starts_at_;
                    },
                    "ends_at"},
        config_case{"ends_at before starts_at",
                    [](invite_draft& d) {
                      live(d);
                      d.ends_at_ = *d.starts_at_ - std::chrono::seconds{1};
                    },
                    "ends_at"},
        config_case{"allowed without lists",
                    [](invite_draft& d) { d.access_ = access_mode::allowed; }, "allowed_emails"},
        config_case{"allowed email malformed",
                    [](invite_draft& d) {
                      d.access_ = access_mode::allowed;
                      d.allowed_emails_ = {"ada@example.com", "not-an-email"};
                    },
                    "allowed_emails[1]"},
        config_case{"allowed domain with @",
                    [](invite_draft& d) {
                      d.access_ = access_mode::allowed;
                      d.allowed_domains_ = {"@example.com"};
                    },
                    "allowed_domains[0]"},
        config_case{"capacity warning 0", [](invite_draft& d) { d.capacity_warning_percent_ = 0; },
                    "capacity_warning_percent"},
        config_case{"capacity warning 101",
                    [](invite_draft& d) { d.capacity_warning_percent_ = 101; },
                    "capacity_warning_percent"}),
    [](const ::testing::TestParamInfo<config_case>& info) {
      std::string n = info.param.name;
      for (char& ch : n) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      return n;
    });

TEST(InviteConfig, DefaultsAndNormalisation) {
  invite_draft d = basic_draft();
  d.title_ = "  Kubernetes 101 workshop ";
  d.tracks_ = {{"linux-vm", std::nullopt}, {"docker", false}, {"k8s-basics", std::nullopt}};
  d.access_ = access_mode::allowed;
  d.allowed_emails_ = {"Ada@Example.com", "ada@example.com ", "bob@example.org"};
  d.allowed_domains_ = {"Example.COM", "example.com"};
  auto r = validate_invite(d, catalog());
  ASSERT_TRUE(r) << r.error().field_;
  EXPECT_EQ(r->title_, "Kubernetes 101 workshop");
  // pausable defaults to the track's own setting and may be switched off.
  EXPECT_EQ(r->tracks_, (std::vector<invite_track>{
                            {"linux-vm", true}, {"docker", false}, {"k8s-basics", false}}));
  EXPECT_TRUE(r->access_duration_.forever_);
  EXPECT_EQ(r->plays_per_track_, 0);
  EXPECT_EQ(r->claim_limit_, 0);
  EXPECT_EQ(r->capacity_warning_percent_, 80);
  EXPECT_EQ(r->allowed_emails_, (std::vector<std::string>{"ada@example.com", "bob@example.org"}));
  EXPECT_EQ(r->allowed_domains_, (std::vector<std::string>{"example.com"}));
}

TEST(InviteConfig, AcceptsTheSpecExample) {
  invite_draft d = basic_draft();
  d.access_duration_ = "P30D";
  d.plays_per_track_ = 3;
  d.expires_at_ = at("2026-12-31T23:59:00Z");
  d.claim_limit_ = 50;
  d.access_ = access_mode::allowed;
  d.allowed_domains_ = {"example.com"};
  d.show_share_button_ = true;
  auto r = validate_invite(d, catalog());
  ASSERT_TRUE(r) << r.error().field_;
  EXPECT_EQ(format_access_duration(r->access_duration_), "P30D");
  EXPECT_EQ(r->expires_at_, at("2026-12-31T23:59:00Z"));
}

TEST(InviteConfig, LiveEventValid) {
  invite_draft d = basic_draft();
  live(d);
  auto r = validate_invite(d, catalog());
  ASSERT_TRUE(r) << r.error().field_;
  EXPECT_EQ(r->type_, invite_type::live_event);
  EXPECT_FALSE(r->expires_at_);
}

TEST(InviteConfig, CreateChecksCodeAndId) {
  auto bad_code =
      decide(invite_state{}, create_invite{org, invite_id, "AB0K7MZ", basic_draft(), catalog()},
             at("2026-01-01T00:00:00Z"));
  ASSERT_FALSE(bad_code);
  EXPECT_EQ(bad_code.error().field_, "code");
  auto nil_id =
      decide(invite_state{}, create_invite{org, uuid{}, "AB2K7MZ", basic_draft(), catalog()},
             at("2026-01-01T00:00:00Z"));
  ASSERT_FALSE(nil_id);
  EXPECT_EQ(nil_id.error().field_, "id");
}

TEST(InviteConfig, ToDraftRoundTrips) {
  invite_draft d = basic_draft();
  d.access_duration_ = "PT90M";
  d.tracks_ = {{"linux-vm", false}};
  auto s = validate_invite(d, catalog());
  ASSERT_TRUE(s);
  auto again = validate_invite(to_draft(*s), catalog());
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *s);
}

}  // namespace
}  // namespace passage::domain
