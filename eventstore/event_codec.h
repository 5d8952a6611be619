#pragma once
// Domain events <-> stored events. Each domain event becomes a new_event whose `data`
// is JSON (the public contract Kafka consumers read; field names in snake_case as in
// SPEC §7, times RFC 3339 UTC). The personal_data block is encrypted with the key of
// its subject (AES-256-GCM) and decrypted on read; once that key is destroyed the
// block decodes as "forgotten" while every other field stays intact.
//
//   event_codec codec(keys, pepper);
//   auto stored = codec.encode(domain_event, {.event_id = uuid::random(), .actor = "key:…"});
//   auto back = codec.decode(recorded);            // decoded_event{event, forgotten}
//   nlohmann::json shown = codec.to_public_json(recorded);   // for the API and Kafka
//
// Stored personal_data: null when the block is empty, else
//   {"alg": "A256GCM", "subject": "learner:<uuid>" | "email:<hex>[.<generation>]",
//    "iv": base64(12 random bytes), "ct": base64(ciphertext || 16-byte tag)}
// with AAD "passage.personal_data.v1|<event_id>|<type>|<subject>", so a ciphertext
// copied into another event fails authentication.
//
// ForgetLearner: keys.destroy("learner:<id>") and codec.forget_email(org, email) for the
// learner's email (read it before destroying), then append LearnerForgotten.

#include <nlohmann/json_fwd.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/uuid.h"
#include "domain/events.h"
#include "eventstore/event.h"
#include "eventstore/key_store.h"

namespace passage::eventstore {

struct codec_error {
  std::string message;  // names the event type and, when one is at fault, the field
  std::string field;    // the offending field's path ("restrictions.tracks[0].pausable"), or ""
  // encode() of personal data whose subject's key was destroyed: it can never be stored.
  bool forgotten = false;
};

// Envelope metadata the application supplies with each event (SPEC §3).
struct event_metadata {
  uuid event_id;
  std::string correlation_id;
  std::string causation_id;
  std::string actor;
};

struct decoded_event {
  domain::event event;
  // The personal_data block could not be decrypted because its subject was
  // forgotten; personal_data_of(event) is then empty.
  bool forgotten = false;
};

// What encode() keeps of a key it looked up, for the next events encoded with it: a
// command's events about one subject (a claim's LearnerRegistered, PasswordSetupIssued and
// InviteClaimed, all under its new learner's key) then look the key up once instead of once
// each. Holds one subject's key, wiped when replaced and on destruction. For the events of
// one command, encoded one after another: kept longer, it would go on using a key that
// was destroyed meanwhile. One thread at a time.
class encode_keys {
 public:
  encode_keys() = default;
  encode_keys(const encode_keys&) = delete;
  encode_keys& operator=(const encode_keys&) = delete;
  ~encode_keys();

 private:
  friend class event_codec;
  std::string asked_;    // the subject encode() asked the key store for; "" none kept
  std::string subject_;  // the subject the key is for (a forgotten email's next generation)
  data_key key_{};
};

// Thread-safe (all state is the key store's).
class event_codec {
 public:
  // `pepper`: a server secret (>= 32 bytes) for keyed hashes of emails, used as the
  // encryption subject of personal data that has no learner yet. Never logged; must stay
  // the same for the life of the data. Throws std::invalid_argument when shorter (a
  // start-up misconfiguration: short peppers make email subjects guessable).
  // `keys` must outlive the codec.
  event_codec(key_store& keys, std::string pepper);

  // Creates the subject's key on first use. Fails with `forgotten` when a learner's key
  // was destroyed (a forgotten email instead moves to its next key generation).
  result<new_event, codec_error> encode(const domain::event& e, const event_metadata& meta) const;
  // The same, looking a key up only when `kept` holds no key for the event's subject, and
  // keeping the key it looked up there (see encode_keys).
  result<new_event, codec_error> encode(const domain::event& e, const event_metadata& meta,
                                        encode_keys& kept) const;
  // Expects the current schema_version (the store's upcasters run before this). A key
  // that is destroyed or was never stored gives forgotten = true; a ciphertext that
  // fails authentication is an error, never "forgotten".
  result<decoded_event, codec_error> decode(const recorded_event& e) const;
  // decode() into `out`, reusing what it holds: when that is an event of the same type,
  // its strings and vectors keep their buffers (a rebuild decodes batch after batch into
  // the same slots). On error `out` holds some event, to be written over.
  result<void, codec_error> decode_into(const recorded_event& e, decoded_event& out) const;

