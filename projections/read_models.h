#pragma once
// The read models of Passage (CQRS projections, SPEC §4): invites with status, usage,
// acceptance lists, rejections, learner access, leads, and the lookups the command side
// and authentication need (tracks, invite codes, API keys, organizations, learners by
// email). Fed only by events (see projector.h), kept in memory for cheap point reads and
// persisted in their own RocksDB folder together with the last applied position, so a
// restart resumes exactly where it stopped. Personal data is never stored in clear: rows
// keep the encrypted event and are decrypted through the codec at query time, so a
// forgotten learner shows as "forgotten" while counts and times stay exact.
//
//   auto models = read_models::open({.path = "data/readmodels"}, codec);
//   projector p(*store, **models);                      // subscribes from the checkpoint
//   if (auto started = p.start(); !started) die(started.error().message);
//   auto invite = (*models)->invite(org_id, invite_id, clock.now());   // optional<invite_view>
//   (*models)->when_applied(append_result.last_position, [&] { respond(); });

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "common/uuid.h"
#include "domain/events.h"
#include "domain/invite.h"
#include "domain/types.h"
#include "eventstore/event.h"
#include "eventstore/event_codec.h"

namespace rocksdb {
class Env;
}

namespace passage::projections {

struct projection_error {
  std::string message;
};

// Thrown by a query that meets a row it cannot read (a damaged read-model folder). The
// query answers nothing rather than an answer without that row (an acceptance list short
// of a claim would read as right); the HTTP API answers 500 and logs the message. The
// folder is rebuilt from the log by `passage replay`.
struct unreadable_row : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A query argument the read models cannot use (an unparsable cursor, ...).
struct query_error {
  std::string field;  // "cursor", "limit", ...
  std::string message;
};

// ---------------------------------------------------------------------------------------
// Views: plain values copied out of the read models.

struct organization_view {
  uuid org_id;
  std::string name;
  domain::lead_form lead_form;
  timestamp created_at{};
};

struct track_view {
  uuid org_id;
  std::string track_id;
  std::string title;
  bool pausable = false;
  std::optional<uuid> owner;  // API key id of the owning professor
  timestamp registered_at{};
  timestamp updated_at{};
};

struct api_key_view {
  uuid org_id;
  uuid key_id;
  domain::role role = domain::role::admin;
  std::string name;
  std::string key_hash;  // lower-case hex SHA-256
  bool revoked = false;
  timestamp issued_at{};
  std::optional<timestamp> revoked_at;
  std::optional<std::string> email;  // contact address for claim digests
};

// Where an invite code leads.
struct invite_ref {
  uuid org_id;
  uuid invite_id;
};

struct invite_view {
  uuid org_id;
  uuid invite_id;
  std::string code;
  std::string link;       // "/i/{code}"
  std::uint64_t version;  // the invite stream's version (ETag / If-Match)
  domain::invite_settings settings;
  std::optional<uuid> duplicated_from;
  std::optional<uuid> created_by;  // the API key that created the invite, when recorded
  timestamp created_at{};
  timestamp updated_at{};  // last InviteCreated/Updated/Deactivated/Reactivated/Deleted
  bool deactivated = false;
  bool deleted = false;
  // Computed at query time from the stored inputs and `now` (domain::status_at).
  domain::status_view status;
  std::int64_t claims_count = 0;
  std::optional<std::int64_t> remaining_spots;  // nullopt: unlimited
  bool share_button_visible = false;            // show_share_button and not expired/full/allowed
};

struct invite_page {
  std::vector<invite_view> invites;
  std::optional<std::string> next_cursor;  // pass back as invite_query::cursor
};

struct invite_query {
  // Empty: every status except expired and deleted (SPEC §2); otherwise exactly these.
  std::vector<domain::invite_status> statuses;
  std::optional<std::string> track;  // invites listing this track
  std::optional<domain::invite_type> type;
  std::string q;                      // case-insensitive text in the title; "" = any
  std::optional<uuid> owned_by;       // professors: invites whose tracks are all its own
  std::size_t limit = 50;             // Default: 50; clamped to [1, max_page_size]
  std::optional<std::string> cursor;  // from invite_page::next_cursor
};
inline constexpr std::size_t max_page_size = 500;

// How long after an invite's creation its claims came (claimed_at - created_at), in
// seconds. Percentiles are nearest-rank over every claim.
struct claim_delay_stats {
  std::int64_t count = 0;
  std::int64_t min_seconds = 0;
  std::int64_t median_seconds = 0;
  std::int64_t p90_seconds = 0;
  std::int64_t max_seconds = 0;
};

// Claims counted per UTC hour or day; keys are the bucket's start, RFC 3339
// ("2026-11-20T09:00:00Z").
enum class claim_bucket { hour, day };
using claim_counts = std::map<std::string, std::int64_t>;

struct usage_view {
  uuid invite_id;
  std::int64_t claims = 0;
  std::int64_t unique_learners = 0;
  std::int64_t anonymous_claims = 0;
  std::int64_t rejections = 0;
  std::int64_t plays = 0;
  std::map<std::string, std::int64_t> plays_per_track;  // every track of the invite, 0 if unplayed
  std::optional<std::int64_t> remaining_spots;          // nullopt: unlimited
  std::map<std::string, std::int64_t> claims_per_day;   // "YYYY-MM-DD" (UTC) -> claims
  claim_counts claims_per_hour;                         // hour start (RFC 3339) -> claims
  std::optional<claim_delay_stats> time_to_claim;       // nullopt: no claims yet
};

// Claims of one organization over time (GET /v1/claims/history).
struct claim_history_query {
  claim_bucket bucket = claim_bucket::day;  // Default: day
  std::optional<timestamp> since;           // claimed_at >= since
  std::optional<timestamp> until;           // claimed_at < until
};

struct invite_claim_history {
  uuid invite_id;
  std::string title;
  std::int64_t claims = 0;  // within [since, until)
  claim_counts buckets;
};

struct claim_history_view {
  uuid org_id;
  claim_history_query query;
  std::int64_t claims = 0;
  claim_counts buckets;                       // the whole org
  std::vector<invite_claim_history> invites;  // invites with claims in range, newest first
  std::optional<claim_delay_stats> time_to_claim;
};

// Personal data of a row as shown: decrypted, or forgotten.
struct shown_person {
  bool forgotten = false;
  std::string email;  // "" when anonymous, not given, or forgotten
  std::string first_name;
  std::string last_name;
};

struct acceptance_row {
  uuid claim_id;
  uuid learner_id;
  bool anonymous = false;
  timestamp claimed_at{};
  std::optional<timestamp> access_expires_at;
  shown_person who;  // who.email: the email used to claim
  std::uint64_t position = 0;
  std::int64_t seconds_since_invite_created = 0;
};

struct rejection_row {
  domain::rejection_reason reason = domain::rejection_reason::not_allowed;
  std::optional<uuid> learner_id;
  bool anonymous = false;
  timestamp rejected_at{};
  shown_person who;
  std::uint64_t position = 0;
};

struct lead_row {
  uuid learner_id;
  std::optional<uuid> invite_id;
  timestamp captured_at{};
  shown_person who;
  std::map<std::string, std::string> answers;  // empty when forgotten
  std::uint64_t position = 0;
};

struct track_access_view {
  std::string track_id;
  bool pausable = false;
  std::optional<timestamp> access_expires_at;  // nullopt: forever
  std::int64_t plays_used = 0;
  std::optional<std::int64_t> plays_remaining;  // nullopt: unlimited
  bool paused = false;
};

struct claim_access_view {
  uuid org_id;
  uuid invite_id;
  uuid claim_id;
  uuid learner_id;
  bool anonymous = false;
  timestamp claimed_at{};
  std::optional<timestamp> access_expires_at;
  bool access_expired = false;  // at the `now` of the query
  std::vector<track_access_view> tracks;
};

struct learner_view {
  uuid org_id;
  uuid learner_id;
  timestamp registered_at{};
  bool lead_submitted = false;
  bool forgotten = false;
  std::vector<uuid> claims;  // in claim order
};

// One audited fact about a learner (GET /v1/learners/{id}/history).
enum class learner_fact { claimed, rejected, played, paused, resumed };

struct learner_history_entry {
  learner_fact fact = learner_fact::claimed;
  timestamp at{};  // claimed_at, rejected_at, played_at, ...
  std::uint64_t position = 0;
  uuid invite_id;
  std::optional<uuid> claim_id;                    // claims and plays
  std::string track_id;                            // plays, pauses, resumes
  std::int64_t play_number = 0;                    // plays
  std::optional<domain::rejection_reason> reason;  // rejections
  shown_person who;                                // claims and rejections: the email used
};

struct learner_history_view {
  uuid org_id;
  uuid learner_id;
  std::optional<timestamp> registered_at;  // nullopt: never registered (anonymous)
  bool forgotten = false;
  std::int64_t claims = 0;
  std::int64_t rejections = 0;
  std::int64_t plays = 0;
  std::vector<learner_history_entry> entries;  // in log order
};

// What the command side needs about the learner behind an email (claim_invite facts).
struct learner_ref {
  uuid learner_id;
  bool lead_submitted = false;
};

// ---------------------------------------------------------------------------------------

struct read_models_options {
  // RocksDB folder of the read models (not the event log's). Required.
  std::string path;
  // Keep the folder in memory only (a RocksDB memory Env): scratch read models for
  // point-in-time answers. Default: false.
  bool in_memory = false;
  // Write every applied batch to the folder's write-ahead log and fsync it. Default: false:
  // no write-ahead log at all. Changes and checkpoint share one atomic WriteBatch and reach
  // the folder's files together when the memtable is flushed (at the latest on close), so
  // a crash, of the process or the OS, only loses the tail since the last flush, which is
  // re-applied from the log (the server waits for that before it serves).
  bool sync = false;
  // A folder written in another record format (by an older or newer Passage): when set,
  // the folder is wiped and this is told the format found, so the read models rebuild
  // from position 0 as the projector catches up (the log is the source of truth). Unset:
  // open() refuses such a folder with format_advice.
  std::function<void(std::string_view found_format)> on_format_change;
  // What the refusal of a folder in another record format tells the user to do: a
  // replica has no log to replay and says how it re-consumes instead.
  std::string format_advice = "rebuild with `passage replay`";
  // Bulk load (set_bulk_load): bytes of rows gathered in memory before they are sorted and
  // written as one run file. Bigger: fewer files for the load's final merge to read at
  // once, more memory. Default: 64 MiB.
  std::size_t bulk_run_bytes = 64u << 20;
  // The RocksDB Env the folder's files go through (tests inject faults with it); it must
  // outlive the read models. Default: RocksDB's own.
  rocksdb::Env* env = nullptr;
};

// Progress of apply(): events applied so far.
struct apply_stats {
  std::uint64_t events = 0;
  std::uint64_t batches = 0;
};

// Owned by the application (one per read-model folder). Query methods are const and safe
// from any thread, concurrently with the projector. apply() is for the projector and
// rebuild() only: one thread at a time.
class read_models {
 public:
  // Opens (creating if needed) the folder and loads its state. `codec` decrypts personal
  // data at query time; it must outlive the read models.
  static result<std::unique_ptr<read_models>, projection_error> open(
      const read_models_options& options, const eventstore::event_codec& codec);
  // Whether `path` may take read models without harm to anything else: it does not exist,
  // is an empty folder, or holds read models (of any record format). Otherwise the error
  // says what it is instead. Only reads (a read-only open, safe beside a running server).
  static result<void, projection_error> check_folder(const std::string& path);
  // Writes what the folder holds only in memory (without sync, every batch since the
  // last flush) to its files and closes it; a failure is returned rather than lost in the
  // destructor (what feeds them, the log or a replica's Kafka topic, gives the lost tail
  // back from their checkpoint at the next start, but an operator should hear of a disk
  // that fails). Only once nothing else uses the read models (projector
  // stopped, no queries running); afterwards only applied_position() and destruction.
  // Destroying unclosed read models closes them too, failures unreported.
  result<void, projection_error> close();
  ~read_models();
  read_models(const read_models&) = delete;
  read_models& operator=(const read_models&) = delete;

