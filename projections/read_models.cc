#include "projections/read_models.h"

#include <openssl/crypto.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <future>
#include <limits>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <thread>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>

#include "common/record_format.h"
#include "common/time_format.h"
#include "common/uuid_list.h"
#include "common/uuid_map.h"
#include "domain/events.h"
#include "domain/text.h"
#include "projections/bulk_runs.h"
#include "projections/email_index.h"
#include "projections/sealed_rows.h"

namespace passage::projections {

namespace {

using eventstore::recorded_event;

// ---------------------------------------------------------------------------------------
// Key layout (one column family). Rows are append-only and keyed by log position, so a
// prefix scan returns them in log order.
//
//   m:cp                     checkpoint: last applied position (8 bytes big-endian)
//   m:fmt                    record format version
//   o<org>                   organization
//   k<key id>                API key
//   t<org><track id>         track
//   s<invite>                invite identity and settings (rewritten on create/update only)
//   i<invite>                invite lifecycle, version and counters
//   c<position>              claim: snapshot and progress per track, keyed by the position
//                            of its first InviteClaimed (its id is in the record; a repeat
//                            rewrites the record under the same key)
//   l<position>              learner: keyed email hash, lead submitted, forgotten, claims,
//                            keyed by the position of its first InviteClaimed,
//                            LearnerRegistered, LeadCaptured or LearnerForgotten (the events
//                            that make the record; TrackPlayed and ClaimRejected name a
//                            learner without making one)
//   A<invite><position>      acceptance row (sealed event: what decrypts its personal data)
//   R<invite><position>      rejection row (sealed event)
//   L<org><position>         lead row (sealed event)
//   H<learner><position>     learner history row: rejection, play, pause, resume (claims
//                            come from the learner's claim records, which have their
//                            position); a rejection's personal data is read from its R row
//                            (same invite and position), never copied

constexpr std::string_view checkpoint_key = "m:cp";
constexpr std::string_view format_key = "m:fmt";
// 2: learner history rows; 3: notify/email; 4: rows keep only the sealed part of an event
// and H rows point at A/R rows for personal data; 5: of that event's data, A, R and L rows
// keep only the personal_data block (put_event); claims have no H rows (a claim record
// has its position instead); a learner record keeps its email hash as 32 bytes; 6: claim
// and learner records keyed by a position, not by their random id: a new claim's records
// go at the end of their kind's keys, which a hinted memtable insert reaches without a
// search (by id, each was a search through the skip list: ~1/3 of the projector's time).
// 7: A, R and L rows keep a sealed personal_data block in binary form (raw iv and
// ciphertext, the subject as bytes or implied by the row's learner), their event's type
// implied by the row's kind and its position only in the key; H rows too keep their
// position only in the key.
constexpr std::string_view format_version = "7";
// Files a bulk load writes into the folder: its runs, then the merged rows and the records
// ingested at its end (moved in as RocksDB's). Any left at open were a crash's.
constexpr std::string_view run_file_prefix = "bulk-run-";

// <prefix><id's 16 bytes>, into `out` (reused by the hot paths: no allocation once warm).
void key_of_into(char prefix, const uuid& id, std::string& out) {
  out.assign(1, prefix);
  out.append(id.as_bytes());
}

// <prefix><position, 8 bytes big-endian>: claim and learner records.
void position_key_into(char prefix, std::uint64_t position, std::string& out) {
  out.assign(1, prefix);
  append_be64(out, position);
}

std::string key_of(char prefix, const uuid& id) {
  std::string k;
  key_of_into(prefix, id, k);
  return k;
}

std::uint64_t read_be64(std::string_view s) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8 && i < s.size(); ++i)
    v = (v << 8) | static_cast<std::uint8_t>(s[i]);
  return v;
}

std::string row_key(char prefix, const uuid& id, std::uint64_t position) {
  std::string k = key_of(prefix, id);
  append_be64(k, position);
  return k;
}

std::string track_key(const uuid& org, std::string_view track_id) {
  std::string k = key_of('t', org);
  k.append(track_id);
  return k;
}

rocksdb::Slice slice(std::string_view s) { return {s.data(), s.size()}; }
std::string_view view(const rocksdb::Slice& s) { return {s.data(), s.size()}; }

std::optional<uuid> uuid_after(std::string_view stream, std::string_view prefix) {
  if (stream.size() != prefix.size() + 36 || stream.substr(0, prefix.size()) != prefix) {
    return std::nullopt;
  }
  return uuid::parse(stream.substr(prefix.size()));
}

// ---------------------------------------------------------------------------------------
// Records.

struct org_rec {
  uuid org_id;
  std::string name;
  domain::lead_form form;
  timestamp created_at{};
};

struct key_rec {
  api_key_view v;
  std::uint64_t position = 0;  // issue order
};

struct invite_rec {
  // Identity and settings ("s").
  uuid org_id;
  uuid invite_id;
  std::string code;
  domain::invite_settings settings;
  std::optional<uuid> duplicated_from;
  std::optional<uuid> created_by;
  timestamp created_at{};
  std::uint64_t created_position = 0;
  // Lifecycle and counters ("i").
  timestamp updated_at{};
  bool deactivated = false;
  bool deleted = false;
  std::uint64_t version = 0;
  std::int64_t claims = 0;
  std::int64_t anonymous_claims = 0;
  std::int64_t rejections = 0;
  std::int64_t plays = 0;
  std::map<std::string, std::int64_t> plays_per_track;
  std::map<std::string, std::int64_t> claims_per_day;
  // claimed_at of every claim, in log order. Memory only: load() refills it from the
  // claim records.
  std::vector<timestamp> claim_times;
  // The terms of its latest claim, shared with every claim of the same terms (claim_rec).
  // Memory only.
  std::shared_ptr<const domain::claim_snapshot> claim_terms;
};

struct progress {
  std::int64_t plays = 0;
  bool paused = false;
};

// The track ids claims' progress names, each kept once (a claim's progress points at
// its tracks' names here): a rebuild keeps millions of claims, and a copy of each name
// per claim (a heap block per claim for its tracks) was ~80 of a claim's ~330 bytes, a
// malloc per claim on the applying thread and most of tearing the read models down
// (walking every claim's block to free it). Names stay until the read models go
// (state::interned_tracks is declared before the claims, which point into it).
class track_names {
 public:
  const std::string* intern(std::string_view id) {
    auto it = names_.find(id);
    if (it == names_.end()) it = names_.emplace(id).first;
    return &*it;
  }

 private:
  struct hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_set<std::string, hash, std::equal_to<>> names_;  // nodes: names never move
};

// A claim's progress per track, in track id order (as a std::map of them would be). A
// claim has a few tracks: up to three are kept in the claim itself (no allocation), more
// in a vector (all of them then).
class track_progress {
 public:
  struct item {
    const std::string* track;  // in the read models' track_names
    progress p;
  };
  // The progress on `track`, made if new (its name interned in `names`).
  progress& at(std::string_view track, track_names& names) {
    item* first = data();
    item* it = std::lower_bound(first, first + n_, track,
                                [](const item& i, std::string_view t) { return *i.track < t; });
    if (it != first + n_ && *it->track == track) return it->p;
    const auto pos = static_cast<std::size_t>(it - first);
    const item made{names.intern(track), progress{}};
    if (n_ < inline_.size()) {
      std::copy_backward(inline_.begin() + pos, inline_.begin() + n_, inline_.begin() + n_ + 1);
      inline_[pos] = made;
    } else {
      if (n_ == inline_.size()) more_.assign(inline_.begin(), inline_.end());
      more_.insert(more_.begin() + static_cast<std::ptrdiff_t>(pos), made);
    }
    ++n_;
    return data()[pos].p;
  }
  const progress* find(std::string_view track) const {
    const item* first = data();
    const item* it = std::lower_bound(
        first, first + n_, track, [](const item& i, std::string_view t) { return *i.track < t; });
    return it != first + n_ && *it->track == track ? &it->p : nullptr;
  }
  std::size_t size() const { return n_; }
  const item* begin() const { return data(); }
  const item* end() const { return data() + n_; }

 private:
  item* data() { return n_ <= inline_.size() ? inline_.data() : more_.data(); }
  const item* data() const { return n_ <= inline_.size() ? inline_.data() : more_.data(); }

  std::array<item, 3> inline_{};  // the first n_ while n_ <= 3
  std::uint32_t n_ = 0;
  std::vector<item> more_;  // all n_ once n_ > 3
};

struct claim_rec {
  uuid org_id;
  uuid invite_id;
  uuid claim_id;
  uuid learner_id;
  bool anonymous = false;
  timestamp claimed_at{};
  std::optional<timestamp> access_expires_at;
  // Its InviteClaimed's restrictions: tracks, access duration, plays per track. Most
  // claims of an invite have the same (its settings when they claimed), so they share one
  // copy (shared_terms): a rebuild keeps millions of claims, and a copy each was a third
  // of their memory and two allocations per claim on the applying thread. Never null
  // once the claim is made or read (terms_of answers for one that is not).
  std::shared_ptr<const domain::claim_snapshot> terms;
  track_progress progress_by_track;
  // Of its InviteClaimed: the key of its A row, and its place in the learner's history
  // (which has no H row of its own for a claim: the learner's claims are in memory). A
  // repeated InviteClaimed of the claim moves it to the repeat's.
  std::uint64_t position = 0;
  // The position of its first InviteClaimed: its record's key (c<position>), which never
  // moves (a moved key would leave the old record behind, read back as well on open).
  // Memory only: load() reads it from the key.
  std::uint64_t key_position = 0;
};

const domain::claim_snapshot& terms_of(const claim_rec& c) {
  static const domain::claim_snapshot none;
  return c.terms ? *c.terms : none;
}

// The claim's progress on `track` (made if new; its name interned in `names`).
progress& progress_of(claim_rec& c, std::string_view track, track_names& names) {
  return c.progress_by_track.at(track, names);
}

// `terms` as a claim of invite `i` keeps them: the invite's copy when they are the same as
// its latest claim's, else a new one, which becomes the invite's (nullptr `i`: always new).
std::shared_ptr<const domain::claim_snapshot> shared_terms(invite_rec* i,
                                                           const domain::claim_snapshot& terms) {
  if (i != nullptr && i->claim_terms && *i->claim_terms == terms) return i->claim_terms;
  auto made = std::make_shared<const domain::claim_snapshot>(terms);
  if (i != nullptr) i->claim_terms = made;
  return made;
}

// A rebuild keeps millions (one per registration): no heap block for the usual learner,
// whose email hash (32 bytes) and one claim are kept in place.
struct learner_rec {
  uuid org_id;
  uuid learner_id;
  timestamp registered_at{};
  // The position of the first event that made the record (InviteClaimed, LearnerRegistered,
  // LeadCaptured or LearnerForgotten: learner_of's callers): its key (l<position>).
  // Memory only: load() reads it from the key.
  std::uint64_t key_position = 0;
  uuid_list claims;
  keyed_email email;  // keyed hash; empty when unknown or forgotten
  bool lead_submitted = false;
  bool forgotten = false;
};

// --- encoding ---

void put_duration(record_writer& w, const domain::access_duration& d) {
  w.boolean(d.forever_);
  for (auto part : {d.years_, d.months_, d.weeks_, d.days_, d.hours_, d.minutes_, d.seconds_}) {
    w.i64(part);
  }
}

domain::access_duration get_duration(record_reader& r) {
  domain::access_duration d;
  d.forever_ = r.boolean();
  for (auto* part :
       {&d.years_, &d.months_, &d.weeks_, &d.days_, &d.hours_, &d.minutes_, &d.seconds_}) {
    *part = r.i64();
  }
  return d;
}

void put_settings(record_writer& w, const domain::invite_settings& s) {
  w.u64(static_cast<std::uint64_t>(s.type_));
  w.str(s.title_);
  w.str(s.public_description_);
  w.str(s.internal_description_);
  w.str(s.image_url_);
  w.u64(s.tracks_.size());
  for (const auto& t : s.tracks_) {
    w.str(t.track_id_);
    w.boolean(t.pausable_);
  }
  put_duration(w, s.access_duration_);
  w.i64(s.plays_per_track_);
  w.opt_ts(s.expires_at_);
  w.i64(s.claim_limit_);
  w.opt_ts(s.starts_at_);
  w.opt_ts(s.ends_at_);
  w.u64(static_cast<std::uint64_t>(s.access_));
  w.u64(s.allowed_emails_.size());
  for (const auto& e : s.allowed_emails_) w.str(e);
  w.u64(s.allowed_domains_.size());
  for (const auto& e : s.allowed_domains_) w.str(e);
  w.boolean(s.require_account_);
  w.boolean(s.show_share_button_);
  w.i64(s.capacity_warning_percent_);
  w.boolean(s.notify_on_claim_);
}

domain::invite_settings get_settings(record_reader& r) {
  domain::invite_settings s;
  s.type_ = static_cast<domain::invite_type>(r.u64());
  s.title_ = r.str();
  s.public_description_ = r.str();
  s.internal_description_ = r.str();
  s.image_url_ = r.str();
  for (auto n = r.u64(); n > 0 && r.ok(); --n) {
    domain::invite_track t;
    t.track_id_ = r.str();
    t.pausable_ = r.boolean();
    s.tracks_.push_back(std::move(t));
  }
  s.access_duration_ = get_duration(r);
  s.plays_per_track_ = r.i64();
  s.expires_at_ = r.opt_ts();
  s.claim_limit_ = r.i64();
  s.starts_at_ = r.opt_ts();
  s.ends_at_ = r.opt_ts();
  s.access_ = static_cast<domain::access_mode>(r.u64());
  for (auto n = r.u64(); n > 0 && r.ok(); --n) s.allowed_emails_.push_back(r.str());
  for (auto n = r.u64(); n > 0 && r.ok(); --n) s.allowed_domains_.push_back(r.str());
  s.require_account_ = r.boolean();
  s.show_share_button_ = r.boolean();
  s.capacity_warning_percent_ = r.i64();
  s.notify_on_claim_ = r.boolean();
  return s;
}

