#include "domain/track.h"

#include "domain/text.h"

namespace passage::domain {

namespace {

std::optional<domain_error> check_title(const std::string& title) {
  if (trim(title).empty()) return make_error(errc::invalid_request, "title", "title is required");
  if (title.size() > max_title_length) {
    return make_error(errc::invalid_request, "title", "title is longer than 200");
  }
  return std::nullopt;
}

}  // namespace

track_state evolve(track_state s, const event& e) {
  if (const auto* r = std::get_if<track_registered>(&e)) {
    s.exists_ = true;
    s.org_id_ = r->org_id_;
    s.track_id_ = r->track_id_;
    s.title_ = r->title_;
    s.pausable_ = r->pausable_;
    s.owner_ = r->owner_;
    ++s.version_;
  } else if (const auto* u = std::get_if<track_updated>(&e)) {
    s.title_ = u->title_;
    s.pausable_ = u->pausable_;
    s.owner_ = u->owner_;
    ++s.version_;
  }
  return s;
}

track_fact to_fact(const track_state& s) { return track_fact{s.title_, s.pausable_, s.owner_}; }

domain_result<event_list> decide(const track_state& s, const register_track& c, timestamp now) {
  if (s.exists_) return make_error(errc::already_exists, "id", "the track exists already");
  if (!is_valid_track_id(c.track_id_)) {
    return make_error(errc::invalid_request, "id",
                      "track id must be 1-64 characters of [A-Za-z0-9_.-]");
  }
  if (auto err = check_title(c.title_)) return *err;
  return event_list{track_registered{c.org_id_, c.track_id_, std::string(trim(c.title_)),
                                     c.pausable_, c.owner_, now}};
}

domain_result<event_list> decide(const track_state& s, const update_track& c, timestamp now) {
  if (!s.exists_) return make_error(errc::not_found, "id", "no such track");
  track_updated u{s.org_id_, s.track_id_, s.title_, s.pausable_, s.owner_, now};
  if (c.title_) {
    if (auto err = check_title(*c.title_)) return *err;
    u.title_ = std::string(trim(*c.title_));
  }
  if (c.pausable_) u.pausable_ = *c.pausable_;
  if (c.owner_) u.owner_ = *c.owner_;
  if (u.title_ == s.title_ && u.pausable_ == s.pausable_ && u.owner_ == s.owner_) {
    return event_list{};
  }
  return event_list{std::move(u)};
}

}  // namespace passage::domain
