#include "domain/invite.h"

#include <algorithm>
#include <chrono>
#include <set>

#include "domain/invite_code.h"
#include "domain/organization.h"
#include "domain/password.h"
#include "domain/text.h"

namespace passage::domain {

namespace {

using std::chrono::hours;

domain_error invalid(std::string field, std::string message) {
  return make_error(errc::invalid_request, std::move(field), std::move(message));
}

std::string indexed(std::string_view field, std::size_t i) {
  return std::string(field) + "[" + std::to_string(i) + "]";
}

domain_result<std::vector<invite_track>> resolve_tracks(
    const std::vector<invite_track_request>& requests, const track_catalog& catalog) {
  if (requests.empty()) return invalid("tracks", "an invite needs at least one track");
  if (requests.size() > max_tracks_per_invite) {
    return invalid("tracks", "at most " + std::to_string(max_tracks_per_invite) + " tracks");
  }
  std::vector<invite_track> out;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const auto& r = requests[i];
    const std::string field = indexed("tracks", i) + ".track_id";
    if (r.track_id_.empty()) return invalid(field, "track_id is required");
    if (!is_valid_track_id(r.track_id_)) {
      return invalid(field, "track_id must be 1-64 characters of [A-Za-z0-9_.-]");
    }
    auto it = catalog.find(r.track_id_);
    if (it == catalog.end()) return invalid(field, "unknown track \"" + r.track_id_ + "\"");
    if (!seen.insert(r.track_id_).second) {
      return invalid(field, "track \"" + r.track_id_ + "\" is listed twice");
    }
    const bool pausable = r.pausable_.value_or(it->second.pausable_);
    if (pausable && !it->second.pausable_) {
      return invalid(indexed("tracks", i) + ".pausable",
                     "track \"" + r.track_id_ + "\" is not pausable");
    }
    out.push_back(invite_track{r.track_id_, pausable});
  }
  return out;
}

bool is_valid_domain_name(std::string_view d) {
  if (d.empty() || d.size() > 253 || d.front() == '.' || d.back() == '.') return false;
  if (d.find('.') == std::string_view::npos) return false;
  for (char c : d) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// Validates everything but the track list, which the caller has resolved already.
domain_result<invite_settings> validate_fields(const invite_draft& d,
                                               std::vector<invite_track> tracks) {
  invite_settings s;
  s.type_ = d.type_;

  const std::string_view title = trim(d.title_);
  if (title.empty()) return invalid("title", "title is required");
  if (title.size() > max_title_length) {
    return invalid("title", "title is longer than " + std::to_string(max_title_length));
  }
  s.title_ = std::string(title);
  if (d.public_description_.size() > max_description_length) {
    return invalid("public_description", "longer than " + std::to_string(max_description_length));
  }
  if (d.internal_description_.size() > max_description_length) {
    return invalid("internal_description", "longer than " + std::to_string(max_description_length));
  }
  s.public_description_ = d.public_description_;
  s.internal_description_ = d.internal_description_;
  if (!d.image_url_.empty()) {
    const std::string_view url = d.image_url_;
    const bool http = url.starts_with("https://") || url.starts_with("http://");
    const bool spaces = std::any_of(url.begin(), url.end(),
                                    [](char c) { return static_cast<unsigned char>(c) <= ' '; });
    if (!http || spaces || url.size() > max_image_url_length) {
      return invalid("image_url", "image_url must be an http(s) URL without spaces");
    }
  }
  s.image_url_ = d.image_url_;
  s.tracks_ = std::move(tracks);

  auto duration = parse_access_duration(d.access_duration_, "access_duration");
  if (!duration) return duration.error();
  s.access_duration_ = *duration;
  if (d.plays_per_track_ < 0) {
    return invalid("plays_per_track", "plays_per_track must be >= 0 (0 = unlimited)");
  }
  if (d.plays_per_track_ > 1'000'000) return invalid("plays_per_track", "too large");
  s.plays_per_track_ = d.plays_per_track_;

  if (d.type_ == invite_type::self_paced) {
    if (d.starts_at_) return invalid("starts_at", "starts_at applies to live events only");
    if (d.ends_at_) return invalid("ends_at", "ends_at applies to live events only");
    s.expires_at_ = d.expires_at_;
  } else {
    if (d.expires_at_) {
      return invalid("expires_at", "a live event has no expires_at; it closes at ends_at");
    }
    if (!d.starts_at_) return invalid("starts_at", "a live event needs starts_at");
    if (!d.ends_at_) return invalid("ends_at", "a live event needs ends_at");
    if (*d.ends_at_ <= *d.starts_at_) return invalid("ends_at", "ends_at must be after starts_at");
    s.starts_at_ = d.starts_at_;
    s.ends_at_ = d.ends_at_;
  }

  if (d.claim_limit_ < 0) return invalid("claim_limit", "claim_limit must be >= 0 (0 = unlimited)");
  if (d.claim_limit_ > 1'000'000'000) return invalid("claim_limit", "too large");
  s.claim_limit_ = d.claim_limit_;

  s.access_ = d.access_;
  if (d.allowed_emails_.size() > max_allowed_entries) {
    return invalid("allowed_emails", "too many entries");
  }
  if (d.allowed_domains_.size() > max_allowed_entries) {
    return invalid("allowed_domains", "too many entries");
  }
  std::set<std::string> seen;
  for (std::size_t i = 0; i < d.allowed_emails_.size(); ++i) {
    if (!is_valid_email(d.allowed_emails_[i])) {
      return invalid(indexed("allowed_emails", i), "not an email address");
    }
    std::string e = normalize_email(d.allowed_emails_[i]);
    if (seen.insert(e).second) s.allowed_emails_.push_back(std::move(e));
  }
  seen.clear();
  for (std::size_t i = 0; i < d.allowed_domains_.size(); ++i) {
    std::string dom = to_lower_ascii(trim(d.allowed_domains_[i]));
    if (!is_valid_domain_name(dom)) {
      return invalid(indexed("allowed_domains", i),
                     "not a domain name (write \"example.com\", without '@')");
    }
    if (seen.insert(dom).second) s.allowed_domains_.push_back(std::move(dom));
  }
  if (d.access_ == access_mode::allowed && s.allowed_emails_.empty() &&
      s.allowed_domains_.empty()) {
    return invalid("allowed_emails",
                   "access \"allowed\" needs at least one allowed email or domain");
  }
  s.require_account_ = d.require_account_;
  s.show_share_button_ = d.show_share_button_;
  if (d.capacity_warning_percent_ < 1 || d.capacity_warning_percent_ > 100) {
    return invalid("capacity_warning_percent", "capacity_warning_percent must be 1..100");
  }
  s.capacity_warning_percent_ = d.capacity_warning_percent_;
  s.notify_on_claim_ = d.notify_on_claim_;
  return s;
}

std::vector<std::string> changed_fields(const invite_settings& a, const invite_settings& b) {
  std::vector<std::string> out;
  auto check = [&out](bool differs, const char* name) {
    if (differs) out.emplace_back(name);
  };
  check(a.type_ != b.type_, "type");
  check(a.title_ != b.title_, "title");
  check(a.public_description_ != b.public_description_, "public_description");
  check(a.internal_description_ != b.internal_description_, "internal_description");
  check(a.image_url_ != b.image_url_, "image_url");
  check(a.tracks_ != b.tracks_, "tracks");
  check(a.access_duration_ != b.access_duration_, "access_duration");
  check(a.plays_per_track_ != b.plays_per_track_, "plays_per_track");
  check(a.expires_at_ != b.expires_at_, "expires_at");
  check(a.claim_limit_ != b.claim_limit_, "claim_limit");
  check(a.starts_at_ != b.starts_at_, "starts_at");
  check(a.ends_at_ != b.ends_at_, "ends_at");
  check(a.access_ != b.access_, "access");
  check(a.allowed_emails_ != b.allowed_emails_, "allowed_emails");
  check(a.allowed_domains_ != b.allowed_domains_, "allowed_domains");
  check(a.require_account_ != b.require_account_, "require_account");
  check(a.show_share_button_ != b.show_share_button_, "show_share_button");
  check(a.capacity_warning_percent_ != b.capacity_warning_percent_, "capacity_warning_percent");
  check(a.notify_on_claim_ != b.notify_on_claim_, "notify_on_claim");
  return out;
}

// Claim digests go to the creating key's contact email: without one, opting in is refused
// rather than silently sending nothing.
std::optional<domain_error> check_notify(bool turned_on, bool creator_has_email) {
  if (!turned_on || creator_has_email) return std::nullopt;
  return make_error(errc::notify_email_missing, "notify_on_claim",
                    "notify_on_claim needs the API key that created the invite to have an email");
}

// Shared preconditions of commands on an existing invite.
std::optional<domain_error> check_existing(const invite_state& s,
                                           std::optional<std::uint64_t> expected_version) {
  if (!s.exists_) return make_error(errc::not_found, "", "no such invite");
  if (s.deleted_) return make_error(errc::deleted, "", "the invite was deleted");
  if (expected_version && *expected_version != s.version_) {
    return make_error(errc::version_conflict, "",
                      "invite is at version " + std::to_string(s.version_) + ", not " +
                          std::to_string(*expected_version));
  }
  return std::nullopt;
}

}  // namespace

domain_result<invite_settings> validate_invite(const invite_draft& draft,
                                               const track_catalog& tracks) {
  // Title first so that the most basic mistake is reported first.
  if (trim(draft.title_).empty()) return invalid("title", "title is required");
  auto resolved = resolve_tracks(draft.tracks_, tracks);
  if (!resolved) return resolved.error();
  return validate_fields(draft, std::move(*resolved));
}

invite_draft to_draft(const invite_settings& s) {
  invite_draft d;
  d.type_ = s.type_;
  d.title_ = s.title_;
  d.public_description_ = s.public_description_;
  d.internal_description_ = s.internal_description_;
  d.image_url_ = s.image_url_;
  for (const auto& t : s.tracks_) d.tracks_.push_back({t.track_id_, t.pausable_});
  d.access_duration_ = format_access_duration(s.access_duration_);
  d.plays_per_track_ = s.plays_per_track_;
  d.expires_at_ = s.expires_at_;
  d.claim_limit_ = s.claim_limit_;
  d.starts_at_ = s.starts_at_;
  d.ends_at_ = s.ends_at_;
  d.access_ = s.access_;
  d.allowed_emails_ = s.allowed_emails_;
  d.allowed_domains_ = s.allowed_domains_;
  d.require_account_ = s.require_account_;
  d.show_share_button_ = s.show_share_button_;
  d.capacity_warning_percent_ = s.capacity_warning_percent_;
  d.notify_on_claim_ = s.notify_on_claim_;
  return d;
}

// ---------------------------------------------------------------------------------------

std::int64_t capacity_warning_threshold(const invite_settings& settings) {
  if (settings.claim_limit_ <= 0) return 0;
  return (settings.claim_limit_ * settings.capacity_warning_percent_ + 99) / 100;
}

invite_state evolve(invite_state s, const event& e) {
  std::visit(
      [&s](const auto& v) {
        using E = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<E, invite_created>) {
          s.exists_ = true;
          s.org_id_ = v.org_id_;
          s.invite_id_ = v.invite_id_;
          s.code_ = v.code_;
          s.settings_ = v.settings_;
          s.duplicated_from_ = v.duplicated_from_;
          s.created_by_ = v.created_by_;
          s.created_at_ = v.created_at_;
          ++s.version_;
        } else if constexpr (std::is_same_v<E, invite_updated>) {
          s.settings_ = v.settings_;
          // Claims below the new threshold: a later crossing is a new one (invite.h).
          if (s.settings_.claim_limit_ <= 0 ||
              s.claims_count() < capacity_warning_threshold(s.settings_)) {
            s.capacity_warned_ = false;
          }
          ++s.version_;
        } else if constexpr (std::is_same_v<E, invite_deactivated>) {
          s.deactivated_ = true;
          ++s.version_;
        } else if constexpr (std::is_same_v<E, invite_reactivated>) {
          s.deactivated_ = false;
          ++s.version_;
        } else if constexpr (std::is_same_v<E, invite_deleted>) {
          s.deleted_ = true;
          ++s.version_;
        } else if constexpr (std::is_same_v<E, invite_claimed>) {
          s.claims_by_learner_.put(claim_record{v.claim_id_, v.learner_id_, v.anonymous_,
                                                v.claimed_at_, v.restrictions_,
                                                v.access_expires_at_});
          ++s.version_;
        } else if constexpr (std::is_same_v<E, claim_rejected>) {
          ++s.rejections_;
          ++s.version_;
        } else if constexpr (std::is_same_v<E, invite_capacity_warning>) {
          s.capacity_warned_ = true;
          ++s.version_;
        } else if constexpr (std::is_same_v<E, invite_filled>) {
          ++s.version_;
        } else if constexpr (std::is_same_v<E, invite_expired>) {
          s.expired_announced_for_ = v.expired_at_;
          ++s.version_;
        } else if constexpr (std::is_same_v<E, private_invitation_sent>) {
          const std::string email = normalize_email(v.personal_data_.email_);
          auto [it, fresh] = s.private_invitations_.try_emplace(email, v.invitation_id_);
          if (!fresh && it->second != v.invitation_id_) {
            s.personal_links_.erase(it->second);  // "new": the old link stops claiming
            it->second = v.invitation_id_;
          }
          s.personal_links_[v.invitation_id_] = email;
          ++s.version_;
        }
      },
      e);
  return s;
}

// ---------------------------------------------------------------------------------------

std::string_view to_string(invite_status s) {
  switch (s) {
    case invite_status::active:
      return "active";
    case invite_status::upcoming:
      return "upcoming";
    case invite_status::expired:
      return "expired";
    case invite_status::full:
      return "full";
    case invite_status::deactivated:
      return "deactivated";
    case invite_status::deleted:
      return "deleted";
  }
  return "unknown";
}

status_view status_at(const status_inputs& in, timestamp now) {
  if (in.deleted_) return {invite_status::deleted, std::nullopt};
  if (in.deactivated_) return {invite_status::deactivated, std::nullopt};
  if (in.type_ == invite_type::self_paced) {
    if (in.expires_at_ && now >= *in.expires_at_) return {invite_status::expired, std::nullopt};
  } else if (in.ends_at_ && now >= *in.ends_at_) {
    return {invite_status::expired, std::nullopt};
  }
  if (in.claim_limit_ > 0 && in.claims_count_ >= in.claim_limit_) {
    return {invite_status::full, std::nullopt};
  }
  if (in.type_ == invite_type::live_event && in.starts_at_ && now < *in.starts_at_ - hours{24}) {
    const auto left = std::chrono::floor<std::chrono::days>(*in.starts_at_ - now).count();
    return {invite_status::upcoming, static_cast<std::int64_t>(left)};
  }
  return {invite_status::active, std::nullopt};
}

status_view status_at(const invite_settings& settings, bool deleted, bool deactivated,
                      std::int64_t claims_count, timestamp now) {
  status_inputs in;
  in.type_ = settings.type_;
  in.deleted_ = deleted;
  in.deactivated_ = deactivated;
  in.expires_at_ = settings.expires_at_;
  in.starts_at_ = settings.starts_at_;
  in.ends_at_ = settings.ends_at_;
  in.claim_limit_ = settings.claim_limit_;
  in.claims_count_ = claims_count;
  return status_at(in, now);
}

status_view status_at(const invite_state& s, timestamp now) {
  return status_at(s.settings_, s.deleted_, s.deactivated_, s.claims_count(), now);
}

std::optional<timestamp> claims_open_at(const invite_settings& s) {
  if (s.type_ == invite_type::live_event && s.starts_at_) return *s.starts_at_ - hours{24};
  return std::nullopt;
}

std::optional<timestamp> claims_close_at(const invite_settings& s) {
  return s.type_ == invite_type::live_event ? s.ends_at_ : s.expires_at_;
}

std::optional<std::int64_t> remaining_spots(const invite_state& s) {
  if (s.settings_.claim_limit_ == 0) return std::nullopt;
  return std::max<std::int64_t>(0, s.settings_.claim_limit_ - s.claims_count());
}

bool share_button_visible(const invite_state& s, timestamp now) {
  if (!s.settings_.show_share_button_ || s.settings_.access_ == access_mode::allowed) return false;
  const auto st = status_at(s, now).status_;
  return st == invite_status::active || st == invite_status::upcoming;
}

// ---------------------------------------------------------------------------------------

invite_draft apply_patch(invite_draft d, const invite_patch& p) {
  if (p.type_) d.type_ = *p.type_;
  if (p.title_) d.title_ = *p.title_;
  if (p.public_description_) d.public_description_ = *p.public_description_;
  if (p.internal_description_) d.internal_description_ = *p.internal_description_;
  if (p.image_url_) d.image_url_ = *p.image_url_;
  if (p.tracks_) d.tracks_ = *p.tracks_;
  if (p.access_duration_) d.access_duration_ = *p.access_duration_;
  if (p.plays_per_track_) d.plays_per_track_ = *p.plays_per_track_;
  if (p.expires_at_) d.expires_at_ = *p.expires_at_;
  if (p.claim_limit_) d.claim_limit_ = *p.claim_limit_;
  if (p.starts_at_) d.starts_at_ = *p.starts_at_;
  if (p.ends_at_) d.ends_at_ = *p.ends_at_;
  if (p.access_) d.access_ = *p.access_;
  if (p.allowed_emails_) d.allowed_emails_ = *p.allowed_emails_;
  if (p.allowed_domains_) d.allowed_domains_ = *p.allowed_domains_;
  if (p.require_account_) d.require_account_ = *p.require_account_;
  if (p.show_share_button_) d.show_share_button_ = *p.show_share_button_;
  if (p.capacity_warning_percent_) d.capacity_warning_percent_ = *p.capacity_warning_percent_;
  if (p.notify_on_claim_) d.notify_on_claim_ = *p.notify_on_claim_;
  return d;
}

domain_result<event_list> decide(const invite_state& s, const create_invite& c, timestamp now) {
  if (s.exists_) return make_error(errc::already_exists, "id", "the invite exists already");
  if (c.invite_id_.is_nil()) return invalid("id", "invite id must not be nil");
  if (!is_valid_invite_code(c.code_)) {
    return invalid("code", "code must be 7 characters of " + std::string(invite_code_alphabet));
  }
  auto settings = validate_invite(c.draft_, c.tracks_);
  if (!settings) return settings.error();
  if (auto err = check_notify(settings->notify_on_claim_, c.creator_has_email_)) return *err;
  return event_list{invite_created{c.org_id_, c.invite_id_, c.code_, std::move(*settings),
                                   std::nullopt, now, c.created_by_}};
}

domain_result<event_list> decide(const invite_state& s, const update_invite& c, timestamp now) {
  if (auto err = check_existing(s, c.expected_version_)) return *err;
  const invite_patch& p = c.patch_;
  // Tracks are resolved below: unchanged ones keep their own pausable.
  invite_draft d = apply_patch(to_draft(s.settings_), p);
  if (trim(d.title_).empty()) return invalid("title", "title is required");

  // Unchanged tracks are kept as they are, even if a track has since become non-pausable:
  // only a new track list is checked against the catalog.
  std::vector<invite_track> tracks = s.settings_.tracks_;
  if (p.tracks_) {
    auto resolved = resolve_tracks(*p.tracks_, c.tracks_);
    if (!resolved) return resolved.error();
    tracks = std::move(*resolved);
  }
  auto settings = validate_fields(d, std::move(tracks));
  if (!settings) return settings.error();
  if (auto err = check_notify(settings->notify_on_claim_ && !s.settings_.notify_on_claim_,
                              c.creator_has_email_)) {
    return *err;
  }
  auto changed = changed_fields(s.settings_, *settings);
  if (changed.empty()) return event_list{};  // nothing to record
  return event_list{
      invite_updated{s.org_id_, s.invite_id_, std::move(*settings), std::move(changed), now}};
}

domain_result<event_list> decide(const invite_state& s, const deactivate_invite& c, timestamp now) {
  if (auto err = check_existing(s, c.expected_version_)) return *err;
  if (s.deactivated_) return event_list{};
  return event_list{invite_deactivated{s.org_id_, s.invite_id_, now}};
}

domain_result<event_list> decide(const invite_state& s, const reactivate_invite& c, timestamp now) {
  if (auto err = check_existing(s, c.expected_version_)) return *err;
  if (!s.deactivated_) return event_list{};
  return event_list{invite_reactivated{s.org_id_, s.invite_id_, now}};
}

domain_result<event_list> decide(const invite_state& s, const delete_invite& c, timestamp now) {
  if (auto err = check_existing(s, c.expected_version_)) return *err;
  return event_list{invite_deleted{s.org_id_, s.invite_id_, now}};
}

namespace {

// "<title> (Copy)", the title cut (at a character boundary) to keep the copy's within
// max_title_length: every later edit checks the title again, so a copy over it could never
// be edited.
std::string copy_title(std::string_view title) {
  constexpr std::string_view suffix = " (Copy)";
  std::size_t keep = std::min(title.size(), max_title_length - suffix.size());
  // Back to the first byte of a UTF-8 sequence (not a continuation byte 10xxxxxx).
  while (keep > 0 && keep < title.size() &&
         (static_cast<unsigned char>(title[keep]) & 0xC0) == 0x80) {
    --keep;
  }
  return std::string(trim(title.substr(0, keep))) + std::string(suffix);
}

}  // namespace

domain_result<event_list> decide(const invite_state& s, const duplicate_invite& c, timestamp now) {
  if (auto err = check_existing(s, std::nullopt)) return *err;
  if (c.new_invite_id_.is_nil() || c.new_invite_id_ == s.invite_id_) {
    return invalid("id", "the duplicate needs a new invite id");
  }
  if (!is_valid_invite_code(c.new_code_) || c.new_code_ == s.code_) {
    return invalid("code", "the duplicate needs a new valid code");
  }
  if (auto err = check_notify(s.settings_.notify_on_claim_, c.creator_has_email_)) return *err;
  invite_settings settings = s.settings_;
  settings.title_ = copy_title(settings.title_);
  return event_list{invite_created{s.org_id_, c.new_invite_id_, c.new_code_, std::move(settings),
                                   s.invite_id_, now, c.created_by_}};
}

domain_result<event_list> decide(const invite_state& s, const expire_invite&, timestamp now) {
  if (auto err = check_existing(s, std::nullopt)) return *err;
  const auto deadline = claims_close_at(s.settings_);
  if (!deadline) return make_error(errc::invalid_state, "expires_at", "the invite never expires");
  if (now < *deadline) return make_error(errc::invalid_state, "", "the invite has not expired yet");
  if (s.expired_announced_for_ == deadline) return event_list{};  // once per deadline
  return event_list{invite_expired{s.org_id_, s.invite_id_, *deadline, now}};
}

domain_result<event_list> decide(const invite_state& s, const send_private_invitation& c,
                                 timestamp now) {
  if (auto err = check_existing(s, std::nullopt)) return *err;
  if (!is_valid_email(c.email_)) return invalid("email", "not an email address");
  if (s.settings_.access_ != access_mode::allowed) {
    return make_error(errc::invalid_state, "access",
                      "private invitations need an invite with access \"allowed\"");
  }
  const auto st = status_at(s, now).status_;
  if (st == invite_status::deactivated) {
    return make_error(errc::deactivated, "", "the invite is deactivated");
  }
  if (st == invite_status::expired) return make_error(errc::expired, "", "the invite expired");
  if (st == invite_status::full) return make_error(errc::full, "", "the invite is full");
  const std::string email = normalize_email(c.email_);
  private_invitation_sent e;
  e.org_id_ = s.org_id_;
  e.invite_id_ = s.invite_id_;
  e.invitation_id_ = c.invitation_id_;
  e.job_id_ = c.job_id_;
  e.learner_id_ = c.existing_learner_id_;
  e.sent_at_ = now;
  e.personal_data_.email_ = email;
  if (c.remind_after_) e.remind_at_ = access_expires_at(now, *c.remind_after_);
  if (auto it = s.private_invitations_.find(email);
      it != s.private_invitations_.end() && c.on_existing_ == on_existing_invitation::resend) {
    e.invitation_id_ = it->second;
    e.resent_ = true;
  }
  return event_list{std::move(e)};
}

// ---------------------------------------------------------------------------------------

domain_result<claim_decision> decide(const invite_state& s, const claim_invite& c, timestamp now) {
  if (!s.exists_) return make_error(errc::not_found, "code", "no such invite");
  const invite_settings& cfg = s.settings_;

  // Who is claiming.
  std::optional<std::string> email;
  if (c.email_ && !trim(*c.email_).empty()) {
    if (!is_valid_email(*c.email_)) return invalid("email", "not an email address");
    email = normalize_email(*c.email_);
  }
  const std::string* link_email = nullptr;  // the personal link's addressee
  bool wrong_link = false;
  if (c.invitation_id_) {
    auto it = s.personal_links_.find(*c.invitation_id_);
    if (it == s.personal_links_.end() || (email && *email != it->second)) {
      wrong_link = true;
    } else {
      link_email = &it->second;
      email = it->second;
    }
  }
  std::optional<uuid> learner_id;
  bool anonymous = false;
  bool new_learner = false;
  if (email) {
    new_learner = !c.existing_learner_id_.has_value();
    learner_id = new_learner ? c.new_learner_id_ : *c.existing_learner_id_;
  } else if (c.anonymous_learner_id_) {
    learner_id = c.anonymous_learner_id_;
    anonymous = true;
  }

  auto reject = [&](rejection_reason reason) {
    claim_decision d;
    d.outcome_ = claim_outcome::rejected;
    d.rejection_ = reason;
    claim_rejected e;
    e.org_id_ = s.org_id_;
    e.invite_id_ = s.invite_id_;
    e.reason_ = reason;
    e.learner_id_ = new_learner ? std::nullopt : learner_id;
    e.anonymous_ = anonymous;
    e.rejected_at_ = now;
    if (email) e.personal_data_.email_ = *email;
    d.events_.push_back(std::move(e));
    return d;
  };

  if (s.deleted_) return reject(rejection_reason::deleted);
  if (wrong_link) return reject(rejection_reason::not_allowed);

  // Claims are never revoked, so a returning learner gets the same claim in any state.
  if (learner_id && !new_learner) {
    if (const claim_record* known = s.claims_by_learner_.find(*learner_id)) {
      // A claim made for a private invitation's addressee is bound to its learner: a
      // forwarded link claims nothing, nor does the addressee's email entered by code.
      const bool bound = link_email || (email && s.private_invitations_.contains(*email));
      if (bound && c.presented_learner_id_ != learner_id) {
        return reject(rejection_reason::not_allowed);
      }
      claim_decision d;
      d.outcome_ = claim_outcome::existing;
      d.claim_ = *known;
      return d;
    }
  }

  if (s.deactivated_) return reject(rejection_reason::deactivated);
  if (auto open = claims_open_at(cfg); open && now < *open) {
    return reject(rejection_reason::not_open_yet);
  }
  if (auto close = claims_close_at(cfg); close && now >= *close) {
    return reject(rejection_reason::expired);
  }

  // Access rule.
  const bool needs_email = cfg.require_account_ || cfg.access_ != access_mode::anyone;
  if (needs_email && !email) {
    claim_decision d = reject(rejection_reason::details_missing);
    d.missing_field_ = "email";
    return d;
  }
  if (!email && !anonymous) {
    return invalid("anonymous_learner_id", "an anonymous claim needs an anonymous learner id");
  }
  if (cfg.access_ == access_mode::allowed && !link_email) {
    const bool listed = std::find(cfg.allowed_emails_.begin(), cfg.allowed_emails_.end(), *email) !=
                            cfg.allowed_emails_.end() ||
                        std::find(cfg.allowed_domains_.begin(), cfg.allowed_domains_.end(),
                                  email_domain(*email)) != cfg.allowed_domains_.end();
    if (!listed) return reject(rejection_reason::not_allowed);
  }
  const bool capture_lead = cfg.access_ == access_mode::lead_form && !c.lead_already_submitted_;
  std::map<std::string, std::string> answers;
  if (capture_lead) {
    auto kept = check_lead_submission(c.lead_form_, c.first_name_, c.last_name_, c.lead_answers_);
    if (!kept) {
      claim_decision d = reject(rejection_reason::details_missing);
      d.missing_field_ = kept.error().field_;
      return d;
    }
    answers = std::move(*kept);
  }

  const std::int64_t count = s.claims_count();
  if (cfg.claim_limit_ > 0 && count >= cfg.claim_limit_) return reject(rejection_reason::full);

  // Success.
  claim_decision d;
  d.outcome_ = claim_outcome::claimed;
  d.learner_registered_ = new_learner;
  // At most six events (registration, password setup, lead, claim, and with a claim limit
  // InviteCapacityWarning and InviteFilled, both when a limit of 1 fills): one allocation,
  // not a vector growing through three sizes of ~500-byte events.
  d.events_.reserve(std::size_t(new_learner) * 2 + std::size_t(capture_lead) + 1 +
                    std::size_t(cfg.claim_limit_ > 0) * 2);
  personal_data who;
  if (email) {
    who.email_ = *email;
    who.first_name_ = std::string(trim(c.first_name_));
    who.last_name_ = std::string(trim(c.last_name_));
  }
  if (new_learner) {
    learner_registered e;
    e.org_id_ = s.org_id_;
    e.learner_id_ = *learner_id;
    e.registered_at_ = now;
    e.personal_data_ = who;
    // A new account: its one-time set-password link, mailed with the welcome mail.
    std::optional<password_setup_issued> setup;
    if (c.new_password_setup_id_) {
      setup = issue_password_setup_for(e, *c.new_password_setup_id_, s.invite_id_);
    }
    d.events_.push_back(std::move(e));
    if (setup) d.events_.push_back(std::move(*setup));
  }
  if (capture_lead) {
    lead_captured e;
    e.org_id_ = s.org_id_;
    e.learner_id_ = *learner_id;
    e.invite_id_ = s.invite_id_;
    e.captured_at_ = now;
    e.personal_data_ = who;
    e.personal_data_.answers_ = std::move(answers);
    d.events_.push_back(std::move(e));
  }
  invite_claimed claimed;
  claimed.org_id_ = s.org_id_;
  claimed.invite_id_ = s.invite_id_;
  claimed.claim_id_ = c.claim_id_;
  claimed.learner_id_ = *learner_id;
  claimed.anonymous_ = anonymous;
  claimed.claimed_at_ = now;
  claimed.restrictions_ = claim_snapshot{cfg.tracks_, cfg.access_duration_, cfg.plays_per_track_};
  claimed.access_expires_at_ = access_expires_at(now, cfg.access_duration_);
  // Who accepted, as entered with this claim (email and any names): the acceptance list.
  claimed.personal_data_ = who;
  d.claim_ = claim_record{claimed.claim_id_,   claimed.learner_id_,   claimed.anonymous_,
                          claimed.claimed_at_, claimed.restrictions_, claimed.access_expires_at_};
  d.events_.push_back(std::move(claimed));

  if (cfg.claim_limit_ > 0) {
    const std::int64_t after = count + 1;
    // Once per crossing of the threshold (invite_state::capacity_warned_).
    if (!s.capacity_warned_ && after >= capacity_warning_threshold(cfg)) {
      d.events_.push_back(invite_capacity_warning{s.org_id_, s.invite_id_, after, cfg.claim_limit_,
                                                  cfg.capacity_warning_percent_, now});
    }
    if (after == cfg.claim_limit_) {
      d.events_.push_back(
          invite_filled{s.org_id_, s.invite_id_, c.claim_id_, cfg.claim_limit_, now});
    }
  }
  return d;
}

}  // namespace passage::domain
