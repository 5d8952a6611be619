#pragma once
// Helpers for the domain tests: readable instants, deterministic ids, a small track
// catalog, and given/when/then folding of events into aggregate states.

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "domain/claim.h"
#include "domain/invite.h"
#include "domain/streams.h"
#include "tests/support/test_values.h"

namespace passage::domain::testing {

using passage::testing::at;

// uuid with the given number in its last bytes: id(1) != id(2), stable across runs.
inline uuid id(std::uint64_t n) { return passage::testing::numbered_uuid(n, 0xAB); }

inline const uuid org = id(1000);
inline const uuid invite_id = id(2000);

inline track_catalog catalog() {
  return {{"k8s-basics", {"Kubernetes basics", false, std::nullopt}},
          {"linux-vm", {"Linux on a VM", true, std::nullopt}},
          {"docker", {"Docker", true, std::nullopt}}};
}

inline invite_draft basic_draft() {
  invite_draft d;
  d.title_ = "Kubernetes 101 workshop";
  d.tracks_ = {{"k8s-basics", std::nullopt}};
  return d;
}

template <typename State>
State fold(const event_list& events, State s = State{}) {
  for (const auto& e : events) s = evolve(std::move(s), e);
  return s;
}

// Given: an invite created from `draft` at `created`.
inline invite_state given_invite(const invite_draft& draft,
                                 timestamp created = at("2026-01-01T00:00:00Z")) {
  auto r =
      decide(invite_state{}, create_invite{org, invite_id, "AB2K7MZ", draft, catalog()}, created);
  EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().field_ + ": " + r.error().message_);
  return r ? fold<invite_state>(*r) : invite_state{};
}

// Applies decided events to the invite state (only the invite stream's events matter).
inline invite_state with_events(invite_state s, const event_list& events) {
  return fold(events, std::move(s));
}

inline claim_invite claim_by_email(std::string email, std::uint64_t n) {
  claim_invite c;
  c.claim_id_ = id(5000 + n);
  c.email_ = std::move(email);
  c.new_learner_id_ = id(6000 + n);
  return c;
}

inline claim_invite claim_anonymous(std::uint64_t n) {
  claim_invite c;
  c.claim_id_ = id(5000 + n);
  c.anonymous_learner_id_ = id(7000 + n);
  c.new_learner_id_ = id(6000 + n);
  return c;
}

template <typename E>
std::vector<E> events_of(const event_list& events) {
  std::vector<E> out;
  for (const auto& e : events) {
    if (const auto* v = std::get_if<E>(&e)) out.push_back(*v);
  }
  return out;
}

inline std::vector<std::string_view> types_of(const event_list& events) {
  std::vector<std::string_view> out;
  for (const auto& e : events) out.push_back(event_type(e));
  return out;
}

}  // namespace passage::domain::testing
