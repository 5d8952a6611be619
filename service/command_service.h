#pragma once
// The command side of Passage: every change goes through here. Each command loads
// its aggregate (cached in memory), asks the domain to decide, encodes the events
// and appends them with the aggregate's version as the expectation. Commands on
// one aggregate are decided one after another on the cached state, and their
// appends are pipelined into the store's group commit, so a busy invite takes
// thousands of claims per second without ever exceeding its limit; a conflict
// (a stale cache) is retried inside, never shown to the caller.
//
//   command_service svc(store, codec, facts, clock, options);
//   svc.claim(code, input, meta, [](service_result<claim_result> r) { ... });
//
// Results arrive through callbacks, on the store's writer thread or on the
// caller's; callbacks must be quick and hand real work to an executor.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/uuid.h"
#include "domain/authorization.h"
#include "domain/invite.h"
#include "domain/organization.h"
#include "domain/track.h"
#include "eventstore/event_codec.h"
#include "eventstore/event_store.h"
#include "eventstore/key_store.h"
#include "service/facts.h"
#include "service/learner_token.h"
#include "service/password_setup.h"
#include "service/personal_link.h"
#include "service/service_error.h"

namespace passage::service {

template <typename T>
using callback = std::function<void(service_result<T>)>;

// Who asked, for the event envelope (SPEC §3).
struct request_meta {
  std::string correlation_id;  // the request id
  std::string causation_id;
};

// Where a command's events landed.
struct written {
  std::uint64_t position = 0;  // last position written (0 when nothing was)
  std::uint64_t version = 0;   // the aggregate's version after the command
};

struct invite_written {
  uuid invite_id;
  std::string code;
  written at;
};

struct claim_input {
  std::optional<std::string> email;
  std::string first_name;
  std::string last_name;
  std::map<std::string, std::string> answers;
  // A learner token from an earlier claim: its learner claims again. An anonymous one by the
  // same anonymous id; one registered by email, without `email`, by its registered address.
  std::optional<std::string> learner_token;
};

struct claimed_track {
  std::string track_id;
  bool pausable = false;
  std::optional<timestamp> access_expires_at;
  std::optional<std::int64_t> plays_remaining;  // nullopt: unlimited
};

struct claim_result {
  domain::claim_outcome outcome = domain::claim_outcome::rejected;
  uuid invite_id;
  uuid org_id;
  // claimed / existing:
  std::optional<domain::claim_record> claim;
  std::string learner_token;
  std::vector<claimed_track> tracks;
  // rejected:
  std::optional<domain::rejection_reason> rejection;
  std::string missing_field;
  std::string rejection_detail;
  written at;
};

struct play_result {
  std::string track_id;
  std::optional<std::int64_t> plays_remaining;
  std::optional<timestamp> access_expires_at;
  bool paused = false;
  written at;
};

struct organization_created_result {
  uuid org_id;
  uuid owner_key_id;
  std::string owner_key;  // shown once
  written at;
};

struct api_key_result {
  uuid key_id;
  domain::role role = domain::role::admin;
  std::string name;
  std::string key;  // shown once
  written at;
  std::optional<std::string> email;  // as stored (lower-cased)
};

// A password set through a welcome mail's link; the token logs the learner in at once.
struct password_set_result {
  uuid org_id;
  uuid learner_id;
  std::string learner_token;
  written at;
};

// A learner logging in with the password: the organization by id or by an invite code
// of it (exactly one of the two).
struct login_input {
  std::optional<uuid> org_id;
  std::optional<std::string> code;
  std::string email;
  std::string password;
};

struct login_result {
  uuid org_id;
  uuid learner_id;
  std::string learner_token;
};

// A bulk send of private invitations, recorded (all addresses in one append).
struct invitation_job {
  uuid job_id;
  uuid invite_id;
  uuid org_id;
  std::int64_t total = 0;
  written at;
};

struct command_service_options {
  // Times a command is decided again after a version conflict. Default: 8.
  int max_retries = 8;
  // Aggregates kept in memory; idle ones beyond this are dropped. Default: 100000.
  std::size_t max_cached_aggregates = 100000;
  // Told how long each append took from queueing to fsync (for metrics); runs on
  // the store's writer thread, so it must be quick. Default: none.
  std::function<void(std::chrono::duration<double>)> on_append_latency;
  // Secret that signs personal links (app: derive_key(secret, "personal-link")).
  // Default: "" means a random one for this process (links die with it).
  std::string personal_link_secret;
  // Secret that signs set-password links (app: derive_key(secret, "password-setup")).
  // Default: "" means a random one for this process.
  std::string password_setup_secret;
  // Told before a forget destroys a learner's keys (the mailer then checks the copies of
  // mails it is sending against the log, as a forget that fails midway purges nothing).
  // Default: none.
  std::function<void()> before_keys_destroyed;
  // Told after a forget destroyed a learner's keys, before LearnerForgotten is appended
  // (the Kafka relay then encodes again what it has not delivered). Default: none.
  std::function<void()> after_keys_destroyed;
  // Told the email of a learner being forgotten, after its keys were destroyed, so copies
  // of personal data outside the log (the mailer's .eml outbox) go too. Default: none.
  std::function<void(const uuid& org_id, const std::string& email)> on_email_forgotten;
  // New learners' ids (and their data keys) made ahead of the claims that register them,
  // per synced batch in the background, so those claims' commits need no key fsync
  // (service/learner_ids_ahead.h). 0 disables it. Default: 512.
  std::size_t learner_keys_ahead = 512;
};

// "psk_" + 40 random hex characters, and its lower-case hex SHA-256.
std::string generate_api_key();
std::string hash_api_key(std::string_view key);

// Owned by the app; every method is safe to call from any thread.
class command_service {
 public:
  // `keys` is the codec's key store: forgetting a learner destroys keys in it.
  command_service(eventstore::event_store& store, const eventstore::event_codec& codec,
                  eventstore::key_store& keys, fact_source& facts, const clock& clock,
                  learner_token_codec tokens, command_service_options options = {});
  ~command_service();
  command_service(const command_service&) = delete;
  command_service& operator=(const command_service&) = delete;

