#include "api/v1/idempotency.h"

#include <rocksdb/db.h>

#include <algorithm>
#include <iterator>

#include <nlohmann/json.hpp>

#include "api/problem.h"
#include "common/encoding.h"
#include "common/hmac.h"

namespace passage::api::v1 {
namespace {

std::string sha256_hex(std::string_view data) {
  const auto digest = sha256({data});
  return hex_encode(digest.data(), digest.size());
}

std::string encode(const stored_response& r) {
  return nlohmann::json{{"f", r.fingerprint},
                        {"s", r.status},
                        {"c", r.content_type},
                        {"e", r.etag},
                        {"l", r.location},
                        {"b", r.body},
                        {"t", to_unix_micros(r.stored_at)}}
      .dump();
}

std::optional<stored_response> decode(std::string_view v) {
  auto j = nlohmann::json::parse(v, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  try {
    stored_response r;
    r.fingerprint = j.at("f").get<std::string>();
    r.status = j.at("s").get<unsigned>();
    r.content_type = j.at("c").get<std::string>();
    r.etag = j.at("e").get<std::string>();
    r.location = j.at("l").get<std::string>();
    r.body = j.at("b").get<std::string>();
    r.stored_at = from_unix_micros(j.at("t").get<std::int64_t>());
    return r;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

// Whether a retry with the same key gets this response again. Not for a request that
// was refused before it was acted on for what holds only now: no valid credential (401),
// a rate limit (429: its Retry-After names when a retry may succeed), a server-side
// failure or a read model lagging behind (5xx).
bool kept_for_retries(unsigned status) { return status < 500 && status != 401 && status != 429; }

// The problem codes of the claim refusals recorded as ClaimRejected (SPEC §2).
bool recorded_refusal(std::string_view problem_body) {
  auto j = nlohmann::json::parse(problem_body, nullptr, false);
  if (!j.is_object() || !j.contains("code") || !j["code"].is_string()) return false;
  static constexpr std::string_view recorded[] = {"expired",        "not_open_yet", "full",
                                                  "not_allowed",    "deactivated",  "deleted",
                                                  "details_missing"};
  const auto& code = j["code"].get_ref<const std::string&>();
  return std::find(std::begin(recorded), std::end(recorded), code) != std::end(recorded);
}

bool keeps(kept_answers which, unsigned status, std::string_view body) {
  if (!kept_for_retries(status)) return false;
  if (which == kept_answers::settled) return true;
  return (status >= 200 && status < 300) || recorded_refusal(body);
}

// Delivers to the original responder after storing the response. A provisional answer
// (503 while the read models lag behind the stored command) goes to the client and keeps
// the key in flight: retries meanwhile get 409, and the command's own answer, when it
// settles, is stored for them.
class storing_sink final : public response_sink {
 public:
  storing_sink(idempotency_store& store, std::string key, std::string fingerprint, responder out,
               const passage::clock& clock, kept_answers which)
      : store_(store),
        key_(std::move(key)),
        fingerprint_(std::move(fingerprint)),
        out_(std::move(out)),
        clock_(clock),
        which_(which) {}
  ~storing_sink() override {
    if (!done_) store_.finish(key_, std::nullopt);
  }
  void deliver(response res) override {
    done_ = true;
    store_.finish(key_, kept(res));
    (*out_)(std::move(res));
  }
  std::shared_ptr<event_stream> open_stream(response_header header) override {
    done_ = true;
    store_.finish(key_, std::nullopt);
    return out_->start_stream(std::move(header));
  }
  void deliver_provisional(response res) override {
    // The connection is answered: the settled answer goes only to the store, and the
    // connection is not held open (nor its memory kept) until then.
    auto out = std::move(*out_);
    out_.reset();
    out(std::move(res));
  }
  void settle(response res) override {
    done_ = true;
    store_.finish(key_, kept(res));
  }
  bool keeps_settled() const override { return true; }

 private:
  std::optional<stored_response> kept(const response& res) const {
    if (!keeps(which_, res.result_int(), res.body())) return std::nullopt;
    stored_response r;
    r.fingerprint = fingerprint_;
    r.status = res.result_int();
    r.content_type = std::string(res[http::field::content_type]);
    r.etag = std::string(res[http::field::etag]);
    r.location = std::string(res[http::field::location]);
    r.body = res.body();
    r.stored_at = clock_.now();
    return r;
  }

  idempotency_store& store_;
  std::string key_, fingerprint_;
  std::optional<responder> out_;
  const passage::clock& clock_;
  kept_answers which_;
  bool done_ = false;
};

}  // namespace

result<std::unique_ptr<idempotency_store>, std::string> idempotency_store::open(
    idempotency_options o) {
  std::unique_ptr<idempotency_store> s(new idempotency_store());
  s->options_ = std::move(o);
  if (!s->options_.clock) s->options_.clock = &s->system_clock_;
  rocksdb::Options opts;
  opts.create_if_missing = true;
  rocksdb::DB* db = nullptr;
  auto st = rocksdb::DB::Open(opts, s->options_.path, &db);
  if (!st.ok()) return fail("opening the idempotency store: " + st.ToString());
  s->db_.reset(db);
  s->purge_expired();
  return s;
}

idempotency_store::~idempotency_store() = default;

void idempotency_store::purge_expired() {
  auto cutoff = options_.clock->now() - options_.retention;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  rocksdb::WriteBatch wb;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto r = decode(it->value().ToStringView());
    if (!r || r->stored_at < cutoff) wb.Delete(it->key());
  }
  if (wb.Count() > 0) (void)db_->Write(rocksdb::WriteOptions(), &wb);
}

std::optional<stored_response> idempotency_store::begin(const std::string& key,
                                                        bool& already_in_flight) {
  std::lock_guard lk(mu_);
  already_in_flight = false;
  std::string v;
  if (db_->Get(rocksdb::ReadOptions(), key, &v).ok()) {
    auto r = decode(v);
    if (r && r->stored_at >= options_.clock->now() - options_.retention) return r;
  }
  if (!in_flight_.insert(key).second) already_in_flight = true;
  return std::nullopt;
}

void idempotency_store::finish(const std::string& key, const std::optional<stored_response>& r) {
  if (r) {
    // Outside the lock: other keys' requests do not wait for this fsync. The key stays in
    // flight (a retry meanwhile gets 409) until the answer is stored.
    rocksdb::WriteOptions wo;
    wo.sync = true;  // the response promises the write happened once
    (void)db_->Put(wo, key, encode(*r));
  }
  std::lock_guard lk(mu_);
  in_flight_.erase(key);
}

handler with_idempotency(idempotency_store& store, idempotency_scope scope, handler inner,
                         kept_answers which) {
  return [&store, scope = std::move(scope), inner = std::move(inner), which](
             const request& req, request_context& ctx, responder respond) {
    auto it = req.find("Idempotency-Key");
    if (it == req.end()) {
      inner(req, ctx, std::move(respond));
      return;
    }
    std::string idem(it->value());
    if (idem.empty() || idem.size() > 255) {
      respond(problem_response(invalid_request("Idempotency-Key must be 1 to 255 characters")));
      return;
    }
    auto whose = scope(req, ctx);
    if (!whose) {
      inner(req, ctx, std::move(respond));
      return;
    }
    std::string key = *whose + '\0' + std::string(req.method_string()) + '\0' +
                      std::string(ctx.route) + '\0' + idem;
    std::string fingerprint = sha256_hex(std::string(req.method_string()) + " " +
                                         std::string(req.target()) + "\n" + req.body());
    bool busy = false;
    auto stored = store.begin(key, busy);
    if (stored) {
      if (stored->fingerprint != fingerprint) {
        respond(problem_response(
            make_problem("idempotency_key_reused",
                         "this Idempotency-Key was used with a different request; use a new key")));
        return;
      }
      response res{static_cast<http::status>(stored->status), req.version()};
      if (!stored->content_type.empty()) res.set(http::field::content_type, stored->content_type);
      if (!stored->etag.empty()) res.set(http::field::etag, stored->etag);
      if (!stored->location.empty()) res.set(http::field::location, stored->location);
      res.set("Idempotent-Replayed", "true");
      res.body() = stored->body;
      res.prepare_payload();
      respond(std::move(res));
      return;
    }
    if (busy) {
      respond(problem_response(
          make_problem("conflict", "a request with this Idempotency-Key is still in progress")));
      return;
    }
    auto sink =
        std::make_shared<storing_sink>(store, key, fingerprint, respond, store.clock(), which);
    inner(req, ctx, responder(sink));
  };
}

}  // namespace passage::api::v1
