#include "service/personal_link.h"

#include "service/signed_ids.h"

namespace passage::service {
namespace {

constexpr std::string_view kPrefix = "pl1.";
constexpr std::string_view kContext = "passage.personal_link.v1|";

}  // namespace

std::string personal_link_codec::issue(const personal_link_ref& link) const {
  return sign_ids(secret_, kPrefix, kContext, link.invite_id, link.invitation_id);
}

std::optional<personal_link_ref> personal_link_codec::verify(std::string_view token) const {
  auto ids = verify_ids(secret_, kPrefix, kContext, token);
  if (!ids) return std::nullopt;
  return personal_link_ref{ids->first, ids->second};
}

}  // namespace passage::service
