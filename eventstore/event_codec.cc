#include "eventstore/event_codec.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <simdjson.h>
#include <nlohmann/json.hpp>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <limits>
#include <map>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "common/encoding.h"
#include "common/hmac.h"
#include "common/random.h"
#include "common/time_format.h"
#include "common/uuid_text.h"
#include "domain/duration.h"
#include "domain/text.h"
#include "domain/types.h"
#include "eventstore/json_text.h"

namespace passage::eventstore {

namespace {

using json = nlohmann::json;
namespace d = domain;

// Whether the n bytes at a and b (sizeof(Word) <= n <= 2 * sizeof(Word)) are the same: one
// Word from each end, the two overlapping when n is shorter than two.
template <typename Word>
inline bool same_ends(const char* a, const char* b, std::size_t n) {
  Word a0, a1, b0, b1;
  std::memcpy(&a0, a, sizeof(Word));
  std::memcpy(&b0, b, sizeof(Word));
  std::memcpy(&a1, a + n - sizeof(Word), sizeof(Word));
  std::memcpy(&b1, b + n - sizeof(Word), sizeof(Word));
  return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}

// Whether the n bytes at a and b are the same, what memcmp(a, b, n) == 0 says. Up to 32
// bytes without a call (16 without SSE2): two overlapping loads from each end. Decoding
// compares short texts many times per event (a member's name with its quote, colon and
// comma, an event type's name), and a call to memcmp for each, with its dispatch on the
// length, cost more than the comparison.
inline bool same_bytes(const char* a, const char* b, std::size_t n) {
  if (n >= 8) {
#if defined(__SSE2__)
    if (n >= 16 && n <= 32) {
      auto load = [](const char* p) {
        return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      };
      const __m128i head = _mm_cmpeq_epi8(load(a), load(b));
      const __m128i tail = _mm_cmpeq_epi8(load(a + n - 16), load(b + n - 16));
      return _mm_movemask_epi8(_mm_and_si128(head, tail)) == 0xFFFF;
    }
#endif
    if (n > 16) return std::memcmp(a, b, n) == 0;
    return same_ends<std::uint64_t>(a, b, n);
  }
  if (n >= 4) return same_ends<std::uint32_t>(a, b, n);
  for (std::size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Field lists. Each struct is described once; writing and reading both walk the same
// list, so the two cannot disagree. JSON names are the member names without the
// trailing underscore (SPEC §7).

// A field added to an event after events of its schema version were stored is marked
// `added_later`: when absent it keeps the member's default (nullopt, false), so older
// events decode without an upcaster and the schema version (part of the Kafka type)
// stays. Only additions with such a neutral default may be made this way.
template <typename S, typename M>
struct field {
  std::string_view name;
  M S::*member;
  bool added_later = false;
};
template <typename S, typename M>
constexpr field<S, M> make_field(std::string_view name, M S::*member, bool added_later = false) {
  return {name, member, added_later};
}
#define F(m) make_field(#m, &S::m##_)
#define F_ADDED(m) make_field(#m, &S::m##_, true)

// clang-format off
auto fields_of(const d::personal_data*) { using S = d::personal_data; return std::tuple{F(email), F(first_name), F(last_name), F(answers)}; }
auto fields_of(const d::invite_track*) { using S = d::invite_track; return std::tuple{F(track_id), F(pausable)}; }
auto fields_of(const d::claim_snapshot*) { using S = d::claim_snapshot; return std::tuple{F(tracks), F(access_duration), F(plays_per_track)}; }
auto fields_of(const d::lead_form_field*) { using S = d::lead_form_field; return std::tuple{F(name), F(label), F(required)}; }
auto fields_of(const d::lead_form*) { using S = d::lead_form; return std::tuple{F(fields)}; }
// The fields of POST /v1/invites (SPEC §7), resolved.
auto fields_of(const d::invite_settings*) {
  using S = d::invite_settings;
  return std::tuple{F(type), F(title), F(public_description), F(internal_description),
                    F(image_url), F(tracks), F(access_duration), F(plays_per_track),
                    F(expires_at), F(claim_limit), F(starts_at), F(ends_at), F(access),
                    F(allowed_emails), F(allowed_domains), F(require_account),
                    F(show_share_button), F(capacity_warning_percent),
                    F_ADDED(notify_on_claim)};
}

auto fields_of(const d::organization_created*) { using S = d::organization_created; return std::tuple{F(org_id), F(name), F(created_at)}; }
auto fields_of(const d::api_key_issued*) { using S = d::api_key_issued; return std::tuple{F(org_id), F(key_id), F(role), F(name), F(key_hash), F(issued_at), F_ADDED(email)}; }
auto fields_of(const d::api_key_revoked*) { using S = d::api_key_revoked; return std::tuple{F(org_id), F(key_id), F(revoked_at)}; }
auto fields_of(const d::api_key_email_changed*) { using S = d::api_key_email_changed; return std::tuple{F(org_id), F(key_id), F(email), F(changed_at)}; }
auto fields_of(const d::lead_form_changed*) { using S = d::lead_form_changed; return std::tuple{F(org_id), F(form), F(changed_at)}; }
auto fields_of(const d::track_registered*) { using S = d::track_registered; return std::tuple{F(org_id), F(track_id), F(title), F(pausable), F(owner), F(registered_at)}; }
auto fields_of(const d::track_updated*) { using S = d::track_updated; return std::tuple{F(org_id), F(track_id), F(title), F(pausable), F(owner), F(updated_at)}; }
auto fields_of(const d::invite_created*) { using S = d::invite_created; return std::tuple{F(org_id), F(invite_id), F(code), F(settings), F(duplicated_from), F(created_at), F_ADDED(created_by)}; }
auto fields_of(const d::invite_updated*) { using S = d::invite_updated; return std::tuple{F(org_id), F(invite_id), F(settings), F(changed_fields), F(updated_at)}; }
auto fields_of(const d::invite_deactivated*) { using S = d::invite_deactivated; return std::tuple{F(org_id), F(invite_id), F(deactivated_at)}; }
auto fields_of(const d::invite_reactivated*) { using S = d::invite_reactivated; return std::tuple{F(org_id), F(invite_id), F(reactivated_at)}; }
auto fields_of(const d::invite_deleted*) { using S = d::invite_deleted; return std::tuple{F(org_id), F(invite_id), F(deleted_at)}; }
auto fields_of(const d::invite_claimed*) {
  using S = d::invite_claimed;
  return std::tuple{F(org_id), F(invite_id), F(claim_id), F(learner_id), F(anonymous),
                    F(claimed_at), F(restrictions), F(access_expires_at), F(personal_data)};
}
auto fields_of(const d::claim_rejected*) {
  using S = d::claim_rejected;
  return std::tuple{F(org_id), F(invite_id), F(reason), F(learner_id), F(anonymous),
                    F(rejected_at), F(personal_data)};
}
auto fields_of(const d::invite_capacity_warning*) { using S = d::invite_capacity_warning; return std::tuple{F(org_id), F(invite_id), F(claims_count), F(claim_limit), F(threshold_percent), F(warned_at)}; }
auto fields_of(const d::invite_filled*) { using S = d::invite_filled; return std::tuple{F(org_id), F(invite_id), F(claim_id), F(claim_limit), F(filled_at)}; }
auto fields_of(const d::invite_expired*) { using S = d::invite_expired; return std::tuple{F(org_id), F(invite_id), F(expired_at), F(detected_at)}; }
auto fields_of(const d::private_invitation_sent*) {
  using S = d::private_invitation_sent;
  return std::tuple{F(org_id), F(invite_id), F(invitation_id), F(job_id), F(resent),
                    F(learner_id), F(sent_at), F(personal_data), F(job_total),
                    F(remind_at)};
}
auto fields_of(const d::track_played*) { using S = d::track_played; return std::tuple{F(org_id), F(invite_id), F(claim_id), F(learner_id), F(track_id), F(play_number), F(played_at)}; }
auto fields_of(const d::track_paused*) { using S = d::track_paused; return std::tuple{F(org_id), F(invite_id), F(claim_id), F(learner_id), F(track_id), F(paused_at)}; }
auto fields_of(const d::track_resumed*) { using S = d::track_resumed; return std::tuple{F(org_id), F(invite_id), F(claim_id), F(learner_id), F(track_id), F(resumed_at)}; }
auto fields_of(const d::learner_registered*) { using S = d::learner_registered; return std::tuple{F(org_id), F(learner_id), F(role), F(must_change_password), F(registered_at), F(personal_data)}; }
auto fields_of(const d::lead_captured*) { using S = d::lead_captured; return std::tuple{F(org_id), F(learner_id), F(invite_id), F(captured_at), F(personal_data)}; }
auto fields_of(const d::learner_forgotten*) { using S = d::learner_forgotten; return std::tuple{F(org_id), F(learner_id), F(forgotten_at)}; }
auto fields_of(const d::password_setup_issued*) {
  using S = d::password_setup_issued;
  return std::tuple{F(org_id), F(learner_id), F(setup_id), F(invite_id), F(issued_at),
                    F(expires_at), F(personal_data)};
}
auto fields_of(const d::learner_password_set*) { using S = d::learner_password_set; return std::tuple{F(org_id), F(learner_id), F(setup_id), F(set_at), F(personal_data)}; }
auto fields_of(const d::email_sent*) {
  using S = d::email_sent;
  return std::tuple{F(org_id), F(job_id), F(message_id), F(invitation_id), F(learner_id),
                    F(sent_at), F(personal_data)};
}
auto fields_of(const d::email_failed*) {
  using S = d::email_failed;
  return std::tuple{F(org_id), F(job_id), F(message_id), F(invitation_id), F(learner_id),
                    F(error), F(failed_at), F(personal_data)};
}
// clang-format on
#undef F
#undef F_ADDED

template <typename T>
concept described = requires {
  fields_of(static_cast<const T*>(nullptr));
};

template <typename E>
concept has_personal_data = requires(E e) {
  e.personal_data_;
};

// ---------------------------------------------------------------------------------------
// Writing.

json to_value(const std::string& v) { return v; }
json to_value(bool v) { return v; }
json to_value(std::int64_t v) { return v; }
json to_value(const uuid& v) { return v.to_string(); }
json to_value(timestamp v) { return format_rfc3339(v); }
json to_value(d::invite_type v) { return std::string(d::to_string(v)); }
json to_value(d::access_mode v) { return std::string(d::to_string(v)); }
json to_value(d::role v) { return std::string(d::to_string(v)); }
json to_value(d::learner_role v) { return std::string(d::to_string(v)); }
json to_value(d::rejection_reason v) { return std::string(d::to_string(v)); }
json to_value(const d::access_duration& v) { return d::format_access_duration(v); }
json to_value(const std::map<std::string, std::string>& v) {
  json j = json::object();
  for (const auto& [k, s] : v) j[k] = s;
  return j;
}
template <typename T>
json to_value(const std::optional<T>& v);
template <typename T>
json to_value(const std::vector<T>& v);
template <described T>
json to_value(const T& v);
// An empty block is null: "no personal data" must not look like a forgotten one.
json to_value(const d::personal_data& v);

template <typename T>
json to_value(const std::optional<T>& v) {
  return v ? to_value(*v) : json(nullptr);
}
template <typename T>
json to_value(const std::vector<T>& v) {
  json j = json::array();
  for (const auto& x : v) j.push_back(to_value(x));
  return j;
}
template <described T>
json to_value(const T& v) {
  json j = json::object();
  std::apply([&](const auto&... f) { ((j[std::string(f.name)] = to_value(v.*(f.member))), ...); },
             fields_of(static_cast<const T*>(nullptr)));
  return j;
}
json to_value(const d::personal_data& v) {
  if (v.empty()) return nullptr;
  json j = to_value<d::personal_data>(v);
  // Optional member: only LearnerPasswordSet has one, older blocks never name it.
  if (!v.password_hash_.empty()) j["password_hash"] = v.password_hash_;
  return j;
}

// ---------------------------------------------------------------------------------------
// Writing text directly, for encode(): the same bytes as to_value(v).dump() without
// building a nlohmann document first (that was most of an encode's cost). The stored
// bytes must not change: an idempotent re-append (the mailer's outcome events after a
// restart) compares stored data byte for byte. nlohmann objects are std::maps, so their
// members come out sorted by name; so they do here. Strings: json_text.h (invalid UTF-8
// throws, as before).

void write_string(std::string& out, std::string_view s) { append_json_string(out, s); }

// `bytes` in base64 as a JSON string, encoded in place: the alphabet (A-Z a-z 0-9 + / =)
// holds nothing JSON escapes, so there is nothing to scan for (same bytes as
// write_string(out, base64_encode(bytes))).
void write_base64(std::string& out, std::string_view bytes) {
  out += '"';
  base64_append(out, bytes);
  out += '"';
}

void write_value(std::string& out, const std::string& v) { write_string(out, v); }
void write_value(std::string& out, bool v) { out += v ? "true" : "false"; }
void write_value(std::string& out, std::int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}
void write_value(std::string& out, const uuid& v) {
  static constexpr char hex[] = "0123456789abcdef";
  char buf[38];  // as uuid::to_string(), quoted, without a temporary string
  std::size_t n = 0;
  buf[n++] = '"';
  for (std::size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) buf[n++] = '-';
    buf[n++] = hex[v.bytes[i] >> 4];
    buf[n++] = hex[v.bytes[i] & 0xf];
  }
  buf[n++] = '"';
  out.append(buf, n);
}
void write_value(std::string& out, timestamp v) {
  out += '"';
  append_rfc3339(out, v);
  out += '"';
}
void write_value(std::string& out, d::invite_type v) { write_string(out, d::to_string(v)); }
void write_value(std::string& out, d::access_mode v) { write_string(out, d::to_string(v)); }
void write_value(std::string& out, d::role v) { write_string(out, d::to_string(v)); }
void write_value(std::string& out, d::learner_role v) { write_string(out, d::to_string(v)); }
void write_value(std::string& out, d::rejection_reason v) { write_string(out, d::to_string(v)); }
void write_value(std::string& out, const d::access_duration& v) {
  write_string(out, d::format_access_duration(v));
}
void write_value(std::string& out, const std::map<std::string, std::string>& v) {
  out += '{';
  bool first = true;
  for (const auto& [k, s] : v) {  // std::map: sorted, as nlohmann's objects
    if (!first) out += ',';
    first = false;
    write_string(out, k);
    out += ':';
    write_string(out, s);
  }
  out += '}';
}
template <typename T>
void write_value(std::string& out, const std::optional<T>& v);
template <typename T>
void write_value(std::string& out, const std::vector<T>& v);
template <described T>
void write_value(std::string& out, const T& v);
void write_value(std::string& out, const d::personal_data& v);

template <typename T>
void write_value(std::string& out, const std::optional<T>& v) {
  if (v) {
    write_value(out, *v);
  } else {
    out += "null";
  }
}
template <typename T>
void write_value(std::string& out, const std::vector<T>& v) {
  out += '[';
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += ',';
    write_value(out, v[i]);
  }
  out += ']';
}

// The members of T by name (the order nlohmann writes them in): their names and their
// places in fields_of(T).
template <described T>
const std::vector<std::pair<std::string_view, std::size_t>>& sorted_fields() {
  static const auto order = [] {
    std::vector<std::pair<std::string_view, std::size_t>> v;
    std::apply([&](const auto&... f) { ((v.emplace_back(f.name, v.size())), ...); },
               fields_of(static_cast<const T*>(nullptr)));
    std::sort(v.begin(), v.end());
    return v;
  }();
  return order;
}

// Writes member `i` of v; a personal_data member as `personal_data_text` when given
// (the encrypted envelope of encode()).
template <typename T, std::size_t... I>
void write_field(std::string& out, const T& v, std::size_t i, const std::string* personal_data_text,
                 std::index_sequence<I...>) {
  const auto fields = fields_of(static_cast<const T*>(nullptr));
  auto one = [&](const auto& f) {
    using member = std::decay_t<decltype(v.*(f.member))>;
    if constexpr (std::is_same_v<member, d::personal_data>) {
      if (personal_data_text != nullptr) {
        out += *personal_data_text;
        return;
      }
    }
    write_value(out, v.*(f.member));
  };
  ((i == I ? one(std::get<I>(fields)) : void()), ...);
}

// `extra`: one more member after the listed ones (a personal_data block's password hash).
template <described T>
void write_object(std::string& out, const T& v, const std::string* personal_data_text = nullptr,
                  std::string_view extra_name = {}, const std::string* extra_value = nullptr) {
  constexpr auto n = std::tuple_size_v<decltype(fields_of(static_cast<const T*>(nullptr)))>;
  out += '{';
  bool first = true, extra_done = extra_value == nullptr;
  auto write_extra = [&] {
    if (!first) out += ',';
    first = false;
    write_string(out, extra_name);
    out += ':';
    write_string(out, *extra_value);
    extra_done = true;
  };
  for (const auto& [name, i] : sorted_fields<T>()) {
    if (!extra_done && extra_name < name) write_extra();
    if (!first) out += ',';
    first = false;
    write_string(out, name);
    out += ':';
    write_field(out, v, i, personal_data_text, std::make_index_sequence<n>{});
  }
  if (!extra_done) write_extra();
  out += '}';
}

template <described T>
void write_value(std::string& out, const T& v) {
  write_object(out, v);
}
void write_value(std::string& out, const d::personal_data& v) {
  if (v.empty()) {
    out += "null";
    return;
  }
  // Optional member: only LearnerPasswordSet has one, older blocks never name it.
  if (v.password_hash_.empty()) {
    write_object(out, v);
  } else {
    write_object(out, v, nullptr, "password_hash", &v.password_hash_);
  }
}

// ---------------------------------------------------------------------------------------
// Event types by name, without hashing: names grouped by length, so a lookup compares the
// one or two names of that length (replay looks up every event's type).

constexpr std::size_t kind_count = std::variant_size_v<d::event>;

struct type_table {
  static constexpr std::size_t max_len = 48;
  std::array<std::vector<std::pair<std::string_view, std::size_t>>, max_len + 1> by_len;

