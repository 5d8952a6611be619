#include "consumers/mailer.h"

#include <pthread.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>

#include "common/encoding.h"
#include "common/hmac.h"
#include "common/record_format.h"
#include "common/uuid_text.h"
#include "consumers/claim_digest.h"
#include "consumers/state_db.h"
#include "consumers/welcome_mail.h"
#include "domain/events.h"
#include "domain/invite.h"
#include "domain/streams.h"
#include "eventstore/subscription.h"

namespace passage::consumers {
namespace {

using nlohmann::json;
namespace d = domain;

constexpr std::string_view checkpoint_key = "m:cp";
// The log's head when this state was made new (8 bytes big-endian): only mails of events up
// to there may have outcome events in the log without a ledger entry (a lost state).
constexpr std::string_view logged_until_key = "m:logged";
// Ledger records of runs of welcome mails: "w:" + BE64 of the run's last position.
constexpr std::string_view welcome_ledger_prefix = "w:";
// The state's format: absent = written before the outbox index by address (format 1:
// `o:<learner id><message id>` entries, unindexed copies); "2" = the `a:` / `s:` index.
constexpr std::string_view format_key = "m:format";
constexpr std::string_view current_format = "2";
// Present ("1") while `s:` knows every learner registered up to the checkpoint: the
// registrations are read only with a transport that keeps copies (SMTP needs no index), so
// a state that ran with SMTP, or one made before this key, lacks it and `s:` is filled from
// the log on the next start with .eml files (learn_learners()).
constexpr std::string_view learners_key = "m:learners";

std::string encode_position(std::uint64_t p) {
  std::string s(8, '\0');
  for (int i = 7; i >= 0; --i, p >>= 8) s[static_cast<std::size_t>(i)] = static_cast<char>(p);
  return s;
}

std::uint64_t decode_position(std::string_view s) {
  std::uint64_t p = 0;
  for (unsigned char c : s) p = (p << 8) | c;
  return p;
}

std::string key(char prefix, const uuid& a) {
  return std::string(1, prefix) + ":" + std::string(a.as_bytes());
}
std::string key(char prefix, const uuid& a, const uuid& b) {
  return key(prefix, a) + std::string(b.as_bytes());
}

rocksdb::Slice slice(std::string_view s) { return {s.data(), s.size()}; }

// Keys and values to write in one batch.
using entries = std::vector<std::pair<std::string, std::string>>;

// `e` into `b` in key order: the state's memtable keeps, per key prefix, where its last
// key went in (open_state_db's hint), so a run's entries of one prefix (random ids and
// hashes) each go in near the one before instead of from the top of the skip list. A key
// put twice keeps its order (the later value wins, as before the sort).
void put_sorted(rocksdb::WriteBatch& b, entries& e) {
  std::stable_sort(e.begin(), e.end(),
                   [](const auto& x, const auto& y) { return x.first < y.first; });
  for (const auto& [k, v] : e) b.Put(slice(k), slice(v));
}

consumer_error db_error(const std::string& what, const rocksdb::Status& s) {
  return {errc::checkpoint, "mailer state: " + what + ": " + s.ToString()};
}

// The decoded text/plain part of a mail as to_rfc5322() writes it (base64 body); "" when
// it has none.
std::string text_part(std::string_view wire) {
  const auto at = wire.find("Content-Type: text/plain");
  if (at == std::string_view::npos) return {};
  auto body = wire.find("\r\n\r\n", at);
  if (body == std::string_view::npos) return {};
  body += 4;
  const auto end = wire.find("\r\n--", body);
  std::string in(wire.substr(body, end == std::string_view::npos ? end : end - body));
  std::erase_if(in, [](char c) { return c == '\r' || c == '\n'; });
  return base64_decode(in).value_or("");
}

// Every word of `text` shaped like an address (local@domain.tld), as a digest lists its
// claimants ("Name <email>" or the bare email).
std::vector<std::string> addresses_in(std::string_view text) {
  auto local = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("._%+-'").find(c) != std::string_view::npos;
  };
  auto domain_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-';
  };
  std::vector<std::string> found;
  for (auto at = text.find('@'); at != std::string_view::npos; at = text.find('@', at + 1)) {
    auto b = at;
    while (b > 0 && local(text[b - 1])) --b;
    auto e = at + 1;
    while (e < text.size() && domain_char(text[e])) ++e;
    while (e > at + 1 && text[e - 1] == '.') --e;
    const auto domain = text.substr(at + 1, e - at - 1);
    if (b < at && domain.find('.') != std::string_view::npos)
      found.emplace_back(text.substr(b, e - b));
  }
  return found;
}

// The id an aggregate's stream name carries after its `prefix` ("learner-<uuid>",
// "invite-<uuid>"); nullopt when `stream` is not such a name.
std::optional<uuid> id_of_stream(std::string_view stream, std::string_view prefix) {
  if (!stream.starts_with(prefix)) return std::nullopt;
  return uuid::parse(stream.substr(prefix.size()));
}
// The learner of an event of a learner's stream (d::learner_stream).
std::optional<uuid> learner_of(const eventstore::recorded_event& rec) {
  return id_of_stream(rec.stream, "learner-");
}

// Facts of an invite a mail shows (its public title and description).
struct invite_facts {
  std::string code;
  std::string title;
  std::string public_description;
};

}  // namespace

std::string ledger_entry_json(bool sent, const std::string& error, int attempts,
                              std::int64_t at_micros, bool forgotten) {
  if (!error.empty()) {
    return json{{"sent", sent},
                {"error", error},
                {"attempts", attempts},
                {"at", at_micros},
                {"forgotten", forgotten}}
        .dump();
  }
  // Written by hand when there is no error text to escape (a mail sent: one per claim).
  std::string v = "{\"at\":" + std::to_string(at_micros);
  v += ",\"attempts\":" + std::to_string(attempts);
  v += forgotten ? ",\"error\":\"\",\"forgotten\":true" : ",\"error\":\"\",\"forgotten\":false";
  v += sent ? ",\"sent\":true}" : ",\"sent\":false}";
  return v;
}

namespace {

constexpr std::uint8_t welcome_ledger_version = 1;

}  // namespace

std::string encode_welcome_ledger(const std::vector<welcome_ledger_entry>& mails) {
  record_writer w;
  w.u8(welcome_ledger_version);
  w.u64(mails.size());
  for (const auto& m : mails) {
    w.be64(m.position);
    w.id(m.event_id);
    w.u8(static_cast<std::uint8_t>((m.sent ? 1 : 0) | (m.forgotten ? 2 : 0)));
    w.u64(static_cast<std::uint64_t>(std::max(m.attempts, 0)));
    w.be64(static_cast<std::uint64_t>(m.at_micros));
    w.str(m.error);
  }
  return w.take();
}

std::optional<std::vector<welcome_ledger_entry>> decode_welcome_ledger(std::string_view in) {
  record_reader r(in);
  if (r.u8() != welcome_ledger_version) return std::nullopt;
  const std::uint64_t count = r.u64();
  // Each mail takes at least 35 bytes: a count past that is no record of this format.
  if (!r.ok() || count > r.left() / 35) return std::nullopt;
  std::vector<welcome_ledger_entry> mails(count);
  for (auto& m : mails) {
    m.position = r.be64();
    m.event_id = r.id();
    const std::uint8_t flags = r.u8();
    const std::uint64_t attempts = r.u64();
    if (flags > 3 || attempts > static_cast<std::uint64_t>(std::numeric_limits<int>::max())) {
      return std::nullopt;
    }
    m.sent = (flags & 1) != 0;
    m.forgotten = (flags & 2) != 0;
    m.attempts = static_cast<int>(attempts);
    m.at_micros = static_cast<std::int64_t>(r.be64());
    m.error = r.str();
    if (!r.ok()) return std::nullopt;
  }
  if (!r.at_end()) return std::nullopt;
  return mails;
}

uuid derived_id(const uuid& event_id, std::string_view kind) {
  return derived_id(event_id, kind, {});
}

uuid derived_id(const uuid& event_id, std::string_view kind, std::string_view suffix) {
  // SHA-256 of "passage.mail|<event id>|<kind><suffix>" (two per welcome mail: no text built).
  const auto event = uuid_chars(event_id);
  const auto digest =
      sha256({"passage.mail|", std::string_view(event.data(), event.size()), "|", kind, suffix});
  uuid id;
  std::copy(digest.begin(), digest.begin() + 16, id.bytes.begin());
  id.bytes[6] = static_cast<std::uint8_t>((id.bytes[6] & 0x0F) | 0x80);  // version 8
  id.bytes[8] = static_cast<std::uint8_t>((id.bytes[8] & 0x3F) | 0x80);  // RFC 9562 variant
  return id;
}

std::string email_job_view::status() const {
  if (processed() < total) return "started";
  return failed == 0 ? "complete" : "error";
}

// The mail's id and its outcome event's id, per kind (stable across runs): derived under
// the kind's name ("reminder", "reminder-outcome", ...); invitations keep their first
// names, "mail" and "outcome". Claim digests derive their own (claim_digest.h).
std::string_view id_name(mail_kind k) {
  switch (k) {
    case mail_kind::reminder:
    case mail_kind::welcome:
      return to_string(k);
    case mail_kind::password_link:  // a welcome mail's template only: ids are "welcome"
      return to_string(mail_kind::welcome);
    case mail_kind::invitation:
    case mail_kind::claim_digest:
      break;
  }
  return {};
}
uuid mail_id(mail_kind k, const uuid& event_id) {
  const auto name = id_name(k);
  return derived_id(event_id, name.empty() ? "mail" : name);
}
uuid outcome_id(mail_kind k, const uuid& event_id) {
  const auto name = id_name(k);
  if (name.empty()) return derived_id(event_id, "outcome");
  return derived_id(event_id, name, "-outcome");
}

std::string reminder_key(timestamp due, const uuid& event_id) {
  return "r:" + encode_position(static_cast<std::uint64_t>(to_unix_micros(due))) +
         std::string(event_id.as_bytes());
}

// The most events one read of the log hands the mailer (a batch of handle()). A claim
// brings three (registration, claim, welcome mail), so a full batch is a run of ~340
// welcome mails: one index write, one synced ledger write (fsync) and one log commit for
// all of them. At 256 (~85 mails per run) the fsync alone was ~5 % of the mailer's CPU
// and each run's sorted state writes started their memtable searches further apart.
// A crash before a run's ledger write sends its mails again (same Message-IDs).
constexpr std::size_t max_batch = 1024;

