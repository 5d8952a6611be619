#pragma once
// What the command side looks up outside the aggregate it decides on: indexes
// that only a read model can answer (which invite a code opens, which learner an
// email belongs to, the InviteClaimed event that seeds a claim). The app adapts
// the projections to this interface; tests use a fake.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/uuid.h"
#include "domain/events.h"

namespace passage::service {

struct invite_ref {
  uuid org_id;
  uuid invite_id;
};

struct learner_ref {
  uuid learner_id;
  bool lead_submitted = false;
};

// Implementations must be thread-safe; every call may come from any io thread.
class fact_source {
 public:
  virtual ~fact_source() = default;
  // The invite a (normalised) code opens, if any (deleted invites included).
  virtual std::optional<invite_ref> invite_by_code(std::string_view code) = 0;
  // The learner registered for an email of an org, by the codec's email subject.
  virtual std::optional<learner_ref> learner_by_email(const uuid& org_id,
                                                      std::string_view email_subject) = 0;
  // The InviteClaimed event of a claim, personal data not needed.
  virtual std::optional<domain::invite_claimed> claim_seed(const uuid& claim_id) = 0;
  // Runs `fn` once the read side has applied `position` (at once if it has).
  virtual void when_applied(std::uint64_t position, std::function<void()> fn) = 0;
};

}  // namespace passage::service