  std::optional<std::size_t> find(std::string_view type) const {
    if (type.size() > max_len) return std::nullopt;
    for (const auto& [name, i] : by_len[type.size()]) {
      if (same_bytes(name.data(), type.data(), type.size())) return i;
    }
    return std::nullopt;
  }
};

template <std::size_t... I>
type_table make_type_table(std::index_sequence<I...>) {
  type_table t;
  auto add = [&](std::string_view name, std::size_t i) {
    if (name.size() > type_table::max_len) throw std::logic_error("event type name too long");
    t.by_len[name.size()].emplace_back(name, i);
  };
  (add(std::variant_alternative_t<I, d::event>::type_name, I), ...);
  return t;
}

const type_table& types() {
  static const type_table t = make_type_table(std::make_index_sequence<kind_count>{});
  return t;
}

// ---------------------------------------------------------------------------------------
// Reading. The path to the value is a chain of stack nodes, turned into text only when
// something is wrong, so validating costs nothing on the happy path.

struct path_node {
  const path_node* parent = nullptr;
  std::string_view name;  // empty: an array element at `index`
  std::size_t index = 0;
};

std::string render(const path_node* p) {
  if (p == nullptr) return {};
  std::string parent = render(p->parent);
  if (p->name.empty()) return parent + "[" + std::to_string(p->index) + "]";
  return parent.empty() ? std::string(p->name) : parent + "." + std::string(p->name);
}

struct read_error {
  std::string field;
  std::string what;
};

bool fail(const path_node* at, read_error& err, std::string what) {
  err = {render(at), std::move(what)};
  return false;
}

bool from_value(const json& j, std::string& out, const path_node* at, read_error& err) {
  if (!j.is_string()) return fail(at, err, "expected a string");
  out = j.get_ref<const std::string&>();
  return true;
}
bool from_value(const json& j, bool& out, const path_node* at, read_error& err) {
  if (!j.is_boolean()) return fail(at, err, "expected a boolean");
  out = j.get<bool>();
  return true;
}
bool from_value(const json& j, std::int64_t& out, const path_node* at, read_error& err) {
  if (!j.is_number_integer()) return fail(at, err, "expected an integer");
  if (j.is_number_unsigned() &&
      j.get<std::uint64_t>() > std::uint64_t(std::numeric_limits<std::int64_t>::max())) {
    return fail(at, err, "integer out of range");
  }
  out = j.get<std::int64_t>();
  return true;
}
bool from_value(const json& j, uuid& out, const path_node* at, read_error& err) {
  if (!j.is_string()) return fail(at, err, "expected a UUID string");
  auto u = uuid::parse(j.get_ref<const std::string&>());
  if (!u) return fail(at, err, "not a UUID");
  out = *u;
  return true;
}
bool from_value(const json& j, timestamp& out, const path_node* at, read_error& err) {
  if (!j.is_string()) return fail(at, err, "expected an RFC 3339 time string");
  auto t = parse_rfc3339(j.get_ref<const std::string&>());
  if (!t) return fail(at, err, "not an RFC 3339 time");
  out = *t;
  return true;
}

template <typename Enum, typename Parse>
bool enum_from_value(const json& j, Enum& out, Parse parse, const path_node* at, read_error& err) {
  if (!j.is_string()) return fail(at, err, "expected a string");
  auto v = parse(j.get_ref<const std::string&>());
  if (!v) return fail(at, err, "unknown value \"" + j.get<std::string>() + "\"");
  out = *v;
  return true;
}
bool from_value(const json& j, d::invite_type& out, const path_node* at, read_error& err) {
  return enum_from_value(j, out, d::parse_invite_type, at, err);
}
bool from_value(const json& j, d::access_mode& out, const path_node* at, read_error& err) {
  return enum_from_value(j, out, d::parse_access_mode, at, err);
}
bool from_value(const json& j, d::role& out, const path_node* at, read_error& err) {
  return enum_from_value(j, out, d::parse_role, at, err);
}
bool from_value(const json& j, d::rejection_reason& out, const path_node* at, read_error& err) {
  return enum_from_value(j, out, d::parse_rejection_reason, at, err);
}
bool from_value(const json& j, d::learner_role& out, const path_node* at, read_error& err) {
  // types.h has no parser for the single learner role.
  auto parse = [](std::string_view s) -> std::optional<d::learner_role> {
    if (s == d::to_string(d::learner_role::student)) return d::learner_role::student;
    return std::nullopt;
  };
  return enum_from_value(j, out, parse, at, err);
}
bool from_value(const json& j, d::access_duration& out, const path_node* at, read_error& err) {
  if (!j.is_string()) return fail(at, err, "expected an access duration string");
  auto v = d::parse_access_duration(j.get_ref<const std::string&>());
  if (!v) return fail(at, err, v.error().message_);
  out = *v;
  return true;
}
bool from_value(const json& j, std::map<std::string, std::string>& out, const path_node* at,
                read_error& err) {
  if (!j.is_object()) return fail(at, err, "expected an object");
  out.clear();
  for (const auto& [k, v] : j.items()) {
    path_node here{at, k};
    if (!v.is_string()) return fail(&here, err, "expected a string");
    out.emplace(k, v.get<std::string>());
  }
  return true;
}
template <typename T>
bool from_value(const json& j, std::optional<T>& out, const path_node* at, read_error& err);
template <typename T>
bool from_value(const json& j, std::vector<T>& out, const path_node* at, read_error& err);
template <described T>
bool from_value(const json& j, T& out, const path_node* at, read_error& err);
bool from_value(const json& j, d::personal_data& out, const path_node* at, read_error& err);

template <typename T>
bool from_value(const json& j, std::optional<T>& out, const path_node* at, read_error& err) {
  if (j.is_null()) {
    out.reset();
    return true;
  }
  return from_value(j, out.emplace(), at, err);
}
template <typename T>
bool from_value(const json& j, std::vector<T>& out, const path_node* at, read_error& err) {
  if (!j.is_array()) return fail(at, err, "expected an array");
  out.clear();
  out.resize(j.size());
  for (std::size_t i = 0; i < out.size(); ++i) {
    path_node here{at, {}, i};
    if (!from_value(j[i], out[i], &here, err)) return false;
  }
  return true;
}
// Every listed field must be present (optional ones as null) unless it was added later;
// unknown fields are ignored so that consumers of an older build can read a newer event.
template <described T>
bool from_value(const json& j, T& out, const path_node* at, read_error& err) {
  if (!j.is_object()) return fail(at, err, "expected an object");
  auto one = [&](const auto& f) {
    path_node here{at, f.name};
    auto it = j.find(f.name);
    if (it == j.end()) return f.added_later || fail(&here, err, "missing");
    return from_value(*it, out.*(f.member), &here, err);
  };
  return std::apply([&](const auto&... f) { return (one(f) && ...); },
                    fields_of(static_cast<const T*>(nullptr)));
}
bool from_value(const json& j, d::personal_data& out, const path_node* at, read_error& err) {
  if (j.is_null()) {
    out = {};
    return true;
  }
  if (!from_value<d::personal_data>(j, out, at, err)) return false;
  out.password_hash_.clear();
  if (auto it = j.find("password_hash"); it != j.end()) {
    path_node here{at, "password_hash"};
    return from_value(*it, out.password_hash_, &here, err);
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Reading straight from the JSON text (simdjson, no DOM of our own): the replay path,
// where nlohmann's parse and its per-node allocations were the biggest cost. Walks the
// same field lists with the same rules as above; it only answers "decoded" or "not",
// and on "not" the caller decodes through nlohmann for the exact error message.

namespace text_reader {

using simdjson::dom::element;
using simdjson::dom::element_type;

bool read(element j, std::string& out) {
  std::string_view s;
  if (j.get_string().get(s)) return false;
  out.assign(s);
  return true;
}
bool read(element j, bool& out) { return !j.get_bool().get(out); }
bool read(element j, std::int64_t& out) {
  // UINT64 holds only values above INT64_MAX: out of range, as above.
  return j.type() == element_type::INT64 && !j.get_int64().get(out);
}
template <typename T, typename Parse>
bool read_parsed(element j, T& out, Parse parse) {
  std::string_view s;
  if (j.get_string().get(s)) return false;
  auto v = parse(s);
  if (!v) return false;
  out = *v;
  return true;
}
bool read(element j, uuid& out) { return read_parsed(j, out, uuid::parse); }
bool read(element j, timestamp& out) { return read_parsed(j, out, parse_rfc3339); }
bool read(element j, d::invite_type& out) { return read_parsed(j, out, d::parse_invite_type); }
bool read(element j, d::access_mode& out) { return read_parsed(j, out, d::parse_access_mode); }
bool read(element j, d::role& out) { return read_parsed(j, out, d::parse_role); }
bool read(element j, d::rejection_reason& out) {
  return read_parsed(j, out, d::parse_rejection_reason);
}
bool read(element j, d::learner_role& out) {
  std::string_view s;
  if (j.get_string().get(s) || s != d::to_string(d::learner_role::student)) return false;
  out = d::learner_role::student;
  return true;
}
bool read(element j, d::access_duration& out) {
  std::string_view s;
  if (j.get_string().get(s)) return false;
  auto v = d::parse_access_duration(s);
  if (!v) return false;
  out = *v;
  return true;
}
bool read(element j, std::map<std::string, std::string>& out) {
  simdjson::dom::object o;
  if (j.get_object().get(o)) return false;
  out.clear();
  for (auto field : o) {
    std::string_view v;
    if (field.value.get_string().get(v)) return false;
    // nlohmann keeps the last of repeated keys; so does assignment.
    out[std::string(field.key)] = std::string(v);
  }
  return true;
}
template <typename T>
bool read(element j, std::optional<T>& out);
template <typename T>
bool read(element j, std::vector<T>& out);
template <described T>
bool read(element j, T& out);
bool read(element j, d::personal_data& out);

template <typename T>
bool read(element j, std::optional<T>& out) {
  if (j.is_null()) {
    out.reset();
    return true;
  }
  return read(j, out.emplace());
}
template <typename T>
bool read(element j, std::vector<T>& out) {
  simdjson::dom::array a;
  if (j.get_array().get(a)) return false;
  out.clear();
  out.resize(a.size());
  std::size_t i = 0;
  for (element x : a) {
    if (!read(x, out[i++])) return false;
  }
  return true;
}
// `skip_personal_data`: the personal_data field must be there but reads as empty (the
// apply path, which never needs it decrypted). A field added later may be absent (older
// events) and keeps the member's default, as in from_value: such events used to fall
// through to nlohmann for nothing.
template <described T>
bool read_object(element j, T& out, bool skip_personal_data) {
  simdjson::dom::object o;
  if (j.get_object().get(o)) return false;
  auto one = [&](const auto& f) {
    element v;
    if (o.at_key(f.name).get(v)) return f.added_later;
    using member = std::remove_cvref_t<decltype(out.*(f.member))>;
    if constexpr (std::is_same_v<member, d::personal_data>) {
      if (skip_personal_data) {
        out.*(f.member) = {};
        return true;
      }
    }
    return read(v, out.*(f.member));
  };
  return std::apply([&](const auto&... f) { return (one(f) && ...); },
                    fields_of(static_cast<const T*>(nullptr)));
}
template <described T>
bool read(element j, T& out) {
  return read_object(j, out, false);
}
bool read(element j, d::personal_data& out) {
  if (j.is_null()) {
    out = {};
    return true;
  }
  if (!read_object<d::personal_data>(j, out, false)) return false;
  // Outside the field list, as in from_value: only LearnerPasswordSet carries it.
  out.password_hash_.clear();
  element hash;
  if (j.at_key("password_hash").get(hash)) return true;  // absent
  return read(hash, out.password_hash_);
}

using decode_text_fn = std::optional<d::event> (*)(element, bool skip_personal_data);

template <typename E>
std::optional<d::event> decode_as(element j, bool skip_personal_data) {
  E v;
  if (!read_object(j, v, skip_personal_data)) return std::nullopt;
  return d::event{std::move(v)};
}

// By index in d::event.
template <std::size_t... I>
constexpr std::array<decode_text_fn, kind_count> make_decoders(std::index_sequence<I...>) {
  return {&decode_as<std::variant_alternative_t<I, d::event>>...};
}

// One parser per thread keeps its buffers from one event to the next. What it parsed
// stays valid until its next parse.
simdjson::dom::parser& thread_parser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

// `root`: the parsed object, for a caller that reads more of it (personal_data).
std::optional<d::event> decode(std::string_view type, std::string_view text,
                               bool skip_personal_data, element* root = nullptr) {
  static constexpr auto decoders = make_decoders(std::make_index_sequence<kind_count>{});
  const auto index = types().find(type);
  if (!index) return std::nullopt;
  element parsed;
  if (thread_parser().parse(text.data(), text.size()).get(parsed)) return std::nullopt;
  if (root != nullptr) *root = parsed;
  return decoders[*index](parsed, skip_personal_data);
}

// The clear personal data of the block `pd` of a stored event, read the fast way: the
// envelope and the decrypted text through simdjson. nullopt means "not this way" (a
// malformed or tampered block, a key store error): the caller then decodes through
// nlohmann, which explains. `forgotten`: the key is gone (the block reads as empty).
// Parses the decrypted text with thread_parser(): `pd` is invalid afterwards.
template <typename Open>
std::optional<d::personal_data> read_personal_data(element pd, bool& forgotten, Open open) {
  forgotten = false;
  if (pd.is_null()) return d::personal_data{};
  simdjson::dom::object env;
  if (pd.get_object().get(env)) return std::nullopt;
  std::string_view alg, subject, iv64, ct64;
  if (env.at_key("alg").get_string().get(alg) || env.at_key("subject").get_string().get(subject) ||
      env.at_key("iv").get_string().get(iv64) || env.at_key("ct").get_string().get(ct64)) {
    return std::nullopt;
  }
  std::string plaintext;
  switch (open(alg, std::string(subject), iv64, ct64, plaintext)) {
    case 0:
      break;
    case 1:
      forgotten = true;
      return d::personal_data{};
    default:
      return std::nullopt;
  }
  element clear;
  const bool parsed = !thread_parser().parse(plaintext.data(), plaintext.size()).get(clear);
  OPENSSL_cleanse(plaintext.data(), plaintext.size());
  d::personal_data out;
  if (!parsed || !clear.is_object() || !read(clear, out)) return std::nullopt;
  return out;
}

}  // namespace text_reader

// ---------------------------------------------------------------------------------------
// Reading the exact bytes this codec writes (write_object above): members in name order,
// no whitespace, strings with nothing escaped, integers as to_chars writes them. One walk
// over the text, no parse tree: a replay's common case, several times cheaper than
// simdjson's two stages and its member lookups. Whatever else is valid JSON (whitespace,
// another member order, an unknown or a missing member, an escape, a number simdjson
// reads as a double, a repeated name) is "not this way" (nullopt): the general reader
// (text_reader, then nlohmann) decodes it, so every log decodes as it did before. What it
// accepts is valid JSON that text_reader reads to the same values.

namespace layout_reader {

struct cursor {
  const char* p;
  const char* end;

  bool literal(std::string_view s) {
    if (static_cast<std::size_t>(end - p) < s.size() || !same_bytes(p, s.data(), s.size())) {
      return false;
    }
    p += s.size();
    return true;
  }
};

#if !defined(__SSE2__)
// Whether any of the 8 bytes of `w` ends or breaks a plain string: '"', '\\', a control
// character (below 0x20) or a byte of a multi-byte character (0x80 and above). SWAR as in
// json_text.cc: `x - k*0x01..` borrows into bit 7 of the lowest byte below k (bytes above
// the first hit may show false hits; the byte loop sorts them out).
bool string_stop(std::uint64_t w) {
  constexpr std::uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  const auto has_zero = [](std::uint64_t x) { return (x - ones) & ~x & highs; };
  return ((w - ones * 0x20) | has_zero(w ^ (ones * '"')) | has_zero(w ^ (ones * '\\')) | w) & highs;
}
#endif

// A string with nothing escaped: its text. Bytes of multi-byte characters must be valid
// UTF-8, as simdjson requires of the whole document.
bool read_string(cursor& c, std::string_view& out) {
  if (c.p == c.end || *c.p != '"') return false;
  const char* start = ++c.p;
  bool ascii = true;
  for (;;) {
#if defined(__SSE2__)
    // 16 bytes at a time up to the first that ends or breaks a plain string: a byte of
    // 0x80 and above is negative as a signed char, below 0x20 like a control character.
    // (The envelope's base64 ciphertext, skipped in every claim, is ~150 bytes long.)
    const __m128i quote = _mm_set1_epi8('"'), escape = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    while (c.end - c.p >= 16) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(c.p));
      const __m128i stop =
          _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, escape)),
                       _mm_cmplt_epi8(x, space));
      if (const auto mask = static_cast<unsigned>(_mm_movemask_epi8(stop)); mask != 0) {
        c.p += __builtin_ctz(mask);
        break;
      }
      c.p += 16;
    }
#else
    if (c.end - c.p >= 8) {
      std::uint64_t w;
      std::memcpy(&w, c.p, 8);
      if (!string_stop(w)) {
        c.p += 8;
        continue;
      }
    }
#endif
    if (c.p == c.end) return false;
    const auto ch = static_cast<unsigned char>(*c.p);
    if (ch == '"') break;
    if (ch == '\\' || ch < 0x20) return false;  // escaped or invalid: the general reader
    if (ch >= 0x80) ascii = false;
    ++c.p;
  }
  out = {start, static_cast<std::size_t>(c.p - start)};
  ++c.p;
  return ascii || simdjson::validate_utf8(out.data(), out.size());
}

