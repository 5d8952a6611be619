// Randomized command sequences against one invite and its claims. After every step:
// unique claimers never exceed the claim limit, no learner holds two claims on the invite,
// plays never exceed plays_per_track, nothing but ClaimRejected follows InviteDeleted, and
// folding the emitted events from empty state rebuilds exactly the states the decisions
// were made on. Reproduce a failure with PASSAGE_DOMAIN_SEED=<printed seed>.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>
#include <set>

#include "domain/learner.h"
#include "domain/tests/fixtures.h"
#include "domain/text.h"

namespace passage::domain {
namespace {

using namespace testing;

// The application around the domain, reduced to what decisions need: an email index, the
// org's lead memory, the streams, and the states folded from them.
class simulation {
 public:
  explicit simulation(std::uint32_t seed) : rng_(seed) {}

  const event_list& log() const { return log_; }
  int warnings_again_at_a_warned_limit() const { return rewarned_; }

  void run(int steps) {
    create();
    for (int i = 0; i < steps && !::testing::Test::HasFatalFailure(); ++i) {
      now_ += std::chrono::minutes{pick(0, 6 * 60)};
      const int r = pick(0, 99);
      if (r < 45) {
        claim();
      } else if (r < 80) {
        play_pause_resume();
      } else if (r < 88) {
        edit();
      } else if (r < 94) {
        toggle();
      } else if (r < 98) {
        expire();
      } else {
        remove();
      }
      check_invariants();
    }
  }

 private:
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool coin() { return pick(0, 1) == 1; }
  uuid fresh_id() { return id(++next_id_); }

  void create() {
    invite_draft d;
    d.title_ = "Random invite";
    const std::vector<std::string> ids = {"k8s-basics", "linux-vm", "docker"};
    const int n = pick(1, 3);
    for (int i = 0; i < n; ++i) {
      std::optional<bool> pausable;
      if (ids[i] != "k8s-basics" && coin()) pausable = coin();
      d.tracks_.push_back({ids[i], pausable});
    }
    const std::vector<std::string> durations = {"forever", "PT90M", "P1D", "P1W", "P1M"};
    d.access_duration_ = durations[pick(0, 4)];
    d.plays_per_track_ = pick(0, 3);
    d.claim_limit_ = std::vector<int>{0, 1, 2, 3, 5}[pick(0, 4)];
    d.capacity_warning_percent_ = std::vector<int>{50, 80, 100}[pick(0, 2)];
    switch (pick(0, 3)) {
      case 0:
        break;
      case 1:
        d.require_account_ = true;
        break;
      case 2:
        d.access_ = access_mode::allowed;
        d.allowed_domains_ = {"example.com"};
        d.allowed_emails_ = {"guest@other.org"};
        break;
      case 3:
        d.access_ = access_mode::lead_form;
        break;
    }
    if (coin()) {
      d.type_ = invite_type::live_event;
      d.starts_at_ = now_ + std::chrono::hours{pick(0, 72)};
      d.ends_at_ = *d.starts_at_ + std::chrono::hours{pick(1, 48)};
    } else if (coin()) {
      d.expires_at_ = now_ + std::chrono::hours{pick(1, 96)};
    }
    auto r = decide(invite_, create_invite{org, invite_id, "AB2K7MZ", d, catalog()}, now_);
    ASSERT_TRUE(r) << r.error().field_ << ": " << r.error().message_;
    record(*r);
  }

