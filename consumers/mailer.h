#pragma once
// The mailer: sends the private invitations recorded in the log (PrivateInvitationSent),
// one mail per event, and records each outcome as EmailSent or EmailFailed in the job's
// stream (job-<id>). It reads a catch-up subscription from its checkpoint and keeps its
// own RocksDB (`data/mailer`):
//
//   m:cp              checkpoint: the last position fully handled (8 bytes big-endian)
//   l:<event id>      sent-ledger: the outcome of the mail for that event (JSON)
//   j:<job id>        job status: org, invite, total, sent, failed (JSON)
//   d:<job id><event id>  dead letter: a mail given up after max_attempts (JSON, no address)
//   a:<email subject>|<message id>  outbox index: a mail kept by the transport (.eml) names
//                     that address (its recipient, or a claimant a digest lists); value:
//                     the log position of the newest event that put it there (8 bytes)
//   s:<learner id>    the learner's email subject (from LearnerRegistered), so that
//                     LearnerForgotten alone finds the learner's mails
//   m:learners        "1" while `s:` knows every learner registered up to the checkpoint;
//                     registrations are read only with .eml (SMTP keeps no copies), so a
//                     start with .eml over a state without it (one that ran with SMTP)
//                     fills `s:` from the log's LearnerRegistered first; SMTP removes it
//   m:logged          the log's head when the state was made: only events up to it may
//                     have outcome events in the log but no ledger entry (a lost state)
//   m:format          "2": the state has the outbox index above. A state without it (the
//                     build before kept `o:<learner id><message id>` and left other copies
//                     unindexed) is upgraded once on start: the outbox copies are indexed
//                     through their EmailSent events in the log (a digest's claimants from
//                     its text), `s:` from LearnerRegistered, `o:` dropped, in one write
//
// An email subject is event_codec::email_subject(org, email): a keyed hash, never the
// address itself.
// Exactly one delivery per event id: the ledger entry is written (fsync) as soon as the
// transport accepted the mail, before the outcome event is appended; a re-delivered event
// with a ledger entry is not sent again, only its outcome event re-appended (its event id
// is derived from the source event's, so the store keeps the first). The one window left is
// a crash between the SMTP server's "250" and the ledger write; the Message-ID (also
// derived from the event id) lets a receiver drop that duplicate. Welcome mails go in runs
// (one per subscription batch, so the mailer keeps up with one per claim): the run's mails
// are rendered as the batch is read, indexed in one write and sent, then their ledger
// entries written in one synced write, then their outcome events appended in one append;
// the window above then spans the run. Should the state folder
// be lost, the outcome events already in the log stand in for the ledger (read once per
// job), so mails that went out do not go out again and the job counters are rebuilt.
//
// Failures are retried with exponential backoff, in log order (a failing mail holds the
// ones after it); after max_attempts the mail is dead-lettered and counted as failed.
// Learners forgotten (SPEC §6) before their mail went out get no mail: the event decodes
// as forgotten and is recorded as EmailFailed without personal data. Forgetting removes
// every outbox copy (.eml) naming the learner's address, through one index by email
// subject (`a:`): invitations and reminders to the address (also those sent before it
// was a learner's), welcome mails, and claim digests that list the learner (a digest is
// the staff's mail, but its copy would keep the name and address: it is deleted whole).
// Only a transport that keeps copies (.eml) is indexed: SMTP keeps none, so nothing grows.
// A purge deletes from the outbox folder (`outbox_path`) whatever the transport, so the
// indexed copies kept before the node switched from .eml to SMTP go too.
// The purge runs when the command side forgets the learner (forget_email, forget_learner)
// and again when the mailer reaches LearnerForgotten in the log, so a crash in between
// cannot leave copies behind; on that replay it spares mails of events after the
// LearnerForgotten (a new learner may use the address since).
//
// Reminders (opt-in per send, `remind_at` in the event): once the invitation mail went
// out, `r:<due><event id>` waits in the state store; a thread looks for due ones every
// `reminder_poll` and sends a reminder (template kind `reminder`, same personal link) only
// if the invite still takes claims, the link is still current and nobody claimed with
// the address. Its outcome is an EmailSent / EmailFailed in the job's stream with ids
// derived from the invitation event (kind "reminder"), ledgered like the invitation.
//
// Welcome mails (welcome_mail.h, when `password_link` is set): one per PasswordSetupIssued,
// with the one-time set-password link, ledgered under the event id like an invitation;
// its outcome is an EmailSent / EmailFailed in the stream job-<setup id>. A learner
// forgotten before the mail went out gets none (EmailFailed without personal data).
// A claim brings a registration and its welcome mail in one append, so the per-mail work
// stays in the subscription's batch. A claim's PasswordSetupIssued carries the first name
// the registration gave, when it gave one. A claim's mail read right after its
// registration is not looked up further: it carries the registration's address and first
// name (none if it gave none). Another mail without one (a link sent again) takes it from
// the registration read in the same batch, which the mailer reads only with a transport
// that keeps copies (.eml; else, and for a registration in an earlier batch, it reads the
// learner's stream). With .eml the registrations' `s:` entries are written once per batch
// (before a LearnerForgotten is handled and before the checkpoint passes them; a claim's
// mail writes its learner's), and a sent copy is checked against the log for a racing
// forget only when a purge or a key destruction (keys_being_destroyed()) began since the
// batch was read.
// Claim digests (opt-in per invite, `notify_on_claim`): see claim_digest.h. The mailer
// passes them the invite events it reads and lets the reminder thread send the due ones.
//
//   mailer m(store, codec, std::move(transport), {.state_path = "data/mailer",
//             .personal_link = [](auto code, auto& invite, auto& inv) { return url; }});
//   m.start();  ...  m.job(org, job_id);  ...  m.stop();

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "common/uuid.h"
#include "consumers/errors.h"
#include "consumers/mail_transport.h"
#include "eventstore/event_codec.h"
#include "eventstore/event_store.h"