  // --- consistency -----------------------------------------------------------------------

  // The log position of the last event applied (0: none).
  std::uint64_t applied_position() const;
  // Runs `fn` once `position` has been applied: at once on the caller's thread if it has
  // been already, else on the projector's thread right after the batch that applies it
  // (so `fn` must be quick). Callbacks still pending when the read models are destroyed
  // are dropped without running.
  void when_applied(std::uint64_t position, std::function<void()> fn);

  // --- organizations, tracks, keys -------------------------------------------------------

  std::optional<organization_view> organization(const uuid& org_id) const;
  std::vector<organization_view> organizations() const;
  // The org's lead form (empty form for an unknown org).
  domain::lead_form lead_form(const uuid& org_id) const;

  std::vector<track_view> tracks(const uuid& org_id) const;  // by track id
  std::optional<track_view> track(const uuid& org_id, std::string_view track_id) const;
  // The org's tracks as create_invite / update_invite want them.
  domain::track_catalog track_catalog(const uuid& org_id) const;

  std::optional<api_key_view> api_key_by_hash(std::string_view key_hash) const;
  std::optional<api_key_view> api_key(const uuid& org_id, const uuid& key_id) const;
  std::vector<api_key_view> api_keys(const uuid& org_id) const;  // in issue order

  // --- invites -----------------------------------------------------------------------------

