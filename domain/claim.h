#pragma once
// The claim aggregate: what one learner may do with one claimed invite (plays, pause,
// resume). Its stream claim-<claim_id> holds TrackPlayed/TrackPaused/TrackResumed; its
// state is seeded by the InviteClaimed event from the invite stream, whose snapshot of
// tracks and content restrictions is all a play decision needs. Edits, deactivation and
// deletion of the invite therefore never reach an existing claim.
//
//   claim_state c = evolve(claim_state{}, invite_claimed_event);
//   for (auto& e : read(claim_stream(id))) c = evolve(std::move(c), e);
//   auto events = decide(c, play_track{learner_id, "k8s-basics"}, now);

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

struct track_progress {
  std::int64_t plays_ = 0;
  bool paused_ = false;
  friend bool operator==(const track_progress&, const track_progress&) = default;
};

struct claim_state {
  bool exists_ = false;
  uuid org_id_;
  uuid invite_id_;
  uuid claim_id_;
  uuid learner_id_;
  bool anonymous_ = false;
  timestamp claimed_at_;
  claim_snapshot restrictions_;
  std::optional<timestamp> access_expires_at_;      // nullopt: forever
  std::map<std::string, track_progress> progress_;  // by track id, once played
  // Events of the claim stream applied (InviteClaimed lives in the invite stream and is not
  // counted): the expected version when appending to claim-<id>.
  std::uint64_t version_ = 0;

  friend bool operator==(const claim_state&, const claim_state&) = default;
};

// InviteClaimed seeds the state; TrackPlayed/TrackPaused/TrackResumed of this claim update
// it; anything else is ignored.
claim_state evolve(claim_state state, const event& e);

// The learner id comes from the learner token presented with the request; it must be the
// claim's learner.
struct play_track {
  uuid learner_id_;
  std::string track_id_;
};
struct pause_track {
  uuid learner_id_;
  std::string track_id_;
};
struct resume_track {
  uuid learner_id_;
  std::string track_id_;
};

// Access is over when now >= claimed_at + access_duration.
bool access_expired(const claim_state& c, timestamp now);
// Plays left for a track of the claim; nullopt when unlimited (plays_per_track 0).
std::optional<std::int64_t> plays_remaining(const claim_state& c, std::string_view track_id);

// Errors: not_found (no claim, or track not in the claim; field track_id), forbidden (another
// learner), access_expired, play_limit_reached, not_pausable (track not pausable in this
// claim), not_allowed (pause/resume by an anonymous learner), invalid_state (play or pause
// while paused, resume while not paused, pause before any play).
domain_result<event_list> decide(const claim_state& c, const play_track& cmd, timestamp now);
domain_result<event_list> decide(const claim_state& c, const pause_track& cmd, timestamp now);
domain_result<event_list> decide(const claim_state& c, const resume_track& cmd, timestamp now);

}  // namespace passage::domain