bool read(cursor& c, std::string& out) {
  std::string_view s;
  if (!read_string(c, s)) return false;
  out.assign(s);
  return true;
}
bool read(cursor& c, bool& out) {
  if (c.literal("true")) {
    out = true;
    return true;
  }
  if (c.literal("false")) {
    out = false;
    return true;
  }
  return false;
}
// As to_chars writes it: an optional '-' and 1 to 18 digits without a leading zero (in
// range of int64 whatever they are; longer ones are rare enough for the general reader).
// The member's closing ',' or '}' is checked next, so "1.5" or "1e3" stop there.
bool read(cursor& c, std::int64_t& out) {
  const bool negative = c.p != c.end && *c.p == '-';
  const char* digits = c.p + (negative ? 1 : 0);
  const char* p = digits;
  std::uint64_t v = 0;  // at most 19 digits: no overflow
  while (p != c.end && *p >= '0' && *p <= '9' && p - digits < 19) {
    v = v * 10 + static_cast<std::uint64_t>(*p++ - '0');
  }
  const auto n = p - digits;
  if (n == 0 || n > 18 || (*digits == '0' && (n > 1 || negative))) return false;
  out = negative ? -static_cast<std::int64_t>(v) : static_cast<std::int64_t>(v);
  c.p = p;
  return true;
}
bool read(cursor& c, uuid& out) {
  // '"', 36 characters, '"': uuid::parse takes only hex digits and dashes, so no escape
  // or quote can hide inside.
  if (c.end - c.p < 38 || c.p[0] != '"' || c.p[37] != '"') return false;
  auto u = uuid::parse({c.p + 1, 36});
  if (!u) return false;
  out = *u;
  c.p += 38;
  return true;
}
template <typename T, typename Parse>
bool read_parsed(cursor& c, T& out, Parse parse) {
  std::string_view s;
  if (!read_string(c, s)) return false;
  auto v = parse(s);
  if (!v) return false;
  out = *v;
  return true;
}
bool read(cursor& c, timestamp& out) { return read_parsed(c, out, parse_rfc3339); }
bool read(cursor& c, d::invite_type& out) { return read_parsed(c, out, d::parse_invite_type); }
bool read(cursor& c, d::access_mode& out) { return read_parsed(c, out, d::parse_access_mode); }
bool read(cursor& c, d::role& out) { return read_parsed(c, out, d::parse_role); }
bool read(cursor& c, d::rejection_reason& out) {
  return read_parsed(c, out, d::parse_rejection_reason);
}
bool read(cursor& c, d::learner_role& out) {
  std::string_view s;
  if (!read_string(c, s) || s != d::to_string(d::learner_role::student)) return false;
  out = d::learner_role::student;
  return true;
}
bool read(cursor& c, d::access_duration& out) {
  std::string_view s;
  if (!read_string(c, s)) return false;
  auto v = d::parse_access_duration(s);
  if (!v) return false;
  out = *v;
  return true;
}
// Names in increasing order, as a std::map writes them: none repeated, so "the last of
// repeated names wins" (the general reader) never comes up.
bool read(cursor& c, std::map<std::string, std::string>& out) {
  if (!c.literal("{")) return false;
  out.clear();
  if (c.literal("}")) return true;
  std::string_view previous;
  do {
    std::string_view k, v;
    if (!read_string(c, k) || !c.literal(":") || !read_string(c, v)) return false;
    if (!out.empty() && !(previous < k)) return false;
    out.emplace_hint(out.end(), k, v);
    previous = k;
  } while (c.literal(","));
  return c.literal("}");
}
template <typename T>
bool read(cursor& c, std::optional<T>& out);
template <typename T>
bool read(cursor& c, std::vector<T>& out);
template <described T>
bool read(cursor& c, T& out);
bool read(cursor& c, d::personal_data& out);