  std::optional<invite_ref> invite_by_code(std::string_view code) const;
  // nullopt when the invite does not exist or belongs to another org.
  std::optional<invite_view> invite(const uuid& org_id, const uuid& invite_id, timestamp now) const;
  // Newest first.
  result<invite_page, query_error> list_invites(const uuid& org_id, const invite_query& query,
                                                timestamp now) const;
  std::optional<usage_view> usage(const uuid& org_id, const uuid& invite_id) const;
  // Claims of the org per hour or day, in total and per invite, with time-to-claim stats.
  claim_history_view claim_history(const uuid& org_id, const claim_history_query& query) const;
  // Claims in claim order; nullopt for an unknown invite. Answers as of an earlier
  // instant: point_in_time.h. These row queries (acceptances, rejections, learner history,
  // leads) throw unreadable_row for a row they cannot read.
  std::optional<std::vector<acceptance_row>> acceptance_list(const uuid& org_id,
                                                             const uuid& invite_id) const;
  std::optional<std::vector<rejection_row>> rejections(const uuid& org_id,
                                                       const uuid& invite_id) const;

  // --- learners ----------------------------------------------------------------------------

  // A claim with its tracks, access expiry and plays left at `now` (learner endpoints).
  std::optional<claim_access_view> claim_access(const uuid& claim_id, timestamp now) const;
  // The claim's InviteClaimed without personal data: seeds the claim aggregate
  // (domain::evolve(claim_state{}, *seed)) for play, pause and resume decisions.
  std::optional<domain::invite_claimed> claim_seed(const uuid& claim_id) const;
  std::vector<claim_access_view> learner_claims(const uuid& org_id, const uuid& learner_id,
                                                timestamp now) const;
  std::optional<learner_view> learner(const uuid& org_id, const uuid& learner_id) const;
  // By keyed email hash: event_codec::email_subject(org_id, email). Forgotten learners are
  // not found (a later claim with that email starts a new learner).
  std::optional<learner_ref> learner_by_email(const uuid& org_id,
                                              std::string_view email_subject) const;
  // Every claim, rejection, play, pause and resume of the learner, across the org's
  // invites, in log order; nullopt for a learner unknown in this org.
  std::optional<learner_history_view> learner_history(const uuid& org_id,
                                                      const uuid& learner_id) const;