void put_counts(record_writer& w, const std::map<std::string, std::int64_t>& m) {
  w.u64(m.size());
  for (const auto& [k, v] : m) {
    w.str(k);
    w.i64(v);
  }
}

std::map<std::string, std::int64_t> get_counts(record_reader& r) {
  std::map<std::string, std::int64_t> m;
  for (auto n = r.u64(); n > 0 && r.ok(); --n) {
    auto k = r.str();
    m[std::move(k)] = r.i64();
  }
  return m;
}

std::string encode(const org_rec& o) {
  record_writer w;
  w.id(o.org_id);
  w.str(o.name);
  w.ts(o.created_at);
  w.u64(o.form.fields_.size());
  for (const auto& f : o.form.fields_) {
    w.str(f.name_);
    w.str(f.label_);
    w.boolean(f.required_);
  }
  return w.take();
}

bool decode(std::string_view in, org_rec& o) {
  record_reader r(in);
  o.org_id = r.id();
  o.name = r.str();
  o.created_at = r.ts();
  for (auto n = r.u64(); n > 0 && r.ok(); --n) {
    domain::lead_form_field f;
    f.name_ = r.str();
    f.label_ = r.str();
    f.required_ = r.boolean();
    o.form.fields_.push_back(std::move(f));
  }
  return r.ok();
}

std::string encode(const key_rec& k) {
  record_writer w;
  w.id(k.v.org_id);
  w.id(k.v.key_id);
  w.u64(static_cast<std::uint64_t>(k.v.role));
  w.str(k.v.name);
  w.str(k.v.key_hash);
  w.boolean(k.v.revoked);
  w.ts(k.v.issued_at);
  w.opt_ts(k.v.revoked_at);
  w.u64(k.position);
  w.boolean(k.v.email.has_value());
  w.str(k.v.email.value_or(""));
  return w.take();
}

bool decode(std::string_view in, key_rec& k) {
  record_reader r(in);
  k.v.org_id = r.id();
  k.v.key_id = r.id();
  k.v.role = static_cast<domain::role>(r.u64());
  k.v.name = r.str();
  k.v.key_hash = r.str();
  k.v.revoked = r.boolean();
  k.v.issued_at = r.ts();
  k.v.revoked_at = r.opt_ts();
  k.position = r.u64();
  const bool has_email = r.boolean();
  std::string email = r.str();
  if (has_email) k.v.email = std::move(email);
  return r.ok();
}

std::string encode(const track_view& t) {
  record_writer w;
  w.id(t.org_id);
  w.str(t.track_id);
  w.str(t.title);
  w.boolean(t.pausable);
  w.opt_id(t.owner);
  w.ts(t.registered_at);
  w.ts(t.updated_at);
  return w.take();
}

bool decode(std::string_view in, track_view& t) {
  record_reader r(in);
  t.org_id = r.id();
  t.track_id = r.str();
  t.title = r.str();
  t.pausable = r.boolean();
  t.owner = r.opt_id();
  t.registered_at = r.ts();
  t.updated_at = r.ts();
  return r.ok();
}

std::string encode_settings(const invite_rec& i) {
  record_writer w;
  w.id(i.org_id);
  w.id(i.invite_id);
  w.str(i.code);
  w.opt_id(i.duplicated_from);
  w.opt_id(i.created_by);
  w.ts(i.created_at);
  w.u64(i.created_position);
  put_settings(w, i.settings);
  return w.take();
}

bool decode_settings(std::string_view in, invite_rec& i) {
  record_reader r(in);
  i.org_id = r.id();
  i.invite_id = r.id();
  i.code = r.str();
  i.duplicated_from = r.opt_id();
  i.created_by = r.opt_id();
  i.created_at = r.ts();
  i.created_position = r.u64();
  i.settings = get_settings(r);
  return r.ok();
}

std::string encode_state(const invite_rec& i) {
  record_writer w;
  w.ts(i.updated_at);
  w.boolean(i.deactivated);
  w.boolean(i.deleted);
  w.u64(i.version);
  w.i64(i.claims);
  w.i64(i.anonymous_claims);
  w.i64(i.rejections);
  w.i64(i.plays);
  put_counts(w, i.plays_per_track);
  put_counts(w, i.claims_per_day);
  return w.take();
}

bool decode_state(std::string_view in, invite_rec& i) {
  record_reader r(in);
  i.updated_at = r.ts();
  i.deactivated = r.boolean();
  i.deleted = r.boolean();
  i.version = r.u64();
  i.claims = r.i64();
  i.anonymous_claims = r.i64();
  i.rejections = r.i64();
  i.plays = r.i64();
  i.plays_per_track = get_counts(r);
  i.claims_per_day = get_counts(r);
  return r.ok();
}

// Into `w` (cleared first): a load's end encodes millions into one writer, and a live
// batch its claims into the one its rows use.
void encode_into(record_writer& w, const claim_rec& c) {
  w.clear();
  w.id(c.org_id);
  w.id(c.invite_id);
  w.id(c.claim_id);
  w.id(c.learner_id);
  w.boolean(c.anonymous);
  w.ts(c.claimed_at);
  w.opt_ts(c.access_expires_at);
  const auto& terms = terms_of(c);
  w.u64(terms.tracks_.size());
  for (const auto& t : terms.tracks_) {
    w.str(t.track_id_);
    w.boolean(t.pausable_);
  }
  put_duration(w, terms.access_duration_);
  w.i64(terms.plays_per_track_);
  w.u64(c.progress_by_track.size());
  for (const auto& [track, p] : c.progress_by_track) {
    w.str(*track);
    w.i64(p.plays);
    w.boolean(p.paused);
  }
  w.u64(c.position);
}

bool decode(std::string_view in, claim_rec& c, track_names& names) {
  record_reader r(in);
  c.org_id = r.id();
  c.invite_id = r.id();
  c.claim_id = r.id();
  c.learner_id = r.id();
  c.anonymous = r.boolean();
  c.claimed_at = r.ts();
  c.access_expires_at = r.opt_ts();
  // Its own copy: load() shares it with the invite's other claims (shared_terms).
  auto terms = std::make_shared<domain::claim_snapshot>();
  for (auto n = r.u64(); n > 0 && r.ok(); --n) {
    domain::invite_track t;
    t.track_id_ = r.str();
    t.pausable_ = r.boolean();
    terms->tracks_.push_back(std::move(t));
  }
  terms->access_duration_ = get_duration(r);
  terms->plays_per_track_ = r.i64();
  c.terms = std::move(terms);
  for (auto n = r.u64(); n > 0 && r.ok(); --n) {
    auto track = r.str();
    progress p;
    p.plays = r.i64();
    p.paused = r.boolean();
    c.progress_by_track.at(track, names) = p;
  }
  c.position = r.u64();
  return r.ok();
}

// A learner's keyed email hash as event_codec::email_subject writes it, "email:" and 64
// lowercase hex digits, is kept as its 32 bytes (marked 1): random hex does not compress,
// and a rebuild writes one per learner. Any other text is kept as it is (marked 0), as
// is none (0 and "").
void put_email_subject(record_writer& w, const keyed_email& email) {
  if (const auto* hash = email.hash()) {
    w.u64(1);
    w.raw(std::string_view(reinterpret_cast<const char*>(hash->data()), hash->size()));
  } else {
    w.u64(0);
    w.str(email.empty() ? std::string_view() : std::string_view(email.text()));
  }
}

void get_email_subject(record_reader& r, keyed_email& email) {
  if (r.u64() != 1) {
    email.assign(r.str());
    return;
  }
  const auto bytes = r.raw(32);
  if (bytes.size() != 32) return;  // the reader failed (r.ok() says so)
  email_hash hash;
  std::memcpy(hash.data(), bytes.data(), hash.size());
  email.assign(hash);
}

// Into `w` (cleared first): a load's end encodes millions into one writer.
void encode_into(record_writer& w, const learner_rec& l) {
  w.clear();
  w.id(l.org_id);
  w.id(l.learner_id);
  w.ts(l.registered_at);
  put_email_subject(w, l.email);
  w.boolean(l.lead_submitted);
  w.boolean(l.forgotten);
  w.u64(l.claims.size());
  for (const auto& c : l.claims) w.id(c);
}

bool decode(std::string_view in, learner_rec& l) {
  record_reader r(in);
  l.org_id = r.id();
  l.learner_id = r.id();
  l.registered_at = r.ts();
  get_email_subject(r, l.email);
  l.lead_submitted = r.boolean();
  l.forgotten = r.boolean();
  for (auto n = r.u64(); n > 0 && r.ok(); --n) l.claims.push_back(r.id());
  return r.ok();
}

// What a row keeps of its event: the sealed part, what event_codec::decode needs to
// decrypt its personal data at query time (the id and type are the ciphertext's
// associated data). The row's kind gives the type (`row_type`: A rows InviteClaimed, R
// rows ClaimRejected, L rows LeadCaptured) and the row's key the position. Of the data,
// only the personal_data block, in binary form when it is sealed as the codec seals it
// (sealed::put_binary_block: raw iv and ciphertext, no base64 or member names), else as
// text; an event of another type or schema version keeps its type, version and whole
// data. Stream, metadata, recording time and the event's other fields stay in the log
// only: rows are most of the folder, and of what a rebuild sorts, merges, compresses and
// writes.
enum event_form : std::uint64_t {
  whole_event = 0,   // type, schema version, data
  block_text = 1,    // the personal_data block's text
  null_block = 2,    // personal_data null
  binary_block = 3,  // sealed::put_binary_block
};

void put_event(record_writer& w, const recorded_event& e, std::string_view row_type,
               const std::optional<uuid>& owner) {
  w.id(e.event_id);
  const auto* t = e.type == row_type ? sealed::template_of(row_type) : nullptr;
  if (t != nullptr && e.schema_version == t->schema_version) {
    if (const auto block = sealed::personal_data_block(e.data)) {
      if (*block == "null") {
        w.u64(null_block);
        return;
      }
      const std::size_t mark = w.size();
      w.u64(binary_block);
      if (sealed::put_binary_block(w, *block, owner)) return;
      w.truncate(mark);
      w.u64(block_text);
      w.str(*block);
      return;
    }
  }
  w.u64(whole_event);
  w.str(e.type);
  w.u64(e.schema_version);
  w.str(e.data);
}

// A recorded_event with only the fields put_event kept (the rest empty; of a row with
// only a block, the data is its type's template around it). `position`: the row key's.
// When `r` is no longer ok(), `why` may say what is wrong.
recorded_event get_event(record_reader& r, std::string_view row_type,
                         const std::optional<uuid>& owner, std::uint64_t position,
                         std::string& why) {
  recorded_event e;
  e.event_id = r.id();
  e.position = position;
  const auto form = r.u64();
  if (form == whole_event) {
    e.type = r.str();
    e.schema_version = static_cast<std::uint32_t>(r.u64());
    e.data = r.str();
    return e;
  }
  const auto* t = sealed::template_of(row_type);
  if (t == nullptr || !r.ok()) {  // (every row type has one: tested)
    r.corrupt();
    return e;
  }
  e.type = row_type;
  e.schema_version = t->schema_version;
  std::string block;
  if (form == null_block) {
    block = "null";
  } else if (form == block_text) {
    block = r.str();
  } else if (form == binary_block) {
    if (auto got = sealed::get_binary_block(r, owner, block); !got) {  // (r is not ok())
      why = std::move(got.error());
      return e;
    }
  } else {
    r.corrupt();
    return e;
  }
  e.data = t->around(block);
  return e;
}

// What a row query does with a row it cannot read: see unreadable_row. `why`: what is
// wrong with it, when known.
[[noreturn]] void throw_unreadable(char kind, const uuid& id, std::uint64_t position,
                                   std::string_view why = {}) {
  throw unreadable_row("read models: the " + std::string(1, kind) + " row of " + id.to_string() +
                       " at log position " + std::to_string(position) + " cannot be read" +
                       (why.empty() ? std::string() : " (" + std::string(why) + ")") +
                       "; rebuild the read models (passage replay)");
}

// Reads an A row's fields before its event, giving its learner (for get_event); R rows:
// skip_rejection_fields.
std::optional<uuid> skip_acceptance_fields(record_reader& r) {
  (void)r.id();
  const uuid learner = r.id();
  (void)r.boolean();
  (void)r.ts();
  (void)r.opt_ts();
  return learner;
}

std::optional<uuid> skip_rejection_fields(record_reader& r) {
  (void)r.u64();
  auto learner = r.opt_id();
  (void)r.boolean();
  (void)r.ts();
  return learner;
}

constexpr std::string_view a_row_type = domain::invite_claimed::type_name;
constexpr std::string_view r_row_type = domain::claim_rejected::type_name;
constexpr std::string_view l_row_type = domain::lead_captured::type_name;

std::string day_of(timestamp t) { return format_rfc3339(t).substr(0, 10); }

// The start of t's UTC hour or day, RFC 3339.
std::string bucket_of(timestamp t, claim_bucket b) {
  auto text = format_rfc3339(t);
  return b == claim_bucket::hour ? text.substr(0, 13) + ":00:00Z"
                                 : text.substr(0, 10) + "T00:00:00Z";
}

std::int64_t seconds_between(timestamp from, timestamp to) {
  return std::chrono::duration_cast<std::chrono::seconds>(to - from).count();
}

// Nearest-rank percentiles over the delays (sorted here).
std::optional<claim_delay_stats> delay_stats(std::vector<std::int64_t> seconds) {
  if (seconds.empty()) return std::nullopt;
  std::sort(seconds.begin(), seconds.end());
  auto rank = [&](int percent) {
    auto n = seconds.size();
    auto r = (n * static_cast<std::size_t>(percent) + 99) / 100;  // ceil(p/100 * n)
    return seconds[std::max<std::size_t>(r, 1) - 1];
  };
  return claim_delay_stats{static_cast<std::int64_t>(seconds.size()), seconds.front(), rank(50),
                           rank(90), seconds.back()};
}

