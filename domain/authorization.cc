#include "domain/authorization.h"

#include <algorithm>

namespace passage::domain {

namespace {

domain_error forbidden(std::string message) {
  return make_error(errc::forbidden, "", std::move(message));
}

}  // namespace

result<void, domain_error> authorize(const principal& who, action what,
                                     const access_target& target) {
  if (who.role_ == role::operator_) {
    if (what == action::create_organization) return {};
    return forbidden("the operator key can only create organizations");
  }
  if (what == action::create_organization) {
    return forbidden("only the operator key creates organizations");
  }
  if (who.org_id_ != target.org_id_) {
    return make_error(errc::not_found, "", "not found");
  }
  const bool manager = who.role_ == role::owner || who.role_ == role::admin;
  switch (what) {
    case action::create_organization:
      break;  // handled above
    case action::manage_api_keys:
      if (who.role_ == role::owner) return {};
      return forbidden("only an owner key manages API keys");
    case action::read_tracks:
      return {};
    case action::manage_lead_form:
    case action::read_event_log:
    case action::forget_learner:
    case action::manage_learners:
      if (manager) return {};
      return forbidden("needs an owner or admin key");
    case action::register_track:
    case action::update_track:
      if (manager) return {};
      if (target.track_owner_ == who.key_id_) return {};
      return forbidden("a professor manages only its own tracks");
    case action::manage_invite: {
      if (manager) return {};
      const bool all_own =
          !target.track_owners_.empty() &&
          std::all_of(target.track_owners_.begin(), target.track_owners_.end(),
                      [&](const std::optional<uuid>& o) { return o == who.key_id_; });
      if (all_own) return {};
      return forbidden("a professor manages only invites whose tracks are all its own");
    }
  }
  return forbidden("not permitted");
}

}  // namespace passage::domain