  // The keyed email hash (event_codec::email_subject) the learner registered with;
  // nullopt when unknown or forgotten. A replica reads it to forget the email's keys
  // before it applies LearnerForgotten.
  std::optional<std::string> learner_email_subject(const uuid& learner_id) const;
  // LeadCaptured rows of the org, oldest first.
  std::vector<lead_row> leads(const uuid& org_id) const;

  // --- feeding (projector and rebuild only) -----------------------------------------------

  // Decodes and applies events in position order, then writes the changes and the new
  // checkpoint in one WriteBatch. Events at or below applied_position() are skipped.
  result<void, projection_error> apply(std::span<const eventstore::recorded_event> batch);

  // apply() in two halves (decode_event per event, then apply), so that a rebuild decodes
  // on other threads than the one that applies. decode_event() may run on any thread,
  // concurrently with apply(): it reads no state. Per event, what applying it needs decoded
  // (empty for events that only move an invite's version).
  struct decoded_entry {
    std::optional<eventstore::decoded_event> event;
    // A LearnerRegistered with an email and no forgotten personal data: its keyed email
    // hash's 32 bytes (event_codec::email_hash) for the email index, none otherwise. The
    // HMAC is taken while decoding, so that the applying thread (the one that bounds a
    // rebuild's time) only stores it; as bytes, so that neither thread writes or reads
    // its hex or allocates for it.
    std::optional<std::array<std::uint8_t, 32>> email_hash;
    // The invite whose stream ("invite-<id>") holds the event, whose version it moves:
    // read from the stream name while decoding, off the applying thread.
    std::optional<uuid> invite_stream;
  };
  using decoded_batch = std::vector<decoded_entry>;
  // Fills `out` (its storage reused) for `e`; the error names the event when it does not
  // decode. A rebuild decodes each event right after the log's record, while both are in
  // the processor's cache.
  result<void, projection_error> decode_event(const eventstore::recorded_event& e,
                                              decoded_entry& out) const;
  // Wipes in place what `d` holds that must not outlive its batch: decrypted personal data
  // is zeroed and emptied (its buffers stay for the next decode to reuse); the email hash
  // is zeroed and reset; an
  // invite's settings (InviteCreated/Updated: maybe thousands of allowed emails) are
  // dropped. The live path does so after each batch; a rebuild too.
  static void wipe_decoded(decoded_entry& d);
  // apply() of a batch decode_event() filled `decoded` for (the same events, in order).
  result<void, projection_error> apply(std::span<const eventstore::recorded_event> batch,
                                       decoded_batch& decoded);
  // Rebuild only. While on, applied batches write no records and no checkpoint: rows are
  // gathered in memory and written beside the folder's files a sorted run at a time (no
  // write-ahead log, memtable or flush), and row queries miss the load's rows until it
  // ends. Turning it off merges the runs into the folder's final files, writes every
  // record and the checkpoint (one file, in key order) and ingests them all at once. A
  // crash meanwhile leaves the folder as before the load (checkpoint 0 after clear()); its
  // files are deleted when the folder is next opened. A load that fails to write rows (in
  // apply() or at its end) is abandoned the same way: memory goes back to the folder's
  // checkpoint and apply() and set_bulk_load(false) keep failing until clear() or a new
  // load.
  result<void, projection_error> set_bulk_load(bool on);
  // Drops every read model and the checkpoint (back to position 0).
  result<void, projection_error> clear();
  // Rebuild only, after clear() and before the first apply(): sizes the tables with an
  // entry per learner or claim (and the email index) once for a log of `events` events
  // (reserved_entries_for_log), instead of growing them a doubling at a time (each one
  // zeroes a table twice the size, page fault by page fault, and rehashes into it). Past
  // the estimate they grow as before.
  void reserve_for_log(std::uint64_t events);
  // Learners (and claims) reserve_for_log sizes the tables for: one per
  // events_per_learner_estimate events, at most max_reserved_entries (tables of 2^22
  // slots: ~200 MiB for the email index and 32 MiB for each uuid_map, what a log of ~10 M
  // events grows them to anyway), so that a huge log reserves no more up front.
  static constexpr std::uint64_t events_per_learner_estimate = 4;
  static constexpr std::size_t max_reserved_entries = std::size_t{3} << 20;
  static std::size_t reserved_entries_for_log(std::uint64_t events);
  // Rebuild only: the codec's key store reads every learner's key at once for the
  // rebuild's one pass over the log (key_store::preload: whether it did), until
  // end_preload_keys().
  bool preload_keys();
  void end_preload_keys();

  // Tests only, with no apply() under way: the entries apply() keeps between batches to
  // decode into, and how many of them still hold personal data (a non-empty
  // personal_data block or email hash) or an invite's settings (InviteCreated/Updated).
  struct kept_decoded_counts {
    std::size_t entries = 0;
    std::size_t with_personal_data = 0;
    std::size_t with_invite_settings = 0;
  };
  kept_decoded_counts kept_decoded_for_test() const;

  struct state;  // internal

 private:
  explicit read_models(std::unique_ptr<state> s);
  // The write half of apply(): `todo` holds no event at or below applied_position().
  result<void, projection_error> apply_decoded(std::span<const eventstore::recorded_event> todo,
                                               std::span<decoded_entry> decoded);
  std::unique_ptr<state> state_;
};

}  // namespace passage::projections