// Where applied events' rows and records go: gathered in `run`, then either put into the
// WriteBatch written with the checkpoint (write_sorted) or, during a bulk load, kept in the
// run until it is big enough to be written as a run file (bulk_runs.h).
struct row_sink {
  rocksdb::WriteBatch batch;
  bulk::sorted_run run;
  // The row being encoded and its key: reused, so a row costs no allocation.
  record_writer value;
  std::string key;

  void put(std::string_view k, std::string_view v) { run.add(k, v); }
  // Puts the gathered entries into `batch` in key order (a key put twice only once, with
  // its last value, as the WriteBatch would keep it). In key order and hinted by their kind
  // (rows_insert_hint), each memtable insert's search starts from the previous insert of
  // its kind: it climbs only as far as the gap to it (history rows, keyed by random learner
  // ids), or not at all (a new claim's records, after every other of their kind).
  void write_sorted() {
    run.for_each_in_key_order(
        [this](std::string_view k, std::string_view v) { batch.Put(slice(k), slice(v)); });
    run.clear();
  }
  record_writer& start_row() {
    value.clear();
    return value;
  }
  // Adds the row start_row() began, keyed <prefix><id><position>.
  void put_row(char prefix, const uuid& id, std::uint64_t position) {
    key_of_into(prefix, id, key);
    append_be64(key, position);  // as row_key()
    put(key, value.data());
  }
};

// H rows: what happened, when, where. The email used for a claim or rejection is shown
// (or "forgotten") at query time from its A or R row, written in the same batch under the
// same invite and position.
void put_history(row_sink& out, const uuid& learner, const recorded_event& re, learner_fact fact,
                 timestamp at, const uuid& invite, const std::optional<uuid>& claim,
                 std::string_view track, std::int64_t play_number,
                 std::optional<domain::rejection_reason> reason) {
  auto& w = out.start_row();
  w.u64(static_cast<std::uint64_t>(fact));
  w.ts(at);
  w.id(invite);
  w.opt_id(claim);
  w.str(track);
  w.i64(play_number);
  w.u64(reason ? static_cast<std::uint64_t>(*reason) + 1 : 0);
  out.put_row('H', learner, re.position);
}

// Event types the read models need decoded (by index in domain::event: event_type_index,
// looked up once per event); the rest only move an invite's version.
bool needs_decode(std::optional<std::size_t> index) {
  // By index in domain::event (event_type_index: no hashing per event).
  static const auto by_index = [] {
    std::array<bool, std::variant_size_v<domain::event>> needed{};
    for (auto name : std::initializer_list<std::string_view>{
             domain::organization_created::type_name, domain::api_key_issued::type_name,
             domain::api_key_revoked::type_name,      domain::lead_form_changed::type_name,
             domain::track_registered::type_name,     domain::track_updated::type_name,
             domain::invite_created::type_name,       domain::invite_updated::type_name,
             domain::invite_deactivated::type_name,   domain::invite_reactivated::type_name,
             domain::invite_deleted::type_name,       domain::invite_claimed::type_name,
             domain::claim_rejected::type_name,       domain::track_played::type_name,
             domain::track_paused::type_name,         domain::track_resumed::type_name,
             domain::learner_registered::type_name,   domain::lead_captured::type_name,
             domain::learner_forgotten::type_name,    domain::api_key_email_changed::type_name}) {
      needed[*eventstore::event_type_index(name)] = true;
    }
    return needed;
  }();
  return index && by_index[*index];
}

// Only LearnerRegistered needs its personal data while applying (the keyed email hash of
// the email index); every other event is read without decrypting, which saves the key
// lookup and AES-GCM on the replay path. Rows keep the encrypted event for query time.
// Decodes into `out`, reusing what it holds (event_codec::decode_into).
result<void, eventstore::codec_error> decode_for_apply(const eventstore::event_codec& codec,
                                                       const recorded_event& e,
                                                       std::size_t type_index,
                                                       eventstore::decoded_event& out) {
  static const std::size_t learner_registered =
      *eventstore::event_type_index(domain::learner_registered::type_name);
  if (type_index == learner_registered) return codec.decode_into(e, out);
  out.forgotten = false;
  auto ev = eventstore::event_from_json_text_into(type_index, e.type, e.data,
                                                  /*without_personal_data=*/true, out.event);
  if (!ev) return ev.error();
  if (static_cast<std::uint32_t>(domain::event_schema_version(out.event)) != e.schema_version) {
    auto explained = codec.decode(e);  // let the codec explain the version mismatch
    if (!explained) return explained.error();
    out = std::move(*explained);
  }
  return {};
}

// Hints memtable inserts of the rows an invite or organization collects (A, R, L: keyed
// <prefix><id><position>, appended in log order) by their <prefix><id>: each sorts right
// after the previous row of its owner, which the kept skip list splice finds without a
// search among the memtable's keys. Claim and learner records (c, l: <prefix><position>)
// and history rows (H: <prefix><learner><position>) are hinted by their kind alone (one
// splice each, ~200 bytes of the memtable): a batch puts them in key order
// (row_sink::write_sorted), so each insert's search starts from the previous one of its
// kind. A new claim's records sort after every record of their kind (a later position):
// the splice left by the previous batch's last one already brackets them, so they cost
// no search at all; history rows (random learner ids) climb only as far as the gap to
// the previous one. The keys a live batch rewrites every time, its checkpoint (m:cp) and
// its invites' lifecycle records (i<invite>), are hinted by the whole key: each new
// version sorts right before the previous one (a later sequence number), a few nodes
// after its splice, where unhinted each was a search from the skip list's head through
// the memtable's cold upper levels. Other keys stay unhinted.
// Never DeleteRange from a key in this domain: RocksDB before 9.x keeps one hint map for
// point keys and range deletions (facebook/rocksdb#5118), and a range deletion starting at
// a hinted key would hand later inserts a splice of the wrong skip list (an assertion in
// debug builds, a corrupt memtable in release ones). wipe()'s range starts at "", outside it.
class rows_insert_hint final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "passage.ReadModelRowInsertHint"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    if (by_whole_key(key)) return key;
    return {key.data(), by_owner(key) ? 17u : 1u};
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return by_owner(key) || by_whole_key(key) ||
           (key.size() == 9 && (key[0] == 'c' || key[0] == 'l')) ||
           (key.size() == 25 && key[0] == 'H');
  }

 private:
  static bool by_whole_key(const rocksdb::Slice& key) {
    return (key.size() == 17 && key[0] == 'i') || key.ToStringView() == checkpoint_key;
  }
  static bool by_owner(const rocksdb::Slice& key) {
    return key.size() == 25 && (key[0] == 'A' || key[0] == 'R' || key[0] == 'L');
  }
};

// The folder's RocksDB options.
rocksdb::Options folder_options(rocksdb::Env* env, bool in_memory,
                                rocksdb::CompressionType compression) {
  rocksdb::Options o;
  o.create_if_missing = true;
  if (env != nullptr) o.env = env;
  // Without a write-ahead log the memtable is unpersisted data, which closing would flush
  // into a compressed table file: wasted on a scratch folder (a point-in-time answer's)
  // that vanishes with its memory Env.
  o.avoid_flush_during_shutdown = in_memory;
  o.IncreaseParallelism(2);
  o.compression = compression;
  o.write_buffer_size = 64u << 20;
  o.max_log_file_size = 64u << 20;
  o.keep_log_file_num = 4;
  o.memtable_insert_with_hint_prefix_extractor = std::make_shared<rows_insert_hint>();
  return o;
}

// The options of the files a bulk load writes (its merged rows and its records): the
// folder's, in blocks of 16 KiB rather than RocksDB's 4 KiB. A rebuild compresses and
// writes every row once, and per block RocksDB sets up a new LZ4 stream (16 KiB of state
// cleared) and adds an index entry and a checksum: ~8 % less CPU at the load's end and
// ~5 % fewer bytes (measured on the 1M-event bench log). A query then decompresses up to
// 16 KiB for a row or a record (a few microseconds) unless RocksDB's block cache holds
// it; rows of one invite or learner are neighbours, so their scans read fewer blocks.
rocksdb::Options bulk_file_options(rocksdb::Env* env, bool in_memory,
                                   rocksdb::CompressionType compression) {
  rocksdb::Options o = folder_options(env, in_memory, compression);
  // The folder's own table options (a filter or cache set there reaches these files too),
  // with only the block size changed.
  rocksdb::BlockBasedTableOptions table;
  if (const auto* folder = o.table_factory->GetOptions<rocksdb::BlockBasedTableOptions>())
    table = *folder;
  table.block_size = 16u << 10;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return o;
}

struct track_id_hash {
  std::size_t operator()(const std::pair<uuid, std::string>& k) const noexcept {
    return std::hash<uuid>{}(k.first) ^ (std::hash<std::string>{}(k.second) * 31);
  }
};

// Events decoded before the write lock is taken; big batches are decoded in parallel.
constexpr std::size_t parallel_decode_min = 512;

}  // namespace

// ---------------------------------------------------------------------------------------

struct read_models::state {
  read_models_options options;
  const eventstore::event_codec* codec = nullptr;
  std::unique_ptr<rocksdb::Env> owned_env;  // in_memory only; outlives db
  rocksdb::Env* env = nullptr;              // the folder's files' (null: the default one)
  std::unique_ptr<rocksdb::DB> db;
  rocksdb::CompressionType compression = rocksdb::kLZ4Compression;
  bool bulk = false;  // a bulk load is on (set_bulk_load)
  rocksdb::WriteOptions write_options;

  mutable std::shared_mutex mu;
  std::unordered_map<uuid, org_rec> orgs;
  std::unordered_map<uuid, key_rec> keys;
  std::unordered_map<std::string, uuid> key_by_hash;
  std::map<uuid, std::map<std::string, track_view, std::less<>>> tracks;  // org -> id -> track
  // The tables with an entry per invite, claim and learner: flat (uuid_map.h).
  uuid_map<invite_rec> invites;
  std::unordered_map<std::string, uuid> invite_by_code;
  std::unordered_map<uuid, std::map<std::uint64_t, uuid>> invites_by_org;  // by creation
  // Before the claims, which point into it (destroyed after them); never cleared.
  track_names interned_tracks;
  uuid_map<claim_rec> claims;
  uuid_map<learner_rec> learners;
  // The email index names learners by their entry's number in `learners` and reads their
  // hash from it (email_index.h).
  struct learner_hash {
    const uuid_map<learner_rec>* learners;
    const email_hash& operator()(std::uint32_t entry) const {
      return *learners->nth(entry).second.email.hash();
    }
  };
  email_index<learner_hash> learner_by_subject{learner_hash{&learners}};
  // A learner's number in the email index (its entry's in `learners`).
  static std::uint32_t entry_of(uuid_map<learner_rec>::const_iterator it) {
    return static_cast<std::uint32_t>(it.index());
  }

  std::atomic<std::uint64_t> applied{0};
  std::mutex waiters_mu;
  std::multimap<std::uint64_t, std::function<void()>> waiters;

  // Touched by the batch being applied (projector thread only).
  struct dirty_set {
    std::unordered_set<uuid> orgs, keys, invite_settings, invite_states, claims, learners;
    std::unordered_set<std::pair<uuid, std::string>, track_id_hash> tracks;
    void clear() {
      orgs.clear();
      keys.clear();
      invite_settings.clear();
      invite_states.clear();
      claims.clear();
      learners.clear();
      tracks.clear();
    }
  } dirty;
  row_sink out;
  // apply(batch)'s decoded events, kept for the next batch to decode into.
  decoded_batch live_decoded;
  // Keeps live_decoded to what live batches use: a catch-up's batch (up to 4096 events)
  // must not hold its entries for the life of the process, nor may any entry keep an
  // invite's settings (thousands of allowed emails, maybe) or decrypted personal data
  // (emails, names, lead answers) once its batch is over, applied or not: that data must
  // not outlive the batch in memory (a learner forgotten since would still be readable in
  // a core dump). Personal data is wiped and cleared in place: an InviteClaimed entry
  // keeps its event (and the buffers, zeroed) for the next batch to decode into. `used`:
  // how many entries the batch decoded into; the others are as the last trim left them.
  void keep_live_decoded_small(std::size_t used) {
    constexpr std::size_t kept = 512;  // live batches: ~100 events (32 claims) under load
    if (live_decoded.size() > kept) live_decoded.resize(kept);
    for (auto& d : std::span(live_decoded).first(std::min(used, live_decoded.size()))) {
      read_models::wipe_decoded(d);
    }
  }
  // Zeroes all of `s`'s buffer (what an earlier, longer value left past its end too),
  // then empties it; the buffer stays for reuse.
  static void wipe(std::string& s) {
    s.resize(s.capacity());
    OPENSSL_cleanse(s.data(), s.size());
    s.clear();
  }
  // Bulk load: the run files written so far, in the order they were filled.
  std::vector<bulk::run_file> runs;
  // Why the current bulk load failed: some of its rows may never have reached the folder,
  // so it must not end with records and a checkpoint. Until clear() or a new load,
  // apply() and set_bulk_load(false) report it.
  std::optional<std::string> bulk_failed;
  // Bulk load: the previous run, being written by a worker while the next one fills (at
  // most one at a time) into `writing`; `spare` is its buffer, reused, and keeps the sort
  // buffer between run files (sorted_run::swap_rows).
  bulk::sorted_run spare;
  bulk::run_file writing;
  std::future<rocksdb::Status> ingesting;

  // --- loading ---

  result<void, projection_error> load();
  result<void, projection_error> wipe();
  // Opens the folder (once, from read_models::open: bulk loads no longer reopen it).
  result<void, projection_error> open_folder();
  void reset_memory();

  // --- applying (under the unique lock) ---

