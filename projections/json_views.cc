#include "projections/json_views.h"

#include "common/time_format.h"
#include "domain/duration.h"

namespace passage::projections {

namespace {

using nlohmann::json;

json time_or_null(const std::optional<timestamp>& t) {
  return t ? json(format_rfc3339(*t)) : json(nullptr);
}
json id_or_null(const std::optional<uuid>& u) { return u ? json(u->to_string()) : json(nullptr); }
json int_or_null(const std::optional<std::int64_t>& n) { return n ? json(*n) : json(nullptr); }

json tracks_json(const std::vector<domain::invite_track>& tracks) {
  json out = json::array();
  for (const auto& t : tracks)
    out.push_back({{"track_id", t.track_id_}, {"pausable", t.pausable_}});
  return out;
}

void put_person(json& j, const shown_person& p, bool anonymous) {
  j["forgotten"] = p.forgotten;
  if (p.forgotten) {
    j["email"] = "forgotten";
    j["first_name"] = nullptr;
    j["last_name"] = nullptr;
    return;
  }
  j["email"] = anonymous || p.email.empty() ? json(nullptr) : json(p.email);
  j["first_name"] = p.first_name.empty() ? json(nullptr) : json(p.first_name);
  j["last_name"] = p.last_name.empty() ? json(nullptr) : json(p.last_name);
}

}  // namespace

json to_json(const domain::lead_form& form) {
  json fields = json::array();
  for (const auto& f : form.fields_) {
    fields.push_back({{"name", f.name_}, {"label", f.label_}, {"required", f.required_}});
  }
  return {{"fields", std::move(fields)}};
}

json to_json(const domain::invite_settings& s) {
  return {{"type", domain::to_string(s.type_)},
          {"title", s.title_},
          {"public_description", s.public_description_},
          {"internal_description", s.internal_description_},
          {"image_url", s.image_url_},
          {"tracks", tracks_json(s.tracks_)},
          {"access_duration", domain::format_access_duration(s.access_duration_)},
          {"plays_per_track", s.plays_per_track_},
          {"expires_at", time_or_null(s.expires_at_)},
          {"claim_limit", s.claim_limit_},
          {"starts_at", time_or_null(s.starts_at_)},
          {"ends_at", time_or_null(s.ends_at_)},
          {"access", domain::to_string(s.access_)},
          {"allowed_emails", s.allowed_emails_},
          {"allowed_domains", s.allowed_domains_},
          {"require_account", s.require_account_},
          {"show_share_button", s.show_share_button_},
          {"capacity_warning_percent", s.capacity_warning_percent_},
          {"notify_on_claim", s.notify_on_claim_}};
}

json to_json(const invite_view& v) {
  json j = to_json(v.settings);
  j["id"] = v.invite_id.to_string();
  j["org_id"] = v.org_id.to_string();
  j["code"] = v.code;
  j["link"] = v.link;
  j["version"] = v.version;
  j["status"] = domain::to_string(v.status.status_);
  j["days_left"] = int_or_null(v.status.days_left_);
  j["claims_count"] = v.claims_count;
  j["remaining_spots"] = int_or_null(v.remaining_spots);
  j["share_button_visible"] = v.share_button_visible;
  j["duplicated_from"] = id_or_null(v.duplicated_from);
  j["created_by"] = id_or_null(v.created_by);
  j["created_at"] = format_rfc3339(v.created_at);
  j["updated_at"] = format_rfc3339(v.updated_at);
  return j;
}

json to_public_json(const invite_view& v, const domain::lead_form* form) {
  const auto& s = v.settings;
  json j = {{"code", v.code},
            {"link", v.link},
            {"status", domain::to_string(v.status.status_)},
            {"days_left", int_or_null(v.status.days_left_)},
            {"remaining_spots", int_or_null(v.remaining_spots)},
            {"type", domain::to_string(s.type_)},
            {"title", s.title_},
            {"public_description", s.public_description_},
            {"image_url", s.image_url_},
            {"tracks", tracks_json(s.tracks_)},
            {"access_duration", domain::format_access_duration(s.access_duration_)},
            {"plays_per_track", s.plays_per_track_},
            {"expires_at", time_or_null(s.expires_at_)},
            {"starts_at", time_or_null(s.starts_at_)},
            {"ends_at", time_or_null(s.ends_at_)},
            {"access", domain::to_string(s.access_)},
            {"require_account", s.require_account_},
            {"show_share_button", v.share_button_visible}};
  if (form != nullptr && s.access_ == domain::access_mode::lead_form)
    j["lead_form"] = to_json(*form);
  return j;
}

json to_json(const invite_page& page) {
  json invites = json::array();
  for (const auto& v : page.invites) invites.push_back(to_json(v));
  return {{"invites", std::move(invites)},
          {"next_cursor", page.next_cursor ? json(*page.next_cursor) : json(nullptr)}};
}

json to_json(const usage_view& v) {
  json plays = json::array();
  for (const auto& [track, n] : v.plays_per_track)
    plays.push_back({{"track_id", track}, {"plays", n}});
  json days = json::array();
  for (const auto& [day, n] : v.claims_per_day) days.push_back({{"date", day}, {"claims", n}});
  json hours = json::array();
  for (const auto& [hour, n] : v.claims_per_hour) hours.push_back({{"hour", hour}, {"claims", n}});
  return {{"invite_id", v.invite_id.to_string()},
          {"claims", v.claims},
          {"unique_learners", v.unique_learners},
          {"anonymous_claims", v.anonymous_claims},
          {"rejections", v.rejections},
          {"plays", v.plays},
          {"plays_per_track", std::move(plays)},
          {"remaining_spots", int_or_null(v.remaining_spots)},
          {"claims_per_day", std::move(days)},
          {"claims_per_hour", std::move(hours)},
          {"time_to_claim", to_json(v.time_to_claim)}};
}

json to_json(const std::optional<claim_delay_stats>& s) {
  if (!s) return nullptr;
  return {{"claims", s->count},
          {"min_seconds", s->min_seconds},
          {"median_seconds", s->median_seconds},
          {"p90_seconds", s->p90_seconds},
          {"max_seconds", s->max_seconds}};
}

std::string_view to_string(claim_bucket b) { return b == claim_bucket::hour ? "hour" : "day"; }

namespace {
json buckets_json(const claim_counts& counts) {
  json out = json::array();
  for (const auto& [start, n] : counts) out.push_back({{"start", start}, {"claims", n}});
  return out;
}
}  // namespace

json to_json(const claim_history_view& h) {
  json invites = json::array();
  for (const auto& i : h.invites) {
    invites.push_back({{"invite_id", i.invite_id.to_string()},
                       {"title", i.title},
                       {"claims", i.claims},
                       {"buckets", buckets_json(i.buckets)}});
  }
  return {{"org_id", h.org_id.to_string()},
          {"bucket", to_string(h.query.bucket)},
          {"since", time_or_null(h.query.since)},
          {"until", time_or_null(h.query.until)},
          {"claims", h.claims},
          {"buckets", buckets_json(h.buckets)},
          {"invites", std::move(invites)},
          {"time_to_claim", to_json(h.time_to_claim)}};
}

std::string_view to_string(learner_fact f) {
  switch (f) {
    case learner_fact::claimed:
      return "claimed";
    case learner_fact::rejected:
      return "rejected";
    case learner_fact::played:
      return "played";
    case learner_fact::paused:
      return "paused";
    case learner_fact::resumed:
      return "resumed";
  }
  return "unknown";
}

json to_json(const learner_history_view& h) {
  json entries = json::array();
  for (const auto& x : h.entries) {
    json j = {{"fact", to_string(x.fact)},
              {"at", format_rfc3339(x.at)},
              {"position", x.position},
              {"invite_id", x.invite_id.to_string()},
              {"claim_id", id_or_null(x.claim_id)}};
    if (!x.track_id.empty()) j["track_id"] = x.track_id;
    if (x.fact == learner_fact::played) j["play_number"] = x.play_number;
    if (x.reason) j["reason"] = domain::to_string(*x.reason);
    if (x.fact == learner_fact::claimed || x.fact == learner_fact::rejected) {
      j["email"] = x.who.forgotten ? json("forgotten") : json(x.who.email);
    }
    entries.push_back(std::move(j));
  }
  return {{"learner_id", h.learner_id.to_string()},
          {"org_id", h.org_id.to_string()},
          {"registered_at", time_or_null(h.registered_at)},
          {"forgotten", h.forgotten},
          {"claims", h.claims},
          {"rejections", h.rejections},
          {"plays", h.plays},
          {"history", std::move(entries)}};
}

json to_json(const acceptance_row& r) {
  json j = {{"claim_id", r.claim_id.to_string()},
            {"learner_id", r.learner_id.to_string()},
            {"anonymous", r.anonymous},
            {"claimed_at", format_rfc3339(r.claimed_at)},
            {"access_expires_at", time_or_null(r.access_expires_at)},
            {"seconds_since_invite_created", r.seconds_since_invite_created}};
  put_person(j, r.who, r.anonymous);
  return j;
}

json to_json(std::span<const acceptance_row> rows) {
  json out = json::array();
  for (const auto& r : rows) out.push_back(to_json(r));
  return {{"claims", std::move(out)}};
}

json to_json(const rejection_row& r) {
  json j = {{"reason", domain::to_string(r.reason)},
            {"learner_id", id_or_null(r.learner_id)},
            {"anonymous", r.anonymous},
            {"rejected_at", format_rfc3339(r.rejected_at)}};
  put_person(j, r.who, r.anonymous);
  return j;
}

json to_json(std::span<const rejection_row> rows) {
  json out = json::array();
  for (const auto& r : rows) out.push_back(to_json(r));
  return {{"rejections", std::move(out)}};
}

json to_json(const lead_row& r) {
  json j = {{"learner_id", r.learner_id.to_string()},
            {"invite_id", id_or_null(r.invite_id)},
            {"captured_at", format_rfc3339(r.captured_at)},
            {"answers", r.answers}};
  put_person(j, r.who, false);
  return j;
}

json to_json(const claim_access_view& v) {
  json tracks = json::array();
  for (const auto& t : v.tracks) {
    tracks.push_back({{"track_id", t.track_id},
                      {"pausable", t.pausable},
                      {"access_expires_at", time_or_null(t.access_expires_at)},
                      {"plays_used", t.plays_used},
                      {"plays_remaining", int_or_null(t.plays_remaining)},
                      {"paused", t.paused}});
  }
  return {{"claim_id", v.claim_id.to_string()},
          {"invite_id", v.invite_id.to_string()},
          {"learner_id", v.learner_id.to_string()},
          {"anonymous", v.anonymous},
          {"claimed_at", format_rfc3339(v.claimed_at)},
          {"access_expires_at", time_or_null(v.access_expires_at)},
          {"access_expired", v.access_expired},
          {"tracks", std::move(tracks)}};
}

json to_json(const track_view& v) {
  return {{"id", v.track_id},
          {"track_id", v.track_id},
          {"title", v.title},
          {"pausable", v.pausable},
          {"owner", id_or_null(v.owner)},
          {"registered_at", format_rfc3339(v.registered_at)},
          {"updated_at", format_rfc3339(v.updated_at)}};
}

json to_json(const api_key_view& v) {
  return {{"id", v.key_id.to_string()},
          {"role", domain::to_string(v.role)},
          {"name", v.name},
          {"email", v.email ? json(*v.email) : json()},
          {"revoked", v.revoked},
          {"issued_at", format_rfc3339(v.issued_at)},
          {"revoked_at", time_or_null(v.revoked_at)}};
}

json to_json(const organization_view& v) {
  return {{"id", v.org_id.to_string()},
          {"name", v.name},
          {"created_at", format_rfc3339(v.created_at)},
          {"lead_form", to_json(v.lead_form)}};
}

json to_json(const learner_view& v) {
  json claims = json::array();
  for (const auto& c : v.claims) claims.push_back(c.to_string());
  return {{"learner_id", v.learner_id.to_string()},
          {"lead_submitted", v.lead_submitted},
          {"forgotten", v.forgotten},
          {"registered_at", format_rfc3339(v.registered_at)},
          {"claims", std::move(claims)}};
}

}  // namespace passage::projections