struct mailer::state {
  state(eventstore::event_store& st, const eventstore::event_codec& c,
        std::unique_ptr<mail_transport> t, mailer_options o)
      : store(st), codec(c), transport(std::move(t)), opt(std::move(o)) {
    clk = opt.clock ? opt.clock : &system;
  }

  eventstore::event_store& store;
  const eventstore::event_codec& codec;
  std::unique_ptr<mail_transport> transport;
  mailer_options opt;
  passage::system_clock system;
  const passage::clock* clk = nullptr;

  std::unique_ptr<rocksdb::DB> db;
  std::unique_ptr<claim_digest> digests;  // made once db is open
  // Replaced by the reminder thread when it ended on a failure; stop() takes it under sub_mu.
  std::mutex sub_mu;
  std::unique_ptr<eventstore::subscription> subscription;
  std::atomic<std::uint64_t> restarts{0};
  std::thread reminders;
  std::mutex send_mu;                 // the transport is used by one thread at a time
  std::mutex forgotten_mu;            // forgotten_learners and the outbox index (`a:`, `s:`)
  std::set<uuid> forgotten_learners;  // forgotten while running
  // Purges, forgets and key destructions begun (under forgotten_mu), and their count when
  // the subscription's batch being handled began (its thread's): see send_indexed().
  std::uint64_t purges = 0;
  std::uint64_t purges_at_batch = 0;
  std::uint64_t purges_begun() {
    std::lock_guard lk(forgotten_mu);
    return purges;
  }
  mutable std::mutex jobs_mu;  // read-modify-write of job records

  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stopping = false;

  std::mutex invites_mu;  // the subscription and the reminder thread read it
  std::map<uuid, invite_facts> invites;
  std::uint64_t checkpoint = 0;    // the subscription thread's
  std::uint64_t logged_until = 0;  // see logged_until_key
  // The outcome events already in the log for the job being sent (outcome event id ->
  // sent), read once per job: the log is the ledger of last resort (subscription thread).
  std::optional<std::pair<uuid, std::map<uuid, bool>>> logged;

  std::atomic<std::uint64_t> checkpoint_shown{0}, sent{0}, failed{0}, attempts_failed{0},
      reminders_sent{0}, reminders_skipped{0};
  std::atomic<std::size_t> outbox_upgraded{0};  // copies indexed by upgrade_state() at this start
  // `digests` for stats(), published once it is made (stats() may run during start()).
  std::atomic<const claim_digest*> digests_shown{nullptr};

  // ---- state store ----------------------------------------------------------

  std::optional<json> get_json(const std::string& k) const {
    std::string v;
    if (!db->Get(rocksdb::ReadOptions(), slice(k), &v).ok()) return std::nullopt;
    auto j = json::parse(v, nullptr, false);
    if (j.is_discarded()) return std::nullopt;
    return j;
  }

  // The stored job record, or a new one with no mail handled yet. Under jobs_mu.
  json job_record(const uuid& job_id, const uuid& org, const uuid& invite, std::int64_t total) {
    if (auto j = get_json(key('j', job_id))) return *j;
    return json{{"org", org.to_string()},
                {"invite", invite.to_string()},
                {"total", total},
                {"sent", 0},
                {"failed", 0}};
  }

  bool write(rocksdb::WriteBatch& batch, bool sync) {
    rocksdb::WriteOptions w;
    w.sync = sync;
    auto s = db->Write(w, &batch);
    if (!s.ok()) spdlog::error("mailer: state write failed: {}", s.ToString());
    return s.ok();
  }

  void save_checkpoint(bool sync) {
    rocksdb::WriteBatch b;
    b.Put(slice(checkpoint_key), slice(encode_position(checkpoint)));
    write(b, sync);
    checkpoint_shown.store(checkpoint);
  }

  // ---- waiting --------------------------------------------------------------

  // Sleeps for `d` unless stop() is called; false when stopping.
  bool pause(std::chrono::milliseconds d) {
    std::unique_lock lk(stop_mu);
    return !stop_cv.wait_for(lk, d, [this] { return stopping; });
  }
  bool is_stopping() {
    std::lock_guard lk(stop_mu);
    return stopping;
  }

  // ---- invites --------------------------------------------------------------

  invite_facts invite(const uuid& invite_id) {
    {
      std::lock_guard lk(invites_mu);
      if (auto it = invites.find(invite_id); it != invites.end()) return it->second;
    }
    invite_facts f;
    std::uint64_t from = 1;
    for (;;) {
      auto page = store.read_stream(d::invite_stream(invite_id), from,
                                    eventstore::read_direction::forward, 1024);
      if (!page || page->empty()) break;
      for (const auto& rec : *page) {
        if (rec.type != d::invite_created::type_name && rec.type != d::invite_updated::type_name) {
          continue;
        }
        auto decoded = codec.decode(rec);
        if (!decoded) continue;
        if (auto* c = std::get_if<d::invite_created>(&decoded->event)) {
          f = {c->code_, c->settings_.title_, c->settings_.public_description_};
        } else if (auto* u = std::get_if<d::invite_updated>(&decoded->event)) {
          f.title = u->settings_.title_;
          f.public_description = u->settings_.public_description_;
        }
      }
      if (page->size() < 1024) break;
      from = page->back().stream_version + 1;
    }
    std::lock_guard lk(invites_mu);
    return invites[invite_id] = std::move(f);
  }

  // ---- one invitation -------------------------------------------------------

  struct outcome {
    bool sent = false;
    std::string error;
    int attempts = 0;
    timestamp at{};
    bool forgotten = false;  // not a delivery failure: no dead letter
  };

  // The ledger entry of `o` (`l:<event id>`): see ledger_entry_json().
  static std::string ledger_entry(const outcome& o) {
    return ledger_entry_json(o.sent, o.error, o.attempts, to_unix_micros(o.at), o.forgotten);
  }

  // Sends a mail of `kind` for the invitation `rec`, with retries; nullopt when stopping
  // interrupted it. `purges_before`: see send_indexed().
  // `read_before`: the template of `kind` read before (batch_template()); nullptr: read now.
  std::optional<outcome> deliver(mail_kind kind, const d::private_invitation_sent& inv,
                                 const eventstore::recorded_event& rec,
                                 std::optional<std::uint64_t> purges_before = std::nullopt,
                                 const mail_template* read_before = nullptr) {
    const auto facts = invite(inv.invite_id_);
    std::optional<mail_template> read_now;
    if (!read_before) read_now = template_for(kind, opt.templates_dir, inv.org_id_.to_string());
    const mail_template& tpl = read_before ? *read_before : *read_now;
    const std::string link = opt.personal_link(facts.code, inv.invite_id_, inv.invitation_id_);
    auto message = render(
        tpl, {{"title", facts.title}, {"description", facts.public_description}, {"link", link}},
        opt.from, inv.personal_data_.email_,
        "<" + mail_id(kind, rec.event_id).to_string() + "@passage>");
    return send_with_retries(message, rec, inv.org_id_, inv.learner_id_, purges_before);
  }

  // Sends `message` (made for the event `rec` of `org`), retrying with backoff up to
  // max_attempts (a recipient the server refuses for good is not retried); nullopt when
  // stopping interrupted it. The mail is indexed under its
  // recipient's address (outbox index) so that forgetting them discards the transport's
  // copy, and is not sent once the known `learner` was forgotten.
  std::optional<outcome> send_with_retries(const mail_message& message,
                                           const eventstore::recorded_event& rec, const uuid& org,
                                           std::optional<uuid> learner,
                                           std::optional<std::uint64_t> purges_before) {
    return send_indexed({{codec.email_subject(org, message.to), rec.position}}, message, &rec,
                        learner, purges_before);
  }

  // The retry loop of every mail: indexed under the addresses it `named` before each
  // attempt, its copy discarded if a forget raced the send. With `rec` (the event the mail
  // is for), a mail to a `learner` forgotten meanwhile is not sent (SPEC §6).
  // `purges_before`: the count of purges and key destructions begun, read before the events
  // behind the mail were decoded. If it has not moved after the send, no forget raced the
  // mail and its copy needs no check against the log (a read and a decrypt per mail): the
  // command side moves it before it destroys any key (keys_being_destroyed(), so also a
  // forget that fails after destroying the address's key but not the learner's, and purges
  // nothing), keys destroyed before the decode meant no mail, and a purge begun after the
  // count was read again (under forgotten_mu, after the send) finds the indexed copy in
  // place. Without it (the reminder thread) or once it moved, the copy is checked.
  // `indexed_at`: the mail was indexed with its run (index_run()) when the count was this.
  // While it has not moved, the entries are in place and the learner is not forgotten (every
  // purge, forget and key destruction moves it first), so the first attempt writes nothing
  // more; once it moved, the mail is indexed and checked again as without it.
  // `before_first_wait`: called once before the first backoff wait (flush_run() records the
  // mails sent before this one); false from it ends the retries as stopping does.
  // `unconfirmed`: through send_unconfirmed(); the caller calls confirm_copies() before it
  // records the mail as sent (flush_run()).
  std::optional<outcome> send_indexed(const std::vector<named_address>& named,
                                      const mail_message& message,
                                      const eventstore::recorded_event* rec,
                                      std::optional<uuid> learner,
                                      std::optional<std::uint64_t> purges_before,
                                      std::optional<std::uint64_t> indexed_at = std::nullopt,
                                      const std::function<bool()>& before_first_wait = {},
                                      bool unconfirmed = false) {
    // For the log, only when an attempt fails.
    auto what = [&] { return rec ? "event " + rec->event_id.to_string() : message.message_id; };
    outcome o;
    auto backoff = opt.initial_backoff;
    for (o.attempts = 1;; ++o.attempts) {
      const std::string wire = to_rfc5322(message, clk->now());
      const bool in_place = o.attempts == 1 && indexed_at && purges_begun() == *indexed_at;
      if (!in_place && !index_mail(message.message_id, named, learner)) {
        o.error = "recipient forgotten";
        o.forgotten = true;
        break;
      }
      auto r = [&] {
        std::lock_guard lk(send_mu);  // the subscription and the reminder thread share it
        return unconfirmed ? transport->send_unconfirmed(message, wire)
                           : transport->send(message, wire);
      }();
      if (r) {
        if (!purges_before || purges_begun() != *purges_before) {
          discard_if_forgotten(message.message_id, named);
        }
        o.sent = true;
        break;
      }
      ++attempts_failed;
      o.error = std::move(r.error().text);
      spdlog::warn("mailer: attempt {} for {} failed: {}", o.attempts, what(), o.error);
      if (r.error().permanent || o.attempts >= opt.max_attempts) break;
      if (o.attempts == 1 && before_first_wait && !before_first_wait()) return std::nullopt;
      if (!pause(backoff)) return std::nullopt;
      backoff = std::min(backoff * 2, opt.max_backoff);
      // Forgotten while the mail waited: no further mail (SPEC §6).
      if (rec == nullptr) continue;
      if (auto again = codec.decode(*rec); again && again->forgotten) {
        o.error = "recipient forgotten";
        o.forgotten = true;
        break;
      }
    }
    o.at = clk->now();
    return o;
  }