  // `decoded`: what decode_range made of the event (its email hash is copied from).
  void apply_one(const recorded_event& re, decoded_entry& decoded);
  // Start loading what apply_one will look up for `decoded` at random in the big tables
  // (claims, learners, the email index): first the tables' lines, a few events later
  // the entries they point at, so that the lookups find them in cache. Always inlined
  // (see uuid_map::prefetch).
  [[gnu::always_inline]] void prefetch_slots(const decoded_entry& decoded) const;
  [[gnu::always_inline]] void prefetch_entries(const decoded_entry& decoded) const;
  // Notes a record to write with this batch; a bulk load writes every record at its end.
  template <typename Set, typename Key>
  void mark(Set& set, Key&& key) {
    if (!bulk) set.insert(std::forward<Key>(key));
  }
  // The learner's record, made for the event at `position` if none is made yet. Only the
  // events that make a record call it (not TrackPlayed or ClaimRejected, which name one).
  learner_rec& learner_of(const uuid& org, const uuid& learner_id, std::uint64_t position) {
    return learner_entry_of(org, learner_id, position)->second;
  }
  uuid_map<learner_rec>::iterator learner_entry_of(const uuid& org, const uuid& learner_id,
                                                   std::uint64_t position);
  // day_of(t), remembered for the last day asked: claims come in time order, so most
  // share the previous one's day.
  const std::string& day_text(timestamp t);
  std::int64_t cached_day = std::numeric_limits<std::int64_t>::min();
  std::string cached_day_text;
  void stage_dirty();
  // Bulk load: hands the current run to a worker that writes it to a run file (on the
  // way in: bulk_runs.h), once the previous one is written (its failure is reported here).
  result<void, projection_error> ingest_run();
  // Bulk load: waits for the run being written.
  result<void, projection_error> wait_ingested();
  // Bulk load's end: merges the run files into the folder's final files (key ranges in
  // parallel) and meanwhile writes every record (organizations, keys, tracks, invites,
  // claims, learners) and the checkpoint in key order straight into one compressed SST
  // file; all are ingested at once: the commit of the load.
  result<void, projection_error> merge_and_add_records();
  // Bulk load: ends it without records or checkpoint after `why`; the folder and memory
  // go back to the checkpoint of before the load.
  projection_error fail_bulk_load(std::string why);
  // Removes a bulk load's files (run_file_prefix) a crash or a failure left in the folder.
  void remove_leftover_runs();
  void publish(std::uint64_t position);

  // --- queries (under a shared lock) ---

  invite_view view_of(const invite_rec& i, timestamp now) const;
  // The person of a row's sealed event (its kind and the id of its key, for the error of
  // one that cannot be decrypted: unreadable_row).
  struct row_name {
    char kind;
    uuid id;
  };
  shown_person show(const recorded_event& e, const std::optional<uuid>& learner_id, row_name row,
                    std::map<std::string, std::string>* answers = nullptr) const;
  claim_access_view access_of(const claim_rec& c, timestamp now) const;
  // Calls visit(reader of the value, position) for the rows keyed <prefix><position> (A,
  // R, L and H rows: a prefix of a kind and an id, then 8 bytes of position) in key order,
  // until it returns false. A key of another length is not a row's: skipped.
  template <typename F>
  void scan_rows(const std::string& prefix, F&& visit) const;
  // In a snapshot (read.snapshot) or any other read options.
  template <typename F>
  void scan_rows(const std::string& prefix, const rocksdb::ReadOptions& read, F&& visit) const;
};

void read_models::state::reset_memory() {
  orgs.clear();
  keys.clear();
  key_by_hash.clear();
  tracks.clear();
  invites.clear();
  invite_by_code.clear();
  invites_by_org.clear();
  claims.clear();
  learners.clear();
  learner_by_subject.clear();
  dirty.clear();
  out.batch.Clear();
  out.run.clear();
}

result<void, projection_error> read_models::state::load() {
  reset_memory();
  std::string value;
  auto s = db->Get(rocksdb::ReadOptions(), slice(format_key), &value);
  if (s.IsNotFound()) {
    // Through the write-ahead log, unlike applied batches: a folder a crash took before its
    // first flush is still known as read models (check_folder), only empty.
    rocksdb::WriteOptions logged;
    logged.sync = write_options.sync;
    s = db->Put(logged, slice(format_key), slice(format_version));
    if (!s.ok()) return projection_error{"read models: " + s.ToString()};
  } else if (!s.ok()) {
    return projection_error{"read models: " + s.ToString()};
  } else if (value != format_version) {
    if (!options.on_format_change) {
      return projection_error{"read models: folder has record format " + value + ", expected " +
                              std::string(format_version) + "; " + options.format_advice};
    }
    if (auto wiped = wipe(); !wiped) return wiped.error();
    options.on_format_change(value);
    return {};
  }
  s = db->Get(rocksdb::ReadOptions(), slice(checkpoint_key), &value);
  if (s.ok()) {
    applied.store(read_be64(value));
  } else if (s.IsNotFound()) {
    applied.store(0);
  } else {
    return projection_error{"read models: " + s.ToString()};
  }

  bool corrupt = false;
  // Each record of a kind with its key; `fn` says whether it could be read.
  auto each_keyed = [&](char prefix, auto&& fn) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    const std::string p(1, prefix);
    for (it->Seek(p); it->Valid() && it->key().starts_with(p); it->Next()) {
      if (!fn(view(it->key()), view(it->value()))) corrupt = true;
    }
    if (!it->status().ok()) corrupt = true;
  };
  auto each = [&](char prefix, auto&& fn) {
    each_keyed(prefix, [&](std::string_view, std::string_view v) { return fn(v); });
  };
  // Records keyed by the log position that made them (claims, learners; the record may
  // not hold it): a 9-byte key.
  auto each_at_position = [&](char prefix, auto&& fn) {
    each_keyed(prefix, [&](std::string_view k, std::string_view v) {
      return k.size() == 9 && fn(read_be64(k.substr(1)), v);
    });
  };
  each('o', [&](std::string_view v) {
    org_rec o;
    if (!decode(v, o)) return false;
    orgs[o.org_id] = std::move(o);
    return true;
  });
  each('k', [&](std::string_view v) {
    key_rec k;
    if (!decode(v, k)) return false;
    key_by_hash[k.v.key_hash] = k.v.key_id;
    keys[k.v.key_id] = std::move(k);
    return true;
  });
  each('t', [&](std::string_view v) {
    track_view t;
    if (!decode(v, t)) return false;
    auto& org_tracks = tracks[t.org_id];
    org_tracks[t.track_id] = std::move(t);
    return true;
  });
  each('s', [&](std::string_view v) {
    invite_rec i;
    if (!decode_settings(v, i)) return false;
    invite_by_code[i.code] = i.invite_id;
    invites_by_org[i.org_id][i.created_position] = i.invite_id;
    invites[i.invite_id] = std::move(i);
    return true;
  });
  // The state records carry no id of their own: read them with their keys.
  each_keyed('i', [&](std::string_view k, std::string_view v) {
    if (k.size() != 17) return true;
    uuid id;
    std::copy_n(k.data() + 1, 16, id.bytes.begin());
    auto found = invites.find(id);
    return found != invites.end() && decode_state(v, found->second);
  });
  each_at_position('c', [&](std::uint64_t position, std::string_view v) {
    claim_rec c;
    if (!decode(v, c, interned_tracks)) return false;
    c.key_position = position;
    claims[c.claim_id] = std::move(c);
    return true;
  });
  for (auto& [id, c] : claims) {
    if (auto i = invites.find(c.invite_id); i != invites.end()) {
      i->second.claim_times.push_back(c.claimed_at);
      c.terms = shared_terms(&i->second, terms_of(c));
    }
  }
  for (auto& [id, i] : invites) std::sort(i.claim_times.begin(), i.claim_times.end());
  each_at_position('l', [&](std::uint64_t position, std::string_view v) {
    learner_rec l;
    if (!decode(v, l)) return false;
    l.key_position = position;
    auto [it, inserted] = learners.try_emplace(l.learner_id);
    if (!inserted) learner_by_subject.erase_if(it->second.email, entry_of(it));
    it->second = std::move(l);
    if (!it->second.forgotten) learner_by_subject.assign(it->second.email, entry_of(it));
    return true;
  });
  if (corrupt) return projection_error{"read models: a record could not be read; rebuild"};
  return {};
}

// ---------------------------------------------------------------------------------------
// Applying events.

namespace {

template <class... F>
struct overloaded : F... {
  using F::operator()...;
};
template <class... F>
overloaded(F...) -> overloaded<F...>;

}  // namespace

const std::string& read_models::state::day_text(timestamp t) {
  constexpr std::int64_t micros_per_day = 86'400'000'000;
  const std::int64_t micros = to_unix_micros(t);
  const std::int64_t day = micros / micros_per_day - (micros % micros_per_day < 0 ? 1 : 0);
  if (day != cached_day) {
    cached_day_text = day_of(t);
    cached_day = day;
  }
  return cached_day_text;
}

uuid_map<learner_rec>::iterator read_models::state::learner_entry_of(const uuid& org,
                                                                     const uuid& learner_id,
                                                                     std::uint64_t position) {
  auto [it, inserted] = learners.try_emplace(learner_id);
  if (inserted) {
    it->second.org_id = org;
    it->second.learner_id = learner_id;
    it->second.key_position = position;
  }
  mark(dirty.learners, learner_id);
  return it;
}

