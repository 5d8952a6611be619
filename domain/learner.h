#pragma once
// The learner aggregate (stream learner-<learner_id>): registration, lead-form submissions
// and forgetting. Claims usually register learners (see decide(claim_invite) in invite.h);
// the commands here cover the rest. After LearnerForgotten the learner's key is gone and
// every command that would record personal data is refused with errc::forgotten.

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/uuid.h"
#include "domain/errors.h"
#include "domain/events.h"
#include "domain/types.h"

namespace passage::domain {

struct learner_state {
  bool exists_ = false;
  uuid org_id_;
  uuid learner_id_;
  learner_role role_ = learner_role::student;
  bool must_change_password_ = true;
  bool lead_submitted_ = false;
  bool forgotten_ = false;
  std::string email_;  // normalised; cleared when forgotten
  // The current set-password link (the newest issued) and whether it was used.
  std::optional<uuid> setup_id_;
  timestamp setup_expires_at_{};
  bool setup_used_ = false;
  std::string password_hash_;  // cleared when forgotten
  std::uint64_t version_ = 0;
  friend bool operator==(const learner_state&, const learner_state&) = default;
};

learner_state evolve(learner_state state, const event& e);

struct register_learner {
  uuid org_id_;
  uuid learner_id_;
  std::string email_;
  std::string first_name_;
  std::string last_name_;
};

// A lead-form submission outside a claim (the claim path emits LeadCaptured itself).
struct capture_lead {
  std::optional<uuid> invite_id_;
  std::string first_name_;
  std::string last_name_;
  std::map<std::string, std::string> answers_;
  lead_form lead_form_;  // fact: the org's current form
};

struct forget_learner {};

// A new set-password link (the current one, if any, stops working). Outside claims this
// is how a learner who lost the welcome mail gets another.
struct issue_password_setup {
  uuid setup_id_;
  std::optional<uuid> invite_id_;
};

// Using the link `setup_id_`; `password_hash_` is the slow hash of a password that passed
// check_password_policy (password.h).
struct set_password {
  uuid setup_id_;
  std::string password_hash_;
};

domain_result<event_list> decide(const learner_state& s, const register_learner& c, timestamp now);
// details_missing (field names the missing answer) when a required answer is absent.
domain_result<event_list> decide(const learner_state& s, const capture_lead& c, timestamp now);
// Forgetting twice is a no-op.
domain_result<event_list> decide(const learner_state& s, const forget_learner& c, timestamp now);
// forgotten / not_found when there is nobody to write to.
domain_result<event_list> decide(const learner_state& s, const issue_password_setup& c,
                                 timestamp now);
// token_invalid (no such learner, forgotten, never issued), token_replaced (a newer link
// was issued), token_used, token_expired (now >= expires_at); nothing is recorded then.
domain_result<event_list> decide(const learner_state& s, const set_password& c, timestamp now);

}  // namespace passage::domain