  void claim() {
    static const std::vector<std::string> emails = {"ada@example.com", "bob@example.com",
                                                    "guest@other.org", "eve@other.org",
                                                    "ADA@EXAMPLE.COM", "carl@example.com"};
    claim_invite c;
    c.claim_id_ = fresh_id();
    c.new_learner_id_ = fresh_id();
    c.lead_form_ = lead_form{{{"company", "Company", true}, {"consent", "OK", true}}};
    if (pick(0, 3) == 0) {
      c.anonymous_learner_id_ = id(900000 + pick(0, 3));
    } else {
      const std::string email = emails[pick(0, static_cast<int>(emails.size()) - 1)];
      c.email_ = email;
      const std::string key = to_lower_ascii(email);
      if (auto it = email_index_.find(key); it != email_index_.end()) {
        c.existing_learner_id_ = it->second;
      }
      c.lead_already_submitted_ = lead_memory_.contains(key);
      if (pick(0, 4) != 0) {
        c.first_name_ = "First";
        c.last_name_ = "Last";
        c.lead_answers_ = {{"company", "Acme"}, {"consent", "true"}};
      }
    }
    const invite_state before = invite_;
    auto r = decide(invite_, c, now_);
    ASSERT_TRUE(r) << r.error().message_;
    if (r->outcome_ == claim_outcome::existing) {
      ASSERT_TRUE(r->events_.empty());
      ASSERT_TRUE(r->claim_);
      ASSERT_TRUE(before.claims_by_learner_.contains(r->claim_->learner_id_));
    }
    if (r->outcome_ == claim_outcome::claimed) {
      const auto limit = before.settings_.claim_limit_;
      ASSERT_TRUE(limit == 0 || before.claims_count() < limit);
      ASSERT_EQ(status_at(before, now_).status_, invite_status::active);
    }
    if (r->outcome_ == claim_outcome::rejected) {
      ASSERT_EQ(r->events_.size(), 1u);
    }
    record(r->events_);
  }

  void play_pause_resume() {
    if (claims_.empty()) return;
    auto it = claims_.begin();
    std::advance(it, pick(0, static_cast<int>(claims_.size()) - 1));
    const claim_state& c = it->second;
    const auto& tracks = c.restrictions_.tracks_;
    const std::string track = tracks[pick(0, static_cast<int>(tracks.size()) - 1)].track_id_;
    const uuid who = pick(0, 9) == 0 ? id(1) : c.learner_id_;
    domain_result<event_list> r = event_list{};
    switch (pick(0, 3)) {
      case 0:
      case 1:
        r = decide(c, play_track{who, track}, now_);
        break;
      case 2:
        r = decide(c, pause_track{who, track}, now_);
        break;
      case 3:
        r = decide(c, resume_track{who, track}, now_);
        break;
    }
    if (r) record(*r);
  }

  void edit() {
    update_invite u;
    const auto count = invite_.claims_count();
    // Never below the current number of claims, so "claims <= limit" stays an invariant.
    u.patch_.claim_limit_ = coin() ? 0 : count + pick(0, 3);
    if (pick(0, 3) == 0)
      u.patch_.capacity_warning_percent_ = std::vector<int>{50, 80, 100}[pick(0, 2)];
    if (coin()) u.patch_.plays_per_track_ = pick(0, 3);
    if (coin()) u.patch_.title_ = "Edited " + std::to_string(pick(0, 9));
    if (invite_.settings_.type_ == invite_type::self_paced && coin()) {
      u.patch_.expires_at_ = now_ + std::chrono::hours{pick(-24, 96)};
    }
    if (coin()) u.expected_version_ = invite_.version_ - static_cast<std::uint64_t>(pick(0, 1));
    auto r = decide(invite_, u, now_);
    if (r) record(*r);
  }

  void toggle() {
    auto r = invite_.deactivated_ ? decide(invite_, reactivate_invite{}, now_)
                                  : decide(invite_, deactivate_invite{}, now_);
    if (r) record(*r);
  }

  void expire() {
    auto r = decide(invite_, expire_invite{}, now_);
    if (r) record(*r);
  }

  void remove() {
    auto r = decide(invite_, delete_invite{}, now_);
    if (r) record(*r);
  }