void read_models::state::apply_one(const recorded_event& re, decoded_entry& decoded) {
  namespace dm = domain;
  const std::uint64_t at = re.position;  // a new learner record: keyed by this
  if (const eventstore::decoded_event* d = decoded.event ? &*decoded.event : nullptr) {
    const bool forgotten = d->forgotten;
    auto invite_of = [&](const uuid& org, const uuid& id) -> invite_rec* {
      auto it = invites.find(id);
      if (it == invites.end() || it->second.org_id != org) return nullptr;
      mark(dirty.invite_states, id);
      return &it->second;
    };
    auto track_event = [&](const auto& e) {
      auto& t = tracks[e.org_id_][e.track_id_];
      t.org_id = e.org_id_;
      t.track_id = e.track_id_;
      t.title = e.title_;
      t.pausable = e.pausable_;
      t.owner = e.owner_;
      mark(dirty.tracks, std::pair<uuid, std::string>(e.org_id_, e.track_id_));
      return &t;
    };
    auto set_paused = [&](const auto& e, bool paused) {
      auto it = claims.find(e.claim_id_);
      if (it == claims.end()) return;
      progress_of(it->second, e.track_id_, interned_tracks).paused = paused;
      mark(dirty.claims, e.claim_id_);
    };
    std::visit(overloaded{
                   [&](const dm::organization_created& e) {
                     auto& o = orgs[e.org_id_];
                     o.org_id = e.org_id_;
                     o.name = e.name_;
                     o.created_at = e.created_at_;
                     mark(dirty.orgs, e.org_id_);
                   },
                   [&](const dm::api_key_issued& e) {
                     auto& k = keys[e.key_id_];
                     k.v = api_key_view{e.org_id_, e.key_id_,    e.role_,      e.name_, e.key_hash_,
                                        false,     e.issued_at_, std::nullopt, e.email_};
                     k.position = re.position;
                     key_by_hash[e.key_hash_] = e.key_id_;
                     mark(dirty.keys, e.key_id_);
                   },
                   [&](const dm::api_key_revoked& e) {
                     auto it = keys.find(e.key_id_);
                     if (it == keys.end() || it->second.v.org_id != e.org_id_) return;
                     it->second.v.revoked = true;
                     it->second.v.revoked_at = e.revoked_at_;
                     mark(dirty.keys, e.key_id_);
                   },
                   [&](const dm::api_key_email_changed& e) {
                     auto it = keys.find(e.key_id_);
                     if (it == keys.end() || it->second.v.org_id != e.org_id_) return;
                     it->second.v.email = e.email_;
                     mark(dirty.keys, e.key_id_);
                   },
                   [&](const dm::lead_form_changed& e) {
                     auto& o = orgs[e.org_id_];
                     o.org_id = e.org_id_;
                     o.form = e.form_;
                     mark(dirty.orgs, e.org_id_);
                   },
                   [&](const dm::track_registered& e) {
                     auto* t = track_event(e);
                     t->registered_at = e.registered_at_;
                     t->updated_at = e.registered_at_;
                   },
                   [&](const dm::track_updated& e) { track_event(e)->updated_at = e.updated_at_; },
                   [&](const dm::invite_created& e) {
                     auto& i = invites[e.invite_id_];
                     i.org_id = e.org_id_;
                     i.invite_id = e.invite_id_;
                     i.code = e.code_;
                     i.settings = e.settings_;
                     i.duplicated_from = e.duplicated_from_;
                     i.created_by = e.created_by_;
                     i.created_at = e.created_at_;
                     i.created_position = re.position;
                     i.updated_at = e.created_at_;
                     invite_by_code[e.code_] = e.invite_id_;
                     invites_by_org[e.org_id_][re.position] = e.invite_id_;
                     mark(dirty.invite_settings, e.invite_id_);
                     mark(dirty.invite_states, e.invite_id_);
                   },
                   [&](const dm::invite_updated& e) {
                     if (auto* i = invite_of(e.org_id_, e.invite_id_)) {
                       i->settings = e.settings_;
                       i->updated_at = e.updated_at_;
                       mark(dirty.invite_settings, e.invite_id_);
                     }
                   },
                   [&](const dm::invite_deactivated& e) {
                     if (auto* i = invite_of(e.org_id_, e.invite_id_)) {
                       i->deactivated = true;
                       i->updated_at = e.deactivated_at_;
                     }
                   },
                   [&](const dm::invite_reactivated& e) {
                     if (auto* i = invite_of(e.org_id_, e.invite_id_)) {
                       i->deactivated = false;
                       i->updated_at = e.reactivated_at_;
                     }
                   },
                   [&](const dm::invite_deleted& e) {
                     if (auto* i = invite_of(e.org_id_, e.invite_id_)) {
                       i->deleted = true;
                       i->updated_at = e.deleted_at_;
                     }
                   },
                   [&](const dm::invite_claimed& e) {
                     auto* i = invite_of(e.org_id_, e.invite_id_);
                     if (i == nullptr) return;
                     ++i->claims;
                     if (e.anonymous_) ++i->anonymous_claims;
                     ++i->claims_per_day[day_text(e.claimed_at_)];
                     i->claim_times.push_back(e.claimed_at_);
                     auto [slot, first_claimed] = claims.try_emplace(e.claim_id_);
                     auto& c = slot->second;
                     if (first_claimed) c.key_position = re.position;
                     c.org_id = e.org_id_;
                     c.invite_id = e.invite_id_;
                     c.claim_id = e.claim_id_;
                     c.learner_id = e.learner_id_;
                     c.anonymous = e.anonymous_;
                     c.claimed_at = e.claimed_at_;
                     c.access_expires_at = e.access_expires_at_;
                     c.terms = shared_terms(i, e.restrictions_);
                     c.position = re.position;
                     mark(dirty.claims, e.claim_id_);
                     learner_of(e.org_id_, e.learner_id_, at).claims.push_back(e.claim_id_);
                     auto& w = out.start_row();
                     w.id(e.claim_id_);
                     w.id(e.learner_id_);
                     w.boolean(e.anonymous_);
                     w.ts(e.claimed_at_);
                     w.opt_ts(e.access_expires_at_);
                     put_event(w, re, a_row_type, e.learner_id_);
                     out.put_row('A', e.invite_id_, re.position);
                   },
                   [&](const dm::claim_rejected& e) {
                     auto* i = invite_of(e.org_id_, e.invite_id_);
                     if (i == nullptr) return;
                     ++i->rejections;
                     auto& w = out.start_row();
                     w.u64(static_cast<std::uint64_t>(e.reason_));
                     w.opt_id(e.learner_id_);
                     w.boolean(e.anonymous_);
                     w.ts(e.rejected_at_);
                     put_event(w, re, r_row_type, e.learner_id_);
                     out.put_row('R', e.invite_id_, re.position);
                     if (e.learner_id_) {
                       put_history(out, *e.learner_id_, re, learner_fact::rejected, e.rejected_at_,
                                   e.invite_id_, std::nullopt, {}, 0, e.reason_);
                     }
                   },
                   [&](const dm::track_played& e) {
                     auto c = claims.find(e.claim_id_);
                     if (c != claims.end()) {
                       auto& p = progress_of(c->second, e.track_id_, interned_tracks);
                       p.plays = std::max(p.plays + 1, e.play_number_);
                       mark(dirty.claims, e.claim_id_);
                     }
                     if (auto* i = invite_of(e.org_id_, e.invite_id_)) {
                       ++i->plays;
                       ++i->plays_per_track[e.track_id_];
                     }
                     put_history(out, e.learner_id_, re, learner_fact::played, e.played_at_,
                                 e.invite_id_, e.claim_id_, e.track_id_, e.play_number_,
                                 std::nullopt);
                   },
                   [&](const dm::track_paused& e) {
                     set_paused(e, true);
                     put_history(out, e.learner_id_, re, learner_fact::paused, e.paused_at_,
                                 e.invite_id_, e.claim_id_, e.track_id_, 0, std::nullopt);
                   },
                   [&](const dm::track_resumed& e) {
                     set_paused(e, false);
                     put_history(out, e.learner_id_, re, learner_fact::resumed, e.resumed_at_,
                                 e.invite_id_, e.claim_id_, e.track_id_, 0, std::nullopt);
                   },
                   [&](const dm::learner_registered& e) {
                     const auto it = learner_entry_of(e.org_id_, e.learner_id_, at);
                     auto& l = it->second;
                     l.registered_at = e.registered_at_;
                     if (forgotten || l.forgotten || e.personal_data_.email_.empty()) return;
                     // Taken while decoding (decode_range) for exactly these events.
                     const email_hash& hash = decoded.email_hash.value();
                     const auto* had = l.email.hash();
                     if (had == nullptr || *had != hash) {
                       // Out of the index while the learner still keeps the old one.
                       learner_by_subject.erase_if(l.email, entry_of(it));
                       l.email.assign(hash);
                     }
                     learner_by_subject.assign(hash, entry_of(it));
                   },
                   [&](const dm::lead_captured& e) {
                     learner_of(e.org_id_, e.learner_id_, at).lead_submitted = true;
                     auto& w = out.start_row();
                     w.id(e.learner_id_);
                     w.opt_id(e.invite_id_);
                     w.ts(e.captured_at_);
                     put_event(w, re, l_row_type, e.learner_id_);
                     out.put_row('L', e.org_id_, re.position);
                   },
                   [&](const dm::learner_forgotten& e) {
                     const auto it = learner_entry_of(e.org_id_, e.learner_id_, at);
                     auto& l = it->second;
                     l.forgotten = true;
                     if (!l.email.empty()) {
                       learner_by_subject.erase_if(l.email, entry_of(it));
                       l.email.clear();
                     }
                   },
                   [](const auto&) {},
               },
               d->event);
  }
  // Every event of an invite stream moves the invite's version (ETag / If-Match).
  if (const auto& id = decoded.invite_stream) {
    auto it = invites.find(*id);
    if (it != invites.end()) {
      it->second.version = std::max(it->second.version, re.stream_version);
      mark(dirty.invite_states, *id);
    }
  }
}

inline void read_models::state::prefetch_slots(const decoded_entry& decoded) const {
  if (!decoded.event) return;
  const auto& ev = decoded.event->event;
  if (const auto* e = std::get_if<domain::track_played>(&ev)) {
    claims.prefetch(e->claim_id_);
  } else if (const auto* e = std::get_if<domain::invite_claimed>(&ev)) {
    claims.prefetch(e->claim_id_);
    learners.prefetch(e->learner_id_);
  } else if (const auto* e = std::get_if<domain::learner_registered>(&ev)) {
    learners.prefetch(e->learner_id_);
    if (decoded.email_hash) learner_by_subject.prefetch(*decoded.email_hash);
  }
}

inline void read_models::state::prefetch_entries(const decoded_entry& decoded) const {
  // Only entries that exist by then: a claim's plays, a claiming learner (a new claim's
  // or a registering learner's entry is made at the end of its table's storage).
  if (!decoded.event) return;
  const auto& ev = decoded.event->event;
  if (const auto* e = std::get_if<domain::track_played>(&ev)) {
    claims.prefetch_entry(e->claim_id_);
  } else if (const auto* e = std::get_if<domain::invite_claimed>(&ev)) {
    learners.prefetch_entry(e->learner_id_);
  }
}

void read_models::state::stage_dirty() {
  for (const auto& id : dirty.orgs) out.put(key_of('o', id), encode(orgs.at(id)));
  for (const auto& id : dirty.keys) out.put(key_of('k', id), encode(keys.at(id)));
  for (const auto& [org, track_id] : dirty.tracks) {
    out.put(track_key(org, track_id), encode(tracks.at(org).at(track_id)));
  }
  for (const auto& id : dirty.invite_settings) {
    out.put(key_of('s', id), encode_settings(invites.at(id)));
  }
  for (const auto& id : dirty.invite_states) out.put(key_of('i', id), encode_state(invites.at(id)));
  std::string key;
  for (const auto& id : dirty.claims) {
    const auto& c = claims.at(id);
    position_key_into('c', c.key_position, key);
    encode_into(out.value, c);
    out.put(key, out.value.data());
  }
  for (const auto& id : dirty.learners) {
    const auto& l = learners.at(id);
    position_key_into('l', l.key_position, key);
    encode_into(out.value, l);
    out.put(key, out.value.data());
  }
  dirty.clear();
}

result<void, projection_error> read_models::state::ingest_run() {
  if (auto done = wait_ingested(); !done) return done;
  if (out.run.empty()) return {};
  out.run.swap_rows(spare);
  // Inside the folder, under a name RocksDB never gives its own files.
  std::string file =
      options.path + "/" + std::string(run_file_prefix) + std::to_string(runs.size() + 1) + ".run";
  try {
    ingesting = std::async(std::launch::async, [this, file = std::move(file)] {
      // Emptied however the write ends (a throw too): rows left in it would come back
      // into the next run at the next swap, in this load or a later one.
      struct clear_after {
        bulk::sorted_run& run;
        ~clear_after() { run.clear(); }
      } done{spare};
      return bulk::contained([&] { return spare.write(env, file, writing); });
    });
  } catch (const std::exception& e) {  // no thread to be had
    spare.clear();
    return projection_error{std::string("read models: writing loaded rows failed: ") + e.what()};
  }
  return {};
}

result<void, projection_error> read_models::state::wait_ingested() {
  if (!ingesting.valid()) return {};
  const auto st = ingesting.get();
  if (!st.ok())
    return projection_error{"read models: writing loaded rows failed: " + st.ToString()};
  runs.push_back(std::move(writing));
  return {};
}

namespace {

// The entries of an id-keyed map, in the order of their keys (the id's bytes). Sorted by
// copies of the ids (as two big-endian integers) beside the pointers: comparing through
// the pointers would read entries scattered over the heap (millions at a big load's end).
template <typename Map>
std::vector<const typename Map::value_type*> by_id(const Map& map) {
  struct keyed {
    std::uint64_t hi, lo;
    const typename Map::value_type* entry;
  };
  std::vector<keyed> sorted;
  sorted.reserve(map.size());
  for (const auto& entry : map) {
    const auto bytes = entry.first.as_bytes();
    std::uint64_t hi = 0, lo = 0;
    std::memcpy(&hi, bytes.data(), 8);
    std::memcpy(&lo, bytes.data() + 8, 8);
    sorted.push_back({__builtin_bswap64(hi), __builtin_bswap64(lo), &entry});
  }
  std::sort(sorted.begin(), sorted.end(), [](const keyed& a, const keyed& b) {
    return a.hi != b.hi ? a.hi < b.hi : a.lo < b.lo;
  });
  std::vector<const typename Map::value_type*> out;
  out.reserve(sorted.size());
  for (const auto& k : sorted) out.push_back(k.entry);
  return out;
}

// The entries of a map whose records are keyed by a position (claims, learners), in the
// order of their keys.
template <typename Map, typename Position>
std::vector<const typename Map::value_type*> by_position(const Map& map, Position position_of) {
  std::vector<std::pair<std::uint64_t, const typename Map::value_type*>> sorted;
  sorted.reserve(map.size());
  for (const auto& entry : map) sorted.emplace_back(position_of(entry.second), &entry);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<const typename Map::value_type*> out;
  out.reserve(sorted.size());
  for (const auto& [position, entry] : sorted) out.push_back(entry);
  return out;
}

}  // namespace

result<void, projection_error> read_models::state::merge_and_add_records() {
  // The runs are merged on threads of their own while this one writes the records: in key
  // order as they are encoded, so no record waits in memory. No file overlaps another or
  // the folder's (its format, m:fmt, after clear()): rows (A, H, L, R), then records
  // (c, i, k, l), the checkpoint (m:cp) and records again (o, s, t), each part a file
  // (of rows: several). Ingested together, they go to the bottom level, where nothing
  // compacts them again.
  std::vector<std::string> files;
  std::future<rocksdb::Status> merged;
  try {
    merged = std::async(std::launch::async, [this, &files] {
      return bulk::contained([&] {
        bulk::merge_options o{
            .sst = bulk_file_options(env, options.in_memory, compression),
            .out_prefix = options.path + "/" + std::string(run_file_prefix) + "out-",
            // More ranges than cores: they take unequal time (rows compress unequally).
            .ranges = std::clamp<std::size_t>(2 * std::thread::hardware_concurrency(), 2, 8)};
        return bulk::merge_runs(runs, o, files);
      });
    });
  } catch (const std::exception& e) {  // no thread to be had
    remove_leftover_runs();
    runs.clear();
    return projection_error{std::string("read models: merging loaded rows failed: ") + e.what()};
  }
  std::vector<std::string> record_files;
  std::optional<rocksdb::SstFileWriter> writer;
  rocksdb::Status st;
  auto end_part = [&] {
    if (writer && st.ok()) st = writer->Finish();
    writer.reset();
  };
  auto put_key = [&](std::string_view key, std::string_view value) {
    if (!st.ok()) return;
    if (!writer) {  // opened by a part's first record: RocksDB refuses empty files
      writer.emplace(rocksdb::EnvOptions(), bulk_file_options(env, options.in_memory, compression),
                     nullptr, bulk::invalidate_page_cache);
      record_files.push_back(options.path + "/" + std::string(run_file_prefix) + "records-" +
                             std::to_string(record_files.size() + 1) + ".sst");
      st = writer->Open(record_files.back());
      if (!st.ok()) return;
    }
    st = writer->Put(slice(key), slice(value));
  };
  std::string key;
  auto put = [&](char prefix, const uuid& id, std::string_view value) {
    key_of_into(prefix, id, key);
    put_key(key, value);
  };
  record_writer record;
  auto put_at = [&](char prefix, std::uint64_t position, std::string_view value) {
    position_key_into(prefix, position, key);
    put_key(key, value);
  };
  for (const auto* c : by_position(claims, [](const claim_rec& c) { return c.key_position; })) {
    encode_into(record, c->second);
    put_at('c', c->second.key_position, record.data());
  }
  const auto invites_in_order = by_id(invites);
  for (const auto* i : invites_in_order) put('i', i->first, encode_state(i->second));
  for (const auto* k : by_id(keys)) put('k', k->first, encode(k->second));
  for (const auto* l : by_position(learners, [](const learner_rec& l) { return l.key_position; })) {
    encode_into(record, l->second);
    put_at('l', l->second.key_position, record.data());
  }
  end_part();
  std::string cp;
  append_be64(cp, applied.load(std::memory_order_acquire));
  put_key(checkpoint_key, cp);
  end_part();
  for (const auto* o : by_id(orgs)) put('o', o->first, encode(o->second));
  for (const auto* i : invites_in_order) put('s', i->first, encode_settings(i->second));
  for (const auto& [org, by_track] : tracks) {  // std::map: org bytes, then track id
    for (const auto& [track_id, t] : by_track) put_key(track_key(org, track_id), encode(t));
  }
  end_part();
  const auto merge = merged.get();
  if (st.ok() && merge.ok()) {
    files.insert(files.end(), record_files.begin(), record_files.end());
    rocksdb::IngestExternalFileOptions o;
    o.move_files = true;
    st = db->IngestExternalFile(files, o);
  }
  // The runs, and the merged files when they did not go in (moved when they did).
  remove_leftover_runs();
  runs.clear();
  if (!merge.ok()) {
    return projection_error{"read models: merging loaded rows failed: " + merge.ToString()};
  }
  if (!st.ok()) {
    return projection_error{"read models: writing loaded records failed: " + st.ToString()};
  }
  return {};
}

