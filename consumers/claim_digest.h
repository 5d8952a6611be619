#pragma once
// Claim digests: the mail that tells an invite's creator who claimed it (opt-in per invite,
// `notify_on_claim`). Part of the mailer: it sees the invite's InviteCreated / InviteUpdated
// / InviteClaimed events on the mailer's subscription and sends from the mailer's
// reminder thread, through the mailer's transport, keeping its state in the mailer's
// RocksDB:
//
//   c:<invite id><position>  a claim (the InviteClaimed at that position) in the open batch
//   b:<invite id>            the open batch: org and when it is due (JSON)
//   w:<invite id>            the start of the last digest's window (JSON)
//   o:<digest id>            a digest's outcome not yet in the log (JSON)
//   l:<digest id>            ledger: the digest went out (or failed for good)
//   h:<invite id>            the highest claim position a digest of the invite handled
//                            (sent, failed or dropped; 8 bytes big-endian)
//
// At most one mail per window per invite: the first claim after a quiet window is due at
// once and opens a window of `window` from when it is due; claims within it wait in the
// batch until it closes, then go out as one digest, which opens the next window. A claim
// joins the batch in the same write that moves the mailer's checkpoint past it, and a
// digest's ledger entry, its outcome, the batch's removal and the new window are one
// synced write, so a restart neither loses nor repeats a claim. While a run of welcome
// mails is pending, the claim's write carries the checkpoint from before the run, so a
// crash can make the mailer read a claim again after its digest went out: `h:` (written
// with the digest) keeps it out of a second batch. The digest's id is derived
// from the invite id and the window start (`derived_id`), and so are its Message-ID and
// its EmailSent / EmailFailed (stream job-<derived_id(invite, "claim-digest")>).
//
// The batch keeps positions only: names and emails of claimants (personal data) are read
// and decrypted when the digest is rendered, and a learner forgotten meanwhile shows as
// "forgotten learner". A digest kept in the outbox (.eml) that names a learner forgotten
// later is deleted whole by the mailer's outbox index (mailer.h): the staff's copy
// elsewhere is out of reach, the node keeps none with the name or address. The recipient is the
// contact email of the API key that created the invite (as last set: ApiKeyIssued, then any
// ApiKeyEmailChanged), read from the organization's stream at send time: a revoked key or one
// without email gets no mail (EmailFailed "no recipient"). An invite whose notify_on_claim was
// turned off before its batch was due sends nothing for that batch.
//
// Should the state folder be lost, the mailer reads the log from the start; the last
// digest outcome of each invite in the log then marks the claims already reported, so
// past claims are not reported again (a claim that was still waiting in a batch when the
// folder was lost, recorded before that outcome, is the one that can go unreported).

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/uuid.h"
#include "consumers/mail_message.h"
#include "eventstore/event_codec.h"
#include "eventstore/event_store.h"

namespace rocksdb {
class DB;
class WriteBatch;
}  // namespace rocksdb

namespace passage::consumers {

// What sending one mail came to (after the mailer's retries).
struct digest_delivery {
  bool sent = false;
  std::string error;
  timestamp at{};
};

// An address a mail names (its recipient, a claimant a digest lists), as its email subject
// (event_codec::email_subject: a keyed hash), and the log position of the event that put
// it into the mail. The mailer indexes kept copies (.eml) by it, for forgetting.
struct named_address {
  std::string subject;
  std::uint64_t position = 0;
};

struct claim_digest_options {
  // Length of a digest window. Default: 15 min.
  std::chrono::milliseconds window{15 * 60 * 1000};
  std::string from;           // the From header
  std::string templates_dir;  // per-org overrides of `claim_digest.*`; "" = built-in
  // The state store was empty at start (first run, or `data/mailer` lost): the log is read
  // from the start, and claims older than an invite's last digest outcome in the log are
  // taken as reported already. Default: false.
  bool fresh_state = false;
};

// Owned by the mailer. on_event() is called from the subscription thread in log order;
// send_due() from the reminder thread; both may run at once (a mutex orders their state
// writes).
class claim_digest {
 public:
  // Sends one rendered mail with the mailer's retries, indexed under the claimants it
  // names; nullopt when stopping interrupted it.
  using send_fn = std::function<std::optional<digest_delivery>(
      const mail_message&, const std::vector<named_address>& named)>;
  // Appends an outcome event with retries; false when stopping interrupted it.
  using append_fn = std::function<bool(const std::string& stream, eventstore::new_event e)>;

  claim_digest(eventstore::event_store& store, const eventstore::event_codec& codec,
               rocksdb::DB& db, const passage::clock& clk, claim_digest_options options,
               send_fn send, append_fn append);

  // Whether the mailer must pass events of this type to on_event().
  static bool wants(std::string_view type);
  // Follows the invite's settings; adds a claim of an opted-in invite to its batch. The
  // claim is written together with `with` (the mailer's checkpoint past it). False when
  // the state write failed.
  bool on_event(const eventstore::recorded_event& rec, rocksdb::WriteBatch& with);
  // Sends every digest due by now; false when stopping interrupted it or the log could not
  // be read (the batches wait for the next call).
  bool send_due();

  // Digests whose mail went out and whose EmailSent is in the log, since start.
  std::uint64_t digests_sent() const { return sent_; }
  std::uint64_t claims_batched() const { return batched_; }
  std::uint64_t batches_dropped() const { return dropped_; }

 private:
  struct invite_facts {
    bool known = false;
    bool notify = false;
    std::optional<uuid> created_by;
    std::string title;
    std::string public_description;
    bool deleted = false;
    // fresh_state only: claims before this position were covered by earlier digests.
    std::uint64_t reported_before = 0;
  };
  // Both fail when the log cannot be read: the caller keeps what it has and tries again
  // (a partial read would turn a readable invite or key into "no digest" or "no recipient").
  eventstore::store_result<invite_facts> load_facts(const uuid& invite_id,
                                                    std::uint64_t up_to_version);
  eventstore::store_result<std::optional<std::string>> recipient(const uuid& org_id,
                                                                 const std::optional<uuid>& key_id);
  // One claim as the digest lists it; a claimant named by address is added to `named`.
  std::string claim_line(const eventstore::recorded_event& rec, bool html,
                         std::vector<named_address>* named);
  bool send_batch(const uuid& invite_id, const uuid& org_id, timestamp due);
  bool flush_outcomes();

  eventstore::event_store& store_;
  const eventstore::event_codec& codec_;
  rocksdb::DB& db_;
  const passage::clock& clk_;
  claim_digest_options opt_;
  send_fn send_;
  append_fn append_;

  std::mutex mu_;  // orders batch reads and writes of the two threads
  // The settings of invites as of the subscription's position (subscription thread only).
  std::map<uuid, invite_facts> facts_;
  std::atomic<std::uint64_t> sent_{0}, batched_{0}, dropped_{0};
};

}  // namespace passage::consumers