  // Ledger entry, job counters and dead letter, in one batch, synced before returning.
  // The fsync runs after jobs_mu is let go: register_job() and job() take it on the log's
  // and the HTTP threads, and this thread runs at the lowest priority.
  bool record(const eventstore::recorded_event& rec, const d::private_invitation_sent& inv,
              const outcome& o) {
    if (!record_unsynced(rec, inv, o)) return false;
    auto s = db->SyncWAL();
    if (!s.ok()) spdlog::error("mailer: state sync failed: {}", s.ToString());
    return s.ok();
  }

  bool record_unsynced(const eventstore::recorded_event& rec, const d::private_invitation_sent& inv,
                       const outcome& o) {
    std::lock_guard lk(jobs_mu);
    json job = job_record(inv.job_id_, inv.org_id_, inv.invite_id_, inv.job_total_);
    job[o.sent ? "sent" : "failed"] = job[o.sent ? "sent" : "failed"].get<std::int64_t>() + 1;
    rocksdb::WriteBatch b;
    b.Put(slice(key('l', rec.event_id)), ledger_entry(o));
    b.Put(slice(key('j', inv.job_id_)), job.dump());
    if (o.sent && inv.remind_at_) {
      b.Put(slice(reminder_key(*inv.remind_at_, rec.event_id)),
            slice(encode_position(rec.position)));
    }
    if (!o.sent && !o.forgotten) {
      b.Put(slice(key('d', inv.job_id_, rec.event_id)),
            json{{"invitation_id", inv.invitation_id_.to_string()},
                 {"error", o.error},
                 {"attempts", o.attempts},
                 {"at", to_unix_micros(o.at)}}
                .dump());
    }
    return write(b, false);
  }

  // Appends EmailSent / EmailFailed with an id derived from the source event (a re-append
  // after a restart is a no-op). False when stopping interrupted it.
  [[nodiscard]] bool append_outcome(mail_kind kind, const eventstore::recorded_event& rec,
                                    d::private_invitation_sent inv, const outcome& o) {
    d::event e;
    const uuid message_id = mail_id(kind, rec.event_id);
    if (o.sent) {
      e = d::email_sent{inv.org_id_,     inv.job_id_, message_id,        inv.invitation_id_,
                        inv.learner_id_, o.at,        inv.personal_data_};
    } else {
      e = d::email_failed{inv.org_id_,     inv.job_id_, message_id, inv.invitation_id_,
                          inv.learner_id_, o.error,     o.at,       inv.personal_data_};
    }
    return append_outcome_event(kind, rec, std::move(e), inv.job_id_);
  }

  // The outcome event `e` of the `kind` mail for `rec`, encoded (nullopt: it cannot be,
  // which no retry would fix; the ledger and job still show the outcome).
  std::optional<eventstore::new_event> encode_outcome(mail_kind kind,
                                                      const eventstore::recorded_event& rec,
                                                      d::event e) {
    const eventstore::event_metadata meta{outcome_id(kind, rec.event_id), rec.correlation_id,
                                          rec.event_id.to_string(), "mailer"};
    auto encoded = codec.encode(e, meta);
    if (!encoded && encoded.error().forgotten) {
      *d::personal_data_of(e) = {};  // forgotten since: keep the fact, not the address
      encoded = codec.encode(e, meta);
    }
    if (!encoded) {
      spdlog::error("mailer: cannot encode the outcome of {}: {}", rec.event_id.to_string(),
                    encoded.error().message);
      return std::nullopt;
    }
    return std::move(*encoded);
  }

  // Appends the outcome event `e` of the `kind` mail for `rec` to the stream of `job_id`.
  [[nodiscard]] bool append_outcome_event(mail_kind kind, const eventstore::recorded_event& rec,
                                          d::event e, const uuid& job_id) {
    auto encoded = encode_outcome(kind, rec, std::move(e));
    if (!encoded) return true;
    return append_with_retries(d::email_job_stream(job_id), *encoded);
  }

  // ---- a run of welcome mails -------------------------------------------------

  // The welcome mails of one subscription batch wait here, rendered, and go out when the
  // run is flushed: indexed in one write, sent, their ledger entries written in one synced
  // write and their outcome events appended in one append (one log commit), instead of an
  // index write, a synced write and a commit per mail: the mailer keeps up with claims that
  // each bring a new account. The order per mail stays: indexed, sent, ledger synced,
  // outcome appended. A crash before the ledger write sends the run again (same
  // Message-IDs, as for a crash between the "250" and a single mail's ledger write).
  struct run_mail {
    // Its event, in the subscription's batch: every way out of handle() flushes the run,
    // so the batch outlives it.
    const eventstore::recorded_event* rec = nullptr;
    d::password_setup_issued event;
    uuid message_id;  // mail_id(welcome, event id)
    // The mail to send; none when `known` holds the outcome.
    std::optional<mail_message> message;
    // An outcome without a send: the recipient forgotten, or the outcome logged before.
    std::optional<outcome> known;
    // `known` is the outcome the log holds (a lost state): ledgered only, not logged again.
    bool logged = false;
    std::vector<named_address> named;  // the addresses it names (its recipient)
    bool indexed = false;              // by index_run()
    // A claim's mail, issued with its registration (issued_with_registration()): it carries
    // the registration's address, organization and first name.
    bool with_registration = false;
  };
  struct pending_run {
    std::vector<run_mail> mails;
    std::uint64_t checkpoint_before = 0;  // the checkpoint before the run's first mail
    bool empty() const { return mails.empty(); }
  };
  pending_run run;
  // Ledger entries of welcome mails exist only for events up to here: the log's head when
  // the mailer started (entries of earlier runs, or of an older build) and the last mail
  // a run ledgered since (the subscription may read again from an older checkpoint after a
  // failure). Past it a mail needs no lookup (subscription thread).
  std::uint64_t ledgered_until = 0;

  // Indexes the run's mails to send in one write, before any goes to the transport (and
  // checks that their learners are not forgotten; such a mail is left to send_indexed(),
  // which refuses it). Returns the count of purges begun at the write, for send_indexed();
  // nullopt when the write failed (each mail is then indexed as it is sent).
  std::optional<std::uint64_t> index_run(pending_run& r) {
    std::lock_guard lk(forgotten_mu);
    entries e;
    for (auto& m : r.mails) {
      if (!m.message || forgotten_learners.count(m.event.learner_id_)) continue;
      m.indexed = true;
      if (transport->keeps_copies()) {
        add_index_entries(e, m.message->message_id, m.named, m.event.learner_id_);
      }
    }
    rocksdb::WriteBatch b;
    put_sorted(b, e);
    // Not synced, as index_mail()'s.
    if (b.Count() != 0 && !write(b, false)) return std::nullopt;
    for (const auto& m : r.mails) {
      if (m.indexed && !m.named.empty() && transport->keeps_copies()) {
        run_learners[m.event.learner_id_] = {m.event.org_id_, m.message->to,
                                             m.named.front().subject, m.with_registration};
      }
    }
    return purges;
  }

  // Sends the run's mails, writes their ledger entries (synced), then appends their
  // outcome events in one append. The mails sent before one that waits for a retry are
  // recorded so (ledgered, then logged) before the wait, which may last minutes: a crash
  // meanwhile does not send them again. False when a ledger write failed or stopping
  // interrupted the run or an append: the checkpoint then goes back to before the run, or
  // (stopping before or during a mail's retries) to before that mail, the ones sent before
  // it being ledgered and logged. The events past the checkpoint are handled again after
  // the next start (the ledgered ones only get their outcome event appended).
  bool flush_run() {
    if (run.empty()) return true;
    pending_run r = std::move(run);
    run = pending_run();
    const auto indexed_at = index_run(r);
    // The mails handled since the last record_handled(), with their outcomes.
    std::vector<handled_mail> handled;
    // Ledgers, then logs, the mails handled so far in the run, once their copies are
    // confirmed in place (confirm_copies()); false (the checkpoint back to before the run)
    // when the write failed or stopping interrupted a send again or the append.
    auto record_handled = [&] {
      if (handled.empty()) return true;
      if (!confirm_copies(handled)) {
        checkpoint = r.checkpoint_before;
        return false;
      }
      std::vector<welcome_ledger_entry> ledger;  // one record (welcome_ledger_key)
      ledger.reserve(handled.size());
      std::vector<eventstore::stream_append> outcomes;
      std::uint64_t sent_now = 0, failed_now = 0, last = 0;
      for (const auto& h : handled) {
        const run_mail& m = *h.mail;
        ledger.push_back({m.rec->position, m.rec->event_id, h.result.sent, h.result.forgotten,
                          h.result.attempts, to_unix_micros(h.result.at), h.result.error});
        last = std::max(last, m.rec->position);
        if (m.logged) continue;
        (h.result.sent ? sent_now : failed_now)++;
        if (auto e = encode_outcome(mail_kind::welcome, *m.rec,
                                    welcome_outcome(m.event, m.message_id, h.result))) {
          outcomes.push_back({d::email_job_stream(m.event.setup_id_),
                              eventstore::expected_version::any(),
                              {std::move(*e)}});
        }
      }
      handled.clear();
      rocksdb::WriteBatch b;
      b.Put(slice(welcome_ledger_key(last)), slice(encode_welcome_ledger(ledger)));
      if (!write(b, true)) {
        checkpoint = r.checkpoint_before;
        return false;
      }
      ledgered_until = std::max(ledgered_until, last);
      if (!append_all(outcomes)) {
        checkpoint = r.checkpoint_before;
        return false;
      }
      sent += sent_now;  // counted once the outcome events are in the log
      failed += failed_now;
      return true;
    };
    constexpr int kConfirmEvery = 32;
    int unconfirmed_copies = 0;  // written since the last confirm_copies()
    bool recorded = true;        // false once record_handled() failed before a retry's wait
    const std::function<bool()> before_wait = [&] { return recorded = record_handled(); };
    for (auto& m : r.mails) {
      std::optional<outcome> o = m.known;
      if (!o && is_stopping()) {
        checkpoint = std::min(checkpoint, m.rec->position - 1);
        record_handled();
        return false;
      }
      if (!o) {
        o = send_indexed(m.named, *m.message, m.rec, m.event.learner_id_, purges_at_batch,
                         m.indexed ? indexed_at : std::nullopt, before_wait, true);
        if (!o) {  // stopping interrupted a retry, or recording the ones before failed
          if (!recorded) return false;
          checkpoint = std::min(checkpoint, m.rec->position - 1);
          record_handled();
          return false;
        }
        const bool written = o->sent;  // by send_unconfirmed()
        handled.push_back({&m, std::move(*o), written});
        // Checked every kConfirmEvery copies, not only at the run's end: should the node die
        // after the folder was renamed away, at most that many copies stay where a forget
        // does not look (a path walk per copy left one).
        if (written && ++unconfirmed_copies == kConfirmEvery) {
          unconfirmed_copies = 0;
          if (!confirm_copies(handled)) {
            checkpoint = r.checkpoint_before;
            return false;
          }
        }
        continue;
      }
      handled.push_back({&m, std::move(*o), false});
    }
    return record_handled();
  }

