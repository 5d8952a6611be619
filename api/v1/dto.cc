#include "api/v1/dto.h"

#include <limits>
#include <optional>
#include <set>
#include <unordered_set>

#include "common/time_format.h"
#include "domain/text.h"
#include "eventstore/json_text.h"

namespace passage::api::v1 {
namespace {

using nlohmann::json;

// Reads the members of one JSON object, remembering which it consumed, so that
// whatever is left over can be reported as unknown.
class object_reader {
 public:
  object_reader(const json& j, std::string path) : j_(j), path_(std::move(path)) {}

  bool is_object() const { return j_.is_object(); }
  bool has(const char* key) const { return j_.contains(key); }
  std::string at(std::string_view key) const {
    return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  }

  // Each getter: absent -> leaves `out` untouched and returns true (unless required).
  std::optional<field_error> string(const char* key, std::string& out, bool required = false,
                                    bool nullable = false) {
    seen_.insert(key);
    auto it = j_.find(key);
    if (it == j_.end() || (nullable && it->is_null())) {
      if (required) return field_error{at(key), "is required"};
      return std::nullopt;
    }
    if (!it->is_string()) return field_error{at(key), "must be a string"};
    out = it->get<std::string>();
    return std::nullopt;
  }
  std::optional<field_error> boolean(const char* key, bool& out) {
    seen_.insert(key);
    auto it = j_.find(key);
    if (it == j_.end()) return std::nullopt;
    if (!it->is_boolean()) return field_error{at(key), "must be true or false"};
    out = it->get<bool>();
    return std::nullopt;
  }
  std::optional<field_error> integer(const char* key, std::int64_t& out) {
    seen_.insert(key);
    auto it = j_.find(key);
    if (it == j_.end()) return std::nullopt;
    if (it->is_number_unsigned()) {
      if (it->get<std::uint64_t>() > std::uint64_t(std::numeric_limits<std::int64_t>::max())) {
        return field_error{at(key), "is too large"};
      }
      out = static_cast<std::int64_t>(it->get<std::uint64_t>());
      return std::nullopt;
    }
    if (!it->is_number_integer()) return field_error{at(key), "must be an integer"};
    out = it->get<std::int64_t>();
    return std::nullopt;
  }
  // RFC 3339; null clears when `nullable`, reported as present-but-empty.
  std::optional<field_error> time(const char* key, std::optional<std::optional<timestamp>>& out) {
    seen_.insert(key);
    auto it = j_.find(key);
    if (it == j_.end()) return std::nullopt;
    if (it->is_null()) {
      out = std::optional<timestamp>{};
      return std::nullopt;
    }
    if (!it->is_string()) return field_error{at(key), "must be an RFC 3339 time or null"};
    auto t = parse_rfc3339(it->get<std::string>());
    if (!t) return field_error{at(key), "must be an RFC 3339 time such as 2026-11-20T09:00:00Z"};
    out = *t;
    return std::nullopt;
  }
  std::optional<field_error> strings(const char* key, std::vector<std::string>& out) {
    seen_.insert(key);
    auto it = j_.find(key);
    if (it == j_.end()) return std::nullopt;
    if (!it->is_array()) return field_error{at(key), "must be an array of strings"};
    out.clear();
    for (std::size_t i = 0; i < it->size(); ++i) {
      if (!(*it)[i].is_string()) {
        return field_error{at(key) + "[" + std::to_string(i) + "]", "must be a string"};
      }
      out.push_back((*it)[i].get<std::string>());
    }
    return std::nullopt;
  }
  const json* raw(const char* key) {
    seen_.insert(key);
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  std::optional<field_error> no_unknown_members() const {
    for (auto it = j_.begin(); it != j_.end(); ++it) {
      if (!seen_.count(it.key())) return field_error{at(it.key()), "is not a known field"};
    }
    return std::nullopt;
  }

 private:
  const json& j_;
  std::string path_;
  std::set<std::string, std::less<>> seen_;
};

#define PASSAGE_TRY(expr)                 \
  do {                                    \
    if (auto err_ = (expr)) return *err_; \
  } while (0)

std::optional<field_error> parse_tracks(const json* j,
                                        std::vector<domain::invite_track_request>& out) {
  if (!j) return std::nullopt;
  if (!j->is_array())
    return field_error{"tracks", "must be an array of {\"track_id\", \"pausable\"}"};
  out.clear();
  for (std::size_t i = 0; i < j->size(); ++i) {
    std::string path = "tracks[" + std::to_string(i) + "]";
    const json& t = (*j)[i];
    if (t.is_string()) {  // shorthand: just the track id
      out.push_back({t.get<std::string>(), std::nullopt});
      continue;
    }
    if (!t.is_object()) return field_error{path, "must be an object or a track id"};
    object_reader r(t, path);
    domain::invite_track_request tr;
    PASSAGE_TRY(r.string("track_id", tr.track_id_, true));
    if (r.has("pausable")) {
      bool p = false;
      PASSAGE_TRY(r.boolean("pausable", p));
      tr.pausable_ = p;
    } else {
      (void)r.raw("pausable");
    }
    PASSAGE_TRY(r.no_unknown_members());
    out.push_back(std::move(tr));
  }
  return std::nullopt;
}

std::optional<field_error> parse_type(const json* j, std::optional<domain::invite_type>& out) {
  if (!j) return std::nullopt;
  auto t = j->is_string() ? domain::parse_invite_type(j->get<std::string>()) : std::nullopt;
  if (!t) return field_error{"type", "must be \"self_paced\" or \"live_event\""};
  out = *t;
  return std::nullopt;
}

std::optional<field_error> parse_access(const json* j, std::optional<domain::access_mode>& out) {
  if (!j) return std::nullopt;
  auto a = j->is_string() ? domain::parse_access_mode(j->get<std::string>()) : std::nullopt;
  if (!a) return field_error{"access", "must be \"anyone\", \"lead_form\" or \"allowed\""};
  out = *a;
  return std::nullopt;
}

std::optional<field_error> parse_duration_text(const json* j, std::optional<std::string>& out) {
  if (!j) return std::nullopt;
  if (!j->is_string()) {
    return field_error{"access_duration", "must be an ISO-8601 duration such as P30D, or forever"};
  }
  out = j->get<std::string>();
  return std::nullopt;
}

}  // namespace

dto_result<nlohmann::json> parse_body(std::string_view body, bool allow_empty) {
  if (body.empty()) {
    if (allow_empty) return nlohmann::json::object();
    return field_error{"", "a JSON object body is required"};
  }
  // A name twice in one object is refused, not resolved: parsers disagree on which one
  // counts (this one would keep the last, simdjson and many others the first), so a body
  // that a proxy, a client library and this server read differently never gets in.
  // The refusal names the field by its path (`tracks[1].track_id`), as every other field
  // error does, so a client finds it in a nested body.
  struct open_value {
    bool array = false;
    std::size_t index = 0;                  // of the element being read, in an array
    std::string key;                        // of the member being read, in an object
    std::unordered_set<std::string> names;  // seen so far, in an object
  };
  std::vector<open_value> open;  // innermost last
  std::optional<std::string> twice;
  // No request body of the API nests deeper than a few levels; a body nested thousands deep
  // (64 KiB of `[`) would be copied and compared recursively by the handlers: refused, and
  // what lies deeper is not even kept while parsing.
  static constexpr std::size_t max_depth = 32;
  bool too_deep = false;
  auto path_to = [&](const std::string& name) {
    std::string path;
    for (std::size_t i = 0; i + 1 < open.size(); ++i) {
      if (open[i].array) {
        path += "[" + std::to_string(open[i].index) + "]";
      } else {
        if (!path.empty()) path += ".";
        path += open[i].key;
      }
    }
    return path.empty() ? name : path + "." + name;
  };
  auto element_done = [&] {
    if (!open.empty() && open.back().array) ++open.back().index;
  };
  auto watch = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using ev = nlohmann::json::parse_event_t;
    if (twice || too_deep) return !too_deep;
    switch (event) {
      case ev::object_start:
      case ev::array_start:
        if (open.size() >= max_depth) {
          too_deep = true;
          return false;
        }
        open.push_back(open_value{.array = event == ev::array_start});
        break;
      case ev::object_end:
      case ev::array_end:
        if (!open.empty()) open.pop_back();
        element_done();
        break;
      case ev::value:
        element_done();
        break;
      case ev::key:
        if (!open.empty()) {
          const auto& name = parsed.get_ref<const std::string&>();
          if (!open.back().names.insert(name).second) {
            twice = path_to(name);
          } else {
            open.back().key = name;
          }
        }
        break;
    }
    return true;
  };
  auto j = nlohmann::json::parse(body, watch, false);
  if (too_deep) {
    return field_error{"", "the body nests deeper than " + std::to_string(max_depth) + " levels"};
  }
  if (j.is_discarded()) return field_error{"", "the body is not valid JSON (or not UTF-8)"};
  if (!j.is_object()) return field_error{"", "the body must be a JSON object"};
  if (twice) return field_error{*twice, "appears more than once in its object"};
  return j;
}

dto_result<domain::invite_draft> parse_invite_draft(const nlohmann::json& body) {
  // A create is a patch applied to the defaults, with the required fields present.
  auto patch = parse_invite_patch(body);
  if (!patch) return patch.error();
  if (!patch->title_) return field_error{"title", "is required"};
  if (!patch->tracks_) return field_error{"tracks", "is required"};
  return domain::apply_patch(domain::invite_draft{}, *patch);
}

dto_result<domain::invite_patch> parse_invite_patch(const nlohmann::json& body) {
  if (!body.is_object()) return field_error{"", "the body must be a JSON object"};
  object_reader r(body, "");
  domain::invite_patch p;
  PASSAGE_TRY(parse_type(r.raw("type"), p.type_));
  auto opt_string = [&](const char* key,
                        std::optional<std::string>& out) -> std::optional<field_error> {
    if (!r.has(key)) {
      (void)r.raw(key);
      return std::nullopt;
    }
    std::string v;
    if (auto e = r.string(key, v, false, true)) return e;
    out = v;
    return std::nullopt;
  };
  PASSAGE_TRY(opt_string("title", p.title_));
  PASSAGE_TRY(opt_string("public_description", p.public_description_));
  PASSAGE_TRY(opt_string("internal_description", p.internal_description_));
  PASSAGE_TRY(opt_string("image_url", p.image_url_));
  if (const json* t = r.raw("tracks")) {
    std::vector<domain::invite_track_request> tracks;
    PASSAGE_TRY(parse_tracks(t, tracks));
    p.tracks_ = std::move(tracks);
  }
  PASSAGE_TRY(parse_duration_text(r.raw("access_duration"), p.access_duration_));
  auto opt_int = [&](const char* key,
                     std::optional<std::int64_t>& out) -> std::optional<field_error> {
    if (!r.has(key)) {
      (void)r.raw(key);
      return std::nullopt;
    }
    std::int64_t v = 0;
    if (auto e = r.integer(key, v)) return e;
    out = v;
    return std::nullopt;
  };
  PASSAGE_TRY(opt_int("plays_per_track", p.plays_per_track_));
  PASSAGE_TRY(opt_int("claim_limit", p.claim_limit_));
  PASSAGE_TRY(opt_int("capacity_warning_percent", p.capacity_warning_percent_));
  PASSAGE_TRY(r.time("expires_at", p.expires_at_));
  PASSAGE_TRY(r.time("starts_at", p.starts_at_));
  PASSAGE_TRY(r.time("ends_at", p.ends_at_));
  PASSAGE_TRY(parse_access(r.raw("access"), p.access_));
  auto opt_strings =
      [&](const char* key,
          std::optional<std::vector<std::string>>& out) -> std::optional<field_error> {
    if (!r.has(key)) {
      (void)r.raw(key);
      return std::nullopt;
    }
    std::vector<std::string> v;
    if (auto e = r.strings(key, v)) return e;
    out = std::move(v);
    return std::nullopt;
  };
  PASSAGE_TRY(opt_strings("allowed_emails", p.allowed_emails_));
  PASSAGE_TRY(opt_strings("allowed_domains", p.allowed_domains_));
  auto opt_bool = [&](const char* key, std::optional<bool>& out) -> std::optional<field_error> {
    if (!r.has(key)) {
      (void)r.raw(key);
      return std::nullopt;
    }
    bool v = false;
    if (auto e = r.boolean(key, v)) return e;
    out = v;
    return std::nullopt;
  };
  PASSAGE_TRY(opt_bool("require_account", p.require_account_));
  PASSAGE_TRY(opt_bool("show_share_button", p.show_share_button_));
  PASSAGE_TRY(opt_bool("notify_on_claim", p.notify_on_claim_));
  PASSAGE_TRY(r.no_unknown_members());
  return p;
}

namespace {

// What a learner types is stored in events, published and exported: bounded like what
// admins type (a title: 200), and without control characters (line breaks only in answers):
// neither C0 (and DEL) nor C1 (U+0080-U+009F: NEL, CSI... terminals and CSV readers act on
// them too).
constexpr std::size_t max_claim_name_length = 200;
constexpr std::size_t max_claim_answer_length = 1000;

std::optional<field_error> check_claim_text(const std::string& field, std::string_view value,
                                            std::size_t max, bool line_breaks) {
  if (value.size() > max) {
    return field_error{field, "longer than " + std::to_string(max) + " bytes"};
  }
  for (std::size_t i = 0; i < value.size(); ++i) {
    const auto c = static_cast<unsigned char>(value[i]);
    const bool c0 =
        (c < 0x20 || c == 0x7f) && !(line_breaks && (c == '\n' || c == '\r' || c == '\t'));
    // C1 in UTF-8 (the JSON reader checked the encoding): C2 80 to C2 9F.
    const bool c1 = c == 0xc2 && i + 1 < value.size() &&
                    static_cast<unsigned char>(value[i + 1]) >= 0x80 &&
                    static_cast<unsigned char>(value[i + 1]) <= 0x9f;
    if (c0 || c1) return field_error{field, "contains a control character"};
  }
  return std::nullopt;
}

std::optional<field_error> check_claim_texts(const service::claim_input& in) {
  PASSAGE_TRY(check_claim_text("first_name", in.first_name, max_claim_name_length, false));
  PASSAGE_TRY(check_claim_text("last_name", in.last_name, max_claim_name_length, false));
  for (const auto& [name, answer] : in.answers) {
    PASSAGE_TRY(check_claim_text("answers." + name, answer, max_claim_answer_length, true));
  }
  return std::nullopt;
}

}  // namespace

dto_result<service::claim_input> parse_claim_input(const nlohmann::json& body) {
  if (!body.is_object()) return field_error{"", "the body must be a JSON object"};
  object_reader r(body, "");
  service::claim_input in;
  std::string email;
  PASSAGE_TRY(r.string("email", email, false, true));
  if (!email.empty()) in.email = email;
  PASSAGE_TRY(r.string("first_name", in.first_name, false, true));
  PASSAGE_TRY(r.string("last_name", in.last_name, false, true));
  std::string token;
  PASSAGE_TRY(r.string("learner_token", token, false, true));
  if (!token.empty()) in.learner_token = token;
  if (const json* a = r.raw("answers")) {
    if (!a->is_object()) return field_error{"answers", "must be an object of strings"};
    for (auto it = a->begin(); it != a->end(); ++it) {
      if (it->is_boolean()) {
        in.answers[it.key()] = it->get<bool>() ? "true" : "false";
      } else if (it->is_string()) {
        in.answers[it.key()] = it->get<std::string>();
      } else {
        return field_error{"answers." + it.key(), "must be a string or a boolean"};
      }
    }
  }
  PASSAGE_TRY(r.no_unknown_members());
  PASSAGE_TRY(check_claim_texts(in));
  return in;
}

// The common claim body read directly: `{"email":"...", ...}` with JSON whitespace, each
// member at most once and one of email, first_name, last_name, learner_token, each value
// a string of printable ASCII without escapes. Anything else (nulls, escapes, answers,
// unknown or repeated members, bad JSON) is nullopt, and the JSON document path decides,
// errors included.
std::optional<service::claim_input> plain_claim_body(std::string_view body) {
  std::size_t i = 0;
  auto skip_space = [&] {
    while (i < body.size() &&
           (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r')) {
      ++i;
    }
  };
  // A string of printable ASCII without escapes, its opening quote at i.
  auto plain_string = [&]() -> std::optional<std::string_view> {
    if (i >= body.size() || body[i] != '"') return std::nullopt;
    const std::size_t from = ++i;
    while (i < body.size() && body[i] != '"') {
      const auto c = static_cast<unsigned char>(body[i]);
      if (c < 0x20 || c > 0x7e || c == '\\') return std::nullopt;
      ++i;
    }
    if (i >= body.size()) return std::nullopt;
    return body.substr(from, i++ - from);
  };
  service::claim_input in;
  bool seen[4] = {false, false, false, false};
  skip_space();
  if (i >= body.size() || body[i++] != '{') return std::nullopt;
  skip_space();
  if (i < body.size() && body[i] == '}') {
    ++i;
  } else {
    while (true) {
      auto key = plain_string();
      if (!key) return std::nullopt;
      skip_space();
      if (i >= body.size() || body[i++] != ':') return std::nullopt;
      skip_space();
      auto value = plain_string();
      if (!value) return std::nullopt;
      int k = *key == "email"           ? 0
              : *key == "first_name"    ? 1
              : *key == "last_name"     ? 2
              : *key == "learner_token" ? 3
                                        : -1;
      if (k < 0 || seen[k]) return std::nullopt;
      seen[k] = true;
      switch (k) {
        case 0:
          if (!value->empty()) in.email = std::string(*value);
          break;
        case 1:
          in.first_name = std::string(*value);
          break;
        case 2:
          in.last_name = std::string(*value);
          break;
        default:
          if (!value->empty()) in.learner_token = std::string(*value);
      }
      skip_space();
      if (i >= body.size()) return std::nullopt;
      const char next = body[i++];
      if (next == '}') break;
      if (next != ',') return std::nullopt;
      skip_space();
    }
  }
  skip_space();
  if (i != body.size()) return std::nullopt;
  return in;
}

dto_result<service::claim_input> parse_claim_body(std::string_view body) {
  if (auto plain = plain_claim_body(body)) {
    PASSAGE_TRY(check_claim_texts(*plain));
    return std::move(*plain);
  }
  auto j = parse_body(body);
  if (!j) return j.error();
  return parse_claim_input(*j);
}

dto_result<domain::lead_form> parse_lead_form(const nlohmann::json& body) {
  if (!body.is_object()) return field_error{"", "the body must be a JSON object"};
  object_reader r(body, "");
  domain::lead_form form;
  const json* fields = r.raw("fields");
  if (!fields) return field_error{"fields", "is required"};
  if (!fields->is_array()) return field_error{"fields", "must be an array"};
  for (std::size_t i = 0; i < fields->size(); ++i) {
    std::string path = "fields[" + std::to_string(i) + "]";
    if (!(*fields)[i].is_object()) return field_error{path, "must be an object"};
    object_reader f((*fields)[i], path);
    domain::lead_form_field field;
    PASSAGE_TRY(f.string("name", field.name_, true));
    PASSAGE_TRY(f.string("label", field.label_));
    PASSAGE_TRY(f.boolean("required", field.required_));
    PASSAGE_TRY(f.no_unknown_members());
    form.fields_.push_back(std::move(field));
  }
  PASSAGE_TRY(r.no_unknown_members());
  return form;
}

dto_result<track_request> parse_track(const nlohmann::json& body) {
  if (!body.is_object()) return field_error{"", "the body must be a JSON object"};
  object_reader r(body, "");
  track_request t;
  std::string id;
  if (r.has("track_id")) {
    PASSAGE_TRY(r.string("track_id", t.track_id, true));
  } else {
    (void)r.raw("track_id");
    PASSAGE_TRY(r.string("id", t.track_id, true));
  }
  (void)r.raw("id");
  PASSAGE_TRY(r.string("title", t.title, true));
  PASSAGE_TRY(r.boolean("pausable", t.pausable));
  PASSAGE_TRY(r.no_unknown_members());
  return t;
}

dto_result<api_key_request> parse_api_key_request(const nlohmann::json& body) {
  if (!body.is_object()) return field_error{"", "the body must be a JSON object"};
  object_reader r(body, "");
  api_key_request k;
  std::string role;
  PASSAGE_TRY(r.string("role", role, true));
  auto parsed = domain::parse_role(role);
  if (!parsed || *parsed == domain::role::operator_) {
    return field_error{"role", "must be \"owner\", \"admin\" or \"professor\""};
  }
  k.role = *parsed;
  PASSAGE_TRY(r.string("name", k.name));
  // Optional contact address (validated by the domain); null is the same as absent.
  std::string email;
  PASSAGE_TRY(r.string("email", email, false, true));
  if (r.has("email") && !body["email"].is_null()) k.email = std::move(email);
  PASSAGE_TRY(r.no_unknown_members());
  return k;
}

dto_result<api_key_patch> parse_api_key_patch(const nlohmann::json& body) {
  if (!body.is_object()) return field_error{"", "the body must be a JSON object"};
  object_reader r(body, "");
  if (!r.has("email")) return field_error{"email", "required (null clears it)"};
  api_key_patch p;
  std::string email;
  PASSAGE_TRY(r.string("email", email, false, true));
  if (!body["email"].is_null()) p.email = std::move(email);
  PASSAGE_TRY(r.no_unknown_members());
  return p;
}

dto_result<organization_request> parse_organization_request(const nlohmann::json& body) {
  if (!body.is_object()) return field_error{"", "the body must be a JSON object"};
  object_reader r(body, "");
  organization_request o;
  PASSAGE_TRY(r.string("name", o.name, true));
  if (o.name.empty() || o.name.size() > 200) return field_error{"name", "must be 1 to 200 bytes"};
  PASSAGE_TRY(r.no_unknown_members());
  return o;
}

dto_result<play_request> parse_play_request(const nlohmann::json& body) {
  if (!body.is_object()) return field_error{"", "the body must be a JSON object"};
  object_reader r(body, "");
  play_request p;
  PASSAGE_TRY(r.string("track_id", p.track_id, true));
  PASSAGE_TRY(r.no_unknown_members());
  return p;
}

dto_result<send_request> parse_send_request(const nlohmann::json& body) {
  if (!body.is_object()) return field_error{"", "the body must be a JSON object"};
  object_reader r(body, "");
  send_request out;
  if (!r.has("emails")) return field_error{"emails", "is required"};
  std::vector<std::string> emails;
  PASSAGE_TRY(r.strings("emails", emails));
  if (emails.empty()) return field_error{"emails", "needs at least one address"};
  if (emails.size() > max_emails_per_send) {
    return field_error{"emails", "at most " + std::to_string(max_emails_per_send) + " per call"};
  }
  std::set<std::string> seen;
  for (std::size_t i = 0; i < emails.size(); ++i) {
    if (!domain::is_valid_email(emails[i])) {
      return field_error{"emails[" + std::to_string(i) + "]", "is not an email address"};
    }
    auto e = domain::normalize_email(emails[i]);
    if (seen.insert(e).second) out.emails.push_back(std::move(e));
  }
  std::string on_existing = "resend";
  PASSAGE_TRY(r.string("on_existing", on_existing));
  if (on_existing == "resend") {
    out.on_existing = domain::on_existing_invitation::resend;
  } else if (on_existing == "new") {
    out.on_existing = domain::on_existing_invitation::create_new;
  } else {
    return field_error{"on_existing", "must be \"resend\" (the same personal link) or \"new\""};
  }
  std::string remind_after;
  PASSAGE_TRY(r.string("remind_after", remind_after, false, true));
  if (!remind_after.empty()) {
    auto d = domain::parse_access_duration(remind_after, "remind_after");
    if (!d || d->forever_) {
      return field_error{"remind_after", "must be an ISO 8601 duration such as \"P3D\""};
    }
    out.remind_after = *d;
  }
  PASSAGE_TRY(r.no_unknown_members());
  return out;
}

namespace {
nlohmann::json time_or_null(const std::optional<timestamp>& t) {
  return t ? nlohmann::json(format_rfc3339(*t)) : nlohmann::json(nullptr);
}
nlohmann::json int_or_null(const std::optional<std::int64_t>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}
}  // namespace

nlohmann::json to_json(const service::claim_result& r) {
  nlohmann::json j;
  if (!r.claim) return j;
  const auto& c = *r.claim;
  j["claim_id"] = c.claim_id_.to_string();
  j["invite_id"] = r.invite_id.to_string();
  j["learner_id"] = c.learner_id_.to_string();
  j["learner_token"] = r.learner_token;
  j["anonymous"] = c.anonymous_;
  j["claimed_at"] = format_rfc3339(c.claimed_at_);
  j["access_expires_at"] = time_or_null(c.access_expires_at_);
  j["tracks"] = nlohmann::json::array();
  for (const auto& t : r.tracks) {
    j["tracks"].push_back({{"track_id", t.track_id},
                           {"pausable", t.pausable},
                           {"access_expires_at", time_or_null(t.access_expires_at)},
                           {"plays_remaining", int_or_null(t.plays_remaining)}});
  }
  return j;
}

namespace {
// The members of both writers below come in nlohmann's order (its objects are sorted maps).
void append_string(std::string& out, std::string_view s) {
  eventstore::append_json_string(out, s, eventstore::invalid_utf8::replace);
}
void append_time_or_null(std::string& out, const std::optional<timestamp>& t) {
  if (!t) {
    out += "null";
    return;
  }
  out += '"';
  append_rfc3339(out, *t);  // digits, '-', ':', 'T', '.', 'Z': nothing to escape
  out += '"';
}
void append_uuid(std::string& out, const uuid& id) {
  out += '"';
  out += id.to_string();
  out += '"';
}
}  // namespace

std::string to_json_text(const service::claim_result& r) {
  if (!r.claim) return "null";
  const auto& c = *r.claim;
  std::string out;
  out.reserve(320 + r.learner_token.size() + 120 * r.tracks.size());
  out += "{\"access_expires_at\":";
  append_time_or_null(out, c.access_expires_at_);
  out += ",\"anonymous\":";
  out += c.anonymous_ ? "true" : "false";
  out += ",\"claim_id\":";
  append_uuid(out, c.claim_id_);
  out += ",\"claimed_at\":";
  append_time_or_null(out, c.claimed_at_);
  out += ",\"invite_id\":";
  append_uuid(out, r.invite_id);
  out += ",\"learner_id\":";
  append_uuid(out, c.learner_id_);
  out += ",\"learner_token\":";
  append_string(out, r.learner_token);
  out += ",\"tracks\":[";
  for (std::size_t i = 0; i < r.tracks.size(); ++i) {
    const auto& t = r.tracks[i];
    if (i > 0) out += ',';
    out += "{\"access_expires_at\":";
    append_time_or_null(out, t.access_expires_at);
    out += ",\"pausable\":";
    out += t.pausable ? "true" : "false";
    out += ",\"plays_remaining\":";
    if (t.plays_remaining) {
      out += std::to_string(*t.plays_remaining);
    } else {
      out += "null";
    }
    out += ",\"track_id\":";
    append_string(out, t.track_id);
    out += '}';
  }
  out += "]}";
  return out;
}

nlohmann::json to_json(const service::play_result& r) {
  return {{"track_id", r.track_id},
          {"plays_remaining", int_or_null(r.plays_remaining)},
          {"access_expires_at", time_or_null(r.access_expires_at)},
          {"paused", r.paused}};
}

}  // namespace passage::api::v1