  // The event's data as shown outside (API, exports, Kafka): personal data decrypted,
  // or {"forgotten": true} once its subject is forgotten; never ciphertext. A password
  // hash (LearnerPasswordSet) is left out.
  result<nlohmann::json, codec_error> to_public_json(const recorded_event& e) const;

  // The encryption subject of an event's personal data: "learner:<uuid>" when the
  // event names its data subject, else "email:<hex HMAC-SHA256(pepper, org|email)>".
  std::string subject_of(const domain::event& e) const;
  // "email:<…>" for an email of an organization (trimmed and lower-cased before hashing).
  std::string email_subject(const uuid& org_id, std::string_view email) const;
  // The 32 bytes email_subject() writes in hex after "email:", for callers that keep
  // millions of them (a rebuild's email index) or compare them.
  std::array<std::uint8_t, 32> email_hash(const uuid& org_id, std::string_view email) const;

  // Forgetting a learner must also forget what was recorded about their email before
  // the learner existed (rejected claims, invitations, mails), which is keyed by the
  // email subject. This destroys that key. Since a destroyed key is never made again,
  // personal data recorded for the same email later goes to a new generation of the
  // subject ("email:<hex>.2", ".3", …); this destroys every generation in use.
  result<void, codec_error> forget_email(const uuid& org_id, std::string_view email) const;
  // forget_email() for a subject email_subject() computed earlier, for callers that keep
  // only that keyed hash (never the email itself).
  result<void, codec_error> forget_email_subject(std::string_view subject) const;

  // The inverse of to_public_json() for a copy of the log kept elsewhere (a Kafka-fed
  // read replica): `data` as shown outside becomes stored data again, its personal data
  // encrypted under this codec's keys so that it can be crypto-shredded there too. A
  // {"forgotten": true} block, or clear data whose subject these keys have forgotten,
  // becomes an envelope no key opens: decode() shows it as forgotten. The data is
  // validated against the type's schema (`schema_version` must be the current one).
  result<std::string, codec_error> encode_public_json(const uuid& event_id, std::string_view type,
                                                      std::uint32_t schema_version,
                                                      const nlohmann::json& data) const;

  // The key store the codec reads (a replay preloads it: key_store::preload).
  key_store& keys() const { return keys_; }

 private:
  result<new_event, codec_error> encode_with(const domain::event& e, const event_metadata& meta,
                                             encode_keys* kept) const;

  key_store& keys_;
  std::string pepper_;
};

// "learner:<uuid>": the encryption subject of a learner's personal data.
std::string learner_subject(const uuid& learner_id);

// Plain JSON of a domain event (personal data in clear). For tests and for the
// codec itself; nothing stores this form.
nlohmann::json to_json(const domain::event& e);
// to_json(e).dump(), written directly (what encode() stores, but in clear): the same bytes.
std::string to_json_text(const domain::event& e);
result<domain::event, codec_error> event_from_json(std::string_view type, const nlohmann::json& j);
// The same from the JSON text, without building a nlohmann document (several times
// faster: the replay path). `without_personal_data`: the personal_data block (still
// required) reads as empty, as when it is set to null before event_from_json.
result<domain::event, codec_error> event_from_json_text(std::string_view type,
                                                        std::string_view text,
                                                        bool without_personal_data = false);
// The same for a type already looked up: `type_index` is event_type_index(type).
result<domain::event, codec_error> event_from_json_text(std::size_t type_index,
                                                        std::string_view type,
                                                        std::string_view text,
                                                        bool without_personal_data);
// The same into `out`, reusing it as event_codec::decode_into() does.
result<void, codec_error> event_from_json_text_into(std::size_t type_index, std::string_view type,
                                                    std::string_view text,
                                                    bool without_personal_data, domain::event& out);
// The index of the event type `type` in domain::event's alternatives (nullopt: no such
// type), found without hashing: for per-event dispatch on the replay path.
std::optional<std::size_t> event_type_index(std::string_view type);
// How many events event_from_json_text() and event_codec::decode() passed to nlohmann
// since the start: malformed ones (whose error nlohmann words), else a gap in the fast
// reader worth fixing. For tests and benchmarks.
std::uint64_t text_decode_fallbacks();
// How many events event_from_json_text() and event_codec::decode() found not in the exact
// layout encode() writes (members by name, no whitespace, nothing escaped) and read
// through the general reader instead: events of older builds or written by hand, else a
// gap in the layout reader worth fixing. For tests and benchmarks.
std::uint64_t layout_decode_misses();
// Tests: off, decoding skips the layout reader (every event takes the general reader), to
// compare the two. On by default.
void set_layout_reader(bool on);

}  // namespace passage::eventstore