template <typename T>
bool read(cursor& c, std::optional<T>& out) {
  if (c.literal("null")) {
    out.reset();
    return true;
  }
  return read(c, out.emplace());
}
template <typename T>
bool read(cursor& c, std::vector<T>& out) {
  if (!c.literal("[")) return false;
  out.clear();
  if (c.literal("]")) return true;
  do {
    if (!read(c, out.emplace_back())) return false;
  } while (c.literal(","));
  return c.literal("]");
}

// A stored personal_data block as found in the event (not decrypted): where the
// envelope's members are in the text.
struct envelope {
  enum class block { null, sealed, clear };
  block found = block::null;              // clear: personal data in clear (not from encode())
  std::string_view alg, ct, iv, subject;  // sealed: the envelope's members
};

// What to do with a personal_data member: read it as a clear block, or skip it (the
// stored envelope; it reads as empty, as text_reader's skip_personal_data).
enum class personal_data_mode { clear, skip };

// A personal_data member read in skip mode: null, an envelope {"alg":…,"ct":…,"iv":…,
// "subject":…} (write order), or a block in clear (what to_json_text() writes; read and
// dropped).
bool read_envelope(cursor& c, envelope& out) {
  out = {};
  if (c.literal("null")) return true;
  const char* start = c.p;
  out.found = envelope::block::sealed;
  if (c.literal("{\"alg\":") && read_string(c, out.alg) && c.literal(",\"ct\":") &&
      read_string(c, out.ct) && c.literal(",\"iv\":") && read_string(c, out.iv) &&
      c.literal(",\"subject\":") && read_string(c, out.subject) && c.literal("}")) {
    return true;
  }
  c.p = start;
  out = {};
  out.found = envelope::block::clear;
  d::personal_data dropped;
  return read(c, dropped);
}