  // Appends decided events to their streams and folds them into the live states, as the
  // application would after a successful append.
  void record(const event_list& events) {
    for (const auto& e : events) {
      const std::string stream = stream_of(e);
      streams_[stream].push_back(e);
      log_.push_back(e);
      if (stream == invite_stream(invite_id)) invite_ = evolve(std::move(invite_), e);
      if (const auto* c = std::get_if<invite_claimed>(&e)) {
        claims_[c->claim_id_] = evolve(claim_state{}, e);
      }
      if (const auto* p = std::get_if<track_played>(&e)) {
        claims_[p->claim_id_] = evolve(std::move(claims_[p->claim_id_]), e);
      }
      if (const auto* p = std::get_if<track_paused>(&e)) {
        claims_[p->claim_id_] = evolve(std::move(claims_[p->claim_id_]), e);
      }
      if (const auto* p = std::get_if<track_resumed>(&e)) {
        claims_[p->claim_id_] = evolve(std::move(claims_[p->claim_id_]), e);
      }
      if (const auto* l = std::get_if<learner_registered>(&e)) {
        email_index_[l->personal_data_.email_] = l->learner_id_;
        learners_[l->learner_id_] = evolve(learner_state{}, e);
      }
      if (const auto* l = std::get_if<lead_captured>(&e)) {
        lead_memory_.insert(l->personal_data_.email_);
        learners_[l->learner_id_] = evolve(std::move(learners_[l->learner_id_]), e);
      }
    }
  }

  void check_invariants() {
    const auto& invite_events = streams_[invite_stream(invite_id)];

    // Rebuild from empty state.
    ASSERT_EQ(fold<invite_state>(invite_events), invite_);
    for (const auto& [claim_id, state] : claims_) {
      event_list claim_events;
      for (const auto& e : invite_events) {
        if (const auto* c = std::get_if<invite_claimed>(&e); c && c->claim_id_ == claim_id) {
          claim_events.push_back(e);
        }
      }
      ASSERT_EQ(claim_events.size(), 1u);
      const auto& own = streams_[claim_stream(claim_id)];
      claim_events.insert(claim_events.end(), own.begin(), own.end());
      ASSERT_EQ(fold<claim_state>(claim_events), state);
      ASSERT_EQ(state.version_, own.size());
    }
    for (const auto& [learner_id, state] : learners_) {
      ASSERT_EQ(fold<learner_state>(streams_[learner_stream(learner_id)]), state);
    }

    // Unique claimers within the limit; one claim per learner.
    std::set<uuid> claimers;
    std::size_t claimed = 0;
    bool deleted = false;
    // InviteCapacityWarning exactly once per crossing (invite_state::capacity_warned_): right
    // after the claim that reaches ceil(limit * percent / 100) unless a warning stands; an
    // edit that leaves the claims below the new threshold (or no limit) lifts it.
    std::int64_t limit_now = 0, percent_now = 0, claims_now = 0;
    bool warned = false, warning_due = false;
    std::set<std::pair<std::int64_t, std::int64_t>> warned_at;  // (limit, percent) warned
    rewarned_ = 0;
    auto threshold = [&] { return (limit_now * percent_now + 99) / 100; };
    std::set<timestamp> expiries;
    for (const auto& e : invite_events) {
      if (deleted) {
        ASSERT_TRUE(std::holds_alternative<claim_rejected>(e)) << event_type(e);
      }
      if (std::holds_alternative<invite_deleted>(e)) deleted = true;
      if (const auto* c = std::get_if<invite_claimed>(&e)) {
        ++claimed;
        ASSERT_TRUE(claimers.insert(c->learner_id_).second) << "learner claimed twice";
      }
      const auto* w = std::get_if<invite_capacity_warning>(&e);
      ASSERT_EQ(w != nullptr, warning_due)
          << (warning_due ? "no InviteCapacityWarning after crossing "
                          : "InviteCapacityWarning at ")
          << claims_now << " claims of " << limit_now << " at " << percent_now << " %";
      warning_due = false;
      if (w) {
        ASSERT_EQ(w->claims_count_, claims_now);
        ASSERT_EQ(w->claim_limit_, limit_now);
        ASSERT_EQ(w->threshold_percent_, percent_now);
        if (!warned_at.insert({limit_now, percent_now}).second) ++rewarned_;
        warned = true;
      }
      if (const auto* c = std::get_if<invite_created>(&e)) {
        limit_now = c->settings_.claim_limit_;
        percent_now = c->settings_.capacity_warning_percent_;
      }
      if (const auto* u = std::get_if<invite_updated>(&e)) {
        limit_now = u->settings_.claim_limit_;
        percent_now = u->settings_.capacity_warning_percent_;
        if (limit_now == 0 || claims_now < threshold()) warned = false;
      }
      if (std::holds_alternative<invite_claimed>(e)) {
        ++claims_now;
        warning_due = limit_now > 0 && !warned && claims_now >= threshold();
      }
      if (const auto* x = std::get_if<invite_expired>(&e)) {
        ASSERT_TRUE(expiries.insert(x->expired_at_).second) << "InviteExpired twice";
      }
    }
    ASSERT_FALSE(warning_due) << "no InviteCapacityWarning after crossing " << claims_now
                              << " claims of " << limit_now;
    ASSERT_EQ(claimers.size(), claimed);
    ASSERT_EQ(invite_.claims_count(), static_cast<std::int64_t>(claimed));
    const auto limit = invite_.settings_.claim_limit_;
    ASSERT_TRUE(limit == 0 || invite_.claims_count() <= limit)
        << invite_.claims_count() << " claims, limit " << limit;

    // Plays within each claim's own snapshot.
    for (const auto& [claim_id, state] : claims_) {
      std::map<std::string, std::int64_t> plays;
      for (const auto& e : streams_[claim_stream(claim_id)]) {
        if (const auto* p = std::get_if<track_played>(&e)) {
          ++plays[p->track_id_];
          ASSERT_TRUE(!state.access_expires_at_ || p->played_at_ < *state.access_expires_at_);
          ASSERT_EQ(p->learner_id_, state.learner_id_);
        }
        if (std::holds_alternative<track_paused>(e)) {
          ASSERT_FALSE(state.anonymous_);
        }
      }
      const auto max = state.restrictions_.plays_per_track_;
      for (const auto& [track, n] : plays) {
        if (max > 0) {
          ASSERT_LE(n, max) << track;
        }
      }
    }
  }

