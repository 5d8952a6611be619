#include "service/password_setup.h"

#include "service/signed_ids.h"

namespace passage::service {
namespace {

constexpr std::string_view kPrefix = "ps1.";
constexpr std::string_view kContext = "passage.password_setup.v1|";

}  // namespace

std::string password_setup_codec::issue(const password_setup_ref& ref) const {
  return sign_ids(secret_, kPrefix, kContext, ref.learner_id, ref.setup_id);
}

std::optional<password_setup_ref> password_setup_codec::verify(std::string_view token) const {
  auto ids = verify_ids(secret_, kPrefix, kContext, token);
  if (!ids) return std::nullopt;
  return password_setup_ref{ids->first, ids->second};
}

}  // namespace passage::service