  // A mail of a run handled by flush_run(): its outcome, and whether its copy went out by
  // send_unconfirmed() and awaits confirm_copies().
  struct handled_mail {
    const run_mail* mail = nullptr;
    outcome result;
    bool unconfirmed = false;
  };

  // Before the run's mails `handled` are recorded as sent: the transport confirms the copies
  // send_unconfirmed() wrote (the .eml folder's name checked once, not once per copy). Where
  // it cannot (the folder was renamed away or deleted meanwhile: the copies are removed),
  // each of those mails is sent again as a single mail is, and its outcome is that send's.
  // False when stopping interrupted one of those sends.
  bool confirm_copies(std::vector<handled_mail>& handled) {
    if (std::none_of(handled.begin(), handled.end(), [](const auto& h) { return h.unconfirmed; }))
      return true;
    bool in_place = false;
    {
      std::lock_guard lk(send_mu);
      in_place = transport->confirm_sent();
    }
    if (!in_place) {
      spdlog::warn(
          "mailer: the outbox folder {} was renamed or deleted during a run of mails: "
          "writing them again",
          transport->describe());
    }
    for (auto& h : handled) {
      if (!std::exchange(h.unconfirmed, false) || in_place) continue;
      const run_mail& m = *h.mail;
      auto again = send_indexed(m.named, *m.message, m.rec, m.event.learner_id_, purges_at_batch);
      if (!again) return false;
      h.result = std::move(*again);
    }
    return true;
  }

  // Appends `outcomes` (each an id derived from its source event) in one append, with
  // retries; false when stopping interrupted it.
  bool append_all(const std::vector<eventstore::stream_append>& outcomes) {
    if (outcomes.empty()) return true;
    auto backoff = opt.initial_backoff;
    for (;;) {
      auto r = store.append(outcomes);
      if (r) return true;
      if (r.error().code == eventstore::errc::idempotency_conflict) break;
      spdlog::warn("mailer: appending {} outcome events failed: {}", outcomes.size(),
                   r.error().message);
      if (!pause(backoff)) return false;
      backoff = std::min(backoff * 2, opt.max_backoff);
    }
    // Some are stored already (an append is stored whole or not at all): one by one, each
    // a new event or one logged before.
    for (const auto& a : outcomes) {
      for (const auto& e : a.events) {
        if (!append_with_retries(a.stream, e)) return false;
      }
    }
    return true;
  }

  // The ledger record of welcome mails ending at `last` (see encode_welcome_ledger()).
  static std::string welcome_ledger_key(std::uint64_t last) {
    return std::string(welcome_ledger_prefix) + encode_position(last);
  }

