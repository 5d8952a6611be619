// Status at an instant, with its exact boundaries.
#include <gtest/gtest.h>

#include "domain/tests/fixtures.h"

namespace passage::domain {
namespace {

using namespace testing;
using std::chrono::hours;
using std::chrono::microseconds;

constexpr microseconds tick{1};

struct status_case {
  const char* name;
  status_inputs in;
  timestamp now;
  invite_status expected;
  std::optional<std::int64_t> days_left = std::nullopt;
};

status_inputs self_paced(std::optional<timestamp> expires, std::int64_t limit = 0,
                         std::int64_t claims = 0) {
  status_inputs in;
  in.expires_at_ = expires;
  in.claim_limit_ = limit;
  in.claims_count_ = claims;
  return in;
}

status_inputs live_event(std::int64_t limit = 0, std::int64_t claims = 0) {
  status_inputs in;
  in.type_ = invite_type::live_event;
  in.starts_at_ = at("2026-03-10T09:00:00Z");
  in.ends_at_ = at("2026-03-10T17:00:00Z");
  in.claim_limit_ = limit;
  in.claims_count_ = claims;
  return in;
}

class InviteStatus : public ::testing::TestWithParam<status_case> {};

TEST_P(InviteStatus, AtInstant) {
  const auto& c = GetParam();
  auto v = status_at(c.in, c.now);
  EXPECT_EQ(to_string(v.status_), to_string(c.expected)) << c.name;
  EXPECT_EQ(v.days_left_, c.days_left) << c.name;
}

const timestamp expires = at("2026-06-30T12:00:00Z");
const timestamp starts = at("2026-03-10T09:00:00Z");
const timestamp ends = at("2026-03-10T17:00:00Z");

INSTANTIATE_TEST_SUITE_P(
    Boundaries, InviteStatus,
    ::testing::Values(
        status_case{"never expires", self_paced(std::nullopt), at("2999-01-01T00:00:00Z"),
                    invite_status::active},
        status_case{"just before expires_at", self_paced(expires), expires - tick,
                    invite_status::active},
        status_case{"exactly at expires_at", self_paced(expires), expires, invite_status::expired},
        status_case{"after expires_at", self_paced(expires), expires + hours{1},
                    invite_status::expired},
        status_case{"one spot left", self_paced(std::nullopt, 3, 2), expires,
                    invite_status::active},
        status_case{"limit reached", self_paced(std::nullopt, 3, 3), expires, invite_status::full},
        status_case{"unlimited never full", self_paced(std::nullopt, 0, 100000), expires,
                    invite_status::active},
        status_case{"expired wins over full", self_paced(expires, 1, 1), expires,
                    invite_status::expired},
        status_case{"live: a week before", live_event(), starts - hours{24 * 7},
                    invite_status::upcoming, 7},
        status_case{"live: 25h before", live_event(), starts - hours{25}, invite_status::upcoming,
                    1},
        status_case{"live: 24h before minus a tick", live_event(), starts - hours{24} - tick,
                    invite_status::upcoming, 1},
        status_case{"live: exactly 24h before opens", live_event(), starts - hours{24},
                    invite_status::active},
        status_case{"live: at start", live_event(), starts, invite_status::active},
        status_case{"live: just before end", live_event(), ends - tick, invite_status::active},
        status_case{"live: exactly at end", live_event(), ends, invite_status::expired},
        status_case{"live: full", live_event(2, 2), starts, invite_status::full},
        status_case{"deactivated wins",
                    [] {
                      auto in = self_paced(expires);
                      in.deactivated_ = true;
                      return in;
                    }(),
                    expires + hours{1}, invite_status::deactivated},
        status_case{"deleted wins",
                    [] {
                      auto in = self_paced(expires);
                      in.deactivated_ = true;
                      in.deleted_ = true;
                      return in;
                    }(),
                    expires, invite_status::deleted}));

TEST(InviteStatus, FromStateAndShareButton) {
  invite_draft d = basic_draft();
  d.claim_limit_ = 1;
  d.expires_at_ = expires;
  d.show_share_button_ = true;
  invite_state s = given_invite(d);
  EXPECT_EQ(status_at(s, expires - tick).status_, invite_status::active);
  EXPECT_TRUE(share_button_visible(s, expires - tick));
  EXPECT_FALSE(share_button_visible(s, expires));
  EXPECT_EQ(remaining_spots(s), 1);

  auto r = decide(s, claim_by_email("ada@example.com", 1), expires - hours{1});
  ASSERT_TRUE(r);
  s = with_events(s, r->events_);
  EXPECT_EQ(status_at(s, expires - tick).status_, invite_status::full);
  EXPECT_FALSE(share_button_visible(s, expires - tick));
  EXPECT_EQ(remaining_spots(s), 0);

  invite_draft a = basic_draft();
  a.show_share_button_ = true;
  a.access_ = access_mode::allowed;
  a.allowed_domains_ = {"example.com"};
  EXPECT_FALSE(share_button_visible(given_invite(a), expires));
  EXPECT_FALSE(remaining_spots(given_invite(basic_draft())));
}

TEST(InviteStatus, ClaimWindow) {
  invite_draft d = basic_draft();
  d.type_ = invite_type::live_event;
  d.starts_at_ = starts;
  d.ends_at_ = ends;
  auto s = validate_invite(d, catalog());
  ASSERT_TRUE(s);
  EXPECT_EQ(claims_open_at(*s), starts - hours{24});
  EXPECT_EQ(claims_close_at(*s), ends);
  auto p = validate_invite(basic_draft(), catalog());
  ASSERT_TRUE(p);
  EXPECT_FALSE(claims_open_at(*p));
  EXPECT_FALSE(claims_close_at(*p));
}

}  // namespace
}  // namespace passage::domain