projection_error read_models::state::fail_bulk_load(std::string why) {
  (void)wait_ingested();
  bulk_failed = why +
                "; the bulk load was abandoned (the folder keeps its checkpoint of "
                "before the load: apply the log again from there)";
  out.run.clear();
  spare.release();  // the failed run's rows must not reach a later load; nor its memory stay
  runs.clear();
  remove_leftover_runs();
  bulk = false;
  dirty.clear();
  // Memory is ahead of the folder (which holds nothing of the load): back to what it holds.
  if (db) (void)load();
  return projection_error{*bulk_failed};
}

void read_models::state::remove_leftover_runs() {
  rocksdb::Env* fs = env ? env : rocksdb::Env::Default();
  std::vector<std::string> names;
  if (!fs->GetChildren(options.path, &names).ok()) return;
  for (const auto& name : names) {
    if (name.starts_with(run_file_prefix)) {
      (void)fs->DeleteFile(options.path + "/" + name);
    }
  }
}

void read_models::state::publish(std::uint64_t position) {
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard lock(waiters_mu);
    applied.store(position, std::memory_order_release);
    auto end = waiters.upper_bound(position);
    for (auto it = waiters.begin(); it != end; ++it) ready.push_back(std::move(it->second));
    waiters.erase(waiters.begin(), end);
  }
  for (auto& fn : ready) fn();
}

// ---------------------------------------------------------------------------------------

read_models::read_models(std::unique_ptr<state> s) : state_(std::move(s)) {}
read_models::~read_models() = default;

result<void, projection_error> read_models::close() {
  auto& s = *state_;
  std::unique_lock lock(s.mu);
  if (!s.db) return {};
  // Flushed here, not by DB::Close(), which would flush the memtable (all that is
  // unpersisted without a write-ahead log) but keep a failure to itself.
  auto st = s.options.in_memory ? rocksdb::Status::OK() : s.db->Flush(rocksdb::FlushOptions());
  auto closed = s.db->Close();
  s.db.reset();
  if (!st.ok()) {
    return projection_error{"read models: flushing " + s.options.path +
                            " failed: " + st.ToString() +
                            " (what feeds them, the log or a replica's Kafka topic, gives the "
                            "lost tail back from their checkpoint at the next start)"};
  }
  if (!closed.ok()) {
    return projection_error{"read models: closing " + s.options.path +
                            " failed: " + closed.ToString()};
  }
  return {};
}

result<void, projection_error> read_models::check_folder(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (!fs::exists(status)) return {};
  if (!fs::is_directory(status)) {
    return projection_error{path + " exists and is not a folder"};
  }
  if (fs::is_empty(path, ec) && !ec) return {};
  const std::string not_models = path + " is not empty and holds no read models";
  rocksdb::DB* raw = nullptr;
  auto st = rocksdb::DB::OpenForReadOnly(rocksdb::Options(), path, &raw);
  if (!st.ok()) return projection_error{not_models + " (not a RocksDB folder)"};
  std::unique_ptr<rocksdb::DB> db(raw);
  std::string value;
  st = db->Get(rocksdb::ReadOptions(), slice(format_key), &value);
  if (!st.ok()) return projection_error{not_models + " (no read-models format key)"};
  return {};
}

result<std::unique_ptr<read_models>, projection_error> read_models::open(
    const read_models_options& options, const eventstore::event_codec& codec) {
  if (options.path.empty()) return projection_error{"read models: path is required"};
  auto s = std::make_unique<state>();
  s->options = options;
  s->codec = &codec;
  s->write_options.sync = options.sync;
  // Without sync, the write-ahead log would only save a process crash's tail, which the
  // log gives back anyway: ~1 KiB written per claim (a write() per batch, and ext4 journal
  // traffic beside the event log's fdatasync) and ~7 % of the projector's time.
  s->write_options.disableWAL = !options.sync;

  s->env = options.env;
  if (options.in_memory) {
    s->owned_env.reset(rocksdb::NewMemEnv(options.env ? options.env : rocksdb::Env::Default()));
    s->env = s->owned_env.get();
  }
  if (auto opened = s->open_folder(); !opened) return opened.error();
  if (auto loaded = s->load(); !loaded) return loaded.error();
  return std::unique_ptr<read_models>(new read_models(std::move(s)));
}

std::uint64_t read_models::applied_position() const {
  return state_->applied.load(std::memory_order_acquire);
}

void read_models::when_applied(std::uint64_t position, std::function<void()> fn) {
  {
    std::lock_guard lock(state_->waiters_mu);
    if (state_->applied.load(std::memory_order_acquire) < position) {
      state_->waiters.emplace(position, std::move(fn));
      return;
    }
  }
  fn();
}

namespace {

// Decodes `e` into `out` (its buffers reused); the failure's message, or "".
std::string decode_entry(const eventstore::event_codec& codec, const eventstore::recorded_event& e,
                         read_models::decoded_entry& out) {
  out.email_hash.reset();
  out.invite_stream = uuid_after(e.stream, "invite-");
  const auto type_index = eventstore::event_type_index(e.type);
  if (!needs_decode(type_index)) {
    out.event.reset();
    return {};
  }
  // Into what the slot held from an earlier batch: an event of the same type (most of
  // a log is a few types) keeps its strings' buffers.
  if (!out.event) out.event.emplace();
  auto r = decode_for_apply(codec, e, *type_index, *out.event);
  if (!r) {
    return "read models: cannot decode event at position " + std::to_string(e.position) + " (" +
           e.type + "): " + r.error().message;
  }
  // The email index's keyed hash: an HMAC per registration, taken here rather than on
  // the applying thread. Same condition as apply_one's, but for the learner being
  // forgotten already, which only the applying side knows (the subject goes unused).
  if (const auto* lr = std::get_if<domain::learner_registered>(&out.event->event);
      lr != nullptr && !out.event->forgotten && !lr->personal_data_.email_.empty()) {
    try {
      out.email_hash = codec.email_hash(lr->org_id_, lr->personal_data_.email_);
    } catch (const std::exception& ex) {  // OpenSSL failed; must not escape a decoder thread
      return "read models: cannot hash the email of the event at position " +
             std::to_string(e.position) + ": " + ex.what();
    }
  }
  return {};
}

// Decodes events [lo, hi) of `batch` into `out` (sized to the batch); the first failure's
// message, or "".
std::string decode_range(const eventstore::event_codec& codec,
                         std::span<const eventstore::recorded_event> batch,
                         read_models::decoded_batch& out, std::size_t lo, std::size_t hi) {
  for (std::size_t i = lo; i < hi; ++i) {
    if (auto failed = decode_entry(codec, batch[i], out[i]); !failed.empty()) return failed;
  }
  return {};
}

}  // namespace

void read_models::wipe_decoded(decoded_entry& d) {
  if (d.email_hash) {
    OPENSSL_cleanse(d.email_hash->data(), d.email_hash->size());
    d.email_hash.reset();
  }
  if (!d.event) return;
  if (std::holds_alternative<domain::invite_created>(d.event->event) ||
      std::holds_alternative<domain::invite_updated>(d.event->event)) {
    d.event.reset();
  } else if (auto* pd = domain::personal_data_of(d.event->event)) {
    state::wipe(pd->email_);
    state::wipe(pd->first_name_);
    state::wipe(pd->last_name_);
    state::wipe(pd->password_hash_);
    for (auto& [field, answer] : pd->answers_) state::wipe(answer);
    pd->answers_.clear();
  }
}

read_models::kept_decoded_counts read_models::kept_decoded_for_test() const {
  kept_decoded_counts n;
  for (const auto& d : state_->live_decoded) {
    ++n.entries;
    const auto* pd = d.event ? domain::personal_data_of(d.event->event) : nullptr;
    if (d.email_hash || (pd != nullptr && !pd->empty())) ++n.with_personal_data;
    if (d.event && (std::holds_alternative<domain::invite_created>(d.event->event) ||
                    std::holds_alternative<domain::invite_updated>(d.event->event))) {
      ++n.with_invite_settings;
    }
  }
  return n;
}

result<void, projection_error> read_models::decode_event(const eventstore::recorded_event& e,
                                                         decoded_entry& out) const {
  auto failed = decode_entry(*state_->codec, e, out);
  if (!failed.empty()) return projection_error{std::move(failed)};
  return {};
}

std::size_t read_models::reserved_entries_for_log(std::uint64_t events) {
  return static_cast<std::size_t>(
      std::min<std::uint64_t>(events / events_per_learner_estimate, max_reserved_entries));
}

void read_models::reserve_for_log(std::uint64_t events) {
  const std::size_t n = reserved_entries_for_log(events);
  auto& s = *state_;
  std::unique_lock lock(s.mu);
  s.learners.reserve(n);
  s.claims.reserve(n);
  s.learner_by_subject.reserve(n);
}

bool read_models::preload_keys() { return state_->codec->keys().preload(); }

void read_models::end_preload_keys() { state_->codec->keys().end_preload(); }

result<void, projection_error> read_models::apply(
    std::span<const eventstore::recorded_event> batch) {
  auto& s = *state_;
  const std::uint64_t applied = s.applied.load(std::memory_order_acquire);
  std::size_t first = 0;
  while (first < batch.size() && batch[first].position <= applied) ++first;
  if (first == batch.size()) return {};
  const auto todo = batch.subspan(first);

  // Decode outside the lock: readers keep going while the expensive part runs. Into the
  // entries earlier batches left (decode_range decodes over an entry's event of the same
  // type, whose strings keep their buffers): a live batch makes and frees few of them.
  decoded_batch& decoded = s.live_decoded;
  // On every way out (a decoding failure too): what the batch decoded must not stay.
  struct trim_on_exit {
    state& s;
    std::size_t used;
    ~trim_on_exit() { s.keep_live_decoded_small(used); }
  } trim{s, todo.size()};
  if (decoded.size() < todo.size()) decoded.resize(todo.size());
  for (std::size_t i = 0; i < todo.size(); ++i) decoded[i].email_hash.reset();
  // hardware_concurrency() reads /sys/devices/system/cpu/online (an open, a read and a
  // close): asked once, not per batch (~5 % of the projector's thread under live load).
  static const std::size_t hw = std::max(1u, std::thread::hardware_concurrency());
  const std::size_t workers =
      todo.size() < parallel_decode_min ? 1 : std::min<std::size_t>({hw, 8, todo.size() / 256});
  std::vector<std::string> errors(workers);
  if (workers <= 1) {
    errors[0] = decode_range(*s.codec, todo, decoded, 0, todo.size());
  } else {
    std::vector<std::future<void>> parts;
    const std::size_t per = (todo.size() + workers - 1) / workers;
    for (std::size_t lo = per, w = 1; lo < todo.size(); lo += per, ++w) {
      parts.push_back(std::async(std::launch::async, [&, lo, w] {
        errors[w] = decode_range(*s.codec, todo, decoded, lo, std::min(todo.size(), lo + per));
      }));
    }
    errors[0] = decode_range(*s.codec, todo, decoded, 0, std::min(todo.size(), per));
    for (auto& p : parts) p.get();
  }
  for (auto& e : errors) {  // ranges in position order: the first failure is reported
    if (!e.empty()) return projection_error{std::move(e)};
  }
  return apply_decoded(todo, std::span(decoded).first(todo.size()));
}

result<void, projection_error> read_models::apply(std::span<const eventstore::recorded_event> batch,
                                                  decoded_batch& decoded_events) {
  if (decoded_events.size() != batch.size()) {
    return projection_error{"read models: a decoded batch does not match its events"};
  }
  const std::uint64_t applied = state_->applied.load(std::memory_order_acquire);
  std::size_t first = 0;
  while (first < batch.size() && batch[first].position <= applied) ++first;
  if (first == batch.size()) return {};
  return apply_decoded(batch.subspan(first), std::span(decoded_events).subspan(first));
}

result<void, projection_error> read_models::apply_decoded(
    std::span<const eventstore::recorded_event> todo, std::span<decoded_entry> decoded) {
  auto& s = *state_;
  const std::uint64_t last = todo.back().position;
  {
    std::unique_lock lock(s.mu);
    // After an abandoned load memory went back to the folder's checkpoint: applying more
    // on top would skip the events in between and write a checkpoint claiming them.
    if (s.bulk_failed) return projection_error{*s.bulk_failed};
    // Lines asked for `slots_ahead` events ahead arrive while those in between are applied;
    // entries are asked for once their slots are in.
    constexpr std::size_t slots_ahead = 16, entries_ahead = 8;
    // The batch itself was written by the reading and decoding threads, on the other core:
    // its lines are asked for further ahead still, so that prefetch_slots, which reads
    // them, finds them in (it waited for them: the applier's biggest stall).
    constexpr std::size_t lines_ahead = 32;
    for (std::size_t i = 0; i < todo.size(); ++i) {
      if (i + lines_ahead < todo.size()) {
        const auto* d = reinterpret_cast<const char*>(&decoded[i + lines_ahead]);
        __builtin_prefetch(d);       // the event's ids
        __builtin_prefetch(d + 64);  // (most events' fields are in their first 128 bytes)
        __builtin_prefetch(d + sizeof(domain::event) - 1);  // which event: the variant's index
        __builtin_prefetch(&decoded[i + lines_ahead].email_hash);
        const auto* r = reinterpret_cast<const char*>(&todo[i + lines_ahead]);
        __builtin_prefetch(r + offsetof(recorded_event, stream_version));
      }
      if (i + slots_ahead < todo.size()) s.prefetch_slots(decoded[i + slots_ahead]);
      if (i + entries_ahead < todo.size()) s.prefetch_entries(decoded[i + entries_ahead]);
      s.apply_one(todo[i], decoded[i]);
    }
    rocksdb::Status st;
    if (s.bulk) {
      // Records and the checkpoint are written once, when the load ends (set_bulk_load);
      // rows go to disk a sorted run at a time (two in memory: one filling, one going in).
      if (s.out.run.bytes() >= s.options.bulk_run_bytes) {
        if (auto ingested = s.ingest_run(); !ingested) {
          return s.fail_bulk_load(ingested.error().message);
        }
      }
    } else {
      s.stage_dirty();
      std::string cp;
      append_be64(cp, last);
      s.out.put(checkpoint_key, cp);
      s.out.write_sorted();
      st = s.db->Write(s.write_options, &s.out.batch);
      s.out.batch.Clear();
    }
    if (!st.ok()) {
      // Memory is ahead of the folder now: go back to what the folder holds.
      (void)s.load();
      return projection_error{"read models: write failed: " + st.ToString()};
    }
  }
  s.publish(last);
  return {};
}