  // The outcome ledgered for the welcome mail of `rec`: in the run's record that holds its
  // position, else in an `l:` entry (older builds wrote one per mail). A mail is ledgered
  // once, in order, so records do not overlap: the first record ending at or after the
  // position holds it or none does (one starting past it ends the search).
  std::optional<outcome> stored_welcome_outcome(const eventstore::recorded_event& rec) const {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(slice(welcome_ledger_key(rec.position)));
         it->Valid() && it->key().starts_with(slice(welcome_ledger_prefix)); it->Next()) {
      auto mails = decode_welcome_ledger(it->value().ToStringView());
      if (!mails) {
        spdlog::error("mailer: the welcome mails' ledger record {} is unreadable",
                      decode_position(it->key().ToStringView().substr(2)));
        continue;
      }
      std::uint64_t first = rec.position;
      for (const auto& m : *mails) {
        if (m.position == rec.position && m.event_id == rec.event_id) {
          return outcome{m.sent, m.error, m.attempts, from_unix_micros(m.at_micros), m.forgotten};
        }
        first = std::min(first, m.position);
      }
      if (first == rec.position) break;  // starts past it (or is empty): later ones too
    }
    if (!it->status().ok()) {
      spdlog::error("mailer: reading the welcome mails' ledger failed: {}",
                    it->status().ToString());
    }
    return stored_outcome(rec.event_id);
  }

  std::optional<outcome> stored_outcome(const uuid& event_id) const {
    auto j = get_json(key('l', event_id));
    if (!j) return std::nullopt;
    return outcome{j->value("sent", false), j->value("error", std::string()),
                   j->value("attempts", 0), from_unix_micros(j->value("at", std::int64_t{0})),
                   j->value("forgotten", false)};
  }

  // The outcome events the log holds for a job (outcome event id -> sent).
  using logged_outcomes = std::map<uuid, bool>;

  logged_outcomes read_logged_outcomes(const uuid& job_id) {
    logged_outcomes found;
    std::uint64_t from = 1;
    for (;;) {
      auto page = store.read_stream(d::email_job_stream(job_id), from,
                                    eventstore::read_direction::forward, 1024);
      if (!page) break;
      for (const auto& r : *page) found[r.event_id] = r.type == d::email_sent::type_name;
      if (page->size() < 1024) break;
      from = page->back().stream_version + 1;
    }
    return found;
  }

  // The outcome of the `kind` mail for `rec` as `in` (read from the log) records it, if it does.
  std::optional<outcome> logged_outcome_in(const logged_outcomes& in, mail_kind kind,
                                           const eventstore::recorded_event& rec) const {
    auto it = in.find(outcome_id(kind, rec.event_id));
    if (it == in.end()) return std::nullopt;
    return outcome{it->second, it->second ? "" : "failed (recorded in the log)", 0, clk->now()};
  }

  // The outcome of the invitation `rec` as the log already records it, if it does: after
  // the state folder was lost, this keeps mails that went out from going out again.
  std::optional<outcome> logged_outcome(const d::private_invitation_sent& inv,
                                        const eventstore::recorded_event& rec) {
    if (!logged || logged->first != inv.job_id_) {
      logged.emplace(inv.job_id_, read_logged_outcomes(inv.job_id_));
    }
    return logged_outcome_in(logged->second, mail_kind::invitation, rec);
  }

  // False when stopping interrupted it (the event is handled again after the next start).
  bool handle_invitation(const eventstore::recorded_event& rec) {
    auto decoded = codec.decode(rec);
    if (!decoded) {
      spdlog::error("mailer: event {} cannot be decoded: {}", rec.event_id.to_string(),
                    decoded.error().message);
      return true;
    }
    auto inv = std::get<d::private_invitation_sent>(decoded->event);
    if (auto done = stored_outcome(rec.event_id)) {
      return append_outcome(mail_kind::invitation, rec, inv, *done);
    }
    if (auto done = logged_outcome(inv, rec)) return record(rec, inv, *done);
    {
      std::lock_guard lk(jobs_mu);
      rocksdb::WriteBatch b;
      b.Put(slice(key('j', inv.job_id_)),
            job_record(inv.job_id_, inv.org_id_, inv.invite_id_, inv.job_total_).dump());
      write(b, false);
    }
    std::optional<outcome> o;
    if (decoded->forgotten || inv.personal_data_.email_.empty()) {
      o = outcome{false, "recipient forgotten", 0, clk->now(), true};
    } else {
      o = deliver(mail_kind::invitation, inv, rec, purges_at_batch,
                  &batch_template(mail_kind::invitation, inv.org_id_));
      if (!o) return false;
    }
    if (!record(rec, inv, *o)) return false;
    // Counted once its outcome event is in the log, as a run's mails are (flush_run): a
    // reader of stats() then never sees more mails than EmailSent / EmailFailed events.
    if (!append_outcome(mail_kind::invitation, rec, inv, *o)) return false;
    (o->sent ? sent : failed)++;
    return true;
  }

  // ---- forgotten learners: the outbox index ---------------------------------

  static std::string index_prefix(std::string_view subject) {
    return "a:" + std::string(subject) + "|";
  }

  // Indexes the mail `message_id` under every address it names (their email subjects),
  // before it is handed to the transport, so a forget from then on finds its copy. The
  // recipient's learner mapping is kept too. Nothing to index when the transport keeps no
  // copies (SMTP). False, and nothing written, when the known `learner` was forgotten.
  bool index_mail(std::string_view message_id, const std::vector<named_address>& named,
                  std::optional<uuid> learner) {
    std::lock_guard lk(forgotten_mu);
    if (learner && forgotten_learners.count(*learner)) return false;
    if (!transport->keeps_copies()) return true;
    entries e;
    add_index_entries(e, message_id, named, learner);
    rocksdb::WriteBatch b;
    put_sorted(b, e);
    // Not synced: the ledger write after the send is, and a mail whose ledger entry is
    // lost in a crash is sent (and indexed) again.
    write(b, false);
    return true;
  }

  // The index entries of the mail `message_id` (see index_mail()).
  static void add_index_entries(entries& e, std::string_view message_id,
                                const std::vector<named_address>& named,
                                std::optional<uuid> learner) {
    for (const auto& n : named) {
      e.emplace_back(index_prefix(n.subject) + std::string(message_id),
                     encode_position(n.position));
    }
    if (learner && !named.empty()) e.emplace_back(key('s', *learner), named.front().subject);
  }

  // After the transport accepted `message_id`: a forget that ran since the mail was
  // rendered may have missed the copy being written. It destroys the keys before it
  // purges, so an event that now decodes as forgotten tells: the copy goes at once.
  void discard_if_forgotten(std::string_view message_id, const std::vector<named_address>& named) {
    if (!transport->keeps_copies()) return;
    for (const auto& n : named) {
      eventstore::log_filter f;
      f.from_position = f.to_position = n.position;
      auto found = store.read_all(f, 1);
      if (!found || found->empty()) continue;
      if (auto decoded = codec.decode(found->front()); decoded && decoded->forgotten) {
        std::lock_guard lk(forgotten_mu);
        if (!discard_copy(message_id)) return;  // the entries stay: a purge retries
        rocksdb::WriteBatch b;
        for (const auto& m : named)
          b.Delete(slice(index_prefix(m.subject) + std::string(message_id)));
        write(b, false);
        return;
      }
    }
  }

  // Removes the copy of `message_id` the transport keeps and the one in the outbox folder:
  // with SMTP the transport keeps none, but the index may still name .eml files written
  // before the node switched to SMTP. False when a copy is still there.
  bool discard_copy(std::string_view message_id) {
    return transport->discard(message_id) &&
           (opt.outbox_path.empty() || remove_eml_copy(opt.outbox_path, message_id));
  }

  // Discards the copies of mails naming `subject` and drops their index entries; with
  // `before`, only those of events before that log position. Under forgotten_mu. Returns
  // how many entries went. A copy already gone (an .eml deleted by hand) only loses its
  // entry; one that could not be removed keeps it, so the next purge of the address (a
  // forget, or LearnerForgotten replayed) tries again.
  //
  // A purge left unfinished is also noted (`p:<subject>` → `before`, and the learner whose
  // mapping to drop once done), and the reminder thread tries it again at every poll.
  std::size_t purge(std::string_view subject, std::optional<std::uint64_t> before,
                    bool* stuck = nullptr, const std::optional<uuid>& learner = std::nullopt) {
    ++purges;  // before it reads the index: a send indexed after this checks its copy
    const std::string prefix = index_prefix(subject);
    rocksdb::WriteBatch b;
    std::size_t n = 0;
    bool left = false;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(slice(prefix)); it->Valid() && it->key().starts_with(slice(prefix)); it->Next()) {
      if (before && decode_position(it->value().ToStringView()) >= *before) continue;
      if (!discard_copy(it->key().ToStringView().substr(prefix.size()))) {
        left = true;
        continue;
      }
      b.Delete(it->key());
      ++n;
    }
    if (left) {
      // Only mails of events up to now: the address may be a new learner's later. Merged
      // with a note already there (the later bound, and the learner if either names one).
      const std::string pending = "p:" + std::string(subject);
      std::uint64_t bound = before.value_or(store.head_position() + 1);
      std::string who = learner ? std::string(learner->as_bytes()) : std::string();
      if (std::string v;
          db->Get(rocksdb::ReadOptions(), slice(pending), &v).ok() && v.size() >= 8) {
        bound = std::max(bound, decode_position(std::string_view(v).substr(0, 8)));
        if (who.empty()) who = v.substr(8);
      }
      b.Put(slice(pending), slice(encode_position(bound) + who));
      if (stuck) *stuck = true;
    }
    write(b, false);  // lost in a crash: the files are gone, discarding again is harmless
    return n;
  }

  // Tries again the purges a copy that could not be removed left unfinished (`p:`). A
  // finished one drops its note and, for a forgotten learner, their mapping to the address.
  void retry_purges() {
    std::lock_guard lk(forgotten_mu);
    if (!db) return;
    std::vector<std::pair<std::string, std::string>> pending;
    {
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
      for (it->Seek("p:"); it->Valid() && it->key().starts_with("p:"); it->Next()) {
        pending.emplace_back(it->key().ToString(), it->value().ToString());
      }
    }
    for (const auto& [k, v] : pending) {
      if (v.size() < 8) continue;
      const std::uint64_t before = decode_position(std::string_view(v).substr(0, 8));
      std::optional<uuid> learner;
      if (v.size() == 8 + 16) {
        learner.emplace();
        std::copy_n(v.data() + 8, 16, learner->bytes.begin());
      }
      bool stuck = false;
      const std::string_view subject = std::string_view(k).substr(2);
      purge(subject, before, &stuck, learner);
      if (stuck) continue;  // still there: the note stays (purge wrote it again)
      rocksdb::WriteBatch b;
      b.Delete(slice(k));
      if (learner) b.Delete(slice(key('s', *learner)));
      write(b, false);
      spdlog::info("mailer: copies left by an earlier purge are deleted now");
    }
  }

  // The learner was forgotten (at log position `at`, when replaying LearnerForgotten):
  // no mail to them from now on, and the copies of mails naming their address go, and so
  // does the learner's mapping to it.
  void forget(const uuid& learner_id, std::optional<std::uint64_t> at) {
    std::lock_guard lk(forgotten_mu);
    ++purges;  // also when no purge follows (the learner's address is not known here)
    forgotten_learners.insert(learner_id);
    if (!db) return;
    std::string subject;
    if (!db->Get(rocksdb::ReadOptions(), slice(key('s', learner_id)), &subject).ok()) return;
    bool stuck = false;
    purge(subject, at, &stuck, learner_id);
    if (stuck) return;  // the mapping stays: the retry or LearnerForgotten replayed purges again
    rocksdb::WriteBatch b;
    b.Delete(slice(key('s', learner_id)));
    write(b, false);
  }

  void keys_being_destroyed() {
    std::lock_guard lk(forgotten_mu);
    ++purges;
  }

  std::size_t forget_email(const uuid& org_id, std::string_view email) {
    std::lock_guard lk(forgotten_mu);
    if (!db) return 0;
    return purge(codec.email_subject(org_id, email), std::nullopt);
  }

  // ---- upgrade: a state written before the outbox index (format 1) ------------

  // Once, on the first start over a state without `m:format` (written by a build before
  // the outbox index, or a state folder lost): the copies the transport keeps are indexed
  // by the addresses they name, found through their outcome events in the log (EmailSent
  // carries the org, the recipient's address, and the message id that names the file);
  // a claim digest's claimants are read from its text. The learners' addresses (`s:`)
  // come from LearnerRegistered, read by learn_learners() right after. A copy whose EmailSent
  // decodes as forgotten, or that an old `o:` entry ties to a learner forgotten since, goes now.
  // The old `o:` entries are dropped and the format recorded in the same synced write. Returns how
  // many copies were indexed.
  result<std::size_t, consumer_error> upgrade_state() {
    std::string v;
    auto st = db->Get(rocksdb::ReadOptions(), slice(format_key), &v);
    if (st.ok()) return std::size_t{0};
    if (!st.IsNotFound()) return db_error("read the state format", st);
    std::lock_guard lk(forgotten_mu);
    rocksdb::WriteBatch b;
    std::set<std::string> copies;
    if (transport->keeps_copies()) {
      for (auto& id : transport->kept_copies()) copies.insert(std::move(id));
    }
    std::set<uuid> forgotten;  // learners with LearnerForgotten in the log
    std::size_t indexed = 0, discarded = 0;
    auto index = [&](const std::string& id, const uuid& org, std::string_view email,
                     std::uint64_t position) {
      b.Put(slice(index_prefix(codec.email_subject(org, email)) + id),
            slice(encode_position(position)));
    };
    if (!copies.empty()) {
      eventstore::log_filter f;
      f.types = {std::string(d::email_sent::type_name),
                 std::string(d::learner_forgotten::type_name)};
      for (;;) {
        auto page = store.read_all(f, 1024);
        if (!page) {
          return consumer_error{errc::store,
                                "mailer upgrade: reading the log failed: " + page.error().message};
        }
        for (const auto& rec : *page) {
          if (rec.type == d::learner_forgotten::type_name) {
            if (auto id = learner_of(rec)) forgotten.insert(*id);
            continue;
          }
          auto decoded = codec.decode(rec);
          if (!decoded) continue;
          const auto& sent = std::get<d::email_sent>(decoded->event);
          const std::string id = "<" + sent.message_id_.to_string() + "@passage>";
          if (!copies.count(id)) continue;
          if (decoded->forgotten) {  // its recipient was forgotten: the copy goes
            discard_copy(id);
            ++discarded;
          } else if (!sent.invitation_id_ && !sent.learner_id_) {
            // A claim digest (the staff's mail): indexed under the claimants it lists.
            const auto wire = transport->read_copy(id);
            for (const auto& a : addresses_in(wire ? text_part(*wire) : ""))
              index(id, sent.org_id_, a, rec.position);
            ++indexed;
          } else if (!sent.personal_data_.email_.empty()) {
            index(id, sent.org_id_, sent.personal_data_.email_, rec.position);
            ++indexed;
          }
          copies.erase(id);
        }
        if (page->size() < 1024) break;
        f.from_position = page->back().position + 1;
      }
    }
    // The old index: mails to known learners; a learner forgotten since loses them now
    // (the old build's purge may not have run before it stopped). Its keys are
    // `o:<learner id><message id>`; an `o:<digest id>` of exactly 18 bytes is a claim
    // digest's outcome still to append (claim_digest.h) and stays.
    const std::string old_prefix = "o:";
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(slice(old_prefix)); it->Valid() && it->key().starts_with(slice(old_prefix));
         it->Next()) {
      const auto k = it->key().ToStringView();
      if (k.size() <= 18) continue;
      uuid learner;
      std::copy_n(k.data() + 2, 16, learner.bytes.begin());
      if (forgotten.count(learner)) {
        discard_copy(k.substr(18));
        ++discarded;
      }
      b.Delete(it->key());
    }
    b.Put(slice(format_key), slice(current_format));
    b.Delete(slice(learners_key));  // `s:` is read from the log next (learn_learners())
    if (!write(b, true)) return consumer_error{errc::checkpoint, "mailer upgrade: write failed"};
    if (indexed || discarded || !copies.empty()) {
      spdlog::info(
          "mailer: outbox indexed by address: {} copies indexed, {} of forgotten learners "
          "removed, {} without an outcome in the log left unindexed",
          indexed, discarded, copies.size());
    }
    return indexed;
  }

  // With a transport that keeps copies, and `s:` not known to be complete (learners_key):
  // every learner's address (keyed hash) from the log's LearnerRegistered events, so that
  // a LearnerForgotten replayed after a crash finds the mails naming a learner registered
  // while the mailer ran with SMTP (whose registrations it does not read), e.g. a claim
  // digest kept as .eml since. With SMTP the marker goes: `s:` falls behind from then on.
  // Before the subscription starts; under forgotten_mu, so a forget waits for it (a
  // learner forgotten before decodes as forgotten and is passed over).
  result<void, consumer_error> learn_learners() {
    std::string v;
    auto st = db->Get(rocksdb::ReadOptions(), slice(learners_key), &v);
    if (!st.ok() && !st.IsNotFound()) return db_error("read " + std::string(learners_key), st);
    if (!transport->keeps_copies()) {
      if (st.IsNotFound()) return {};
      rocksdb::WriteBatch b;
      b.Delete(slice(learners_key));
      if (!write(b, true)) return consumer_error{errc::checkpoint, "mailer state write failed"};
      return {};
    }
    if (st.ok()) return {};
    std::lock_guard lk(forgotten_mu);
    rocksdb::WriteBatch b;
    std::size_t learnt = 0;
    eventstore::log_filter f;
    // A new state: the subscription reads every registration from the start anyway.
    if (checkpoint == 0) f.from_position = store.head_position() + 1;
    // Past the checkpoint the subscription reads them.
    f.to_position = checkpoint;
    f.types = {std::string(d::learner_registered::type_name)};
    for (;;) {
      auto page = store.read_all(f, 1024);
      if (!page) {
        return consumer_error{errc::store,
                              "mailer: reading the registrations failed: " + page.error().message};
      }
      for (const auto& rec : *page) {
        auto decoded = codec.decode(rec);
        if (!decoded || decoded->forgotten) continue;
        const auto& r = std::get<d::learner_registered>(decoded->event);
        if (r.personal_data_.email_.empty()) continue;
        b.Put(slice(key('s', r.learner_id_)),
              slice(codec.email_subject(r.org_id_, r.personal_data_.email_)));
        ++learnt;
      }
      if (page->size() < 1024) break;
      f.from_position = page->back().position + 1;
    }
    b.Put(slice(learners_key), slice("1"));
    if (!write(b, true)) return consumer_error{errc::checkpoint, "mailer state write failed"};
    if (learnt) spdlog::info("mailer: {} learners' addresses read from the log", learnt);
    return {};
  }

  // Registrations of the batch being handled (subscription thread), decoded when the
  // batch's `s:` entries are written (flush_learnt; one is not written again when the
  // learner's welcome mail of the batch wrote it for the same address) and, for a
  // welcome mail without a first name, when it is looked up (first_name_of). A claim
  // appends the learner's LearnerRegistered and PasswordSetupIssued together: the welcome
  // mail finds the first name here instead of reading the learner's stream again, and the
  // learners' addresses are written once per batch instead of once per registration.
  // The events stay in the subscription's batch: every way out of handle() flushes them.
  struct learnt_registration {
    uuid learner;
    const eventstore::recorded_event* rec = nullptr;
  };
  std::vector<learnt_registration> learnt;     // `s:` entries not written yet
  std::uint64_t learnt_checkpoint_before = 0;  // the checkpoint before the first of them
  // A learner's first registration event (stream version 1) in this batch: what
  // first_name_of() reads. Cleared per batch.
  std::unordered_map<uuid, const eventstore::recorded_event*> registrations;
  // A registration decoded (decrypted) now; nullopt when it cannot be or is forgotten.
  // A claim's welcome mail needs none (issued_with_registration): only a link sent again
  // in the batch of its learner's registration decodes one twice (first_name_of, then
  // flush_learnt), and a decode made now sees a forget begun since the batch was read.
  std::optional<d::learner_registered> decode_registration(const eventstore::recorded_event& rec) {
    auto decoded = codec.decode(rec);
    if (!decoded || decoded->forgotten) return std::nullopt;
    return std::get<d::learner_registered>(std::move(decoded->event));
  }

  // The `s:` entries index_run() wrote in this batch (learner -> the welcome mail's
  // organization, address and email subject), which flush_learnt() need not write again: a
  // claim's registration and welcome mail come together. The same organization and address
  // make the same subject, so the registration's is computed only when they differ.
  // Cleared per batch.
  struct run_learner {
    uuid org;
    std::string email;
    std::string subject;
    // The welcome mail was issued with the registration (run_mail::with_registration): the
    // same organization and address, so the registration is not decoded to compare them.
    bool with_registration = false;
  };
  std::unordered_map<uuid, run_learner> run_learners;
  // The templates (template_for) the batch's mails were rendered with, per kind and
  // organization: the files are read once per batch, not once per mail, and an edit is
  // used from the next batch on. Cleared per batch (subscription thread).
  std::map<std::pair<mail_kind, uuid>, mail_template> batch_templates;

  const mail_template& batch_template(mail_kind k, const uuid& org) {
    auto [it, added] = batch_templates.try_emplace({k, org});
    if (added) it->second = template_for(k, opt.templates_dir, org.to_string());
    return it->second;
  }

  // Keeps the registration of a new learner, for its address (its keyed hash, for
  // LearnerForgotten) and the first name it registered with (for its welcome mail).
  void learn_learner(const eventstore::recorded_event& rec) {
    auto learner = learner_of(rec);
    if (!learner) return;
    if (opt.password_link && rec.stream_version == 1) registrations[*learner] = &rec;
    if (learnt.empty()) learnt_checkpoint_before = checkpoint;
    learnt.push_back({*learner, &rec});
  }

  // Writes the `s:` entries of the registrations learn_learner() collected (not synced,
  // as each was before: a mail's index entry and its ledger entry are written after them,
  // and a lost one is read again from the log, the checkpoint having not passed it). One
  // that decodes as forgotten is left out (too late: the live forget covered it), and so is
  // a learner forgotten since. Before a LearnerForgotten is handled (it looks the address
  // up) and before the checkpoint moves; on failure the checkpoint goes back to before the
  // first registration.
  bool flush_learnt() {
    if (learnt.empty()) return true;
    std::vector<std::pair<uuid, std::string>> subjects;
    for (const auto& l : learnt) {
      const auto w = run_learners.find(l.learner);
      // Written with the learner's welcome mail, which a claim issued with this very
      // registration (the same address): no key lookup and decryption to compare them.
      if (w != run_learners.end() && w->second.with_registration) continue;
      const auto r = decode_registration(*l.rec);
      if (!r || r->personal_data_.email_.empty()) continue;
      const auto& email = r->personal_data_.email_;
      if (w != run_learners.end() && w->second.org == r->org_id_ && w->second.email == email) {
        continue;  // written with the learner's welcome mail (index_run), the same address
      }
      auto subject = codec.email_subject(r->org_id_, email);
      if (w != run_learners.end() && w->second.subject == subject) continue;  // the same too
      subjects.emplace_back(l.learner, std::move(subject));
    }
    learnt.clear();
    if (subjects.empty()) return true;
    std::lock_guard lk(forgotten_mu);
    rocksdb::WriteBatch b;
    for (const auto& [learner, subject] : subjects) {
      if (forgotten_learners.count(learner)) continue;
      b.Put(slice(key('s', learner)), slice(subject));
    }
    if (b.Count() == 0 || write(b, false)) return true;
    checkpoint = std::min(checkpoint, learnt_checkpoint_before);
    return false;
  }

  // ---- welcome mails ---------------------------------------------------------

  // The first name the learner registered with, decrypted now, for a welcome mail whose
  // event carries none (a link staff sent again: the learner aggregate keeps no name).
  // "" when unknown or forgotten (the mail then greets "there", if it goes at all).
  std::string first_name_of(const d::password_setup_issued& w) {
    std::optional<d::learner_registered> r;
    if (auto it = registrations.find(w.learner_id_); it != registrations.end()) {
      r = decode_registration(*it->second);  // its registration came in this batch
    } else {
      auto first = store.read_stream(d::learner_stream(w.learner_id_), 1,
                                     eventstore::read_direction::forward, 1);
      if (!first || first->empty() || first->front().type != d::learner_registered::type_name) {
        return {};
      }
      r = decode_registration(first->front());
    }
    return r ? std::move(r->personal_data_.first_name_) : std::string();
  }

  // Whether `w` (the event `rec`) is a claim's welcome mail, issued with the learner's
  // registration in this batch: a claim appends LearnerRegistered and, right after it in
  // the same append, the PasswordSetupIssued that issue_password_setup_for() made from it
  // (naming the claimed invite; a link staff sent again names none), which copies the
  // registration's organization, address and first name. Such a mail needs neither the
  // registration's first name (first_name_of) nor its address for `s:` (flush_learnt):
  // the registration is not decoded (a key lookup and a decryption per claim's mail).
  bool issued_with_registration(const d::password_setup_issued& w,
                                const eventstore::recorded_event& rec) const {
    if (!w.invite_id_) return false;
    const auto it = registrations.find(w.learner_id_);
    return it != registrations.end() && it->second->position + 1 == rec.position &&
           it->second->stream == rec.stream;
  }

  // The outcome event of the welcome mail `message_id` for `w`.
  static d::event welcome_outcome(const d::password_setup_issued& w, const uuid& message_id,
                                  const outcome& o) {
    d::personal_data to;
    to.email_ = w.personal_data_.email_;
    if (o.sent) {
      return d::email_sent{w.org_id_,     w.setup_id_, message_id, std::nullopt,
                           w.learner_id_, o.at,        to};
    }
    return d::email_failed{w.org_id_,     w.setup_id_, message_id, std::nullopt,
                           w.learner_id_, o.error,     o.at,       to};
  }

  // The welcome mail of a new account (PasswordSetupIssued): rendered and put in the run,
  // which sends it, ledgers it under the event id and logs its outcome in the stream
  // job-<setup id> (flush_run). False when stopping interrupted the append of the outcome
  // of a mail ledgered before (the event is handled again after the next start).
  [[nodiscard]] bool handle_welcome(const eventstore::recorded_event& rec) {
    auto decoded = codec.decode(rec);
    if (!decoded) {
      spdlog::error("mailer: event {} cannot be decoded: {}", rec.event_id.to_string(),
                    decoded.error().message);
      return true;
    }
    run_mail m{.rec = &rec,
               .event = std::get<d::password_setup_issued>(std::move(decoded->event)),
               .message_id = mail_id(mail_kind::welcome, rec.event_id)};
    auto& w = m.event;
    // Ledgered before (a restart): only the outcome event again, a no-op if it is stored.
    if (rec.position <= ledgered_until) {
      if (auto done = stored_welcome_outcome(rec)) {
        return append_outcome_event(mail_kind::welcome, rec,
                                    welcome_outcome(w, m.message_id, *done), w.setup_id_);
      }
    }
    // The state folder lost: the outcome already in the log stands in for the ledger. Only
    // events up to the head at the state's making can have one (the ledger is written
    // before the outcome event), so a mail per claim costs no read of the log.
    if (rec.position <= logged_until) {
      m.known = logged_outcome_in(read_logged_outcomes(w.setup_id_), mail_kind::welcome, rec);
      m.logged = m.known.has_value();
    }
    if (!m.known && (decoded->forgotten || w.personal_data_.email_.empty())) {
      m.known = outcome{false, "recipient forgotten", 0, clk->now(), true};
    } else if (!m.known) {
      std::string title;
      if (w.invite_id_) title = invite(*w.invite_id_).title;
      m.with_registration = issued_with_registration(w, rec);
      // A claim's mail has the registration's first name already (none if it gave none).
      if (w.personal_data_.first_name_.empty() && !m.with_registration) {
        w.personal_data_.first_name_ = first_name_of(w);
      }
      m.message = welcome_message(w, {title, opt.password_link(w.learner_id_, w.setup_id_)},
                                  batch_template(welcome_kind(w), w.org_id_), opt.from,
                                  "<" + m.message_id.to_string() + "@passage>");
      m.named = {{codec.email_subject(w.org_id_, m.message->to), rec.position}};
    }
    if (run.empty()) run.checkpoint_before = checkpoint;
    run.mails.push_back(std::move(m));
    return true;
  }

  // ---- reminders ------------------------------------------------------------

  // What a reminder checks about an invite: its state and the addresses that claimed.
  struct invite_snapshot {
    d::invite_state state;
    std::set<std::string> claimed;
  };
  // What one pass over the due reminders read: each invite's snapshot and each job's
  // outcome events, read once per pass.
  struct reminder_pass {
    std::map<uuid, invite_snapshot> invites;
    std::map<uuid, logged_outcomes> outcomes;
  };

  std::optional<invite_snapshot> load_snapshot(const uuid& invite_id) {
    invite_snapshot snap;
    std::uint64_t from = 1;
    for (;;) {
      auto page = store.read_stream(d::invite_stream(invite_id), from,
                                    eventstore::read_direction::forward, 1024);
      if (!page) return std::nullopt;
      for (const auto& rec : *page) {
        auto decoded = codec.decode(rec);
        if (!decoded) continue;
        if (auto* c = std::get_if<d::invite_claimed>(&decoded->event)) {
          snap.claimed.insert(c->personal_data_.email_);
        }
        snap.state = d::evolve(std::move(snap.state), decoded->event);
      }
      if (page->size() < 1024) break;
      from = page->back().stream_version + 1;
    }
    return snap;
  }

  // Whether the addressee of `inv` should still be reminded: the invite takes claims, the
  // invitation's link is still the current one, and nobody claimed with its address. Each
  // invite is read once per pass over the due reminders (`pass`).
  bool still_unclaimed(const d::private_invitation_sent& inv, reminder_pass& pass) {
    auto it = pass.invites.find(inv.invite_id_);
    if (it == pass.invites.end()) {
      auto snap = load_snapshot(inv.invite_id_);
      if (!snap) return false;
      it = pass.invites.emplace(inv.invite_id_, std::move(*snap)).first;
    }
    const auto& s = it->second;
    const auto status = d::status_at(s.state, clk->now()).status_;
    const bool open = status == d::invite_status::active || status == d::invite_status::upcoming;
    return open && s.state.personal_links_.count(inv.invitation_id_) > 0 &&
           s.claimed.count(inv.personal_data_.email_) == 0;
  }

  // The reminder's outcome as the log records it, if it does: after the state folder was
  // lost, the ledger no longer knows the reminder went out, the job's stream does.
  std::optional<outcome> logged_reminder(const d::private_invitation_sent& inv,
                                         const eventstore::recorded_event& rec,
                                         reminder_pass& pass) {
    auto it = pass.outcomes.find(inv.job_id_);
    if (it == pass.outcomes.end()) {
      it = pass.outcomes.emplace(inv.job_id_, read_logged_outcomes(inv.job_id_)).first;
    }
    return logged_outcome_in(it->second, mail_kind::reminder, rec);
  }

  // Handles one due reminder (the PrivateInvitationSent at `position`); false when stopping
  // interrupted it (it stays due).
  bool remind(std::uint64_t position, reminder_pass& pass) {
    eventstore::log_filter f;
    f.from_position = position;
    f.to_position = position;
    auto found = store.read_all(f, 1);
    if (!found || found->empty()) return true;
    const auto& rec = found->front();
    auto decoded = codec.decode(rec);
    if (!decoded) return true;
    auto inv = std::get<d::private_invitation_sent>(decoded->event);
    const uuid id = mail_id(mail_kind::reminder, rec.event_id);
    if (auto done = stored_outcome(id)) return append_outcome(mail_kind::reminder, rec, inv, *done);
    if (logged_reminder(inv, rec, pass)) return true;  // its outcome event is already logged
    if (decoded->forgotten || inv.personal_data_.email_.empty() || !still_unclaimed(inv, pass)) {
      ++reminders_skipped;
      return true;
    }
    auto o = deliver(mail_kind::reminder, inv, rec);
    if (!o) return false;
    rocksdb::WriteBatch b;
    b.Put(slice(key('l', id)), ledger_entry(*o));
    if (!write(b, true)) return false;
    if (!append_outcome(mail_kind::reminder, rec, inv, *o)) return false;
    ++reminders_sent;  // once its outcome is in the log, like every counter of stats()
    return true;
  }

  // Every reminder due by now, in due order.
  void remind_due() {
    const std::string prefix = "r:";
    const std::string until =
        prefix + encode_position(static_cast<std::uint64_t>(to_unix_micros(clk->now())) + 1);
    std::vector<std::pair<std::string, std::uint64_t>> due;
    {
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
      for (it->Seek(slice(prefix)); it->Valid() && it->key().compare(slice(until)) < 0;
           it->Next()) {
        due.emplace_back(it->key().ToString(), decode_position(it->value().ToString()));
      }
    }
    reminder_pass pass;
    for (const auto& [k, position] : due) {
      if (is_stopping() || !remind(position, pass)) return;
      rocksdb::WriteBatch b;
      b.Delete(slice(k));
      write(b, false);
    }
  }

  // Reads the log from past the checkpoint on the subscription's own (low-priority) thread.
  void subscribe() {
    eventstore::subscription_options so;
    so.filter.from_position = checkpoint + 1;
    so.filter.types = {
        std::string(d::private_invitation_sent::type_name),
        std::string(d::invite_updated::type_name), std::string(d::invite_created::type_name),
        std::string(d::invite_deleted::type_name), std::string(d::invite_claimed::type_name)};
    if (opt.password_link) {
      so.filter.types.push_back(std::string(d::password_setup_issued::type_name));
    }
    // Registrations only feed the outbox index (learner -> address), which a transport
    // that keeps no copies does not need.
    if (transport->keeps_copies()) {
      so.filter.types.push_back(std::string(d::learner_registered::type_name));
    }
    so.filter.types.push_back(std::string(d::learner_forgotten::type_name));
    so.max_batch = max_batch;
    // Mails may lag behind a burst of claims (each brings a welcome mail); they are sent
    // from the CPU that requests and the log's writer leave, and the backlog drains after.
    so.background = true;
    subscription = std::make_unique<eventstore::subscription>(
        store, so,
        [this, named = false](std::span<const eventstore::recorded_event> batch) mutable {
          // The subscription's thread, named for per-thread profiles (perf, top).
          if (!std::exchange(named, true)) pthread_setname_np(pthread_self(), "mailer");
          return handle(batch);
        },
        [](const eventstore::store_error& e) {
          spdlog::error("mailer: reading the log failed: {}", e.message);
        });
  }

  // The subscription ends when reading the log or the mailer's own state fails (a full
  // disk, an I/O error): everything before its checkpoint is done and saved, so it starts
  // again from there, as a restart of the process would, at the next poll.
  void resubscribe_if_ended() {
    std::lock_guard lk(sub_mu);
    if (!subscription || subscription->is_running() || is_stopping()) return;
    subscription->stop();  // its thread has left its loop: this only joins it
    subscription.reset();
    ++restarts;
    spdlog::warn("mailer: it stopped after a failure; starting again from position {}",
                 checkpoint + 1);
    subscribe();
  }

  void run_reminders() {
    // Reminders and claim digests are mails like the subscription's: sent from the CPU
    // that requests leave (a due batch of reminders is one mail per invitation).
    eventstore::run_this_thread_in_background();
    pthread_setname_np(pthread_self(), "mailer-remind");
    while (pause(opt.reminder_poll)) {
      resubscribe_if_ended();
      retry_purges();
      remind_due();
      if (!is_stopping()) digests->send_due();
    }
  }

  // ---- claim digests --------------------------------------------------------

  // One mail with the retries and backoff of every mail, indexed under the addresses it
  // names (the claimants a digest lists); nullopt when stopping.
  std::optional<digest_delivery> send_with_retries(const mail_message& message,
                                                   const std::vector<named_address>& named) {
    auto o = send_indexed(named, message, nullptr, std::nullopt, std::nullopt);
    if (!o) return std::nullopt;
    return digest_delivery{o->sent, o->error, o->at};
  }

  // Appends one event (an id already stored is a no-op); false when stopping. Its id is
  // derived from the event that caused it, so an id stored with other bytes is this same
  // outcome logged before (a crash lost the checkpoint after the append): its personal data
  // was sealed with another random IV, so the bytes differ and the store reports a
  // conflict. That is done, not a failure to retry (retrying would stall the mailer).
  [[nodiscard]] bool append_with_retries(const std::string& stream,
                                         const eventstore::new_event& e) {
    auto backoff = opt.initial_backoff;
    for (;;) {
      auto r = store.append({{stream, eventstore::expected_version::any(), {e}}});
      if (r) return true;
      if (r.error().code == eventstore::errc::idempotency_conflict) {
        spdlog::info("mailer: outcome {} was logged before; not appended again",
                     e.event_id.to_string());
        return true;
      }
      spdlog::warn("mailer: appending {} failed: {}", e.event_id.to_string(), r.error().message);
      if (!pause(backoff)) return false;
      backoff = std::min(backoff * 2, opt.max_backoff);
    }
  }

  bool handle(std::span<const eventstore::recorded_event> batch) {
    purges_at_batch = purges_begun();  // before any of the batch's events is decoded
    // Every way out ledgers the run's mails that went out before the checkpoint is saved
    // (else a restart would start past mails sent but never recorded).
    auto stop_here = [this] {
      // On failure each moves the checkpoint back to before its first event.
      flush_run();
      flush_learnt();
      registrations.clear();
      batch_templates.clear();
      run_learners.clear();
      save_checkpoint(true);
      return false;
    };
    bool welcome_read = false;  // the batch held a welcome mail (for batch_delay)
    for (const auto& rec : batch) {
      // The run of welcome mails is flushed before an invitation is sent and before a
      // forget purges, so those keep the order of the log. Claims, registrations and
      // invite edits in between do not break the run (each claim brings a welcome mail).
      if ((rec.type == d::private_invitation_sent::type_name ||
           rec.type == d::learner_forgotten::type_name) &&
          !flush_run()) {
        return stop_here();
      }
      if (claim_digest::wants(rec.type)) {
        // A claim joins its digest batch in the same write that moves the checkpoint; not
        // past a run of welcome mails not yet ledgered (after a crash the claim is added
        // again under the same key, and the run's events are handled again).
        // Nor past registrations whose addresses are not written yet (flush_learnt).
        std::uint64_t carried = run.empty() ? rec.position : run.checkpoint_before;
        if (!learnt.empty()) carried = std::min(carried, learnt_checkpoint_before);
        rocksdb::WriteBatch with;
        with.Put(slice(checkpoint_key), slice(encode_position(carried)));
        if (is_stopping() || !digests->on_event(rec, with)) {
          return stop_here();
        }
      }
      if (rec.type == d::invite_updated::type_name) {
        if (auto id = id_of_stream(rec.stream, "invite-")) {
          std::lock_guard lk(invites_mu);
          invites.erase(*id);
        }
      } else if (rec.type == d::private_invitation_sent::type_name) {
        if (is_stopping() || !handle_invitation(rec)) {
          return stop_here();
        }
      } else if (rec.type == d::learner_registered::type_name) {
        learn_learner(rec);
      } else if (rec.type == d::learner_forgotten::type_name) {
        // Also after a restart: the command side's purge may not have run before a crash.
        // The batch's registrations first: the learner's address may be among them.
        if (!flush_learnt()) return stop_here();
        if (auto id = learner_of(rec)) forget(*id, rec.position);
      } else if (rec.type == d::password_setup_issued::type_name) {
        if (is_stopping() || !handle_welcome(rec)) return stop_here();
        welcome_read = true;
      }
      checkpoint = rec.position;
    }
    if (!flush_run() || !flush_learnt()) return stop_here();
    registrations.clear();
    batch_templates.clear();
    run_learners.clear();
    save_checkpoint(false);
    // Caught up with the log after welcome mails: a moment before reading again, so that
    // under load the next read finds many claims' mails for one run (its flush costs an
    // index write, a synced ledger write and a log commit) instead of the few of one log
    // commit. A mail arriving while the mailer waits on the log goes at once; after a batch
    // without welcome mails (no run to gather) the mailer reads on at once.
    if (welcome_read && batch.size() < max_batch && opt.batch_delay.count() > 0) {
      return pause(opt.batch_delay);
    }
    return !is_stopping();
  }
};

