#include "service/command_service.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "common/encoding.h"
#include "common/hmac.h"
#include "common/random.h"
#include "domain/claim.h"
#include "domain/invite_code.h"
#include "domain/learner.h"
#include "domain/password.h"
#include "domain/streams.h"
#include "domain/text.h"
#include "service/learner_ids_ahead.h"
#include "service/password_hash.h"

namespace passage::service {
namespace {

using eventstore::expected_version;
using eventstore::stream_append;

service_error store_failure(const eventstore::store_error& e) {
  if (e.code == eventstore::errc::wrong_expected_version) {
    auto err = make_service_error("version_conflict", e.message);
    err.current_version = e.actual_version;
    return err;
  }
  return make_service_error("unavailable", "the event log refused the write: " + e.message);
}

// One aggregate instance in memory. `state` and `version` include events whose
// append is still in flight: the next command decides on top of them.
template <typename State>
struct aggregate {
  std::mutex mu;
  // Set under `mu` once loaded; cleared under it, or without it by an append's answer
  // (which may come on the thread that holds `mu` to queue that append: a store closed
  // or refusing it at once answers on the spot).
  std::atomic<bool> loaded{false};
  State state{};
  std::uint64_t version = 0;
  // Appends queued for this aggregate (under `mu`), numbered from 1.
  std::uint64_t queued = 0;
  // Their answers (under `answers_mu`, never `mu`: see `loaded`). A decision without events
  // answers from the state its aggregate's appends made, so only once they are stored.
  std::mutex answers_mu;
  std::uint64_t answered = 0;  // the latest answered append
  std::vector<std::pair<std::uint64_t, std::function<void(bool stored)>>> waiting;