  // --- organizations and keys ---
  // Creates the organization with `org_id` unless it exists; the owner key is the
  // given one (or generated). Used at start-up for the default organization.
  service_result<organization_created_result> ensure_organization(
      const uuid& org_id, std::string name, std::optional<std::string> owner_key);
  void create_organization(const domain::principal& who, std::string name, const request_meta& m,
                           callback<organization_created_result> done);
  // `email`: optional contact address of the key's user (claim digests go there).
  void issue_api_key(const domain::principal& who, domain::role role, std::string name,
                     std::optional<std::string> email, const request_meta& m,
                     callback<api_key_result> done);
  void revoke_api_key(const domain::principal& who, const uuid& key_id, const request_meta& m,
                      callback<written> done);
  // Sets or (nullopt) clears the contact email of an active key of the caller's org (owner).
  void change_api_key_email(const domain::principal& who, const uuid& key_id,
                            std::optional<std::string> email, const request_meta& m,
                            callback<written> done);
  void change_lead_form(const domain::principal& who, domain::lead_form form,
                        std::optional<std::uint64_t> if_match, const request_meta& m,
                        callback<written> done);
  service_result<domain::organization_state> organization(const uuid& org_id);
  // Whether the org's key is active and has a contact email (notify_on_claim needs it).
  bool key_has_email(const uuid& org_id, const uuid& key_id);

  // --- tracks ---
  void register_track(const domain::principal& who, std::string track_id, std::string title,
                      bool pausable, const request_meta& m, callback<written> done);
  void update_track(const domain::principal& who, std::string track_id, domain::update_track c,
                    const request_meta& m, callback<written> done);