result<void, projection_error> read_models::state::open_folder() {
  rocksdb::DB* raw = nullptr;
  auto st =
      rocksdb::DB::Open(folder_options(env, options.in_memory, compression), options.path, &raw);
  if ((st.IsInvalidArgument() || st.IsNotSupported()) && compression != rocksdb::kNoCompression) {
    compression = rocksdb::kNoCompression;  // a RocksDB built without LZ4
    st = rocksdb::DB::Open(folder_options(env, options.in_memory, compression), options.path, &raw);
  }
  if (!st.ok()) {
    return projection_error{"read models: cannot open " + options.path + ": " + st.ToString()};
  }
  db.reset(raw);
  // Holding the folder's lock now: another process's load in progress is not ours to undo.
  remove_leftover_runs();
  return {};
}

result<void, projection_error> read_models::set_bulk_load(bool on) {
  auto& s = *state_;
  std::unique_lock lock(s.mu);
  if (on) {
    if (s.bulk) return {};
    s.bulk = true;
    s.bulk_failed.reset();
    return {};
  }
  // A load that lost rows never ends with records and a checkpoint, however often asked.
  if (s.bulk_failed) return projection_error{*s.bulk_failed};
  if (!s.bulk) return {};
  // The last rows; then the runs merged into the folder's final files, and every record
  // and the checkpoint, as of the last applied event, in one more file; all ingested at
  // once: the commit. Until then the folder holds nothing of the load (its checkpoint is
  // the one before it, 0 after clear()), so a failure or a crash meanwhile leaves read
  // models that replay from there.
  if (auto written = s.ingest_run(); !written) return s.fail_bulk_load(written.error().message);
  if (auto written = s.wait_ingested(); !written) {
    return s.fail_bulk_load(written.error().message);
  }
  // The run buffers' memory goes to the merge's buffers and the records' encoding.
  s.out.run.release();
  s.spare.release();
  // No memory for the records' encoding: the load fails like any other failure of its end
  // (before, the exception left it on, unfailed, with its runs).
  result<void, projection_error> added{};
  try {
    added = s.merge_and_add_records();
  } catch (const std::exception& e) {
    added = projection_error{std::string("read models: adding the records failed: ") + e.what()};
  }
  if (!added) return s.fail_bulk_load(added.error().message);
  s.bulk = false;
  return {};
}

// Deletes every record, keeps only the current format, and forgets the checkpoint.
result<void, projection_error> read_models::state::wipe() {
  (void)wait_ingested();  // a load's runs are dropped with the rest
  spare.release();
  runs.clear();
  rocksdb::WriteBatch all;
  all.DeleteRange(rocksdb::Slice(""), rocksdb::Slice("\xff\xff", 2));
  all.Put(slice(format_key), slice(format_version));
  auto st = db->Write(write_options, &all);
  if (!st.ok()) return projection_error{"read models: clear failed: " + st.ToString()};
  // Rewritten to the bottom even when already there: the deletion of everything must not
  // stay in the folder (a file spanning every key), or a bulk load's files, which it
  // would overlap, could not be ingested at the bottom level.
  rocksdb::CompactRangeOptions compact;
  compact.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  st = db->CompactRange(compact, nullptr, nullptr);
  if (!st.ok()) return projection_error{"read models: clear failed: " + st.ToString()};
  remove_leftover_runs();
  reset_memory();
  bulk_failed.reset();
  bulk = false;  // a load under way ends with everything else ("until clear()")
  return {};
}

result<void, projection_error> read_models::clear() {
  auto& s = *state_;
  {
    std::unique_lock lock(s.mu);
    if (auto wiped = s.wipe(); !wiped) return wiped.error();
  }
  std::lock_guard lock(s.waiters_mu);
  s.applied.store(0, std::memory_order_release);
  return {};
}

// ---------------------------------------------------------------------------------------
// Queries.

invite_view read_models::state::view_of(const invite_rec& i, timestamp now) const {
  invite_view v;
  v.org_id = i.org_id;
  v.invite_id = i.invite_id;
  v.code = i.code;
  v.link = "/i/" + i.code;
  v.version = i.version;
  v.settings = i.settings;
  v.duplicated_from = i.duplicated_from;
  v.created_by = i.created_by;
  v.created_at = i.created_at;
  v.updated_at = i.updated_at;
  v.deactivated = i.deactivated;
  v.deleted = i.deleted;
  v.status = domain::status_at(i.settings, i.deleted, i.deactivated, i.claims, now);
  v.claims_count = i.claims;
  if (i.settings.claim_limit_ > 0) {
    v.remaining_spots = std::max<std::int64_t>(0, i.settings.claim_limit_ - i.claims);
  }
  v.share_button_visible = i.settings.show_share_button_ &&
                           i.settings.access_ != domain::access_mode::allowed &&
                           (v.status.status_ == domain::invite_status::active ||
                            v.status.status_ == domain::invite_status::upcoming);
  return v;
}

shown_person read_models::state::show(const recorded_event& e,
                                      const std::optional<uuid>& learner_id, row_name row,
                                      std::map<std::string, std::string>* answers) const {
  shown_person p;
  if (learner_id) {
    std::shared_lock lock(mu);
    auto l = learners.find(*learner_id);
    if (l != learners.end() && l->second.forgotten) {
      p.forgotten = true;
      return p;
    }
  }
  auto d = codec->decode(e);
  // A block whose key is gone is forgotten. One the codec cannot open with its key (damaged
  // in the row) is not: the query fails rather than show its person as forgotten.
  if (!d) throw_unreadable(row.kind, row.id, e.position, d.error().message);
  if (d->forgotten) {
    p.forgotten = true;
    return p;
  }
  if (const auto* pd = domain::personal_data_of(d->event)) {
    p.email = pd->email_;
    p.first_name = pd->first_name_;
    p.last_name = pd->last_name_;
    if (answers != nullptr) *answers = pd->answers_;
  }
  return p;
}

claim_access_view read_models::state::access_of(const claim_rec& c, timestamp now) const {
  claim_access_view v;
  v.org_id = c.org_id;
  v.invite_id = c.invite_id;
  v.claim_id = c.claim_id;
  v.learner_id = c.learner_id;
  v.anonymous = c.anonymous;
  v.claimed_at = c.claimed_at;
  v.access_expires_at = c.access_expires_at;
  v.access_expired = c.access_expires_at.has_value() && now >= *c.access_expires_at;
  const auto& terms = terms_of(c);
  for (const auto& t : terms.tracks_) {
    track_access_view tv;
    tv.track_id = t.track_id_;
    tv.pausable = t.pausable_;
    tv.access_expires_at = c.access_expires_at;
    if (const auto* p = c.progress_by_track.find(t.track_id_)) {
      tv.plays_used = p->plays;
      tv.paused = p->paused;
    }
    if (terms.plays_per_track_ > 0) {
      tv.plays_remaining = std::max<std::int64_t>(0, terms.plays_per_track_ - tv.plays_used);
    }
    v.tracks.push_back(std::move(tv));
  }
  return v;
}

template <typename F>
void read_models::state::scan_rows(const std::string& prefix, F&& visit) const {
  scan_rows(prefix, rocksdb::ReadOptions(), std::forward<F>(visit));
}

template <typename F>
void read_models::state::scan_rows(const std::string& prefix, const rocksdb::ReadOptions& read,
                                   F&& visit) const {
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(read));
  for (it->Seek(slice(prefix)); it->Valid() && it->key().starts_with(slice(prefix)); it->Next()) {
    if (it->key().size() != prefix.size() + 8) continue;
    record_reader r(view(it->value()));
    if (!visit(r, read_be64(view(it->key()).substr(prefix.size())))) break;
  }
}

std::optional<organization_view> read_models::organization(const uuid& org_id) const {
  std::shared_lock lock(state_->mu);
  auto it = state_->orgs.find(org_id);
  if (it == state_->orgs.end()) return std::nullopt;
  return organization_view{it->second.org_id, it->second.name, it->second.form,
                           it->second.created_at};
}

std::vector<organization_view> read_models::organizations() const {
  std::shared_lock lock(state_->mu);
  std::vector<organization_view> out;
  for (const auto& [id, o] : state_->orgs) out.push_back({o.org_id, o.name, o.form, o.created_at});
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.created_at, a.org_id) < std::tie(b.created_at, b.org_id);
  });
  return out;
}

domain::lead_form read_models::lead_form(const uuid& org_id) const {
  std::shared_lock lock(state_->mu);
  auto it = state_->orgs.find(org_id);
  return it == state_->orgs.end() ? domain::lead_form{} : it->second.form;
}

std::vector<track_view> read_models::tracks(const uuid& org_id) const {
  std::shared_lock lock(state_->mu);
  std::vector<track_view> out;
  auto it = state_->tracks.find(org_id);
  if (it == state_->tracks.end()) return out;
  for (const auto& [id, t] : it->second) out.push_back(t);
  return out;
}

std::optional<track_view> read_models::track(const uuid& org_id, std::string_view track_id) const {
  std::shared_lock lock(state_->mu);
  auto it = state_->tracks.find(org_id);
  if (it == state_->tracks.end()) return std::nullopt;
  auto t = it->second.find(track_id);
  if (t == it->second.end()) return std::nullopt;
  return t->second;
}

domain::track_catalog read_models::track_catalog(const uuid& org_id) const {
  std::shared_lock lock(state_->mu);
  domain::track_catalog out;
  auto it = state_->tracks.find(org_id);
  if (it == state_->tracks.end()) return out;
  for (const auto& [id, t] : it->second) out[id] = domain::track_fact{t.title, t.pausable, t.owner};
  return out;
}

std::optional<api_key_view> read_models::api_key_by_hash(std::string_view key_hash) const {
  std::shared_lock lock(state_->mu);
  auto h = state_->key_by_hash.find(std::string(key_hash));
  if (h == state_->key_by_hash.end()) return std::nullopt;
  auto k = state_->keys.find(h->second);
  if (k == state_->keys.end()) return std::nullopt;
  return k->second.v;
}

std::optional<api_key_view> read_models::api_key(const uuid& org_id, const uuid& key_id) const {
  std::shared_lock lock(state_->mu);
  auto k = state_->keys.find(key_id);
  if (k == state_->keys.end() || k->second.v.org_id != org_id) return std::nullopt;
  return k->second.v;
}