// T's members as written: `{"name":` for the first, `,"name":` for the others, by name.
template <described T>
const std::vector<std::pair<std::string, std::size_t>>& member_openers() {
  static const auto openers = [] {
    std::vector<std::pair<std::string, std::size_t>> v;
    for (const auto& [name, i] : sorted_fields<T>()) {
      std::string opener(v.empty() ? "{" : ",");
      write_string(opener, name);
      opener += ':';
      v.emplace_back(std::move(opener), i);
    }
    return v;
  }();
  return openers;
}

template <typename T, std::size_t... I>
bool read_member(cursor& c, T& v, std::size_t i, personal_data_mode mode, envelope* env,
                 std::index_sequence<I...>) {
  const auto fields = fields_of(static_cast<const T*>(nullptr));
  bool ok = false;
  auto one = [&](const auto& f) {
    auto& m = v.*(f.member);
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(m)>, d::personal_data>) {
      if (mode == personal_data_mode::skip) {  // left as it was: the caller sets it
        envelope ignored;
        return read_envelope(c, env != nullptr ? *env : ignored);
      }
    }
    return read(c, m);
  };
  (void)((i == I && ((ok = one(std::get<I>(fields))), true)) || ...);
  return ok;
}

// Every member, added later or not, must be there: an older event without one is read by
// the general reader.
template <described T>
bool read_object(cursor& c, T& out, personal_data_mode mode, envelope* env) {
  constexpr auto n = std::tuple_size_v<decltype(fields_of(static_cast<const T*>(nullptr)))>;
  for (const auto& [opener, i] : member_openers<T>()) {
    if (!c.literal(opener)) return false;
    if (!read_member(c, out, i, mode, env, std::make_index_sequence<n>{})) return false;
  }
  return c.literal("}");
}
template <described T>
bool read(cursor& c, T& out) {
  return read_object(c, out, personal_data_mode::clear, nullptr);
}
// null, or the listed members then, only in LearnerPasswordSet's, "password_hash" (it
// sorts last, where write_object puts it).
bool read(cursor& c, d::personal_data& out) {
  if (c.literal("null")) {
    out = {};
    return true;
  }
  constexpr auto n =
      std::tuple_size_v<decltype(fields_of(static_cast<const d::personal_data*>(nullptr)))>;
  for (const auto& [opener, i] : member_openers<d::personal_data>()) {
    if (!c.literal(opener)) return false;
    if (!read_member(c, out, i, personal_data_mode::clear, nullptr,
                     std::make_index_sequence<n>{})) {
      return false;
    }
  }
  out.password_hash_.clear();
  if (c.literal(",\"password_hash\":") && !read(c, out.password_hash_)) return false;
  return c.literal("}");
}

// The clear personal data of a decrypted block (the whole text).
bool read_personal_data(std::string_view text, d::personal_data& out) {
  cursor c{text.data(), text.data() + text.size()};
  if (c.p == c.end || *c.p != '{') return false;  // null never gets encrypted
  return read(c, out) && c.p == c.end;
}

// Empties a block, its buffers kept for the next event decoded into it.
void clear_personal_data(d::personal_data& pd) {
  pd.email_.clear();
  pd.first_name_.clear();
  pd.last_name_.clear();
  pd.answers_.clear();
  pd.password_hash_.clear();
}

// Into `out`: when it holds an E already, every member is written over (the layout has
// them all), its strings and vectors keeping their buffers. In skip mode the personal
// data is emptied here; decode_layout() then reads the decrypted block into it. On
// failure `out` holds a partly written event: the caller writes it anew.
template <typename E>
bool decode_as(cursor& c, personal_data_mode mode, envelope* env, d::event& out) {
  E* v = std::get_if<E>(&out);
  if (v == nullptr) v = &out.emplace<E>();
  if (!read_object(c, *v, mode, env) || c.p != c.end) return false;
  if constexpr (has_personal_data<E>) {
    if (mode == personal_data_mode::skip) clear_personal_data(v->personal_data_);
  }
  return true;
}

using decode_fn = bool (*)(cursor&, personal_data_mode, envelope*, d::event&);

template <std::size_t... I>
constexpr std::array<decode_fn, kind_count> make_decoders(std::index_sequence<I...>) {
  return {&decode_as<std::variant_alternative_t<I, d::event>>...};
}

// The event of type `index` (in d::event) from `text`, into `out` (decode_as); `env`
// (when given) receives where its personal_data envelope is, read in skip mode.
bool decode(std::size_t index, std::string_view text, personal_data_mode mode, envelope* env,
            d::event& out) {
  static constexpr auto decoders = make_decoders(std::make_index_sequence<kind_count>{});
  cursor c{text.data(), text.data() + text.size()};
  return decoders[index](c, mode, env, out);
}

}  // namespace layout_reader

// Tests turn the layout reader off to compare it with the general one.
std::atomic<bool> layout_reader_on{true};
// Events the layout reader left to the general one (layout_decode_misses()).
std::atomic<std::uint64_t> layout_misses{0};

// ---------------------------------------------------------------------------------------
// Event types by name.

using decode_fn = result<d::event, codec_error> (*)(const json&);

struct event_kind {
  std::string_view type;
  int schema_version = 1;
  bool has_personal_data = false;
  decode_fn decode = nullptr;
  std::size_t index = 0;  // in d::event
};

codec_error field_error(std::string_view type, const read_error& err) {
  std::string msg(type);
  msg += ": ";
  if (!err.field.empty()) msg += err.field + ": ";
  msg += err.what;
  return {std::move(msg), err.field};
}

template <typename E>
result<d::event, codec_error> decode_as(const json& j) {
  E v;
  read_error err;
  if (!from_value(j, v, nullptr, err)) return field_error(E::type_name, err);
  return d::event{std::move(v)};
}

// By index in d::event.
template <std::size_t... I>
std::array<event_kind, kind_count> make_kinds(std::index_sequence<I...>) {
  return {event_kind{std::variant_alternative_t<I, d::event>::type_name,
                     std::variant_alternative_t<I, d::event>::schema_version,
                     has_personal_data<std::variant_alternative_t<I, d::event>>,
                     &decode_as<std::variant_alternative_t<I, d::event>>, I}...};
}

const std::array<event_kind, kind_count>& kinds() {
  static const auto table = make_kinds(std::make_index_sequence<kind_count>{});
  return table;
}

const event_kind* find_kind(std::string_view type) {
  const auto index = types().find(type);
  return index ? &kinds()[*index] : nullptr;
}

// ---------------------------------------------------------------------------------------
// Crypto: AES-256-GCM, HMAC-SHA256 and base64, all from OpenSSL.

constexpr std::string_view envelope_alg = "A256GCM";
constexpr std::size_t iv_size = 12;
constexpr std::size_t tag_size = 16;

const EVP_CIPHER* aes_256_gcm() {
  // Fetched once: the implicit fetch of EVP_aes_256_gcm() costs a lookup per call.
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return cipher;
}

