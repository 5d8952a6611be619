// Roles: owner/admin manage everything of their org, a professor only what it owns, the
// operator only creates organizations; other orgs' resources are not_found.
#include <gtest/gtest.h>

#include "domain/authorization.h"
#include "domain/tests/fixtures.h"

namespace passage::domain {
namespace {

using namespace testing;

const uuid org_a = id(1);
const uuid org_b = id(2);
const uuid prof_key = id(10);
const uuid other_prof = id(11);

principal key(role r, uuid org_id = org_a, uuid key_id = id(99)) { return {r, org_id, key_id}; }

std::string outcome(const principal& p, action a, const access_target& t) {
  auto r = authorize(p, a, t);
  return r ? "ok" : std::string(to_string(r.error().code_));
}

struct auth_case {
  const char* name;
  principal who;
  action what;
  access_target target;
  const char* expected;
};

class Authorization : public ::testing::TestWithParam<auth_case> {};

TEST_P(Authorization, Decides) {
  const auto& c = GetParam();
  EXPECT_EQ(outcome(c.who, c.what, c.target), c.expected) << c.name;
}

const principal prof{role::professor, org_a, prof_key};
const access_target own_invite{org_a, {prof_key, prof_key}, std::nullopt};
const access_target mixed_invite{org_a, {prof_key, other_prof}, std::nullopt};
const access_target unowned_invite{org_a, {prof_key, std::nullopt}, std::nullopt};

INSTANTIATE_TEST_SUITE_P(
    Roles, Authorization,
    ::testing::Values(
        auth_case{"operator creates orgs",
                  key(role::operator_, uuid{}),
                  action::create_organization,
                  {},
                  "ok"},
        auth_case{"operator cannot manage invites",
                  key(role::operator_, uuid{}),
                  action::manage_invite,
                  {org_a, {}, {}},
                  "forbidden"},
        auth_case{"operator cannot read events",
                  key(role::operator_, uuid{}),
                  action::read_event_log,
                  {org_a, {}, {}},
                  "forbidden"},
        auth_case{"owner cannot create orgs",
                  key(role::owner),
                  action::create_organization,
                  {org_a, {}, {}},
                  "forbidden"},
        auth_case{
            "owner manages keys", key(role::owner), action::manage_api_keys, {org_a, {}, {}}, "ok"},
        auth_case{"admin cannot manage keys",
                  key(role::admin),
                  action::manage_api_keys,
                  {org_a, {}, {}},
                  "forbidden"},
        auth_case{"professor cannot manage keys",
                  prof,
                  action::manage_api_keys,
                  {org_a, {}, {}},
                  "forbidden"},
        auth_case{"admin manages any invite", key(role::admin), action::manage_invite, mixed_invite,
                  "ok"},
        auth_case{"owner manages any invite", key(role::owner), action::manage_invite,
                  unowned_invite, "ok"},
        auth_case{"admin manages lead form",
                  key(role::admin),
                  action::manage_lead_form,
                  {org_a, {}, {}},
                  "ok"},
        auth_case{"admin forgets learners",
                  key(role::admin),
                  action::forget_learner,
                  {org_a, {}, {}},
                  "ok"},
        auth_case{"professor: all tracks own", prof, action::manage_invite, own_invite, "ok"},
        auth_case{"professor: one track of another professor", prof, action::manage_invite,
                  mixed_invite, "forbidden"},
        auth_case{"professor: one unowned track", prof, action::manage_invite, unowned_invite,
                  "forbidden"},
        auth_case{
            "professor: no tracks", prof, action::manage_invite, {org_a, {}, {}}, "forbidden"},
        auth_case{"professor registers own track",
                  prof,
                  action::register_track,
                  {org_a, {}, prof_key},
                  "ok"},
        auth_case{"professor registers track for another",
                  prof,
                  action::register_track,
                  {org_a, {}, other_prof},
                  "forbidden"},
        auth_case{
            "professor updates own track", prof, action::update_track, {org_a, {}, prof_key}, "ok"},
        auth_case{"professor updates unowned track",
                  prof,
                  action::update_track,
                  {org_a, {}, std::nullopt},
                  "forbidden"},
        auth_case{"professor reads tracks", prof, action::read_tracks, {org_a, {}, {}}, "ok"},
        auth_case{"professor cannot read event log",
                  prof,
                  action::read_event_log,
                  {org_a, {}, {}},
                  "forbidden"},
        auth_case{"professor cannot change lead form",
                  prof,
                  action::manage_lead_form,
                  {org_a, {}, {}},
                  "forbidden"},
        auth_case{"professor cannot forget learners",
                  prof,
                  action::forget_learner,
                  {org_a, {}, {}},
                  "forbidden"},
        auth_case{"admin issues set-password links",
                  key(role::admin),
                  action::manage_learners,
                  {org_a, {}, {}},
                  "ok"},
        auth_case{"professor cannot issue set-password links",
                  prof,
                  action::manage_learners,
                  {org_a, {}, {}},
                  "forbidden"},
        auth_case{"other org is not found (owner)", key(role::owner, org_b), action::manage_invite,
                  own_invite, "not_found"},
        auth_case{"other org is not found (keys)",
                  key(role::owner, org_b),
                  action::manage_api_keys,
                  {org_a, {}, {}},
                  "not_found"},
        auth_case{"other org is not found (professor)", principal{role::professor, org_b, prof_key},
                  action::manage_invite, own_invite, "not_found"}),
    [](const ::testing::TestParamInfo<auth_case>& info) {
      std::string n = info.param.name;
      for (char& ch : n) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      return n;
    });

}  // namespace
}  // namespace passage::domain
