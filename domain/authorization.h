#pragma once
// Who may do what (SPEC §2 "Roles"), decided before a command is decided. API keys are
// org-scoped: owner and admin manage everything of their org, a professor only the tracks
// it owns and the invites whose tracks are ALL tracks it owns; only the owner manages keys.
// The operator key may only create organizations. Another org's resources are not_found
// (404, not 403), so ids of other orgs are never confirmed.

#include <optional>
#include <vector>

#include "common/uuid.h"
#include "domain/errors.h"
#include "domain/types.h"

namespace passage::domain {

// The authenticated caller: the role and org of the API key, and the key's id, which is
// also the identity a professor owns tracks by.
struct principal {
  role role_ = role::admin;
  uuid org_id_;  // nil for the operator
  uuid key_id_;
};

enum class action {
  create_organization,  // operator only
  manage_api_keys,      // owner
  manage_lead_form,     // owner, admin
  read_tracks,          // any org key
  register_track,       // owner, admin; professor for a track it will own
  update_track,         // owner, admin; professor for its own track
  manage_invite,        // create/read/edit/lifecycle/send/claims: owner, admin; professor
                        // when every track is its own
  read_event_log,       // owner, admin
  forget_learner,       // owner, admin
  manage_learners,      // owner, admin: a new set-password link for a learner
};

// What the action touches, as far as authorization cares.
struct access_target {
  uuid org_id_;  // the org owning the resource (or, for creation, the caller's target org)
  // manage_invite: the owner of every track the invite references — before and after an
  // edit, so a professor cannot take over or hand away an invite.
  std::vector<std::optional<uuid>> track_owners_;
  // register_track / update_track: the track's owner (after the change for updates).
  std::optional<uuid> track_owner_;
};

// Ok, forbidden or not_found.
result<void, domain_error> authorize(const principal& who, action what,
                                     const access_target& target);

}  // namespace passage::domain
