#include "service/learner_token.h"

#include "service/signed_ids.h"

namespace passage::service {
namespace {

constexpr std::string_view kPrefix = "lt1.";

}  // namespace

std::string learner_token_codec::issue(const learner_identity& who) const {
  return sign_ids(secret_, kPrefix, "", who.org_id, who.learner_id);
}

std::optional<learner_identity> learner_token_codec::verify(std::string_view token) const {
  auto ids = verify_ids(secret_, kPrefix, "", token);
  if (!ids) return std::nullopt;
  return learner_identity{ids->first, ids->second};
}

}  // namespace passage::service