mailer::mailer(eventstore::event_store& store, const eventstore::event_codec& codec,
               std::unique_ptr<mail_transport> transport, mailer_options options)
    : s_(std::make_unique<state>(store, codec, std::move(transport), std::move(options))) {}

mailer::~mailer() { stop(); }

result<void, consumer_error> mailer::start() {
  if (std::lock_guard lk(s_->sub_mu); s_->subscription) {
    return consumer_error{errc::already_running, "mailer already running"};
  }
  if (!s_->opt.personal_link)
    return consumer_error{errc::invalid_config, "personal_link is required"};
  if (!s_->db) {
    // Hints per key prefix ("a:", "l:", "s:", ...): a run writes its keys sorted.
    auto st = open_state_db(s_->opt.state_path, s_->db, 4u << 20, 2);
    if (!st.ok()) return db_error("open " + s_->opt.state_path, st);
    std::string v;
    st = s_->db->Get(rocksdb::ReadOptions(), slice(checkpoint_key), &v);
    if (!st.ok() && !st.IsNotFound()) return db_error("read checkpoint", st);
    s_->checkpoint = st.ok() ? decode_position(v) : 0;
    s_->checkpoint_shown.store(s_->checkpoint);
    // A new state, or one a build before `m:logged` made (that build looked every mail up
    // in the log, so its state may lack ledger entries of mails already logged): mails of
    // events up to the head are looked up in the log before they are sent.
    if (s_->db->Get(rocksdb::ReadOptions(), slice(logged_until_key), &v).ok()) {
      s_->logged_until = decode_position(v);
    } else {
      s_->logged_until = s_->store.head_position();
      rocksdb::WriteBatch b;
      b.Put(slice(logged_until_key), slice(encode_position(s_->logged_until)));
      if (!s_->write(b, true)) return db_error("write " + std::string(logged_until_key), st);
    }
    auto upgraded = s_->upgrade_state();
    if (!upgraded) {
      s_->db.reset();
      return upgraded.error();
    }
    s_->outbox_upgraded.store(*upgraded);
    if (auto learnt = s_->learn_learners(); !learnt) {
      s_->db.reset();
      return learnt.error();
    }
    auto* raw = s_.get();
    s_->digests = std::make_unique<claim_digest>(
        s_->store, s_->codec, *s_->db, *s_->clk,
        claim_digest_options{s_->opt.claim_digest_window, s_->opt.from, s_->opt.templates_dir,
                             !st.ok()},
        [raw](const mail_message& m, const std::vector<named_address>& named) {
          return raw->send_with_retries(m, named);
        },
        [raw](const std::string& stream, eventstore::new_event e) {
          return raw->append_with_retries(stream, e);
        });
    s_->digests_shown.store(s_->digests.get());
  }
  {
    std::lock_guard lk(s_->stop_mu);
    s_->stopping = false;
  }
  // Ledger entries of welcome mails exist only for events in the log now (and for those
  // this process ledgers from here on): past the head a mail needs no lookup.
  s_->ledgered_until = std::max(s_->ledgered_until, s_->store.head_position());
  auto* st = s_.get();
  {
    std::lock_guard lk(s_->sub_mu);
    s_->subscribe();
  }
  s_->reminders = std::thread([st] { st->run_reminders(); });
  return {};
}

