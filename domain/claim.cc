#include "domain/claim.h"

#include <algorithm>

namespace passage::domain {

namespace {

const invite_track* find_track(const claim_state& c, std::string_view track_id) {
  auto it = std::find_if(c.restrictions_.tracks_.begin(), c.restrictions_.tracks_.end(),
                         [&](const invite_track& t) { return t.track_id_ == track_id; });
  return it == c.restrictions_.tracks_.end() ? nullptr : &*it;
}

// Checks shared by play, pause and resume; returns the claim's track on success.
domain_result<const invite_track*> check_common(const claim_state& c, const uuid& learner_id,
                                                std::string_view track_id, timestamp now) {
  // Another learner's claim is answered as one that does not exist: a 403 would confirm
  // the id to whoever guesses it (SPEC §2 answers another organization's ids so too).
  if (!c.exists_ || learner_id != c.learner_id_) {
    return make_error(errc::not_found, "claim_id", "no such claim");
  }
  const invite_track* t = find_track(c, track_id);
  if (t == nullptr) {
    return make_error(errc::not_found, "track_id",
                      "track \"" + std::string(track_id) + "\" is not part of this claim");
  }
  if (access_expired(c, now)) {
    return make_error(errc::access_expired, "", "access granted by this claim has expired");
  }
  return t;
}

track_progress progress_of(const claim_state& c, const std::string& track_id) {
  auto it = c.progress_.find(track_id);
  return it == c.progress_.end() ? track_progress{} : it->second;
}

}  // namespace

claim_state evolve(claim_state s, const event& e) {
  if (const auto* v = std::get_if<invite_claimed>(&e)) {
    s.exists_ = true;
    s.org_id_ = v->org_id_;
    s.invite_id_ = v->invite_id_;
    s.claim_id_ = v->claim_id_;
    s.learner_id_ = v->learner_id_;
    s.anonymous_ = v->anonymous_;
    s.claimed_at_ = v->claimed_at_;
    s.restrictions_ = v->restrictions_;
    s.access_expires_at_ = v->access_expires_at_;
  } else if (const auto* p = std::get_if<track_played>(&e)) {
    auto& prog = s.progress_[p->track_id_];
    prog.plays_ = p->play_number_;
    prog.paused_ = false;
    ++s.version_;
  } else if (const auto* pa = std::get_if<track_paused>(&e)) {
    s.progress_[pa->track_id_].paused_ = true;
    ++s.version_;
  } else if (const auto* r = std::get_if<track_resumed>(&e)) {
    s.progress_[r->track_id_].paused_ = false;
    ++s.version_;
  }
  return s;
}

bool access_expired(const claim_state& c, timestamp now) {
  return c.access_expires_at_ && now >= *c.access_expires_at_;
}

std::optional<std::int64_t> plays_remaining(const claim_state& c, std::string_view track_id) {
  if (c.restrictions_.plays_per_track_ == 0) return std::nullopt;
  auto it = c.progress_.find(std::string(track_id));
  const std::int64_t used = it == c.progress_.end() ? 0 : it->second.plays_;
  return std::max<std::int64_t>(0, c.restrictions_.plays_per_track_ - used);
}

domain_result<event_list> decide(const claim_state& c, const play_track& cmd, timestamp now) {
  auto t = check_common(c, cmd.learner_id_, cmd.track_id_, now);
  if (!t) return t.error();
  const track_progress prog = progress_of(c, cmd.track_id_);
  if (prog.paused_) {
    return make_error(errc::invalid_state, "track_id", "the track is paused; resume it instead");
  }
  if (c.restrictions_.plays_per_track_ > 0 && prog.plays_ >= c.restrictions_.plays_per_track_) {
    return make_error(errc::play_limit_reached, "track_id",
                      "all " + std::to_string(c.restrictions_.plays_per_track_) +
                          " plays of this track are used");
  }
  return event_list{track_played{c.org_id_, c.invite_id_, c.claim_id_, c.learner_id_, cmd.track_id_,
                                 prog.plays_ + 1, now}};
}

namespace {

std::optional<domain_error> check_pausable(const claim_state& c, const invite_track& t) {
  if (!t.pausable_) {
    return make_error(errc::not_pausable, "track_id", "this track cannot be paused");
  }
  // An anonymous learner could not come back to the paused track from another device.
  if (c.anonymous_) {
    return make_error(errc::not_allowed, "learner_id",
                      "anonymous learners cannot pause or resume tracks");
  }
  return std::nullopt;
}

}  // namespace

domain_result<event_list> decide(const claim_state& c, const pause_track& cmd, timestamp now) {
  auto t = check_common(c, cmd.learner_id_, cmd.track_id_, now);
  if (!t) return t.error();
  if (auto err = check_pausable(c, **t)) return *err;
  const track_progress prog = progress_of(c, cmd.track_id_);
  if (prog.plays_ == 0) return make_error(errc::invalid_state, "track_id", "track not started");
  if (prog.paused_) return make_error(errc::invalid_state, "track_id", "track already paused");
  return event_list{
      track_paused{c.org_id_, c.invite_id_, c.claim_id_, c.learner_id_, cmd.track_id_, now}};
}

domain_result<event_list> decide(const claim_state& c, const resume_track& cmd, timestamp now) {
  auto t = check_common(c, cmd.learner_id_, cmd.track_id_, now);
  if (!t) return t.error();
  if (auto err = check_pausable(c, **t)) return *err;
  if (!progress_of(c, cmd.track_id_).paused_) {
    return make_error(errc::invalid_state, "track_id", "track is not paused");
  }
  return event_list{
      track_resumed{c.org_id_, c.invite_id_, c.claim_id_, c.learner_id_, cmd.track_id_, now}};
}

}  // namespace passage::domain