struct cipher_ctx_free {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// One context per thread, re-initialised per message: saves an allocation per event. It
// keeps the key it was last given: messages sealed (or opened) one after another under
// the same key (a claim's events, all about one learner) set only their IV, not the key's
// schedule again (a third of the cost of a small message). A message under another key,
// or in the other direction, re-keys the context in place (EVP_CipherInit_ex2 with no
// cipher): the provider (OpenSSL 3 ciphercommon_gcm.c gcm_init) takes the direction,
// then its setkey overwrites the AES key schedule and CRYPTO_gcm128_init clears the whole
// GCM state and derives the new GHASH key, and the IV is set afresh (which clears the
// AAD, length and tag accumulators); the kept copy is overwritten with the new key. That
// skips freeing and allocating the provider's context and re-querying the cipher's
// parameters, a fifth of the cost of a message under a new key (a rebuild's usual case:
// every learner has their own key). A failure wipes the kept copy and resets the context
// (which wipes its schedule); the next message then sets the cipher up from scratch. The
// last key used thus stays in this thread's memory, as the kept copy and the context's
// schedule, until the next message under another key (or a failure): before the copy
// was kept, the context held the last key's schedule until the next message all the
// same.
struct thread_cipher {
  std::unique_ptr<EVP_CIPHER_CTX, cipher_ctx_free> ctx{EVP_CIPHER_CTX_new()};
  data_key key{};
  int enc = -1;  // the direction `key` is loaded for: 1 seal, 0 open, -1 none (no cipher set)
  thread_cipher() = default;
  thread_cipher(const thread_cipher&) = delete;
  thread_cipher& operator=(const thread_cipher&) = delete;
  ~thread_cipher() { OPENSSL_cleanse(key.data(), key.size()); }  // the context wipes itself