void mailer::stop() {
  std::unique_ptr<eventstore::subscription> sub;
  {
    std::lock_guard lk(s_->sub_mu);
    if (!s_->subscription) return;
    std::lock_guard stop(s_->stop_mu);
    s_->stopping = true;
  }
  s_->stop_cv.notify_all();
  {
    // The reminder thread sees `stopping` before it could start another one.
    std::lock_guard lk(s_->sub_mu);
    sub = std::move(s_->subscription);
  }
  sub->stop();
  if (s_->reminders.joinable()) s_->reminders.join();
}

result<void, consumer_error> mailer::register_job(const uuid& job_id, const uuid& org_id,
                                                  const uuid& invite_id, std::int64_t total) {
  if (!s_->db) return consumer_error{errc::checkpoint, "mailer not started"};
  std::lock_guard lk(s_->jobs_mu);
  if (s_->get_json(key('j', job_id))) return {};
  rocksdb::WriteBatch b;
  b.Put(slice(key('j', job_id)), s_->job_record(job_id, org_id, invite_id, total).dump());
  // Not synced: it runs on the store's thread that answers appends, and a record lost in
  // a crash is made again from the events when the mailer reaches them.
  if (!s_->write(b, false)) return consumer_error{errc::checkpoint, "mailer state write failed"};
  return {};
}

