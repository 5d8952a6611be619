#include "consumers/claim_digest.h"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>
#include <vector>

#include "common/encoding.h"
#include "common/time_format.h"
#include "consumers/mailer.h"
#include "domain/events.h"
#include "domain/streams.h"
#include "domain/text.h"

namespace passage::consumers {
namespace {

using nlohmann::json;
namespace d = domain;

constexpr std::size_t page_size = 1024;

rocksdb::Slice slice(std::string_view s) { return {s.data(), s.size()}; }

std::string big_endian(std::uint64_t p) {
  std::string s(8, '\0');
  for (int i = 7; i >= 0; --i, p >>= 8) s[static_cast<std::size_t>(i)] = static_cast<char>(p);
  return s;
}
std::uint64_t from_big_endian(std::string_view s) {
  std::uint64_t p = 0;
  for (unsigned char c : s) p = (p << 8) | c;
  return p;
}

std::string key(char prefix, const uuid& id) {
  return std::string(1, prefix) + ":" + std::string(id.as_bytes());
}
std::string claim_key(const uuid& invite_id, std::uint64_t position) {
  return key('c', invite_id) + big_endian(position);
}

std::optional<json> get_json(rocksdb::DB& db, const std::string& k) {
  std::string v;
  if (!db.Get(rocksdb::ReadOptions(), slice(k), &v).ok()) return std::nullopt;
  auto j = json::parse(v, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

// Ids of a digest, stable across runs: the window start names the digest.
std::string window_name(timestamp start) { return std::to_string(to_unix_micros(start)); }
uuid digest_id(const uuid& invite_id, timestamp start) {
  return derived_id(invite_id, "claim-digest|" + window_name(start));
}
uuid digest_outcome_id(const uuid& invite_id, timestamp start) {
  return derived_id(invite_id, "claim-digest-outcome|" + window_name(start));
}

std::optional<uuid> invite_of(const eventstore::recorded_event& rec) {
  constexpr std::string_view prefix = "invite-";
  if (!std::string_view(rec.stream).starts_with(prefix)) return std::nullopt;
  return uuid::parse(std::string_view(rec.stream).substr(prefix.size()));
}

}  // namespace

claim_digest::claim_digest(eventstore::event_store& store, const eventstore::event_codec& codec,
                           rocksdb::DB& db, const passage::clock& clk, claim_digest_options options,
                           send_fn send, append_fn append)
    : store_(store),
      codec_(codec),
      db_(db),
      clk_(clk),
      opt_(std::move(options)),
      send_(std::move(send)),
      append_(std::move(append)) {}

bool claim_digest::wants(std::string_view type) {
  return type == d::invite_created::type_name || type == d::invite_updated::type_name ||
         type == d::invite_deleted::type_name || type == d::invite_claimed::type_name;
}

eventstore::store_result<claim_digest::invite_facts> claim_digest::load_facts(
    const uuid& invite_id, std::uint64_t up_to_version) {
  invite_facts f;
  std::uint64_t from = 1;
  while (from <= up_to_version) {
    auto page = store_.read_stream(d::invite_stream(invite_id), from,
                                   eventstore::read_direction::forward, page_size);
    if (!page) return page.error();
    if (page->empty()) break;
    for (const auto& rec : *page) {
      if (rec.stream_version > up_to_version) break;
      if (rec.type == d::invite_deleted::type_name) f.deleted = true;
      if (rec.type != d::invite_created::type_name && rec.type != d::invite_updated::type_name) {
        continue;
      }
      auto decoded = codec_.decode(rec);
      if (!decoded) continue;
      if (auto* c = std::get_if<d::invite_created>(&decoded->event)) {
        f.known = true;
        f.created_by = c->created_by_;
        f.notify = c->settings_.notify_on_claim_;
        f.title = c->settings_.title_;
        f.public_description = c->settings_.public_description_;
      } else if (auto* u = std::get_if<d::invite_updated>(&decoded->event)) {
        f.notify = u->settings_.notify_on_claim_;
        f.title = u->settings_.title_;
        f.public_description = u->settings_.public_description_;
      }
    }
    if (page->size() < page_size) break;
    from = page->back().stream_version + 1;
  }
  return f;
}

bool claim_digest::on_event(const eventstore::recorded_event& rec, rocksdb::WriteBatch& with) {
  auto invite_id = invite_of(rec);
  if (!invite_id) return true;
  auto known = facts_.find(*invite_id);
  if (rec.type != d::invite_claimed::type_name) {
    // Keep a followed invite's settings as of this position (a claim after an edit that
    // turned notifications off is not batched).
    if (known == facts_.end()) return true;
    if (rec.type == d::invite_deleted::type_name) {
      known->second.deleted = true;
    } else if (auto decoded = codec_.decode(rec)) {
      if (auto* u = std::get_if<d::invite_updated>(&decoded->event)) {
        known->second.notify = u->settings_.notify_on_claim_;
        known->second.title = u->settings_.title_;
      }
    }
    return true;
  }
  if (known == facts_.end()) {
    auto f = load_facts(*invite_id, rec.stream_version);
    if (!f) {
      spdlog::error("mailer: reading invite {} for its claim digest failed: {}",
                    invite_id->to_string(), f.error().message);
      return false;
    }
    if (opt_.fresh_state) {
      auto last = store_.read_stream(d::email_job_stream(derived_id(*invite_id, "claim-digest")),
                                     UINT64_MAX, eventstore::read_direction::backward, 1);
      if (!last) {
        spdlog::error("mailer: reading the claim digests of invite {} failed: {}",
                      invite_id->to_string(), last.error().message);
        return false;
      }
      if (!last->empty()) f->reported_before = last->front().position;
    }
    known = facts_.emplace(*invite_id, std::move(*f)).first;
  }
  if (!known->second.notify || rec.position < known->second.reported_before) return true;
  auto org_id = uuid::parse(rec.org_id);
  if (!org_id) return true;

  std::lock_guard lk(mu_);
  // Already in a digest (sent, failed or dropped): a claim read again because the
  // checkpoint its batch write carried was behind it (a welcome-mail run was pending) and
  // the node died before the checkpoint moved past it.
  if (std::string v; db_.Get(rocksdb::ReadOptions(), slice(key('h', *invite_id)), &v).ok() &&
                     rec.position <= from_big_endian(v)) {
    return true;
  }
  if (!get_json(db_, key('b', *invite_id))) {
    // No open batch: due at once after a quiet window, else when the window closes.
    timestamp due = clk_.now();
    if (auto w = get_json(db_, key('w', *invite_id))) {
      const timestamp closes = from_unix_micros(w->value("start", std::int64_t{0})) +
                               std::chrono::duration_cast<std::chrono::microseconds>(opt_.window);
      if (due < closes) due = closes;
    }
    with.Put(slice(key('b', *invite_id)),
             json{{"org", org_id->to_string()}, {"due", to_unix_micros(due)}}.dump());
  }
  with.Put(slice(claim_key(*invite_id, rec.position)), slice(""));
  auto s = db_.Write(rocksdb::WriteOptions(), &with);
  if (!s.ok()) {
    spdlog::error("mailer: claim digest state write failed: {}", s.ToString());
    return false;
  }
  ++batched_;
  return true;
}

eventstore::store_result<std::optional<std::string>> claim_digest::recipient(
    const uuid& org_id, const std::optional<uuid>& key_id) {
  if (!key_id) return std::optional<std::string>();
  std::optional<std::string> email;
  std::uint64_t from = 1;
  for (;;) {
    auto page = store_.read_stream(d::organization_stream(org_id), from,
                                   eventstore::read_direction::forward, page_size);
    if (!page) return page.error();
    if (page->empty()) break;
    for (const auto& rec : *page) {
      if (rec.type != d::api_key_issued::type_name && rec.type != d::api_key_revoked::type_name &&
          rec.type != d::api_key_email_changed::type_name) {
        continue;
      }
      auto decoded = codec_.decode(rec);
      if (!decoded) continue;
      if (auto* k = std::get_if<d::api_key_issued>(&decoded->event); k && k->key_id_ == *key_id) {
        email = k->email_;
      } else if (auto* m = std::get_if<d::api_key_email_changed>(&decoded->event);
                 m && m->key_id_ == *key_id) {
        email = m->email_;  // set, changed or cleared since
      } else if (auto* r = std::get_if<d::api_key_revoked>(&decoded->event);
                 r && r->key_id_ == *key_id) {
        return std::optional<std::string>();  // a revoked key's holder is not told any more
      }
    }
    if (page->size() < page_size) break;
    from = page->back().stream_version + 1;
  }
  return email;
}

// One claim as the digest lists it: who (decrypted now) and when.
std::string claim_digest::claim_line(const eventstore::recorded_event& rec, bool html,
                                     std::vector<named_address>* named) {
  std::string who = "unreadable claim";
  std::string when;
  if (auto decoded = codec_.decode(rec)) {
    if (auto* c = std::get_if<d::invite_claimed>(&decoded->event)) {
      when = format_rfc3339(c->claimed_at_);
      const auto& p = c->personal_data_;
      if (decoded->forgotten) {
        who = "forgotten learner";
      } else if (c->anonymous_ || p.email_.empty()) {
        who = "anonymous learner";
      } else {
        std::string name(d::trim(p.first_name_ + " " + p.last_name_));
        who = name.empty() ? p.email_ : name + " <" + p.email_ + ">";
        if (named) named->push_back({codec_.email_subject(c->org_id_, p.email_), rec.position});
      }
    }
  }
  const std::string line = who + (when.empty() ? "" : ", " + when);
  return html ? "<li>" + html_escape(line) + "</li>\n" : "- " + line + "\n";
}

bool claim_digest::flush_outcomes() {
  const std::string prefix = "o:";
  std::vector<std::pair<std::string, json>> pending;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_.NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(slice(prefix)); it->Valid() && it->key().starts_with(slice(prefix)); it->Next()) {
      auto j = json::parse(it->value().ToString(), nullptr, false);
      if (!j.is_discarded()) pending.emplace_back(it->key().ToString(), std::move(j));
    }
  }
  for (const auto& [k, j] : pending) {
    eventstore::new_event e;
    e.event_id = uuid::parse(j.value("event_id", std::string())).value_or(uuid{});
    e.type = j.value("type", std::string());
    e.schema_version = j.value("schema_version", 1u);
    e.org_id = j.value("org_id", std::string());
    e.correlation_id = j.value("correlation_id", std::string());
    e.causation_id = j.value("causation_id", std::string());
    e.actor = j.value("actor", std::string());
    e.data = j.value("data", std::string());
    if (!append_(j.value("stream", std::string()), std::move(e))) return false;
    rocksdb::WriteBatch b;
    b.Delete(slice(k));
    if (!db_.Write(rocksdb::WriteOptions(), &b).ok()) return false;
  }
  return true;
}

bool claim_digest::send_batch(const uuid& invite_id, const uuid& org_id, timestamp due) {
  const uuid id = digest_id(invite_id, due);
  const std::string batch_prefix = key('c', invite_id);
  std::vector<std::string> claim_keys;
  {
    std::lock_guard lk(mu_);
    std::unique_ptr<rocksdb::Iterator> it(db_.NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(slice(batch_prefix)); it->Valid() && it->key().starts_with(slice(batch_prefix));
         it->Next()) {
      claim_keys.push_back(it->key().ToString());
    }
  }
  const bool ledgered = get_json(db_, key('l', id)).has_value();
  // A failed read leaves the batch as it is: the next poll tries again.
  auto loaded = load_facts(invite_id, UINT64_MAX);
  if (!loaded) {
    spdlog::error("mailer: reading invite {} for its claim digest failed: {}",
                  invite_id.to_string(), loaded.error().message);
    return false;
  }
  const auto& facts = *loaded;
  // Nothing to send: a batch already sent (its removal is in the ledger's write, so this
  // is only a leftover), emptied, or of an invite that stopped asking for digests.
  const bool send = !ledgered && !claim_keys.empty() && facts.notify && !facts.deleted;

  std::optional<digest_delivery> outcome;
  std::string to;
  std::optional<eventstore::new_event> outcome_event;
  const uuid job_id = derived_id(invite_id, "claim-digest");
  if (send) {
    std::string text_lines, html_lines;
    std::vector<named_address> named;
    for (const auto& k : claim_keys) {
      eventstore::log_filter f;
      f.from_position = f.to_position = from_big_endian(std::string_view(k).substr(18));
      auto found = store_.read_all(f, 1);
      if (!found) {
        spdlog::error("mailer: reading a claim for the digest of invite {} failed: {}",
                      invite_id.to_string(), found.error().message);
        return false;
      }
      if (found->empty()) continue;
      text_lines += claim_line(found->front(), false, &named);
      html_lines += claim_line(found->front(), true, nullptr);
    }
    auto address = recipient(org_id, facts.created_by);
    if (!address) {
      spdlog::error("mailer: reading the recipient of invite {}'s claim digest failed: {}",
                    invite_id.to_string(), address.error().message);
      return false;
    }
    if (*address) {
      to = **address;
      const auto tpl =
          template_for(mail_kind::claim_digest, opt_.templates_dir, org_id.to_string());
      auto message = render(tpl,
                            {{"title", facts.title},
                             {"description", facts.public_description},
                             {"count", std::to_string(claim_keys.size())},
                             {"claims", text_lines},
                             {"claims_html", html_lines},
                             {"invite_id", invite_id.to_string()}},
                            opt_.from, to, "<" + id.to_string() + "@passage>");
      outcome = send_(message, named);
      if (!outcome) return false;  // stopping: the batch stays and is sent after the restart
    } else {
      outcome = digest_delivery{
          false, "no recipient (the creating key has no email or was revoked)", clk_.now()};
    }
    d::event e;
    if (outcome->sent) {
      e = d::email_sent{org_id, job_id, id, std::nullopt, std::nullopt, outcome->at, {}};
    } else {
      e = d::email_failed{org_id,       job_id,         id,          std::nullopt,
                          std::nullopt, outcome->error, outcome->at, {}};
    }
    d::personal_data_of(e)->email_ = to;  // the staff address, encrypted under its subject
    auto encoded = codec_.encode(e, {digest_outcome_id(invite_id, due), invite_id.to_string(),
                                     "claim-digest:" + window_name(due), "mailer"});
    if (encoded) {
      outcome_event = std::move(*encoded);
    } else {
      spdlog::error("mailer: cannot encode the outcome of claim digest {}: {}", id.to_string(),
                    encoded.error().message);
    }
  }

  // Ledger, outcome to append, the batch's removal and the new window: one synced write.
  rocksdb::WriteBatch b;
  {
    std::lock_guard lk(mu_);
    if (send) {
      b.Put(slice(key('l', id)), json{{"sent", outcome->sent},
                                      {"error", outcome->error},
                                      {"at", to_unix_micros(outcome->at)},
                                      {"claims", claim_keys.size()}}
                                     .dump());
      b.Put(slice(key('w', invite_id)), json{{"start", to_unix_micros(due)}}.dump());
    }
    if (outcome_event) {
      const auto& e = *outcome_event;
      b.Put(slice(key('o', id)), json{{"stream", d::email_job_stream(job_id)},
                                      {"event_id", e.event_id.to_string()},
                                      {"type", e.type},
                                      {"schema_version", e.schema_version},
                                      {"org_id", e.org_id},
                                      {"correlation_id", e.correlation_id},
                                      {"causation_id", e.causation_id},
                                      {"actor", e.actor},
                                      {"data", e.data}}
                                     .dump());
    }
    for (const auto& k : claim_keys) b.Delete(slice(k));
    // The highest claim this digest handled (keys sort by position): a claim at or below
    // it that is read again after a crash is not batched again.
    if (!claim_keys.empty()) {
      std::uint64_t highest = from_big_endian(std::string_view(claim_keys.back()).substr(18));
      if (std::string v; db_.Get(rocksdb::ReadOptions(), slice(key('h', invite_id)), &v).ok())
        highest = std::max(highest, from_big_endian(v));
      b.Put(slice(key('h', invite_id)), slice(big_endian(highest)));
    }
    // Claims that joined while this digest was being sent wait for the next window.
    std::set<std::string> taken(claim_keys.begin(), claim_keys.end());
    bool later = false;
    std::unique_ptr<rocksdb::Iterator> it(db_.NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(slice(batch_prefix)); it->Valid() && it->key().starts_with(slice(batch_prefix));
         it->Next()) {
      later = later || !taken.contains(it->key().ToString());
    }
    if (later) {
      const timestamp next =
          due + std::chrono::duration_cast<std::chrono::microseconds>(opt_.window);
      b.Put(slice(key('b', invite_id)),
            json{{"org", org_id.to_string()}, {"due", to_unix_micros(next)}}.dump());
    } else {
      b.Delete(slice(key('b', invite_id)));
    }
    rocksdb::WriteOptions w;
    w.sync = true;
    if (auto s = db_.Write(w, &b); !s.ok()) {
      spdlog::error("mailer: claim digest state write failed: {}", s.ToString());
      return false;
    }
  }
  // The outcome event goes into the log before the digest counts as sent.
  if (!flush_outcomes()) return false;
  if (send && outcome->sent) ++sent_;
  if (!send && !claim_keys.empty()) ++dropped_;
  return true;
}

bool claim_digest::send_due() {
  if (!flush_outcomes()) return false;
  const std::string prefix = "b:";
  const timestamp now = clk_.now();
  std::vector<std::tuple<uuid, uuid, timestamp>> due;
  {
    std::lock_guard lk(mu_);
    std::unique_ptr<rocksdb::Iterator> it(db_.NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(slice(prefix)); it->Valid() && it->key().starts_with(slice(prefix)); it->Next()) {
      if (it->key().size() != prefix.size() + 16) continue;
      auto j = json::parse(it->value().ToString(), nullptr, false);
      if (j.is_discarded()) continue;
      const timestamp at = from_unix_micros(j.value("due", std::int64_t{0}));
      if (at > now) continue;
      uuid invite_id;
      std::copy_n(it->key().data() + prefix.size(), 16, invite_id.bytes.begin());
      auto org = uuid::parse(j.value("org", std::string()));
      if (org) due.emplace_back(invite_id, *org, at);
    }
  }
  for (const auto& [invite_id, org_id, at] : due) {
    if (!send_batch(invite_id, org_id, at)) return false;
  }
  return flush_outcomes();
}

}  // namespace passage::consumers