  // --- invites ---
  void create_invite(const domain::principal& who, domain::invite_draft draft,
                     const request_meta& m, callback<invite_written> done);
  void update_invite(const domain::principal& who, const uuid& invite_id, domain::invite_patch p,
                     std::optional<std::uint64_t> if_match, const request_meta& m,
                     callback<written> done);
  void deactivate_invite(const domain::principal& who, const uuid& invite_id,
                         std::optional<std::uint64_t> if_match, const request_meta& m,
                         callback<written> done);
  void reactivate_invite(const domain::principal& who, const uuid& invite_id,
                         std::optional<std::uint64_t> if_match, const request_meta& m,
                         callback<written> done);
  void delete_invite(const domain::principal& who, const uuid& invite_id,
                     std::optional<std::uint64_t> if_match, const request_meta& m,
                     callback<written> done);
  void duplicate_invite(const domain::principal& who, const uuid& invite_id, const request_meta& m,
                        callback<invite_written> done);
  // Emits InviteExpired once its deadline has passed (the scheduler calls this).
  void expire_invite(const uuid& invite_id, const request_meta& m, callback<written> done);
  // Private invitations (access `allowed` only): records one PrivateInvitationSent per
  // address, all in one append, under a new job id; the mailer sends them. `on_existing`:
  // resend an address's current personal link, or replace it (the old one stops claiming).
  // `remind_after` (opt-in): the mailer reminds addressees who have not claimed by then.
  void send_private_invitations(const domain::principal& who, const uuid& invite_id,
                                std::vector<std::string> emails,
                                domain::on_existing_invitation on_existing,
                                std::optional<domain::access_duration> remind_after,
                                const request_meta& m, callback<invitation_job> done);
  // Authorizes `who` to read the invite (404 across orgs, professor ownership).
  service_result<domain::invite_state> invite_for(const domain::principal& who,
                                                  const uuid& invite_id);

  // --- learners ---
  void claim(std::string code, claim_input input, const request_meta& m,
             callback<claim_result> done);
  // Claim through a personal link (token from personal_link_codec): only for the
  // addressee; once claimed, only that learner's token gets the claim back.
  void claim_by_link(std::string token, claim_input input, const request_meta& m,
                     callback<claim_result> done);
  void play(const uuid& claim_id, std::string_view learner_token, std::string track_id,
            const request_meta& m, callback<play_result> done);
  void pause(const uuid& claim_id, std::string_view learner_token, std::string track_id,
             const request_meta& m, callback<play_result> done);
  void resume(const uuid& claim_id, std::string_view learner_token, std::string track_id,
              const request_meta& m, callback<play_result> done);

  // Crypto-shredding (SPEC §6): destroys the learner's key and every key of their
  // email, then appends LearnerForgotten. Idempotent.
  void forget_learner(const domain::principal& who, const uuid& learner_id, const request_meta& m,
                      callback<written> done);

  // Sets the password through a welcome mail's link (token from password_setup_codec):
  // token_invalid (forged, unknown, forgotten), token_replaced, token_used, token_expired,
  // or invalid_request (field "password") for a password the policy refuses; nothing is
  // stored then. The password is stored only as a slow salted hash, encrypted under the
  // learner's key.
  void set_password(std::string token, std::string password, const request_meta& m,
                    callback<password_set_result> done);
  // A new set-password link for a learner of `who`'s org (owner, admin): the current one
  // stops working and the mailer sends a new welcome mail. forgotten / not_found.
  void issue_password_setup(const domain::principal& who, const uuid& learner_id,
                            const request_meta& m, callback<written> done);
  // invalid_credentials for a wrong password and for an unknown email alike (the same
  // work is done for both); invalid_request when the organization is not named.
  void login(login_input input, callback<login_result> done);

  const learner_token_codec& tokens() const;
  const personal_link_codec& links() const;
  const password_setup_codec& password_setups() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace passage::service