std::optional<email_job_view> mailer::job(const uuid& org_id, const uuid& job_id) const {
  if (!s_->db) return std::nullopt;
  json j;
  {
    std::lock_guard lk(s_->jobs_mu);
    auto found = s_->get_json(key('j', job_id));
    if (!found) return std::nullopt;
    j = std::move(*found);
  }
  if (j.value("org", std::string()) != org_id.to_string()) return std::nullopt;
  email_job_view v;
  v.job_id = job_id;
  v.org_id = org_id;
  v.invite_id = uuid::parse(j.value("invite", std::string())).value_or(uuid{});
  v.total = j.value("total", std::int64_t{0});
  v.sent = j.value("sent", std::int64_t{0});
  v.failed = j.value("failed", std::int64_t{0});
  const std::string prefix = key('d', job_id);
  std::unique_ptr<rocksdb::Iterator> it(s_->db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(slice(prefix)); it->Valid() && it->key().starts_with(slice(prefix)); it->Next()) {
    auto dl = json::parse(it->value().ToString(), nullptr, false);
    if (dl.is_discarded() || it->key().size() != prefix.size() + 16) continue;
    dead_letter_view row;
    std::copy_n(it->key().data() + prefix.size(), 16, row.event_id.bytes.begin());
    row.invitation_id = uuid::parse(dl.value("invitation_id", std::string())).value_or(uuid{});
    row.error = dl.value("error", std::string());
    row.attempts = dl.value("attempts", 0);
    row.failed_at = from_unix_micros(dl.value("at", std::int64_t{0}));
    v.dead_letters.push_back(std::move(row));
  }
  return v;
}

mailer_stats mailer::stats() const {
  mailer_stats st{s_->checkpoint_shown.load(), s_->sent.load(),
                  s_->failed.load(),           s_->attempts_failed.load(),
                  s_->reminders_sent.load(),   s_->reminders_skipped.load()};
  st.outbox_upgraded = s_->outbox_upgraded.load();
  st.restarts = s_->restarts.load();
  if (const auto* digests = s_->digests_shown.load()) {
    st.digests_sent = digests->digests_sent();
    st.digest_claims = digests->claims_batched();
    st.digests_skipped = digests->batches_dropped();
  }
  return st;
}

std::string mailer::transport() const { return s_->transport->describe(); }

void mailer::forget_learner(const uuid& learner_id) { s_->forget(learner_id, std::nullopt); }

void mailer::keys_being_destroyed() { s_->keys_being_destroyed(); }

std::size_t mailer::forget_email(const uuid& org_id, std::string_view email) {
  // Not under send_mu: an SMTP send may hold it for its whole timeout; the index and the
  // files are safe without it (discard_if_forgotten closes the race with a send).
  return s_->forget_email(org_id, email);
}

}  // namespace passage::consumers
