#pragma once
// The track aggregate (stream track-<org_id>-<track_id>): training content an invite can
// grant. Track ids are chosen by the org ("k8s-basics"). A professor owns the tracks it
// registers, which decides which invites it may manage (authorization.h).

#include <cstdint>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/uuid.h"
#include "domain/errors.h"
#include "domain/events.h"
#include "domain/invite.h"

namespace passage::domain {

struct track_state {
  bool exists_ = false;
  uuid org_id_;
  std::string track_id_;
  std::string title_;
  bool pausable_ = false;
  std::optional<uuid> owner_;  // API key id of the owning professor
  std::uint64_t version_ = 0;
  friend bool operator==(const track_state&, const track_state&) = default;
};

track_state evolve(track_state state, const event& e);

// What an invite decision needs to know about this track.
track_fact to_fact(const track_state& s);

struct register_track {
  uuid org_id_;
  std::string track_id_;
  std::string title_;
  bool pausable_ = false;
  std::optional<uuid> owner_;  // set to the professor's key id when a professor registers
};

// Absent fields keep their value; owner_ = optional{nullopt} clears the owner.
struct update_track {
  std::optional<std::string> title_;
  std::optional<bool> pausable_;
  std::optional<std::optional<uuid>> owner_;
};

domain_result<event_list> decide(const track_state& s, const register_track& c, timestamp now);
// Invites keep their own snapshot of `pausable`; changing it affects new invites only.
domain_result<event_list> decide(const track_state& s, const update_track& c, timestamp now);

}  // namespace passage::domain
