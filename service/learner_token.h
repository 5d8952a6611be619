#pragma once
// Learner tokens: what a learner presents to play the tracks of a claim. Stateless
// and unforgeable: the learner and org ids plus an HMAC-SHA256 tag under a server
// secret, base64url-encoded ("lt1.<…>"). Anonymous learners get one too, which is
// how a browser that claimed anonymously is recognised on its next claim.

#include <optional>
#include <string>
#include <string_view>

#include "common/uuid.h"

namespace passage::service {

struct learner_identity {
  uuid org_id;
  uuid learner_id;
};

// Thread-safe (immutable after construction).
class learner_token_codec {
 public:
  explicit learner_token_codec(std::string secret) : secret_(std::move(secret)) {}

  std::string issue(const learner_identity& who) const;
  // nullopt for anything not issued with this secret.
  std::optional<learner_identity> verify(std::string_view token) const;

 private:
  std::string secret_;
};

}  // namespace passage::service