  // Begins a message under `k` with `iv` (enc: 1 seal, 0 open); nullptr on failure.
  EVP_CIPHER_CTX* begin(const data_key& k, std::string_view iv, int direction) {
    if (!ctx || aes_256_gcm() == nullptr) return nullptr;
    const bool loaded = enc == direction && CRYPTO_memcmp(key.data(), k.data(), k.size()) == 0;
    // With the cipher already set, only the key (or just the IV) is replaced.
    const EVP_CIPHER* cipher = enc == -1 ? aes_256_gcm() : nullptr;
    if (EVP_CipherInit_ex2(ctx.get(), cipher, loaded ? nullptr : k.data(), bytes(iv), direction,
                           nullptr) != 1) {
      forget();
      return nullptr;
    }
    if (!loaded) {
      key = k;
      enc = direction;
    }
    return ctx.get();
  }
  // After a failure mid-message: wipes the kept copy and the context's schedule; the next
  // message sets the cipher up and loads its key afresh.
  void forget() {
    OPENSSL_cleanse(key.data(), key.size());
    enc = -1;
    EVP_CIPHER_CTX_reset(ctx.get());
  }
};

thread_cipher& this_thread_cipher() {
  thread_local thread_cipher cipher;
  return cipher;
}

// ciphertext || tag
std::optional<std::string> seal(const data_key& key, std::string_view iv, std::string_view aad,
                                std::string_view plaintext) {
  auto& cipher = this_thread_cipher();
  EVP_CIPHER_CTX* ctx = cipher.begin(key, iv, 1);
  if (ctx == nullptr) return std::nullopt;
  std::string out(plaintext.size() + tag_size, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  int len = 0, fin = 0;
  if (EVP_EncryptUpdate(ctx, nullptr, &len, bytes(aad), static_cast<int>(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx, o, &len, bytes(plaintext), static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx, o + len, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(tag_size),
                          o + plaintext.size()) != 1) {
    cipher.forget();
    return std::nullopt;
  }
  return out;
}

enum class open_status { ok, bad_tag, failed };

open_status open_sealed(const data_key& key, std::string_view iv, std::string_view aad,
                        std::string_view sealed, std::string& plaintext) {
  if (sealed.size() < tag_size) return open_status::bad_tag;
  auto& cipher = this_thread_cipher();
  EVP_CIPHER_CTX* ctx = cipher.begin(key, iv, 0);
  if (ctx == nullptr) return open_status::failed;
  std::string_view ct = sealed.substr(0, sealed.size() - tag_size);
  std::array<char, tag_size> tag{};  // EVP_CTRL_AEAD_SET_TAG takes it writable
  std::copy(sealed.begin() + static_cast<std::ptrdiff_t>(ct.size()), sealed.end(), tag.begin());
  plaintext.assign(ct.size(), '\0');
  auto* o = reinterpret_cast<unsigned char*>(plaintext.data());
  int len = 0, fin = 0;
  if (EVP_DecryptUpdate(ctx, nullptr, &len, bytes(aad), static_cast<int>(aad.size())) != 1 ||
      EVP_DecryptUpdate(ctx, o, &len, bytes(ct), static_cast<int>(ct.size())) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(tag_size), tag.data()) !=
          1) {
    cipher.forget();
    return open_status::failed;
  }
  if (EVP_DecryptFinal_ex(ctx, o + len, &fin) != 1) {
    OPENSSL_cleanse(plaintext.data(), plaintext.size());
    cipher.forget();
    return open_status::bad_tag;
  }
  return open_status::ok;
}

// Binds a ciphertext to its event: moved into another event (other id, type or
// subject), it fails authentication instead of showing someone's data there.
// Into `aad` (its buffer reused: a replay opens the block of every LearnerRegistered).
void aad_into(std::string& aad, const uuid& event_id, std::string_view type,
              std::string_view subject) {
  aad.assign("passage.personal_data.v1|");
  const auto id = uuid_chars(event_id);  // to_string()'s, without a temporary string
  aad.append(id.data(), id.size());
  aad += '|';
  aad += type;
  aad += '|';
  aad += subject;
}
std::string aad_of(const uuid& event_id, std::string_view type, std::string_view subject) {
  std::string aad;
  aad_into(aad, event_id, type, subject);
  return aad;
}

// A person may be forgotten, come back, and be forgotten again; each return needs a
// new key for their email subject. The bound only stops a runaway loop.
constexpr int max_email_generations = 1000;

bool is_email_subject(std::string_view subject) { return subject.starts_with("email:"); }

std::string email_generation(const std::string& base, int generation) {
  return generation == 1 ? base : base + "." + std::to_string(generation);
}

// Keeps a copy of a key from outliving its use on the stack.
struct key_guard {
  data_key& k;
  ~key_guard() { OPENSSL_cleanse(k.data(), k.size()); }
};

codec_error error_of(std::string_view type, std::string msg, std::string field = {}) {
  return {std::string(type) + ": " + (field.empty() ? "" : field + ": ") + msg, std::move(field)};
}

// Events the fast reader passed to nlohmann (text_decode_fallbacks()).
std::atomic<std::uint64_t> text_fallbacks{0};

std::optional<json> parse_object(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

}  // namespace

// ---------------------------------------------------------------------------------------

nlohmann::json to_json(const domain::event& e) {
  return std::visit([](const auto& v) { return to_value(v); }, e);
}

std::string to_json_text(const domain::event& e) {
  std::string out;
  std::visit([&](const auto& v) { write_object(out, v); }, e);
  return out;
}

std::optional<std::size_t> event_type_index(std::string_view type) { return types().find(type); }

std::uint64_t text_decode_fallbacks() { return text_fallbacks.load(std::memory_order_relaxed); }

std::uint64_t layout_decode_misses() { return layout_misses.load(std::memory_order_relaxed); }

void set_layout_reader(bool on) { layout_reader_on.store(on, std::memory_order_relaxed); }

result<domain::event, codec_error> event_from_json(std::string_view type, const nlohmann::json& j) {
  const event_kind* kind = find_kind(type);
  if (kind == nullptr) return codec_error{"unknown event type \"" + std::string(type) + "\""};
  try {
    return kind->decode(j);
  } catch (const std::exception& ex) {  // nlohmann or allocation; never escapes
    return error_of(type, std::string("cannot decode: ") + ex.what());
  }
}

namespace {

// event_from_json_text() past the layout reader: simdjson, else nlohmann (which words the
// error of an unknown type or of text that is not an event).
result<domain::event, codec_error> event_from_json_text_general(std::string_view type,
                                                                std::string_view text,
                                                                bool without_personal_data) {
  if (auto fast = text_reader::decode(type, text, without_personal_data)) return std::move(*fast);
  // Not decodable the fast way: nlohmann says why (or, should the two readers ever
  // disagree on valid input, decodes it).
  text_fallbacks.fetch_add(1, std::memory_order_relaxed);
  try {
    auto j = json::parse(text);
    if (!j.is_object()) return error_of(type, "data is not a JSON object");
    if (without_personal_data) {
      if (auto pd = j.find("personal_data"); pd != j.end()) *pd = nullptr;
    }
    return event_from_json(type, j);
  } catch (const std::exception& ex) {
    return error_of(type, ex.what());
  }
}

}  // namespace

result<domain::event, codec_error> event_from_json_text(std::string_view type,
                                                        std::string_view text,
                                                        bool without_personal_data) {
  if (auto index = types().find(type)) {
    return event_from_json_text(*index, type, text, without_personal_data);
  }
  return event_from_json_text_general(type, text, without_personal_data);
}

result<domain::event, codec_error> event_from_json_text(std::size_t type_index,
                                                        std::string_view type,
                                                        std::string_view text,
                                                        bool without_personal_data) {
  d::event out;
  auto r = event_from_json_text_into(type_index, type, text, without_personal_data, out);
  if (!r) return r.error();
  return out;
}

result<void, codec_error> event_from_json_text_into(std::size_t type_index, std::string_view type,
                                                    std::string_view text,
                                                    bool without_personal_data,
                                                    domain::event& out) {
  // The caller looked the index up (event_type_index()): its name is compared, not
  // looked up again.
  if (type_index >= kind_count || kinds()[type_index].type != type) {
    return codec_error{"event type index " + std::to_string(type_index) + " is not \"" +
                       std::string(type) + "\""};
  }
  if (layout_reader_on.load(std::memory_order_relaxed)) {
    using mode = layout_reader::personal_data_mode;
    if (layout_reader::decode(type_index, text, without_personal_data ? mode::skip : mode::clear,
                              nullptr, out)) {
      return {};
    }
    layout_misses.fetch_add(1, std::memory_order_relaxed);
  }
  auto general = event_from_json_text_general(type, text, without_personal_data);
  if (!general) return general.error();
  out = std::move(*general);
  return {};
}

event_codec::event_codec(key_store& keys, std::string pepper)
    : keys_(keys), pepper_(std::move(pepper)) {
  // A short pepper makes "email:<hash>" subjects guessable from a list of addresses.
  if (pepper_.size() < 32) throw std::invalid_argument("event_codec: pepper must be >= 32 bytes");
}

std::array<std::uint8_t, 32> event_codec::email_hash(const uuid& org_id,
                                                     std::string_view email) const {
  // "<org>|<normalize_email(email)>", written into one buffer: a replay hashes the email
  // of every registration.
  static constexpr char digits[] = "0123456789abcdef";
  std::string msg;
  msg.reserve(37 + email.size());
  msg.resize(37, '|');
  std::size_t n = 0;
  for (std::size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) msg[n++] = '-';
    msg[n++] = digits[org_id.bytes[i] >> 4];
    msg[n++] = digits[org_id.bytes[i] & 0xf];
  }
  domain::append_normalized_email(msg, email);
  std::array<unsigned char, 32> md{};
  // Without a hash every address would get the subject "email:": one key for all.
  if (!hmac_sha256(pepper_, {msg}, md)) {
    throw std::runtime_error("event codec: HMAC-SHA256 of an email failed (OpenSSL)");
  }
  std::array<std::uint8_t, 32> out;
  std::copy(md.begin(), md.end(), out.begin());
  return out;
}

std::string event_codec::email_subject(const uuid& org_id, std::string_view email) const {
  static constexpr char digits[] = "0123456789abcdef";
  const auto md = email_hash(org_id, email);
  std::string out = "email:";
  out.resize(6 + 2 * md.size());
  for (std::size_t i = 0; i < md.size(); ++i) {
    out[6 + 2 * i] = digits[md[i] >> 4];
    out[7 + 2 * i] = digits[md[i] & 0xf];
  }
  return out;
}

result<void, codec_error> event_codec::forget_email(const uuid& org_id,
                                                    std::string_view email) const {
  return forget_email_subject(email_subject(org_id, email));
}

result<void, codec_error> event_codec::forget_email_subject(std::string_view subject) const {
  if (!is_email_subject(subject)) return codec_error{"forget_email: not an email subject"};
  const std::string base(subject);
  for (int g = 1; g <= max_email_generations; ++g) {
    std::string subject = email_generation(base, g);
    if (keys_.is_destroyed(subject)) continue;
    auto key = keys_.find(subject);
    if (!key) return codec_error{"forget_email: key store: " + key.error().message};
    // Generation 1 is destroyed even if it never had a key, so that nothing recorded
    // after the forget can reuse it; later generations end the search when unused.
    if (!*key && g > 1) return {};
    if (*key) OPENSSL_cleanse((*key)->data(), (*key)->size());
    if (auto r = keys_.destroy(subject); !r) {
      return codec_error{"forget_email: key store: " + r.error().message};
    }
  }
  return {};
}

std::string learner_subject(const uuid& learner_id) { return "learner:" + learner_id.to_string(); }

std::string event_codec::subject_of(const domain::event& e) const {
  if (auto learner = domain::data_subject(e)) return learner_subject(*learner);
  const auto* pd = domain::personal_data_of(e);
  if (pd == nullptr || pd->email_.empty()) return {};
  return email_subject(domain::org_of(e), pd->email_);
}

encode_keys::~encode_keys() { OPENSSL_cleanse(key_.data(), key_.size()); }

result<new_event, codec_error> event_codec::encode(const domain::event& e,
                                                   const event_metadata& meta) const {
  return encode_with(e, meta, nullptr);
}

result<new_event, codec_error> event_codec::encode(const domain::event& e,
                                                   const event_metadata& meta,
                                                   encode_keys& kept) const {
  return encode_with(e, meta, &kept);
}

result<new_event, codec_error> event_codec::encode_with(const domain::event& e,
                                                        const event_metadata& meta,
                                                        encode_keys* kept) const {
  const std::string_view type = domain::event_type(e);
  new_event out;
  out.event_id = meta.event_id;
  out.type = std::string(type);
  out.schema_version = static_cast<std::uint32_t>(domain::event_schema_version(e));
  out.org_id = domain::org_of(e).to_string();
  out.correlation_id = meta.correlation_id;
  out.causation_id = meta.causation_id;
  out.actor = meta.actor;
  try {
    const auto* pd = domain::personal_data_of(e);
    std::string envelope;  // the personal_data member as stored, when there is one
    if (pd != nullptr && !pd->empty()) {
      std::string subject = subject_of(e);
      if (subject.empty()) {
        return error_of(type, "personal data without a learner or an email to key it",
                        "personal_data");
      }
      const bool known = kept != nullptr && !kept->asked_.empty() && kept->asked_ == subject;
      result<data_key, key_store_error> key =
          known ? result<data_key, key_store_error>(kept->key_) : keys_.get_or_create(subject);
      std::string asked;
      if (known) {
        subject = kept->subject_;
      } else if (kept != nullptr) {
        asked = subject;
      }
      if (!known && !key && key.error().destroyed && is_email_subject(subject)) {
        // The email was forgotten; new data about it gets a fresh generation's key.
        const std::string base = subject;
        for (int g = 2; !key && key.error().destroyed && g <= max_email_generations; ++g) {
          subject = email_generation(base, g);
          key = keys_.get_or_create(subject);
        }
      }
      if (!key) {
        auto err =
            error_of(type, "no key for personal data: " + key.error().message, "personal_data");
        err.forgotten = key.error().destroyed;
        return err;
      }
      key_guard guard{*key};  // first: the copies below may throw
      if (kept != nullptr && !known) {
        kept->asked_ = std::move(asked);
        kept->subject_ = subject;
        kept->key_ = *key;
      }
      std::string plaintext;
      plaintext.reserve(512);  // few reallocations leave few copies behind in freed memory
      write_value(plaintext, *pd);
      std::string iv(iv_size, '\0');
      secure_random_bytes({reinterpret_cast<std::uint8_t*>(iv.data()), iv.size()});
      auto sealed = seal(*key, iv, aad_of(meta.event_id, type, subject), plaintext);
      OPENSSL_cleanse(plaintext.data(), plaintext.size());
      if (!sealed) return error_of(type, "encryption failed", "personal_data");
      // {"alg","ct","iv","subject"}: sorted, as nlohmann wrote it.
      envelope = "{\"alg\":";
      write_string(envelope, envelope_alg);
      envelope += ",\"ct\":";
      write_base64(envelope, *sealed);
      envelope += ",\"iv\":";
      write_base64(envelope, iv);
      envelope += ",\"subject\":";
      write_string(envelope, subject);
      envelope += '}';
    }
    out.data.reserve(512 + envelope.size());
    std::visit(
        [&](const auto& v) { write_object(out.data, v, envelope.empty() ? nullptr : &envelope); },
        e);
  } catch (const std::exception& ex) {  // e.g. a string that is not UTF-8
    return error_of(type, std::string("cannot encode: ") + ex.what());
  }
  return out;
}

namespace {

// The clear personal_data of a stored envelope; nullopt when its key is gone.
result<std::optional<json>, codec_error> open_envelope(key_store& keys, const recorded_event& e,
                                                       const json& env) {
  auto bad = [&](std::string what) { return error_of(e.type, std::move(what), "personal_data"); };
  if (!env.is_object()) return bad("expected an encrypted envelope or null");
  auto str = [&](const char* name) -> const std::string* {
    auto it = env.find(name);
    return it != env.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
  };
  const std::string* alg = str("alg");
  const std::string* subject = str("subject");
  const std::string* iv64 = str("iv");
  const std::string* ct64 = str("ct");
  if (alg == nullptr || subject == nullptr || iv64 == nullptr || ct64 == nullptr) {
    return bad("expected an encrypted envelope {alg, subject, iv, ct}");
  }
  if (*alg != envelope_alg) return bad("unsupported algorithm \"" + *alg + "\"");
  auto iv = base64_decode(*iv64);
  auto sealed = base64_decode(*ct64);
  if (!iv || iv->size() != iv_size || !sealed || sealed->size() < tag_size) {
    return bad("malformed envelope");
  }
  if (subject->empty() || subject->front() == '\0') return bad("malformed envelope subject");

  auto key = keys.find(*subject);
  if (!key) return bad("key store: " + key.error().message);
  if (!*key) return std::optional<json>{};  // forgotten (or never stored): crypto-shredded
  key_guard guard{**key};

  std::string plaintext;
  switch (open_sealed(**key, *iv, aad_of(e.event_id, e.type, *subject), *sealed, plaintext)) {
    case open_status::ok:
      break;
    case open_status::bad_tag:
      return bad("authentication failed (tampered, or moved from another event)");
    case open_status::failed:
      return bad("decryption failed");
  }
  auto clear = parse_object(plaintext);
  OPENSSL_cleanse(plaintext.data(), plaintext.size());
  if (!clear) return bad("decrypted personal data is not a JSON object");
  return std::optional<json>{std::move(*clear)};
}

}  // namespace

namespace {

// Opens a stored envelope's ciphertext into `plaintext`. 0: opened, 1: no key (forgotten),
// 2: not this way (the nlohmann path explains). The same checks as open_envelope.
int open_text_envelope(key_store& keys, const recorded_event& e, std::string_view alg,
                       std::string_view subject, std::string_view iv64, std::string_view ct64,
                       std::string& plaintext) {
  if (alg != envelope_alg || subject.empty() || subject.front() == '\0') return 2;
  auto iv = base64_decode(iv64);
  auto sealed = base64_decode(ct64);
  if (!iv || iv->size() != iv_size || !sealed || sealed->size() < tag_size) return 2;
  auto key = keys.find(subject);
  if (!key) return 2;
  if (!*key) return 1;
  key_guard guard{**key};
  thread_local std::string aad;  // names no one: an event id, a type and a key's subject
  aad_into(aad, e.event_id, e.type, subject);
  return open_sealed(**key, *iv, aad, *sealed, plaintext) == open_status::ok ? 0 : 2;
}

void set_personal_data(d::event& ev, d::personal_data&& clear) {
  std::visit(
      [&](auto& v) {
        if constexpr (has_personal_data<std::remove_cvref_t<decltype(v)>>) {
          v.personal_data_ = std::move(clear);
        }
      },
      ev);
}

// decode_text() of an event in the exact layout this codec writes (layout_reader), its
// decrypted block too, into `out` (reused: layout_reader::decode_as); false: not in that
// layout (or not openable), for the general path, with `out` partly written.
// Past it, the buffer of decrypted text a thread keeps is given back after use.
constexpr std::size_t kept_plaintext_capacity = 64 * 1024;

bool decode_layout(key_store& keys, const event_kind& kind, const recorded_event& e,
                   decoded_event& out) {
  layout_reader::envelope env;
  if (!layout_reader::decode(kind.index, e.data, layout_reader::personal_data_mode::skip, &env,
                             out.event)) {
    return false;
  }
  out.forgotten = false;
  if (!kind.has_personal_data) return true;
  // A block in clear is not what encode() stores: the general path words the error.
  if (env.found == layout_reader::envelope::block::clear) return false;
  if (env.found == layout_reader::envelope::block::null) return true;
  // Reused (a replay opens the block of every LearnerRegistered) and wiped on every way
  // out, a failed opening too: each use writes no further than its own size, which it
  // wipes, so nothing decrypted stays in the buffer.
  // A rare large block (many answers) does not keep its buffer for the thread's life:
  // past 64 KiB it is given back once wiped.
  thread_local std::string plaintext;
  struct wipe_on_exit {
    std::string& s;
    ~wipe_on_exit() {
      OPENSSL_cleanse(s.data(), s.size());
      s.clear();
      if (s.capacity() > kept_plaintext_capacity) std::string().swap(s);
    }
  } wipe{plaintext};
  switch (open_text_envelope(keys, e, env.alg, env.subject, env.iv, env.ct, plaintext)) {
    case 0:
      break;
    case 1:
      out.forgotten = true;
      return true;
    default:
      return false;
  }
  bool read = false;
  std::visit(
      [&](auto& v) {
        if constexpr (has_personal_data<std::remove_cvref_t<decltype(v)>>) {
          read = layout_reader::read_personal_data(plaintext, v.personal_data_);
        }
      },
      out.event);
  return read;
}

// decode() without a nlohmann document: the event and its envelope through simdjson, the
// decrypted block too. nullopt: anything unusual (the nlohmann path gives the error).
std::optional<decoded_event> decode_text(key_store& keys, const event_kind& kind,
                                         const recorded_event& e) {
  text_reader::element root;
  auto ev = text_reader::decode(e.type, e.data, /*skip_personal_data=*/true, &root);
  if (!ev) return std::nullopt;
  if (!kind.has_personal_data) return decoded_event{std::move(*ev), false};
  text_reader::element pd;
  if (root.at_key("personal_data").get(pd)) return std::nullopt;
  auto open = [&](std::string_view alg, const std::string& subject, std::string_view iv64,
                  std::string_view ct64, std::string& plaintext) {
    return open_text_envelope(keys, e, alg, subject, iv64, ct64, plaintext);
  };
  bool forgotten = false;
  auto clear = text_reader::read_personal_data(pd, forgotten, open);
  if (!clear) return std::nullopt;
  set_personal_data(*ev, std::move(*clear));
  return decoded_event{std::move(*ev), forgotten};
}

}  // namespace

namespace {

// decode() past the layout reader: simdjson, else nlohmann (which words the errors).
result<decoded_event, codec_error> decode_general(key_store& keys, const event_kind& kind_ref,
                                                  const recorded_event& e) {
  const event_kind* kind = &kind_ref;
  if (auto fast = decode_text(keys, *kind, e)) return std::move(*fast);
  text_fallbacks.fetch_add(1, std::memory_order_relaxed);
  try {
    auto j = parse_object(e.data);
    if (!j) return error_of(e.type, "data is not a JSON object");
    bool forgotten = false;
    if (kind->has_personal_data) {
      auto it = j->find("personal_data");
      if (it == j->end()) return error_of(e.type, "missing", "personal_data");
      if (!it->is_null()) {
        auto clear = open_envelope(keys, e, *it);
        if (!clear) return clear.error();
        if (*clear) {
          *it = std::move(**clear);
        } else {
          *it = nullptr;
          forgotten = true;
        }
      }
    }
    auto ev = kind->decode(*j);
    if (!ev) return ev.error();
    return decoded_event{std::move(*ev), forgotten};
  } catch (const std::exception& ex) {
    return error_of(e.type, std::string("cannot decode: ") + ex.what());
  }
}

}  // namespace

result<decoded_event, codec_error> event_codec::decode(const recorded_event& e) const {
  decoded_event out;
  auto r = decode_into(e, out);
  if (!r) return r.error();
  return out;
}

result<void, codec_error> event_codec::decode_into(const recorded_event& e,
                                                   decoded_event& out) const {
  const event_kind* kind = find_kind(e.type);
  if (kind == nullptr) return codec_error{"unknown event type \"" + e.type + "\""};
  if (e.schema_version != static_cast<std::uint32_t>(kind->schema_version)) {
    return error_of(e.type, "schema_version " + std::to_string(e.schema_version) +
                                " is not supported (expected " +
                                std::to_string(kind->schema_version) + "; add an upcaster)");
  }
  if (layout_reader_on.load(std::memory_order_relaxed)) {
    if (decode_layout(keys_, *kind, e, out)) return {};
    layout_misses.fetch_add(1, std::memory_order_relaxed);
  }
  auto general = decode_general(keys_, *kind, e);
  if (!general) return general.error();
  out = std::move(*general);
  return {};
}

namespace {

// Stands for personal data that was forgotten before it reached this codec: a subject no
// key is ever made for ("forgotten" has no "learner:" or "email:" prefix), so decode()
// finds no key and shows the block as forgotten.
json forgotten_envelope() {
  return json{{"alg", std::string(envelope_alg)},
              {"subject", "forgotten"},
              {"iv", base64_encode(std::string(iv_size, '\0'))},
              {"ct", base64_encode(std::string(tag_size, '\0'))}};
}

bool is_forgotten_marker(const json& pd) {
  if (!pd.is_object()) return false;
  auto it = pd.find("forgotten");
  return it != pd.end() && it->is_boolean() && it->get<bool>();
}

}  // namespace

result<std::string, codec_error> event_codec::encode_public_json(const uuid& event_id,
                                                                 std::string_view type,
                                                                 std::uint32_t schema_version,
                                                                 const nlohmann::json& data) const {
  const event_kind* kind = find_kind(type);
  if (kind == nullptr) return codec_error{"unknown event type \"" + std::string(type) + "\""};
  if (schema_version != static_cast<std::uint32_t>(kind->schema_version)) {
    return error_of(type, "schema_version " + std::to_string(schema_version) +
                              " is not supported (expected " +
                              std::to_string(kind->schema_version) + ")");
  }
  try {
    if (!data.is_object()) return error_of(type, "data is not a JSON object");
    auto pd = data.find("personal_data");
    const bool marked_forgotten =
        kind->has_personal_data && pd != data.end() && is_forgotten_marker(*pd);
    json clear = data;
    if (marked_forgotten) clear["personal_data"] = nullptr;
    auto ev = kind->decode(clear);
    if (!ev) return ev.error();
    if (marked_forgotten) {
      json stored = to_json(*ev);
      stored["personal_data"] = forgotten_envelope();
      return stored.dump();
    }
    auto encoded = encode(*ev, {.event_id = event_id});
    if (!encoded && encoded.error().forgotten) {
      json stored = to_json(*ev);
      stored["personal_data"] = forgotten_envelope();
      return stored.dump();
    }
    if (!encoded) return encoded.error();
    return std::move(encoded->data);
  } catch (const std::exception& ex) {
    return error_of(type, std::string("cannot encode: ") + ex.what());
  }
}

result<nlohmann::json, codec_error> event_codec::to_public_json(const recorded_event& e) const {
  try {
    auto j = parse_object(e.data);
    if (!j) return error_of(e.type, "data is not a JSON object");
    auto it = j->find("personal_data");
    if (it != j->end() && !it->is_null()) {
      auto clear = open_envelope(keys_, e, *it);
      if (!clear) return clear.error();
      *it = *clear ? std::move(**clear) : json{{"forgotten", true}};
      // A password hash is a secret of its own: never shown, not even to the org's
      // admins or on Kafka (the node that checks passwords reads its own log).
      if (it->is_object()) it->erase("password_hash");
    }
    return std::move(*j);
  } catch (const std::exception& ex) {
    return error_of(e.type, std::string("cannot show: ") + ex.what());
  }
}

}  // namespace passage::eventstore