  // Warnings at a limit and share warned before in this sequence (10 -> 20 -> 10), after
  // the last check_invariants().
  int rewarned_ = 0;
  std::mt19937 rng_;
  timestamp now_ = at("2026-01-01T00:00:00Z");
  std::uint64_t next_id_ = 10000;
  invite_state invite_;
  std::map<uuid, claim_state> claims_;
  std::map<uuid, learner_state> learners_;
  std::map<std::string, uuid> email_index_;
  std::set<std::string> lead_memory_;
  std::map<std::string, event_list> streams_;
  event_list log_;
};

TEST(Randomized, TenThousandCommandSequencesKeepTheInvariants) {
  std::uint32_t base = 20260101;
  if (const char* env = std::getenv("PASSAGE_DOMAIN_SEED")) {
    base = static_cast<std::uint32_t>(std::strtoul(env, nullptr, 10));
  }
  const int sequences = std::getenv("PASSAGE_DOMAIN_SEED") ? 1 : 10000;
  std::map<std::string_view, int> seen;
  int rewarned = 0;
  for (int i = 0; i < sequences; ++i) {
    const std::uint32_t seed = base + static_cast<std::uint32_t>(i);
    SCOPED_TRACE("seed " + std::to_string(seed) +
                 " (rerun with PASSAGE_DOMAIN_SEED=" + std::to_string(seed) + ")");
    simulation sim(seed);
    sim.run(30);
    if (HasFailure()) break;
    for (const auto& e : sim.log()) ++seen[event_type(e)];
    rewarned += sim.warnings_again_at_a_warned_limit();
  }
  if (sequences > 1 && !HasFailure()) {
    // The sequences must actually reach every decision the invariants are about.
    for (std::string_view type :
         {"InviteClaimed", "ClaimRejected", "LearnerRegistered", "LeadCaptured", "TrackPlayed",
          "TrackPaused", "TrackResumed", "InviteUpdated", "InviteDeactivated", "InviteReactivated",
          "InviteDeleted", "InviteCapacityWarning", "InviteFilled", "InviteExpired"}) {
      EXPECT_GT(seen[type], 100) << type;
    }
    // And a warning again at a limit warned before, after the claims fell below a raised
    // one's threshold (a warning per crossing, not per limit): rare in 30 steps (2 in the
    // fixed seeds' 10,000 sequences), so at least one.
    EXPECT_GE(rewarned, 1);
  }
}

}  // namespace
}  // namespace passage::domain