std::vector<api_key_view> read_models::api_keys(const uuid& org_id) const {
  std::vector<std::pair<std::uint64_t, api_key_view>> found;
  {
    std::shared_lock lock(state_->mu);
    for (const auto& [id, k] : state_->keys) {
      if (k.v.org_id == org_id) found.emplace_back(k.position, k.v);
    }
  }
  std::sort(found.begin(), found.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<api_key_view> out;
  for (auto& [pos, v] : found) out.push_back(std::move(v));
  return out;
}

std::optional<invite_ref> read_models::invite_by_code(std::string_view code) const {
  std::shared_lock lock(state_->mu);
  auto c = state_->invite_by_code.find(std::string(code));
  if (c == state_->invite_by_code.end()) return std::nullopt;
  auto i = state_->invites.find(c->second);
  if (i == state_->invites.end()) return std::nullopt;
  return invite_ref{i->second.org_id, i->second.invite_id};
}

std::optional<invite_view> read_models::invite(const uuid& org_id, const uuid& invite_id,
                                               timestamp now) const {
  std::shared_lock lock(state_->mu);
  auto i = state_->invites.find(invite_id);
  if (i == state_->invites.end() || i->second.org_id != org_id) return std::nullopt;
  return state_->view_of(i->second, now);
}

result<invite_page, query_error> read_models::list_invites(const uuid& org_id,
                                                           const invite_query& query,
                                                           timestamp now) const {
  std::uint64_t before = UINT64_MAX;
  if (query.cursor) {
    const auto& c = *query.cursor;
    auto [end, ec] = std::from_chars(c.data(), c.data() + c.size(), before);
    if (ec != std::errc() || end != c.data() + c.size() || c.empty()) {
      return query_error{"cursor", "cursor is not one this server returned"};
    }
  }
  const std::size_t limit = std::clamp<std::size_t>(query.limit, 1, max_page_size);
  const std::string needle = domain::to_lower_ascii(query.q);

  auto& s = *state_;
  std::shared_lock lock(s.mu);
  invite_page page;
  auto by_org = s.invites_by_org.find(org_id);
  if (by_org == s.invites_by_org.end()) return page;
  const auto& ordered = by_org->second;
  const auto org_tracks = s.tracks.find(org_id);

  auto matches = [&](const invite_rec& i, const invite_view& v) {
    const auto st = v.status.status_;
    if (query.statuses.empty()) {
      if (st == domain::invite_status::expired || st == domain::invite_status::deleted) {
        return false;
      }
    } else if (std::find(query.statuses.begin(), query.statuses.end(), st) ==
               query.statuses.end()) {
      return false;
    }
    if (query.type && i.settings.type_ != *query.type) return false;
    if (query.track && std::none_of(i.settings.tracks_.begin(), i.settings.tracks_.end(),
                                    [&](const auto& t) { return t.track_id_ == *query.track; })) {
      return false;
    }
    if (query.owned_by) {
      for (const auto& t : i.settings.tracks_) {
        if (org_tracks == s.tracks.end()) return false;
        auto tr = org_tracks->second.find(t.track_id_);
        if (tr == org_tracks->second.end() || tr->second.owner != query.owned_by) return false;
      }
    }
    if (!needle.empty() &&
        domain::to_lower_ascii(i.settings.title_).find(needle) == std::string::npos) {
      return false;
    }
    return true;
  };

  // Newest first: walk creation positions downwards from the cursor.
  auto it = std::make_reverse_iterator(ordered.lower_bound(before));
  std::uint64_t last_position = 0;
  for (; it != ordered.rend(); ++it) {
    auto rec = s.invites.find(it->second);
    if (rec == s.invites.end()) continue;
    auto v = s.view_of(rec->second, now);
    if (!matches(rec->second, v)) continue;
    if (page.invites.size() == limit) {
      page.next_cursor = std::to_string(last_position);
      break;
    }
    last_position = it->first;
    page.invites.push_back(std::move(v));
  }
  return page;
}

std::optional<usage_view> read_models::usage(const uuid& org_id, const uuid& invite_id) const {
  std::shared_lock lock(state_->mu);
  auto it = state_->invites.find(invite_id);
  if (it == state_->invites.end() || it->second.org_id != org_id) return std::nullopt;
  const auto& i = it->second;
  usage_view u;
  u.invite_id = i.invite_id;
  u.claims = i.claims;
  u.unique_learners = i.claims;  // one claim per learner (SPEC §2)
  u.anonymous_claims = i.anonymous_claims;
  u.rejections = i.rejections;
  u.plays = i.plays;
  for (const auto& t : i.settings.tracks_) u.plays_per_track[t.track_id_] = 0;
  for (const auto& [track, n] : i.plays_per_track) u.plays_per_track[track] = n;
  if (i.settings.claim_limit_ > 0) {
    u.remaining_spots = std::max<std::int64_t>(0, i.settings.claim_limit_ - i.claims);
  }
  u.claims_per_day = i.claims_per_day;
  std::vector<std::int64_t> delays;
  delays.reserve(i.claim_times.size());
  for (auto t : i.claim_times) {
    ++u.claims_per_hour[bucket_of(t, claim_bucket::hour)];
    delays.push_back(seconds_between(i.created_at, t));
  }
  u.time_to_claim = delay_stats(std::move(delays));
  return u;
}

claim_history_view read_models::claim_history(const uuid& org_id,
                                              const claim_history_query& query) const {
  claim_history_view h;
  h.org_id = org_id;
  h.query = query;
  std::vector<std::int64_t> delays;
  std::shared_lock lock(state_->mu);
  auto by_org = state_->invites_by_org.find(org_id);
  if (by_org == state_->invites_by_org.end()) return h;
  for (auto it = by_org->second.rbegin(); it != by_org->second.rend(); ++it) {
    auto rec = state_->invites.find(it->second);
    if (rec == state_->invites.end()) continue;
    const auto& i = rec->second;
    invite_claim_history one{i.invite_id, i.settings.title_, 0, {}};
    for (auto t : i.claim_times) {
      if ((query.since && t < *query.since) || (query.until && t >= *query.until)) continue;
      auto bucket = bucket_of(t, query.bucket);
      ++one.buckets[bucket];
      ++h.buckets[bucket];
      ++one.claims;
      delays.push_back(seconds_between(i.created_at, t));
    }
    h.claims += one.claims;
    if (one.claims > 0) h.invites.push_back(std::move(one));
  }
  h.time_to_claim = delay_stats(std::move(delays));
  return h;
}

std::optional<std::vector<acceptance_row>> read_models::acceptance_list(
    const uuid& org_id, const uuid& invite_id) const {
  timestamp created_at{};
  {
    std::shared_lock lock(state_->mu);
    auto it = state_->invites.find(invite_id);
    if (it == state_->invites.end() || it->second.org_id != org_id) return std::nullopt;
    created_at = it->second.created_at;
  }
  std::vector<std::pair<acceptance_row, recorded_event>> rows;
  state_->scan_rows(key_of('A', invite_id), [&](record_reader& r, std::uint64_t position) {
    acceptance_row row;
    row.claim_id = r.id();
    row.learner_id = r.id();
    row.anonymous = r.boolean();
    row.claimed_at = r.ts();
    row.access_expires_at = r.opt_ts();
    std::string why;
    auto e = get_event(r, a_row_type, row.learner_id, position, why);
    if (!r.ok()) throw_unreadable('A', invite_id, position, why);
    row.position = e.position;
    row.seconds_since_invite_created = seconds_between(created_at, row.claimed_at);
    rows.emplace_back(std::move(row), std::move(e));
    return true;
  });
  std::vector<acceptance_row> out;
  out.reserve(rows.size());
  for (auto& [row, e] : rows) {
    if (!row.anonymous) row.who = state_->show(e, row.learner_id, {'A', invite_id});
    out.push_back(std::move(row));
  }
  return out;
}

std::optional<std::vector<rejection_row>> read_models::rejections(const uuid& org_id,
                                                                  const uuid& invite_id) const {
  {
    std::shared_lock lock(state_->mu);
    auto it = state_->invites.find(invite_id);
    if (it == state_->invites.end() || it->second.org_id != org_id) return std::nullopt;
  }
  std::vector<std::pair<rejection_row, recorded_event>> rows;
  state_->scan_rows(key_of('R', invite_id), [&](record_reader& r, std::uint64_t position) {
    rejection_row row;
    row.reason = static_cast<domain::rejection_reason>(r.u64());
    row.learner_id = r.opt_id();
    row.anonymous = r.boolean();
    row.rejected_at = r.ts();
    std::string why;
    auto e = get_event(r, r_row_type, row.learner_id, position, why);
    if (!r.ok()) throw_unreadable('R', invite_id, position, why);
    row.position = e.position;
    rows.emplace_back(std::move(row), std::move(e));
    return true;
  });
  std::vector<rejection_row> out;
  out.reserve(rows.size());
  for (auto& [row, e] : rows) {
    row.who = state_->show(e, row.learner_id, {'R', invite_id});
    out.push_back(std::move(row));
  }
  return out;
}

std::optional<claim_access_view> read_models::claim_access(const uuid& claim_id,
                                                           timestamp now) const {
  std::shared_lock lock(state_->mu);
  auto it = state_->claims.find(claim_id);
  if (it == state_->claims.end()) return std::nullopt;
  return state_->access_of(it->second, now);
}

std::optional<domain::invite_claimed> read_models::claim_seed(const uuid& claim_id) const {
  std::shared_lock lock(state_->mu);
  auto it = state_->claims.find(claim_id);
  if (it == state_->claims.end()) return std::nullopt;
  const auto& c = it->second;
  domain::invite_claimed e;
  e.org_id_ = c.org_id;
  e.invite_id_ = c.invite_id;
  e.claim_id_ = c.claim_id;
  e.learner_id_ = c.learner_id;
  e.anonymous_ = c.anonymous;
  e.claimed_at_ = c.claimed_at;
  e.restrictions_ = terms_of(c);
  e.access_expires_at_ = c.access_expires_at;
  return e;
}

std::vector<claim_access_view> read_models::learner_claims(const uuid& org_id,
                                                           const uuid& learner_id,
                                                           timestamp now) const {
  std::shared_lock lock(state_->mu);
  std::vector<claim_access_view> out;
  auto l = state_->learners.find(learner_id);
  if (l == state_->learners.end() || l->second.org_id != org_id) return out;
  for (const auto& id : l->second.claims) {
    auto c = state_->claims.find(id);
    if (c != state_->claims.end()) out.push_back(state_->access_of(c->second, now));
  }
  return out;
}

std::optional<learner_view> read_models::learner(const uuid& org_id, const uuid& learner_id) const {
  std::shared_lock lock(state_->mu);
  auto l = state_->learners.find(learner_id);
  if (l == state_->learners.end() || l->second.org_id != org_id) return std::nullopt;
  const auto& r = l->second;
  return learner_view{r.org_id,         r.learner_id, r.registered_at,
                      r.lead_submitted, r.forgotten,  std::vector<uuid>(r.claims)};
}

std::optional<learner_ref> read_models::learner_by_email(const uuid& org_id,
                                                         std::string_view email_subject) const {
  std::shared_lock lock(state_->mu);
  auto s = state_->learner_by_subject.find(email_subject);
  if (!s) return std::nullopt;
  const auto& l = state_->learners.nth(*s).second;
  if (l.org_id != org_id || l.forgotten) return std::nullopt;
  return learner_ref{l.learner_id, l.lead_submitted};
}

std::optional<learner_history_view> read_models::learner_history(const uuid& org_id,
                                                                 const uuid& learner_id) const {
  learner_history_view h;
  std::vector<std::pair<learner_history_entry, std::optional<recorded_event>>> rows;
  std::optional<rocksdb::ManagedSnapshot> snapshot;
  {
    std::shared_lock lock(state_->mu);
    auto l = state_->learners.find(learner_id);
    if (l == state_->learners.end() || l->second.org_id != org_id) return std::nullopt;
    h.org_id = org_id;
    h.learner_id = learner_id;
    h.forgotten = l->second.forgotten;
    if (l->second.registered_at != timestamp{}) h.registered_at = l->second.registered_at;
    // The rows below are read in this snapshot, taken with the claims: a query never
    // sees a play (an H row) whose claim it did not list.
    snapshot.emplace(state_->db.get());
    // Claims: from the claim records (a claim has no H row). A claim id reused in a
    // corrupt log or feed leaves it in two learners' lists (or twice in one) and its
    // record with the last claimer: listed once, only for that learner.
    std::set<uuid> listed;
    for (const auto& id : l->second.claims) {
      auto c = state_->claims.find(id);
      if (c == state_->claims.end()) continue;
      if (c->second.learner_id != learner_id || !listed.insert(id).second) continue;
      learner_history_entry x;
      x.fact = learner_fact::claimed;
      x.at = c->second.claimed_at;
      x.position = c->second.position;
      x.invite_id = c->second.invite_id;
      x.claim_id = id;
      rows.emplace_back(std::move(x), std::nullopt);
    }
  }
  rocksdb::ReadOptions in_snapshot;
  in_snapshot.snapshot = snapshot->snapshot();
  state_->scan_rows(key_of('H', learner_id), in_snapshot,
                    [&](record_reader& r, std::uint64_t position) {
                      learner_history_entry x;
                      x.fact = static_cast<learner_fact>(r.u64());
                      x.position = position;
                      x.at = r.ts();
                      x.invite_id = r.id();
                      x.claim_id = r.opt_id();
                      x.track_id = r.str();
                      x.play_number = r.i64();
                      if (auto reason = r.u64(); reason > 0) {
                        x.reason = static_cast<domain::rejection_reason>(reason - 1);
                      }
                      if (!r.ok()) throw_unreadable('H', learner_id, position);
                      rows.emplace_back(std::move(x), std::nullopt);
                      return true;
                    });
  // In log order: the claims (in claim order) among the H rows (in key order).
  std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return a.first.position < b.first.position;
  });
  // Claims and rejections: the sealed event is in the invite's A or R row.
  std::string value;
  for (auto& [x, e] : rows) {
    const bool claimed = x.fact == learner_fact::claimed;
    if (!claimed && x.fact != learner_fact::rejected) continue;
    auto st = state_->db->Get(in_snapshot,
                              slice(row_key(claimed ? 'A' : 'R', x.invite_id, x.position)), &value);
    // Written with the H row: a missing one is damage too.
    if (!st.ok()) throw_unreadable(claimed ? 'A' : 'R', x.invite_id, x.position);
    record_reader r(value);
    const auto row_learner = claimed ? skip_acceptance_fields(r) : skip_rejection_fields(r);
    std::string why;
    auto sealed = get_event(r, claimed ? a_row_type : r_row_type, row_learner, x.position, why);
    if (!r.ok()) throw_unreadable(claimed ? 'A' : 'R', x.invite_id, x.position, why);
    e = std::move(sealed);
  }
  for (auto& [x, e] : rows) {
    if (e) {
      x.who =
          state_->show(*e, learner_id, {x.fact == learner_fact::claimed ? 'A' : 'R', x.invite_id});
    }
    h.claims += x.fact == learner_fact::claimed;
    h.rejections += x.fact == learner_fact::rejected;
    h.plays += x.fact == learner_fact::played;
    h.entries.push_back(std::move(x));
  }
  return h;
}

std::optional<std::string> read_models::learner_email_subject(const uuid& learner_id) const {
  std::shared_lock lock(state_->mu);
  auto l = state_->learners.find(learner_id);
  if (l == state_->learners.end() || l->second.forgotten || l->second.email.empty()) {
    return std::nullopt;
  }
  return l->second.email.subject();
}

std::vector<lead_row> read_models::leads(const uuid& org_id) const {
  std::vector<std::pair<lead_row, recorded_event>> rows;
  state_->scan_rows(key_of('L', org_id), [&](record_reader& r, std::uint64_t position) {
    lead_row row;
    row.learner_id = r.id();
    row.invite_id = r.opt_id();
    row.captured_at = r.ts();
    std::string why;
    auto e = get_event(r, l_row_type, row.learner_id, position, why);
    if (!r.ok()) throw_unreadable('L', org_id, position, why);
    row.position = e.position;
    rows.emplace_back(std::move(row), std::move(e));
    return true;
  });
  std::vector<lead_row> out;
  out.reserve(rows.size());
  for (auto& [row, e] : rows) {
    row.who = state_->show(e, row.learner_id, {'L', org_id}, &row.answers);
    out.push_back(std::move(row));
  }
  return out;
}

}  // namespace passage::projections