  // The append numbered `n` was answered. The appends of one stream build on each other
  // (each expects the version the ones before it make): a later one stored, so were they.
  void answer(std::uint64_t n, bool stored) {
    std::vector<std::function<void(bool)>> ready;
    {
      std::lock_guard lk(answers_mu);
      answered = std::max(answered, n);
      for (auto it = waiting.begin(); it != waiting.end();) {
        if (it->first <= n) {
          ready.push_back(std::move(it->second));
          it = waiting.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& fn : ready) fn(stored);
  }
};

template <typename State>
class aggregate_cache {
 public:
  explicit aggregate_cache(std::size_t max) : max_(max) {}

  std::shared_ptr<aggregate<State>> get(const std::string& stream) {
    std::lock_guard lk(mu_);
    auto& slot = map_[stream];
    if (!slot) {
      slot = std::make_shared<aggregate<State>>();
      if (map_.size() > max_) evict_idle(stream);
    }
    return slot;
  }

 private:
  // Drops entries nobody holds (no command deciding, no append in flight).
  void evict_idle(const std::string& keep) {
    for (auto it = map_.begin(); it != map_.end() && map_.size() > max_ / 2;) {
      if (it->first != keep && it->second.use_count() == 1) {
        it = map_.erase(it);
      } else {
        ++it;
      }
    }
  }

  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<aggregate<State>>> map_;
  std::size_t max_;
};

// Runs posted work off the store's writer thread (retries reload aggregates).
class worker {
 public:
  worker() : thread_([this] { run(); }) {}
  ~worker() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  void post(std::function<void()> fn) {
    {
      std::lock_guard lk(mu_);
      queue_.push_back(std::move(fn));
    }
    cv_.notify_one();
  }

 private:
  void run() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

std::string generate_api_key() { return "psk_" + secure_random_hex(20); }

std::string hash_api_key(std::string_view key) {
  const auto digest = sha256({key});  // no algorithm fetch per authenticated request
  return hex_encode(digest.data(), digest.size());
}

// What a decision hands to execute(): the events, expectations for streams other
// than the aggregate's own, and how to answer once they are stored.
template <typename State>
struct plan {
  domain::event_list events;
  // Expectations on other streams (unnamed: any), checked with the append; also for a
  // stream the events do not write to. A plan without events appends nothing (the store
  // takes no empty append): it is answered once the appends its state came from are stored,
  // which checked the expectations it relies on.
  std::map<std::string, expected_version> other_streams;
  // Runs once the events are durable (when there are none, once the aggregate's appends
  // queued before are). May run on the store's writer thread.
  std::function<void(const written&)> on_success;
  // Optional: sees the aggregate's state right after the events, under its lock
  // (copying a whole invite per command would make claims O(claims)).
  std::function<void(const State& after)> observe;
  // Optional: runs when the events are not stored (they could not be encoded, or the
  // append failed), before a retry decides again: undoes what the decision reserved.
  std::function<void()> on_failure;
};

// The plan of a command whose answer is where its events landed.
template <typename State>
domain::domain_result<plan<State>> answer_written(domain::domain_result<domain::event_list> events,
                                                  const callback<written>& done) {
  if (!events) return events.error();
  return plan<State>{std::move(*events), {}, [done](const written& w) { done(w); }};
}

template <typename State>
using decide_fn = std::function<domain::domain_result<plan<State>>(const State&, timestamp)>;
template <typename State>
using seed_fn = std::function<service_result<bool>(State&)>;
using fail_fn = std::function<void(service_error)>;

struct command_service::impl {
  impl(eventstore::event_store& s, const eventstore::event_codec& c, eventstore::key_store& k,
       fact_source& f, const clock& cl, learner_token_codec t, command_service_options o)
      : store(s),
        codec(c),
        keys(k),
        facts(f),
        clk(cl),
        tokens(std::move(t)),
        links(o.personal_link_secret.empty() ? secure_random_hex(32) : o.personal_link_secret),
        setups(o.password_setup_secret.empty() ? secure_random_hex(32) : o.password_setup_secret),
        options(o),
        invites(o.max_cached_aggregates),
        claims(o.max_cached_aggregates),
        orgs(o.max_cached_aggregates),
        tracks(o.max_cached_aggregates),
        learners(o.max_cached_aggregates),
        fresh_learners(k, o.learner_keys_ahead) {}

  eventstore::event_store& store;
  const eventstore::event_codec& codec;
  eventstore::key_store& keys;
  fact_source& facts;
  const clock& clk;
  learner_token_codec tokens;
  personal_link_codec links;
  password_setup_codec setups;
  command_service_options options;

  aggregate_cache<domain::invite_state> invites;
  aggregate_cache<domain::claim_state> claims;
  aggregate_cache<domain::organization_state> orgs;
  aggregate_cache<domain::track_state> tracks;
  aggregate_cache<domain::learner_state> learners;

  // A lead-form submission a claim captured, until the read side shows it.
  struct pending_lead {
    enum class state : std::uint8_t { appending, stored, failed };
    state now = state::appending;
    // Claims by the same email decided while the append was unanswered: they decide again
    // once it is answered (the lead counts as submitted only if it was stored).
    std::vector<std::function<void()>> waiters;
  };

  // Emails whose learner a claim registered but the read side may not show yet
  // (email subject -> learner id): one learner per email even when claims for a
  // new email race on different invites. Same for lead-form submissions.
  std::mutex learners_mu;
  std::unordered_map<std::string, uuid> pending_learners;
  std::unordered_map<std::string, std::shared_ptr<pending_lead>> pending_leads;

  // Settles a lead this process captured: its waiters decide again.
  void settle_lead(const std::shared_ptr<pending_lead>& lead, pending_lead::state now) {
    std::vector<std::function<void()>> waiters;
    {
      std::lock_guard lk(learners_mu);
      lead->now = now;
      waiters.swap(lead->waiters);
    }
    for (auto& w : waiters) retries.post(std::move(w));
  }
  // Codes of invites created here that the read side may not show yet.
  std::mutex codes_mu;
  std::unordered_map<std::string, invite_ref> pending_codes;
  // Seeds of claims made here until the read side shows them, so their first plays need
  // no read-side lookup.
  std::mutex seeds_mu;
  std::unordered_map<uuid, domain::invite_claimed> claim_seeds;

  worker retries;
  // New learners' ids with their keys made (durably) ahead of the claims that use them.
  learner_ids_ahead fresh_learners;

  // Claims by code and by personal link share this path (invitation_id: the link's).
  void claim_on(invite_ref ref, claim_input input, std::optional<uuid> invitation_id,
                const request_meta& m, callback<claim_result> done);

  // ---- loading --------------------------------------------------------------

  template <typename State>
  service_result<bool> fold_stream(const std::string& stream, State& state,
                                   std::uint64_t& version) {
    std::uint64_t from = 1;
    for (;;) {
      auto page = store.read_stream(stream, from, eventstore::read_direction::forward, 1024);
      if (!page) return store_failure(page.error());
      for (const auto& rec : *page) {
        auto d = codec.decode(rec);
        if (!d) {
          return make_service_error("unavailable", "event at position " +
                                                       std::to_string(rec.position) +
                                                       " cannot be decoded: " + d.error().message);
        }
        state = domain::evolve(std::move(state), d->event);
        version = rec.stream_version;
      }
      if (page->size() < 1024) return true;
      from = page->back().stream_version + 1;
    }
  }

  template <typename State>
  service_result<bool> ensure_loaded(aggregate<State>& agg, const std::string& stream,
                                     const seed_fn<State>& seed) {
    if (agg.loaded) return true;
    State state{};
    std::uint64_t version = 0;
    if (seed) {
      auto s = seed(state);
      if (!s) return s;
    }
    auto r = fold_stream(stream, state, version);
    if (!r) return r;
    agg.state = std::move(state);
    agg.version = version;
    agg.loaded = true;
    return true;
  }

  template <typename State>
  service_result<State> load(aggregate_cache<State>& cache, const std::string& stream,
                             const seed_fn<State>& seed = {}) {
    auto agg = cache.get(stream);
    std::lock_guard lk(agg->mu);
    auto r = ensure_loaded<State>(*agg, stream, seed);
    if (!r) return r.error();
    return agg->state;
  }

  // Drops what `cache` holds of `stream`: the next load or decision reads it afresh from the
  // log (learner streams, which claims append to outside the learners' cache).
  template <typename State>
  void invalidate(aggregate_cache<State>& cache, const std::string& stream) {
    auto agg = cache.get(stream);
    std::lock_guard lk(agg->mu);
    agg->loaded = false;
  }

  // What `read` takes from the aggregate of `stream`, read under its lock: for callers
  // that need a part of a large state (a claim needs its organization's lead form, not
  // the org's every API key).
  template <typename State, typename Read>
  auto read_loaded(aggregate_cache<State>& cache, const std::string& stream, Read read)
      -> service_result<decltype(read(std::declval<const State&>()))> {
    auto agg = cache.get(stream);
    std::lock_guard lk(agg->mu);
    auto r = ensure_loaded<State>(*agg, stream, {});
    if (!r) return r.error();
    return read(std::as_const(agg->state));
  }

  // ---- executing ------------------------------------------------------------

  // Decides `decide` on the aggregate of `stream` and appends the events with the
  // aggregate's version as the expectation. A version conflict (a stale cache)
  // reloads and decides again, up to options.max_retries times.
  template <typename State>
  void execute(aggregate_cache<State>& cache, const std::string& stream, seed_fn<State> seed,
               decide_fn<State> decide, const request_meta& meta, const std::string& actor,
               fail_fn fail, int attempt = 0) {
    auto agg = cache.get(stream);
    std::unique_lock lk(agg->mu);
    if (auto loaded = ensure_loaded<State>(*agg, stream, seed); !loaded) {
      lk.unlock();
      fail(loaded.error());
      return;
    }
    auto decided = decide(agg->state, clk.now());
    if (!decided) {
      lk.unlock();
      fail(from_domain(decided.error()));
      return;
    }
    plan<State> p = std::move(*decided);
    if (p.events.empty()) {
      if (p.observe) p.observe(agg->state);
      written w{0, agg->version};
      // Decided on the state the appends queued before it made: answered once they are
      // stored (the expectations they carried checked), decided again should one fail.
      std::unique_lock answers(agg->answers_mu);
      if (agg->answered < agg->queued) {
        agg->waiting.emplace_back(agg->queued, [this, w, on_success = std::move(p.on_success),
                                                &cache, stream, seed = std::move(seed),
                                                decide = std::move(decide), meta, actor,
                                                fail = std::move(fail),
                                                attempt](bool stored) mutable {
          if (stored) {
            on_success(w);
          } else if (attempt < options.max_retries) {
            retries.post([this, &cache, stream, seed, decide, meta, actor, fail, attempt] {
              execute<State>(cache, stream, seed, decide, meta, actor, fail, attempt + 1);
            });
          } else {
            fail(make_service_error("unavailable", "the command it builds on could not be stored"));
          }
        });
        return;
      }
      answers.unlock();
      lk.unlock();
      p.on_success(w);
      return;
    }

    // Encode everything first (all or nothing), grouped by stream with the
    // aggregate's own stream first; then apply the own events in place. Each event's
    // stream is named once, and each group's events are reserved before they move in
    // (encoded events are large: a reallocation moves every string of those before).
    std::vector<stream_append> appends;
    appends.push_back({stream, expected_version::exact(agg->version), {}});
    std::vector<std::size_t> group_of(p.events.size());
    for (std::size_t i = 0; i < p.events.size(); ++i) {
      auto target = domain::stream_of(p.events[i]);
      auto it = std::find_if(appends.begin(), appends.end(),
                             [&](const stream_append& a) { return a.stream == target; });
      if (it == appends.end()) {
        auto other = p.other_streams.find(target);
        appends.push_back({std::move(target),
                           other == p.other_streams.end() ? expected_version::any() : other->second,
                           {}});
        it = appends.end() - 1;
      }
      group_of[i] = static_cast<std::size_t>(it - appends.begin());
    }
    // Expectations on streams the command writes nothing to: checked with the append.
    for (const auto& [name, expected] : p.other_streams) {
      if (std::none_of(appends.begin(), appends.end(),
                       [&](const stream_append& a) { return a.stream == name; })) {
        appends.push_back({name, expected, {}});
      }
    }
    for (std::size_t g = 0; g < appends.size(); ++g) {
      appends[g].events.reserve(
          static_cast<std::size_t>(std::count(group_of.begin(), group_of.end(), g)));
    }
    {
      // The command's events are mostly about one subject (a claim's three, its learner):
      // its key is looked up once for all of them, and wiped once they are encoded.
      eventstore::encode_keys kept;
      for (std::size_t i = 0; i < p.events.size(); ++i) {
        // Time-ordered event ids: the store's id index then takes each new id next to the
        // one before it (see rocksdb_event_store.cc, shape::by_id) instead of searching.
        auto encoded = codec.encode(
            p.events[i], {uuid::time_ordered(), meta.correlation_id, meta.causation_id, actor},
            kept);
        if (!encoded) {
          lk.unlock();
          if (p.on_failure) p.on_failure();
          fail(
              make_service_error("unavailable", "cannot encode event: " + encoded.error().message));
          return;
        }
        appends[group_of[i]].events.push_back(std::move(*encoded));
      }
    }
    for (std::size_t i = 0; i < p.events.size(); ++i) {
      if (group_of[i] == 0) {  // the aggregate's own stream
        agg->state = domain::evolve(std::move(agg->state), p.events[i]);
        ++agg->version;
      }
    }
    if (p.observe) p.observe(agg->state);
    written w{0, agg->version};
    const std::uint64_t number = ++agg->queued;

    // Queued while the aggregate is locked, so its appends reach the log in the
    // order they were decided: the next command may already build on this one.
    store.append_async(
        std::move(appends),
        [this, agg, w, number, queued = std::chrono::steady_clock::now(),
         on_success = std::move(p.on_success), on_failure = std::move(p.on_failure), &cache, stream,
         seed = std::move(seed), decide = std::move(decide), meta, actor, fail = std::move(fail),
         attempt](eventstore::store_result<eventstore::append_result> r) mutable {
          if (options.on_append_latency) {
            options.on_append_latency(std::chrono::steady_clock::now() - queued);
          }
          if (r) {
            w.position = r->last_position;
            on_success(w);
            agg->answer(number, true);
            return;
          }
          // The cached state ran ahead of the log: drop it, reload next time.
          agg->loaded = false;
          agg->answer(number, false);
          if (on_failure) on_failure();
          if (r.error().code == eventstore::errc::wrong_expected_version &&
              attempt < options.max_retries) {
            retries.post([this, &cache, stream, seed, decide, meta, actor, fail, attempt] {
              execute<State>(cache, stream, seed, decide, meta, actor, fail, attempt + 1);
            });
            return;
          }
          fail(store_failure(r.error()));
        });
  }

  // ---- facts ----------------------------------------------------------------

  service_result<domain::track_catalog> track_catalog(const uuid& org,
                                                      const std::vector<std::string>& ids) {
    domain::track_catalog catalog;
    for (const auto& id : ids) {
      if (catalog.count(id) || !domain::is_valid_track_id(id)) continue;
      auto s = load(tracks, domain::track_stream(org, id));
      if (!s) return s.error();
      if (s->exists_) catalog.emplace(id, domain::to_fact(*s));
    }
    return catalog;
  }

  // An invite action by an org key; a professor needs the owners of every track.
  domain::domain_result<bool> authorize_invite(const domain::principal& who, const uuid& org,
                                               const std::vector<std::string>& track_ids) {
    domain::access_target target{org, {}, std::nullopt};
    if (who.role_ == domain::role::professor) {
      auto catalog = track_catalog(org, track_ids);
      if (!catalog) {
        return domain::make_error(domain::errc::invalid_state, "", catalog.error().message);
      }
      for (const auto& id : track_ids) {
        auto it = catalog->find(id);
        target.track_owners_.push_back(it == catalog->end() ? std::nullopt : it->second.owner_);
      }
    }
    auto ok = domain::authorize(who, domain::action::manage_invite, target);
    if (!ok) return ok.error();
    return true;
  }

  static std::vector<std::string> track_ids_of(const domain::invite_settings& s) {
    std::vector<std::string> ids;
    for (const auto& t : s.tracks_) ids.push_back(t.track_id_);
    return ids;
  }

  static std::string actor_of(const domain::principal& who) {
    return who.role_ == domain::role::operator_ ? "operator" : "key:" + who.key_id_.to_string();
  }

  // Draws a code no invite uses and reserves it for `ref`, so no concurrent create
  // takes it, until the read side shows the invite (or the create fails).
  service_result<std::string> reserve_new_code(invite_ref ref) {
    for (int attempt = 0; attempt < 32; ++attempt) {
      std::array<std::uint8_t, domain::invite_code_random_bytes> bytes{};
      secure_random_bytes(bytes);
      auto code = domain::make_invite_code(bytes);
      if (!code || facts.invite_by_code(*code)) continue;
      std::lock_guard lk(codes_mu);
      if (pending_codes.emplace(*code, ref).second) return *code;
    }
    return make_service_error("unavailable", "could not draw an unused invite code");
  }
  void release_code(const std::string& code) {
    std::lock_guard lk(codes_mu);
    pending_codes.erase(code);
  }
  void release_code_when_visible(const std::string& code, std::uint64_t position) {
    facts.when_applied(position, [this, code] { release_code(code); });
  }

  // Starts a new invite stream (create or duplicate) under a reserved code.
  void start_invite(const domain::principal& who, const uuid& invite_id, const std::string& code,
                    std::function<domain::domain_result<domain::event_list>(
                        const domain::invite_state&, timestamp)>
                        decide_events,
                    const request_meta& m, callback<invite_written> done) {
    execute<domain::invite_state>(
        invites, domain::invite_stream(invite_id), {},
        [this, invite_id, code, decide_events, done](const domain::invite_state& s, timestamp now)
            -> domain::domain_result<plan<domain::invite_state>> {
          auto events = decide_events(s, now);
          if (!events) return events.error();
          return plan<domain::invite_state>{
              std::move(*events), {}, [this, invite_id, code, done](const written& w) {
                release_code_when_visible(code, w.position);
                done(invite_written{invite_id, code, w});
              }};
        },
        m, actor_of(who),
        [this, code, done](service_error e) {
          release_code(code);
          done(std::move(e));
        });
  }

  std::optional<invite_ref> invite_by_code(const std::string& code) {
    {
      std::lock_guard lk(codes_mu);
      if (auto it = pending_codes.find(code); it != pending_codes.end()) return it->second;
    }
    return facts.invite_by_code(code);
  }

  // A command on the caller's organization that answers with where it landed.
  template <typename Command>
  void org_command(const domain::principal& who, domain::action action, Command cmd,
                   const request_meta& m, callback<written> done) {
    auto allowed = domain::authorize(who, action, {who.org_id_, {}, {}});
    if (!allowed) {
      done(from_domain(allowed.error()));
      return;
    }
    execute<domain::organization_state>(
        orgs, domain::organization_stream(who.org_id_), {},
        [cmd = std::move(cmd), done](const domain::organization_state& s, timestamp now)
            -> domain::domain_result<plan<domain::organization_state>> {
          return answer_written<domain::organization_state>(domain::decide(s, cmd, now), done);
        },
        m, actor_of(who), [done](service_error e) { done(std::move(e)); });
  }

  // Lifecycle and edit commands of an existing invite.
  template <typename Command>
  void invite_command(const domain::principal& who, const uuid& invite_id, Command cmd,
                      const request_meta& m, callback<written> done) {
    execute<domain::invite_state>(
        invites, domain::invite_stream(invite_id), {},
        [this, who, cmd = std::move(cmd), done](const domain::invite_state& s, timestamp now)
            -> domain::domain_result<plan<domain::invite_state>> {
          if (!s.exists_ || s.org_id_ != who.org_id_) {
            return domain::make_error(domain::errc::not_found, "id", "no such invite");
          }
          auto ids = track_ids_of(s.settings_);
          if constexpr (std::is_same_v<Command, domain::update_invite>) {
            if (cmd.patch_.tracks_) {
              for (const auto& t : *cmd.patch_.tracks_) ids.push_back(t.track_id_);
            }
          }
          auto allowed = authorize_invite(who, s.org_id_, ids);
          if (!allowed) return allowed.error();
          return answer_written<domain::invite_state>(domain::decide(s, cmd, now), done);
        },
        m, actor_of(who), [done](service_error e) { done(std::move(e)); });
  }

  // Plays, pauses and resumes: the claim aggregate, seeded by its InviteClaimed.
  template <typename Command>
  void claim_command(const uuid& claim_id, std::string_view token, Command cmd,
                     const request_meta& m, callback<play_result> done) {
    auto who = tokens.verify(token);
    if (!who) {
      done(make_service_error("unauthorized", "a valid learner token is required"));
      return;
    }
    cmd.learner_id_ = who->learner_id;
    seed_fn<domain::claim_state> seed = [this,
                                         claim_id](domain::claim_state& s) -> service_result<bool> {
      std::optional<domain::invite_claimed> e;
      {
        std::lock_guard lk(seeds_mu);
        if (auto it = claim_seeds.find(claim_id); it != claim_seeds.end()) e = it->second;
      }
      if (!e) e = facts.claim_seed(claim_id);
      if (!e) return make_service_error("not_found", "no such claim", "claim_id");
      s = domain::evolve(std::move(s), domain::event{*e});
      return true;
    };
    const std::string track = cmd.track_id_;
    execute<domain::claim_state>(
        claims, domain::claim_stream(claim_id), std::move(seed),
        [cmd, who, done, track](const domain::claim_state& s,
                                timestamp now) -> domain::domain_result<plan<domain::claim_state>> {
          if (!s.exists_ || s.org_id_ != who->org_id) {
            return domain::make_error(domain::errc::not_found, "claim_id", "no such claim");
          }
          auto events = domain::decide(s, cmd, now);
          if (!events) return events.error();
          auto shown = std::make_shared<play_result>();
          shown->track_id = track;
          return plan<domain::claim_state>{
              std::move(*events),
              {},
              [done, shown](const written& w) {
                shown->at = w;
                done(*shown);
              },
              [shown, track](const domain::claim_state& after) {
                shown->plays_remaining = domain::plays_remaining(after, track);
                shown->access_expires_at = after.access_expires_at_;
                auto it = after.progress_.find(track);
                shown->paused = it != after.progress_.end() && it->second.paused_;
              }};
        },
        m, "learner:" + who->learner_id.to_string(),
        [done](service_error e) { done(std::move(e)); });
  }

  std::vector<claimed_track> tracks_of(const domain::claim_record& c,
                                       const std::optional<domain::claim_state>& progress) {
    std::vector<claimed_track> out;
    for (const auto& t : c.restrictions_.tracks_) {
      claimed_track ct;
      ct.track_id = t.track_id_;
      ct.pausable = t.pausable_;
      ct.access_expires_at = c.access_expires_at_;
      if (c.restrictions_.plays_per_track_ > 0) {
        ct.plays_remaining = progress
                                 ? domain::plays_remaining(*progress, t.track_id_)
                                 : std::optional<std::int64_t>(c.restrictions_.plays_per_track_);
      }
      out.push_back(std::move(ct));
    }
    return out;
  }
};

command_service::command_service(eventstore::event_store& store,
                                 const eventstore::event_codec& codec, eventstore::key_store& keys,
                                 fact_source& facts, const clock& clock, learner_token_codec tokens,
                                 command_service_options options)
    : impl_(std::make_unique<impl>(store, codec, keys, facts, clock, std::move(tokens), options)) {}

command_service::~command_service() = default;

const learner_token_codec& command_service::tokens() const { return impl_->tokens; }

// ---- organizations and keys ---------------------------------------------------

service_result<organization_created_result> command_service::ensure_organization(
    const uuid& org_id, std::string name, std::optional<std::string> owner_key) {
  auto stream = domain::organization_stream(org_id);
  auto current = impl_->load(impl_->orgs, stream);
  if (!current) return current.error();
  std::string key = owner_key ? *owner_key : generate_api_key();
  std::string key_hash = hash_api_key(key);
  std::promise<service_result<organization_created_result>> p;
  auto f = p.get_future();
  uuid key_id = uuid::random();
  bool exists = current->exists_;
  if (exists) {
    for (const auto& [id, k] : current->api_keys_) {
      if (k.key_hash_ == key_hash && !k.revoked_) {
        return organization_created_result{org_id, id, "", {0, current->version_}};
      }
    }
    if (!owner_key) return organization_created_result{org_id, {}, "", {0, current->version_}};
  }
  impl_->execute<domain::organization_state>(
      impl_->orgs, stream, {},
      [&, exists](const domain::organization_state& s,
                  timestamp now) -> domain::domain_result<plan<domain::organization_state>> {
        domain::domain_result<domain::event_list> events =
            exists
                ? domain::decide(
                      s, domain::issue_api_key{key_id, domain::role::owner, "owner", key_hash}, now)
                : domain::decide(
                      s, domain::create_organization{org_id, name, key_id, "owner", key_hash}, now);
        if (!events) return events.error();
        return plan<domain::organization_state>{
            std::move(*events), {}, [&](const written& w) {
              p.set_value(organization_created_result{org_id, key_id, key, w});
            }};
      },
      {"startup", ""}, "system", [&](service_error e) { p.set_value(std::move(e)); });
  return f.get();
}

void command_service::create_organization(const domain::principal& who, std::string name,
                                          const request_meta& m,
                                          callback<organization_created_result> done) {
  uuid org_id = uuid::random();
  auto allowed = domain::authorize(who, domain::action::create_organization, {org_id, {}, {}});
  if (!allowed) {
    done(from_domain(allowed.error()));
    return;
  }
  auto key = std::make_shared<std::string>(generate_api_key());
  uuid key_id = uuid::random();
  impl_->execute<domain::organization_state>(
      impl_->orgs, domain::organization_stream(org_id), {},
      [=](const domain::organization_state& s,
          timestamp now) -> domain::domain_result<plan<domain::organization_state>> {
        auto events = domain::decide(
            s, domain::create_organization{org_id, name, key_id, "owner", hash_api_key(*key)}, now);
        if (!events) return events.error();
        return plan<domain::organization_state>{
            std::move(*events), {}, [=](const written& w) {
              done(organization_created_result{org_id, key_id, *key, w});
            }};
      },
      m, impl_->actor_of(who), [done](service_error e) { done(std::move(e)); });
}

void command_service::issue_api_key(const domain::principal& who, domain::role role,
                                    std::string name, std::optional<std::string> email,
                                    const request_meta& m, callback<api_key_result> done) {
  auto allowed = domain::authorize(who, domain::action::manage_api_keys, {who.org_id_, {}, {}});
  if (!allowed) {
    done(from_domain(allowed.error()));
    return;
  }
  auto key = std::make_shared<std::string>(generate_api_key());
  uuid key_id = uuid::random();
  impl_->execute<domain::organization_state>(
      impl_->orgs, domain::organization_stream(who.org_id_), {},
      [=](const domain::organization_state& s,
          timestamp now) -> domain::domain_result<plan<domain::organization_state>> {
        auto events = domain::decide(
            s, domain::issue_api_key{key_id, role, name, hash_api_key(*key), email}, now);
        if (!events) return events.error();
        auto stored = std::get<domain::api_key_issued>(events->back()).email_;
        return plan<domain::organization_state>{
            std::move(*events), {}, [=](const written& w) {
              done(api_key_result{key_id, role, name, *key, w, stored});
            }};
      },
      m, impl_->actor_of(who), [done](service_error e) { done(std::move(e)); });
}

void command_service::revoke_api_key(const domain::principal& who, const uuid& key_id,
                                     const request_meta& m, callback<written> done) {
  impl_->org_command(who, domain::action::manage_api_keys, domain::revoke_api_key{key_id}, m,
                     std::move(done));
}

void command_service::change_api_key_email(const domain::principal& who, const uuid& key_id,
                                           std::optional<std::string> email, const request_meta& m,
                                           callback<written> done) {
  impl_->org_command(who, domain::action::manage_api_keys,
                     domain::change_api_key_email{key_id, std::move(email)}, m, std::move(done));
}

void command_service::change_lead_form(const domain::principal& who, domain::lead_form form,
                                       std::optional<std::uint64_t> if_match, const request_meta& m,
                                       callback<written> done) {
  impl_->org_command(who, domain::action::manage_lead_form,
                     domain::change_lead_form{std::move(form), if_match}, m, std::move(done));
}

service_result<domain::organization_state> command_service::organization(const uuid& org_id) {
  return impl_->load(impl_->orgs, domain::organization_stream(org_id));
}

bool command_service::key_has_email(const uuid& org_id, const uuid& key_id) {
  auto org = organization(org_id);
  if (!org) return false;
  auto it = org->api_keys_.find(key_id);
  return it != org->api_keys_.end() && !it->second.revoked_ && it->second.email_.has_value();
}

// ---- tracks -------------------------------------------------------------------

void command_service::register_track(const domain::principal& who, std::string track_id,
                                     std::string title, bool pausable, const request_meta& m,
                                     callback<written> done) {
  std::optional<uuid> owner;
  if (who.role_ == domain::role::professor) owner = who.key_id_;
  auto allowed = domain::authorize(who, domain::action::register_track, {who.org_id_, {}, owner});
  if (!allowed) {
    done(from_domain(allowed.error()));
    return;
  }
  if (!domain::is_valid_track_id(track_id)) {
    done(make_service_error("invalid_request",
                            "track id must be 1-64 characters of a-z, 0-9, '-', '_' or '.'",
                            "track_id"));
    return;
  }
  impl_->execute<domain::track_state>(
      impl_->tracks, domain::track_stream(who.org_id_, track_id), {},
      [=](const domain::track_state& s,
          timestamp now) -> domain::domain_result<plan<domain::track_state>> {
        return answer_written<domain::track_state>(
            domain::decide(s, domain::register_track{who.org_id_, track_id, title, pausable, owner},
                           now),
            done);
      },
      m, impl_->actor_of(who), [done](service_error e) { done(std::move(e)); });
}

void command_service::update_track(const domain::principal& who, std::string track_id,
                                   domain::update_track c, const request_meta& m,
                                   callback<written> done) {
  impl_->execute<domain::track_state>(
      impl_->tracks, domain::track_stream(who.org_id_, track_id), {},
      [=](const domain::track_state& s,
          timestamp now) -> domain::domain_result<plan<domain::track_state>> {
        if (!s.exists_)
          return domain::make_error(domain::errc::not_found, "track_id", "no such track");
        auto owner_after = c.owner_ ? *c.owner_ : s.owner_;
        auto allowed =
            domain::authorize(who, domain::action::update_track, {who.org_id_, {}, owner_after});
        if (!allowed) return allowed.error();
        if (who.role_ == domain::role::professor && s.owner_ != who.key_id_) {
          return domain::make_error(domain::errc::forbidden, "", "not your track");
        }
        return answer_written<domain::track_state>(domain::decide(s, c, now), done);
      },
      m, impl_->actor_of(who), [done](service_error e) { done(std::move(e)); });
}

// ---- invites ------------------------------------------------------------------

void command_service::create_invite(const domain::principal& who, domain::invite_draft draft,
                                    const request_meta& m, callback<invite_written> done) {
  std::vector<std::string> ids;
  for (const auto& t : draft.tracks_) ids.push_back(t.track_id_);
  auto allowed = impl_->authorize_invite(who, who.org_id_, ids);
  if (!allowed) {
    done(from_domain(allowed.error()));
    return;
  }
  auto catalog = impl_->track_catalog(who.org_id_, ids);
  if (!catalog) {
    done(catalog.error());
    return;
  }
  uuid invite_id = uuid::random();
  auto code = impl_->reserve_new_code({who.org_id_, invite_id});
  if (!code) {
    done(code.error());
    return;
  }
  domain::create_invite cmd{who.org_id_, invite_id, *code, std::move(draft), std::move(*catalog)};
  cmd.created_by_ = who.key_id_;
  cmd.creator_has_email_ = key_has_email(who.org_id_, who.key_id_);
  impl_->start_invite(
      who, invite_id, *code,
      [cmd](const domain::invite_state& s, timestamp now) { return domain::decide(s, cmd, now); },
      m, std::move(done));
}

void command_service::update_invite(const domain::principal& who, const uuid& invite_id,
                                    domain::invite_patch p, std::optional<std::uint64_t> if_match,
                                    const request_meta& m, callback<written> done) {
  domain::update_invite cmd{std::move(p), {}, if_match};
  if (cmd.patch_.notify_on_claim_.value_or(false)) {
    // Only turning notifications on needs the fact; the invite's creator never changes.
    auto current = invite_for(who, invite_id);
    if (current && current->created_by_) {
      cmd.creator_has_email_ = key_has_email(who.org_id_, *current->created_by_);
    }
  }
  if (cmd.patch_.tracks_) {
    std::vector<std::string> ids;
    for (const auto& t : *cmd.patch_.tracks_) ids.push_back(t.track_id_);
    auto catalog = impl_->track_catalog(who.org_id_, ids);
    if (!catalog) {
      done(catalog.error());
      return;
    }
    cmd.tracks_ = std::move(*catalog);
  }
  impl_->invite_command(who, invite_id, std::move(cmd), m, std::move(done));
}

void command_service::deactivate_invite(const domain::principal& who, const uuid& invite_id,
                                        std::optional<std::uint64_t> if_match,
                                        const request_meta& m, callback<written> done) {
  impl_->invite_command(who, invite_id, domain::deactivate_invite{if_match}, m, std::move(done));
}

void command_service::reactivate_invite(const domain::principal& who, const uuid& invite_id,
                                        std::optional<std::uint64_t> if_match,
                                        const request_meta& m, callback<written> done) {
  impl_->invite_command(who, invite_id, domain::reactivate_invite{if_match}, m, std::move(done));
}

void command_service::delete_invite(const domain::principal& who, const uuid& invite_id,
                                    std::optional<std::uint64_t> if_match, const request_meta& m,
                                    callback<written> done) {
  impl_->invite_command(who, invite_id, domain::delete_invite{if_match}, m, std::move(done));
}

void command_service::duplicate_invite(const domain::principal& who, const uuid& invite_id,
                                       const request_meta& m, callback<invite_written> done) {
  auto source = invite_for(who, invite_id);
  if (!source) {
    done(source.error());
    return;
  }
  uuid new_id = uuid::random();
  auto code = impl_->reserve_new_code({who.org_id_, new_id});
  if (!code) {
    done(code.error());
    return;
  }
  auto events = domain::decide(
      *source,
      domain::duplicate_invite{new_id, *code, who.key_id_, key_has_email(who.org_id_, who.key_id_)},
      impl_->clk.now());
  if (!events) {
    impl_->release_code(*code);
    done(from_domain(events.error()));
    return;
  }
  impl_->start_invite(
      who, new_id, *code,
      [decided = std::move(*events)](const domain::invite_state& s,
                                     timestamp) -> domain::domain_result<domain::event_list> {
        if (s.exists_) return domain::make_error(domain::errc::already_exists, "id", "exists");
        return decided;
      },
      m, std::move(done));
}

void command_service::expire_invite(const uuid& invite_id, const request_meta& m,
                                    callback<written> done) {
  impl_->execute<domain::invite_state>(
      impl_->invites, domain::invite_stream(invite_id), {},
      [done](const domain::invite_state& s,
             timestamp now) -> domain::domain_result<plan<domain::invite_state>> {
        return answer_written<domain::invite_state>(domain::decide(s, domain::expire_invite{}, now),
                                                    done);
      },
      m, "scheduler", [done](service_error e) { done(std::move(e)); });
}

service_result<domain::invite_state> command_service::invite_for(const domain::principal& who,
                                                                 const uuid& invite_id) {
  auto s = impl_->load(impl_->invites, domain::invite_stream(invite_id));
  if (!s) return s.error();
  if (!s->exists_ || s->org_id_ != who.org_id_) {
    return make_service_error("not_found", "no such invite", "id");
  }
  auto allowed = impl_->authorize_invite(who, s->org_id_, impl::track_ids_of(s->settings_));
  if (!allowed) return from_domain(allowed.error());
  return s;
}

// ---- learners -----------------------------------------------------------------

void command_service::send_private_invitations(const domain::principal& who, const uuid& invite_id,
                                               std::vector<std::string> emails,
                                               domain::on_existing_invitation on_existing,
                                               std::optional<domain::access_duration> remind_after,
                                               const request_meta& m,
                                               callback<invitation_job> done) {
  auto* self = impl_.get();
  // Facts first, outside the invite's lock: the learner already registered for each address.
  std::vector<domain::send_private_invitation> cmds;
  cmds.reserve(emails.size());
  const uuid job_id = uuid::random();
  for (auto& email : emails) {
    domain::send_private_invitation c;
    c.job_id_ = job_id;
    c.on_existing_ = on_existing;
    c.remind_after_ = remind_after;
    if (domain::is_valid_email(email)) {
      const auto subject = self->codec.email_subject(who.org_id_, domain::normalize_email(email));
      std::lock_guard lk(self->learners_mu);
      if (auto it = self->pending_learners.find(subject); it != self->pending_learners.end()) {
        c.existing_learner_id_ = it->second;
      }
    }
    if (!c.existing_learner_id_ && domain::is_valid_email(email)) {
      const auto subject = self->codec.email_subject(who.org_id_, domain::normalize_email(email));
      if (auto l = self->facts.learner_by_email(who.org_id_, subject)) {
        c.existing_learner_id_ = l->learner_id;
      }
    }
    c.email_ = std::move(email);
    cmds.push_back(std::move(c));
  }
  const auto total = static_cast<std::int64_t>(cmds.size());
  self->execute<domain::invite_state>(
      self->invites, domain::invite_stream(invite_id), {},
      [self, who, cmds = std::move(cmds), job_id, total, done](
          const domain::invite_state& s,
          timestamp now) mutable -> domain::domain_result<plan<domain::invite_state>> {
        if (!s.exists_ || s.org_id_ != who.org_id_) {
          return domain::make_error(domain::errc::not_found, "id", "no such invite");
        }
        auto allowed = self->authorize_invite(who, s.org_id_, impl::track_ids_of(s.settings_));
        if (!allowed) return allowed.error();
        // Every address is decided on the invitations before it, in one atomic append:
        // the whole job is recorded, or nothing.
        domain::invite_state after = s;
        domain::event_list events;
        events.reserve(cmds.size());
        for (std::size_t i = 0; i < cmds.size(); ++i) {
          cmds[i].invitation_id_ = uuid::random();
          auto e = domain::decide(after, cmds[i], now);
          if (!e) {
            auto err = e.error();
            if (err.field_ == "email") err.field_ = "emails[" + std::to_string(i) + "]";
            return err;
          }
          for (auto& ev : *e) {
            std::get<domain::private_invitation_sent>(ev).job_total_ = total;
            after = domain::evolve(std::move(after), ev);
            events.push_back(std::move(ev));
          }
        }
        const uuid org = s.org_id_, invite = s.invite_id_;
        return plan<domain::invite_state>{
            std::move(events), {}, [done, job_id, org, invite, total](const written& w) {
              done(invitation_job{job_id, invite, org, total, w});
            }};
      },
      m, impl::actor_of(who), [done](service_error e) { done(std::move(e)); });
}

const personal_link_codec& command_service::links() const { return impl_->links; }

void command_service::claim(std::string code, claim_input input, const request_meta& m,
                            callback<claim_result> done) {
  auto normalized = domain::normalize_invite_code(code);
  auto ref =
      domain::is_valid_invite_code(normalized) ? impl_->invite_by_code(normalized) : std::nullopt;
  if (!ref) {
    done(make_service_error("not_found", "no invite has this code", "code"));
    return;
  }
  impl_->claim_on(*ref, std::move(input), std::nullopt, m, std::move(done));
}

void command_service::claim_by_link(std::string token, claim_input input, const request_meta& m,
                                    callback<claim_result> done) {
  auto link = impl_->links.verify(token);
  auto s = link ? impl_->load(impl_->invites, domain::invite_stream(link->invite_id))
                : service_result<domain::invite_state>(domain::invite_state{});
  if (!s) {
    done(s.error());
    return;
  }
  if (!s->exists_) {
    done(make_service_error("not_found", "no such personal link", "token"));
    return;
  }
  // The facts are looked up for the addressee; the domain checks the link again under
  // the invite's lock (it may have been replaced meanwhile).
  if (auto it = s->personal_links_.find(link->invitation_id);
      it != s->personal_links_.end() && !input.email) {
    input.email = it->second;
  }
  impl_->claim_on({s->org_id_, s->invite_id_}, std::move(input), link->invitation_id, m,
                  std::move(done));
}

void command_service::impl::claim_on(invite_ref ref, claim_input input,
                                     std::optional<uuid> invitation_id, const request_meta& m,
                                     callback<claim_result> done) {
  auto* self = this;
  std::optional<uuid> token_learner;
  if (input.learner_token) {
    auto who = self->tokens.verify(*input.learner_token);
    if (who && who->org_id == ref.org_id) token_learner = who->learner_id;
  }
  if (token_learner && (!input.email || domain::trim(*input.email).empty())) {
    // A token of a learner registered by email names that learner: the claim is theirs, by
    // the address they registered (the access rules see it, the acceptance list shows it),
    // not an anonymous claim under their id. A forgotten learner's token names nobody.
    // Read afresh: claims register learners outside the learners' cache.
    const auto stream = domain::learner_stream(*token_learner);
    self->invalidate(self->learners, stream);
    auto registered = self->read_loaded(
        self->learners, stream, [](const domain::learner_state& l) -> std::optional<std::string> {
          if (!l.exists_) return std::nullopt;  // an anonymous learner: no stream
          return l.forgotten_ ? std::string() : l.email_;
        });
    if (!registered) {
      done(registered.error());
      return;
    }
    if (*registered && (*registered)->empty()) {
      token_learner.reset();
    } else if (*registered) {
      input.email = std::move(**registered);
    }
  }
  auto lead_form =
      self->read_loaded(self->orgs, domain::organization_stream(ref.org_id),
                        [](const domain::organization_state& s) { return s.lead_form_; });
  if (!lead_form) {
    done(lead_form.error());
    return;
  }

  // Facts about the email, looked up once; the invite lock serialises the rest.
  std::string subject;
  std::optional<uuid> known_learner;
  bool lead_submitted = false;  // as the read side shows
  if (input.email && domain::is_valid_email(*input.email)) {
    subject = self->codec.email_subject(ref.org_id, domain::normalize_email(*input.email));
    // Only a learner (or lead) the read side shows is known for sure; one another claim
    // reserved (or captured) is looked up again by each decision, under the invite's lock
    // (that claim may yet fail).
    if (auto l = self->facts.learner_by_email(ref.org_id, subject)) {
      known_learner = l->learner_id;
      lead_submitted = l->lead_submitted;
    }
  }

  domain::claim_invite cmd;
  cmd.email_ = input.email;
  cmd.first_name_ = input.first_name;
  cmd.last_name_ = input.last_name;
  cmd.lead_answers_ = input.answers;
  cmd.anonymous_learner_id_ = token_learner ? *token_learner : uuid::random();
  cmd.lead_form_ = std::move(*lead_form);
  cmd.invitation_id_ = invitation_id;
  cmd.presented_learner_id_ = token_learner;
  const uuid org_id = ref.org_id, invite_id = ref.invite_id;

  execute<domain::invite_state>(
      invites, domain::invite_stream(invite_id), {},
      [self, cmd = std::move(cmd), subject, known_learner, lead_submitted, org_id, invite_id,
       invitation_id, m, input = std::move(input),
       done](const domain::invite_state& s,
             timestamp now) mutable -> domain::domain_result<plan<domain::invite_state>> {
        cmd.claim_id_ = uuid::random();
        // A lead another claim captured for this email counts as submitted once that claim
        // is stored. No expectation of this append can prove it: the lead goes to the
        // learner's stream, which may exist before it (another claim made the learner), and
        // no version of any stream is that claim's alone. While its append is unanswered,
        // this claim waits for the answer and is then decided again from the start.
        cmd.lead_already_submitted_ = lead_submitted;
        if (!lead_submitted && !subject.empty() &&
            s.settings_.access_ == domain::access_mode::lead_form) {
          std::shared_ptr<pending_lead> awaited;
          {
            std::lock_guard lk(self->learners_mu);
            if (auto it = self->pending_leads.find(subject); it != self->pending_leads.end()) {
              if (it->second->now == pending_lead::state::stored) {
                cmd.lead_already_submitted_ = true;
              } else {
                awaited = it->second;
              }
            }
          }
          if (awaited) {
            plan<domain::invite_state> p;
            // The claim again as it came (the address its token named, if it gave none).
            p.on_success = [self, awaited, ref = invite_ref{org_id, invite_id}, again = input,
                            invitation_id, m, done](const written&) {
              std::function<void()> decide_again = [self, ref, again = std::move(again),
                                                    invitation_id, m, done]() mutable {
                self->claim_on(ref, std::move(again), invitation_id, m, std::move(done));
              };
              std::unique_lock lk(self->learners_mu);
              if (awaited->now == pending_lead::state::appending) {
                awaited->waiters.push_back(std::move(decide_again));
                return;
              }
              lk.unlock();
              self->retries.post(std::move(decide_again));
            };
            return p;
          }
        }
        bool reserved_learner = false;  // this decision reserved the email's learner
        // A learner another claim reserved for this email (its registration not yet shown
        // by the read side): this claim may name it only if that registration is stored
        // first. Looked up afresh by each decision, a retry's included: a reservation
        // goes with its claim's failed append.
        std::optional<uuid> pending_learner;
        cmd.existing_learner_id_ = known_learner;
        if (!known_learner && !subject.empty()) {
          std::lock_guard lk(self->learners_mu);
          if (auto it = self->pending_learners.find(subject); it != self->pending_learners.end()) {
            pending_learner = cmd.existing_learner_id_ = it->second;
          }
        }
        // Its key is already durable: this commit needs no key-store fsync.
        cmd.new_learner_id_ = self->fresh_learners.take();
        cmd.new_password_setup_id_ = uuid::random();
        auto d = domain::decide(s, cmd, now);
        if (!d || !d->learner_registered_) self->fresh_learners.give_back(cmd.new_learner_id_);
        if (!d) return d.error();
        if (d->learner_registered_ && !subject.empty()) {
          // Another invite's claim may have registered this email since the
          // lookup. A reservation is only dropped once the read side shows the
          // learner, so checking the reservations and then the read side, under
          // the lock, never misses one.
          std::unique_lock lk(self->learners_mu);
          std::optional<uuid> known;
          if (auto it = self->pending_learners.find(subject); it != self->pending_learners.end()) {
            pending_learner = known = it->second;
          } else if (auto l = self->facts.learner_by_email(org_id, subject)) {
            known = l->learner_id;
          } else {
            self->pending_learners.emplace(subject, cmd.new_learner_id_);
            reserved_learner = true;
          }
          lk.unlock();
          if (known) {
            cmd.existing_learner_id_ = known;
            d = domain::decide(s, cmd, now);
            if (!d || !d->learner_registered_) self->fresh_learners.give_back(cmd.new_learner_id_);
            if (!d) return d.error();
          }
        }
        bool lead_captured = std::any_of(d->events_.begin(), d->events_.end(), [](const auto& e) {
          return std::holds_alternative<domain::lead_captured>(e);
        });
        // The lead this decision captured, pending for the email's other claims.
        std::shared_ptr<pending_lead> reserved_lead;
        if (lead_captured && !subject.empty()) {
          std::lock_guard lk(self->learners_mu);
          auto [it, inserted] = self->pending_leads.try_emplace(subject);
          if (inserted) reserved_lead = it->second = std::make_shared<pending_lead>();
        }
        // The answer keeps what it reads of the decision, not the decision: its events
        // (~500 bytes each) move to the log once, and copying them (twice, into this
        // closure) made allocations of over 1 KiB per claim, each of which has glibc
        // consolidate the I/O thread's whole fast bins.
        std::optional<domain::invite_claimed> claimed;
        if (d->outcome_ == domain::claim_outcome::claimed) {
          for (const auto& e : d->events_) {
            if (auto* ic = std::get_if<domain::invite_claimed>(&e)) claimed = *ic;
          }
        }
        plan<domain::invite_state> p;
        p.events = std::move(d->events_);
        if (d->learner_registered_) {
          p.other_streams.insert_or_assign(domain::learner_stream(cmd.new_learner_id_),
                                           expected_version::no_stream());
        } else if (pending_learner && d->claim_ && d->claim_->learner_id_ == *pending_learner) {
          // Stored only after (or with) the registration: should that append fail, this
          // one fails as a conflict and decides again, without the reservation.
          p.other_streams.insert_or_assign(domain::learner_stream(*pending_learner),
                                           expected_version::stream_exists());
        }
        if (reserved_learner || reserved_lead) {
          // A learner never registered must not be handed to the next claim by this email
          // (a retry of this one included), nor a lead never captured count as submitted:
          // what this decision reserved goes with the failed append.
          p.on_failure = [self, subject, reserved_learner, reserved_lead,
                          learner = cmd.new_learner_id_] {
            {
              std::lock_guard lk(self->learners_mu);
              if (auto it = self->pending_learners.find(subject);
                  reserved_learner && it != self->pending_learners.end() && it->second == learner) {
                self->pending_learners.erase(it);
              }
              if (auto it = self->pending_leads.find(subject);
                  reserved_lead && it != self->pending_leads.end() && it->second == reserved_lead) {
                self->pending_leads.erase(it);
              }
            }
            if (reserved_lead) self->settle_lead(reserved_lead, pending_lead::state::failed);
          };
        }
        p.on_success = [self, outcome = d->outcome_, claim = std::move(d->claim_),
                        rejection = d->rejection_, missing_field = std::move(d->missing_field_),
                        learner_registered = d->learner_registered_, claimed = std::move(claimed),
                        subject, org_id, invite_id, done, lead_captured,
                        reserved_lead](const written& w) {
          if (reserved_lead) self->settle_lead(reserved_lead, pending_lead::state::stored);
          claim_result r;
          r.outcome = outcome;
          r.org_id = org_id;
          r.invite_id = invite_id;
          r.at = w;
          if (outcome == domain::claim_outcome::rejected) {
            r.rejection = rejection;
            r.missing_field = missing_field;
            done(std::move(r));
            return;
          }
          const auto& c = *claim;
          r.claim = c;
          r.learner_token = self->tokens.issue({org_id, c.learner_id_});
          std::optional<domain::claim_state> progress;
          std::optional<uuid> seeded;
          if (outcome == domain::claim_outcome::claimed) {
            if (claimed) {
              std::lock_guard lk(self->seeds_mu);
              self->claim_seeds[claimed->claim_id_] = *claimed;
              seeded = claimed->claim_id_;
            }
          } else {
            // A returning learner: plays left come from the claim's own stream.
            seed_fn<domain::claim_state> seed =
                [self, id = c.claim_id_](domain::claim_state& s) -> service_result<bool> {
              auto e = self->facts.claim_seed(id);
              if (!e) return make_service_error("not_found", "no such claim");
              s = domain::evolve(std::move(s), domain::event{*e});
              return true;
            };
            auto cs = self->load(self->claims, domain::claim_stream(c.claim_id_), seed);
            if (cs) progress = *cs;
          }
          r.tracks = self->tracks_of(c, progress);
          const bool reserved = learner_registered || lead_captured;
          if (w.position != 0 && (reserved || seeded)) {
            // Once the read side shows the claim, it answers for it: the seed goes (kept,
            // it would grow by one event per claim for the life of the process).
            self->facts.when_applied(w.position, [self, subject, reserved, seeded] {
              if (seeded) {
                std::lock_guard lk(self->seeds_mu);
                self->claim_seeds.erase(*seeded);
              }
              if (reserved) {
                std::lock_guard lk(self->learners_mu);
                self->pending_learners.erase(subject);
                // A lead another claim is still appending stays (the read side shows only
                // stored ones).
                if (auto it = self->pending_leads.find(subject);
                    it != self->pending_leads.end() &&
                    it->second->now != pending_lead::state::appending) {
                  self->pending_leads.erase(it);
                }
              }
            });
          }
          done(std::move(r));
        };
        return p;
      },
      m, "learner", [done](service_error e) { done(std::move(e)); });
}

void command_service::play(const uuid& claim_id, std::string_view learner_token,
                           std::string track_id, const request_meta& m,
                           callback<play_result> done) {
  impl_->claim_command(claim_id, learner_token, domain::play_track{{}, std::move(track_id)}, m,
                       std::move(done));
}

void command_service::pause(const uuid& claim_id, std::string_view learner_token,
                            std::string track_id, const request_meta& m,
                            callback<play_result> done) {
  impl_->claim_command(claim_id, learner_token, domain::pause_track{{}, std::move(track_id)}, m,
                       std::move(done));
}

void command_service::resume(const uuid& claim_id, std::string_view learner_token,
                             std::string track_id, const request_meta& m,
                             callback<play_result> done) {
  impl_->claim_command(claim_id, learner_token, domain::resume_track{{}, std::move(track_id)}, m,
                       std::move(done));
}

void command_service::forget_learner(const domain::principal& who, const uuid& learner_id,
                                     const request_meta& m, callback<written> done) {
  auto allowed = domain::authorize(who, domain::action::forget_learner, {who.org_id_, {}, {}});
  if (!allowed) {
    done(from_domain(allowed.error()));
    return;
  }
  auto* self = impl_.get();
  // Claims append to learner streams outside this cache: always decide on a fresh load.
  impl_->invalidate(impl_->learners, domain::learner_stream(learner_id));
  impl_->execute<domain::learner_state>(
      impl_->learners, domain::learner_stream(learner_id), {},
      [self, who, learner_id, done](const domain::learner_state& s, timestamp now)
          -> domain::domain_result<plan<domain::learner_state>> {
        if (!s.exists_ || s.org_id_ != who.org_id_) {
          return domain::make_error(domain::errc::not_found, "id", "no such learner");
        }
        auto events = domain::decide(s, domain::forget_learner{}, now);
        if (!events) return events.error();
        if (!events->empty()) {
          // Keys go first: once LearnerForgotten is in the log, nothing may still
          // decrypt what it promises is gone.
          if (self->options.before_keys_destroyed) self->options.before_keys_destroyed();
          if (!s.email_.empty()) {
            if (auto f = self->codec.forget_email(s.org_id_, s.email_); !f) {
              return domain::make_error(domain::errc::invalid_state, "", f.error().message);
            }
          }
          if (auto d = self->keys.destroy("learner:" + learner_id.to_string()); !d) {
            return domain::make_error(domain::errc::invalid_state, "", d.error().message);
          }
          if (self->options.after_keys_destroyed) self->options.after_keys_destroyed();
          if (!s.email_.empty() && self->options.on_email_forgotten) {
            self->options.on_email_forgotten(s.org_id_, s.email_);
          }
        }
        return plan<domain::learner_state>{
            std::move(*events), {}, [done](const written& w) { done(w); }};
      },
      m, impl_->actor_of(who), [done](service_error e) { done(std::move(e)); });
}

// ---- passwords ------------------------------------------------------------------

const password_setup_codec& command_service::password_setups() const { return impl_->setups; }

void command_service::set_password(std::string token, std::string password, const request_meta& m,
                                   callback<password_set_result> done) {
  auto* self = impl_.get();
  auto ref = self->setups.verify(token);
  if (!ref) {
    done(make_service_error("token_invalid", "this set-password link is not valid", "token"));
    return;
  }
  const auto stream = domain::learner_stream(ref->learner_id);
  // Claims append to learner streams outside this cache: decide on a fresh load.
  self->invalidate(self->learners, stream);
  // The link's state first (a used or expired link says so whatever the password), then
  // the policy, then the slow hash, outside any lock. The decision is made again on the
  // aggregate below: the link may have been used meanwhile.
  auto current = self->load(self->learners, stream);
  if (!current) {
    done(current.error());
    return;
  }
  if (auto usable =
          domain::decide(*current, domain::set_password{ref->setup_id, "-"}, self->clk.now());
      !usable) {
    done(from_domain(usable.error()));
    return;
  }
  if (auto ok = domain::check_password_policy(password); !ok) {
    done(from_domain(ok.error()));
    return;
  }
  auto hash = hash_password(password);
  if (!hash) {
    done(make_service_error("unavailable", "the password could not be hashed"));
    return;
  }
  const uuid learner_id = ref->learner_id, setup_id = ref->setup_id;
  self->execute<domain::learner_state>(
      self->learners, stream, {},
      [self, learner_id, setup_id, hash = std::move(*hash), done](
          const domain::learner_state& s,
          timestamp now) -> domain::domain_result<plan<domain::learner_state>> {
        auto events = domain::decide(s, domain::set_password{setup_id, hash}, now);
        if (!events) return events.error();
        const uuid org = s.org_id_;
        return plan<domain::learner_state>{
            std::move(*events), {}, [self, org, learner_id, done](const written& w) {
              done(password_set_result{org, learner_id, self->tokens.issue({org, learner_id}), w});
            }};
      },
      m, "learner:" + learner_id.to_string(), [done](service_error e) { done(std::move(e)); });
}

void command_service::issue_password_setup(const domain::principal& who, const uuid& learner_id,
                                           const request_meta& m, callback<written> done) {
  auto allowed = domain::authorize(who, domain::action::manage_learners, {who.org_id_, {}, {}});
  if (!allowed) {
    done(from_domain(allowed.error()));
    return;
  }
  const auto stream = domain::learner_stream(learner_id);
  impl_->invalidate(impl_->learners, stream);
  impl_->execute<domain::learner_state>(
      impl_->learners, stream, {},
      [who, done](const domain::learner_state& s,
                  timestamp now) -> domain::domain_result<plan<domain::learner_state>> {
        if (!s.exists_ || s.org_id_ != who.org_id_) {
          return domain::make_error(domain::errc::not_found, "id", "no such learner");
        }
        return answer_written<domain::learner_state>(
            domain::decide(s, domain::issue_password_setup{uuid::random(), std::nullopt}, now),
            done);
      },
      m, impl_->actor_of(who), [done](service_error e) { done(std::move(e)); });
}

void command_service::login(login_input input, callback<login_result> done) {
  auto* self = impl_.get();
  std::optional<uuid> org = input.org_id;
  if (!org && input.code) {
    auto normalized = domain::normalize_invite_code(*input.code);
    if (domain::is_valid_invite_code(normalized)) {
      if (auto ref = self->invite_by_code(normalized)) org = ref->org_id;
    }
  }
  // One answer for every failure (no account enumeration), after the same work.
  auto refuse = [&] {
    verify_password(input.password, "");
    done(make_service_error("invalid_credentials", "wrong email or password"));
  };
  if (!org) {
    if (!input.org_id && !input.code) {
      done(make_service_error("invalid_request", "name the organization (org) or an invite code",
                              "org"));
      return;
    }
    refuse();
    return;
  }
  if (!domain::is_valid_email(input.email)) {
    refuse();
    return;
  }
  const auto subject = self->codec.email_subject(*org, domain::normalize_email(input.email));
  std::optional<uuid> learner_id;
  {
    std::lock_guard lk(self->learners_mu);
    if (auto it = self->pending_learners.find(subject); it != self->pending_learners.end()) {
      learner_id = it->second;
    }
  }
  if (!learner_id) {
    if (auto l = self->facts.learner_by_email(*org, subject)) learner_id = l->learner_id;
  }
  if (!learner_id) {
    refuse();
    return;
  }
  const auto stream = domain::learner_stream(*learner_id);
  self->invalidate(self->learners, stream);
  auto s = self->load(self->learners, stream);
  if (!s) {
    done(s.error());
    return;
  }
  if (!s->exists_ || s->forgotten_ || s->org_id_ != *org || s->password_hash_.empty()) {
    refuse();
    return;
  }
  if (!verify_password(input.password, s->password_hash_)) {
    done(make_service_error("invalid_credentials", "wrong email or password"));
    return;
  }
  done(login_result{*org, *learner_id, self->tokens.issue({*org, *learner_id})});
}

}  // namespace passage::service