namespace passage::consumers {

struct mailer_options {
  // Folder of the mailer's RocksDB (checkpoint, ledger, jobs, dead letters). Required.
  std::string state_path;
  // The From header. Default: "Passage <no-reply@passage.invalid>".
  std::string from = "Passage <no-reply@passage.invalid>";
  // The full URL of an invitation's personal link, from the invite's code and ids. Required.
  std::function<std::string(std::string_view code, const uuid& invite_id,
                            const uuid& invitation_id)>
      personal_link;
  // The full URL of a welcome mail's one-time set-password link, from the learner and
  // setup ids. Default: none (no welcome mails are sent).
  std::function<std::string(const uuid& learner_id, const uuid& setup_id)> password_link;
  // Per-organization templates (`<dir>/<org id>/<kind>.subject|.txt|.html`).
  // Default: "" (the built-in ones).
  std::string templates_dir;
  // The folder an eml transport keeps (or kept) its .eml copies in. Forgetting removes the
  // indexed copies there whatever the transport, so those written before the node
  // switched from .eml to SMTP go too (SPEC §6). Default: "" (only the transport's own).
  std::string outbox_path;
  // Attempts per mail before it is dead-lettered. Default: 8.
  int max_attempts = 8;
  // Backoff between attempts: doubles from initial up to max. Defaults: 1 s, 5 min.
  std::chrono::milliseconds initial_backoff{1000};
  std::chrono::milliseconds max_backoff{300'000};
  // After a read of the log that found welcome mails and less than a full batch (the
  // mailer caught up), how long it waits before reading again: under load the next read
  // then finds the welcome mails of many claims, sent as one run (one index write, one
  // synced ledger write, one log commit), instead of the few of each log commit. A mail
  // that comes while the mailer waits on the log goes at once; later ones wait at most
  // this. Other reads are not followed by a wait. 0: no wait. Default: 200 ms.
  std::chrono::milliseconds batch_delay{200};
  // How often due reminders and claim digests are looked for. Default: 30 s.
  std::chrono::milliseconds reminder_poll{30'000};
  // At most one claim digest per invite per window of this length. Default: 15 min.
  std::chrono::milliseconds claim_digest_window{15 * 60 * 1000};
  // Source of sent_at / failed_at and of "now" for reminders. Default: nullptr = the
  // system clock.
  const passage::clock* clock = nullptr;
};

struct dead_letter_view {
  uuid event_id;  // the PrivateInvitationSent event
  uuid invitation_id;
  std::string error;
  int attempts = 0;
  timestamp failed_at{};
};

struct email_job_view {
  uuid job_id;
  uuid org_id;
  uuid invite_id;
  std::int64_t total = 0;
  std::int64_t sent = 0;
  std::int64_t failed = 0;
  std::int64_t processed() const { return sent + failed; }
  // "started" while mails are pending, "complete" when all went out, "error" when all were
  // handled and some failed (see dead_letters).
  std::string status() const;
  std::vector<dead_letter_view> dead_letters;
};

// Each counter moves once what it counts is in the log (the outcome event appended), so
// `sent` never exceeds the EmailSent events a reader finds right after.
struct mailer_stats {
  std::uint64_t checkpoint = 0;
  std::uint64_t sent = 0;               // since start
  std::uint64_t failed = 0;             // since start
  std::uint64_t attempts_failed = 0;    // transport errors, retried or not
  std::uint64_t reminders_sent = 0;     // since start (sent or failed after retries)
  std::uint64_t reminders_skipped = 0;  // since start: claimed, replaced link, closed invite
  std::uint64_t digests_sent = 0;       // since start
  std::uint64_t digest_claims = 0;      // since start: claims added to a digest batch
  std::uint64_t digests_skipped = 0;    // since start: batches of invites that opted out
  std::uint64_t outbox_upgraded = 0;    // at this start: copies indexed by the upgrade
  // Since start: times the mailer started reading again after a failure ended it (a read of
  // the log or a write of its state failed), at the next reminder poll.
  std::uint64_t restarts = 0;
};

// Owned by the app. start()/stop() from one controlling thread; job(), register_job() and
// stats() from any thread. Mails are sent on the subscription's thread and the reminder
// thread, both at the lowest CPU priority (eventstore::run_this_thread_in_background()).
class mailer {
 public:
  mailer(eventstore::event_store& store, const eventstore::event_codec& codec,
         std::unique_ptr<mail_transport> transport, mailer_options options);
  ~mailer();
  mailer(const mailer&) = delete;
  mailer& operator=(const mailer&) = delete;

  result<void, consumer_error> start();
  // Interrupts a backoff wait; the mail being retried is retried after the next start.
  void stop();

  // Records a job the command side just wrote, so its status is readable before the
  // mailer reaches its events. Idempotent; the mailer records it too when it gets there.
  result<void, consumer_error> register_job(const uuid& job_id, const uuid& org_id,
                                            const uuid& invite_id, std::int64_t total);
  // The job of `org_id` (nullopt: unknown, or another organization's).
  std::optional<email_job_view> job(const uuid& org_id, const uuid& job_id) const;
  mailer_stats stats() const;
  std::string transport() const;
  // A learner was just forgotten (SPEC §6): the transport's copies of mails naming their
  // address (the .eml files) are removed and no mail goes to them any more. Also done when
  // the mailer reaches LearnerForgotten in the log. Any thread.
  void forget_learner(const uuid& learner_id);
  // The same by address, for the command side, which knows it until the keys are
  // destroyed (the mailer may not have read the learner's registration yet). Only the
  // address's keyed hash is used. Any thread; returns how many copies were removed.
  std::size_t forget_email(const uuid& org_id, std::string_view email);
  // The command side is about to destroy a learner's keys: a mail decoded before and
  // sent after has its copy checked against the log (and discarded if its event then
  // decodes as forgotten), also should the forget fail after destroying only some keys
  // (then no purge follows to mark the race; see send_indexed() in mailer.cc). Any thread.
  void keys_being_destroyed();

  struct state;

 private:
  std::unique_ptr<state> s_;
};

// The id of the mail (and of its outcome event) for a source event: a name-based UUID
// (SHA-256 of "passage.mail|<event id>|<kind>", version 8), the same on every run.
uuid derived_id(const uuid& event_id, std::string_view kind);
// The same for the kind `kind` followed by `suffix` ("welcome" "-outcome"), hashed as they
// are: no text is built to join them.
uuid derived_id(const uuid& event_id, std::string_view kind, std::string_view suffix);

// A mail's ledger entry (`l:<id>` in the mailer's state): {"at":…,"attempts":…,"error":…,
// "forgotten":…,"sent":…}, byte for byte as nlohmann::json dumps that object (keys
// sorted). Here for its test.
std::string ledger_entry_json(bool sent, const std::string& error, int attempts,
                              std::int64_t at_micros, bool forgotten);

// A run of welcome mails is ledgered with one record, `w:` + the big-endian position of its
// last mail, instead of an `l:<event id>` entry per mail (the states of older builds keep
// theirs, and are still read): per mail its event's position and id and its outcome.
struct welcome_ledger_entry {
  std::uint64_t position = 0;
  uuid event_id;
  bool sent = false;
  bool forgotten = false;
  int attempts = 0;
  std::int64_t at_micros = 0;
  std::string error;

  friend bool operator==(const welcome_ledger_entry&, const welcome_ledger_entry&) = default;
};
// The record's bytes: u8 version (1), varint count, then per mail u64 position (big-endian),
// 16 bytes of event id, u8 flags (1 sent, 2 forgotten), varint attempts, u64 at (unix
// micros, big-endian, two's complement), varint length and bytes of the error text.
std::string encode_welcome_ledger(const std::vector<welcome_ledger_entry>& mails);
// nullopt for bytes encode_welcome_ledger() did not write (another version, truncated,
// trailing bytes).
std::optional<std::vector<welcome_ledger_entry>> decode_welcome_ledger(std::string_view bytes);

}  // namespace passage::consumers
