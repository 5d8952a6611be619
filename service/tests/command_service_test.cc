// The command side against a real event store: decisions, pipelined appends on
// one invite, retries after a stale cache, learners shared across invites.

#include "service/command_service.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "domain/invite.h"
#include "domain/streams.h"
#include "eventstore/event_codec.h"
#include "eventstore/key_store.h"
#include "tests/support/temp_dir.h"

namespace passage::service {
namespace {

using namespace std::chrono_literals;

// Facts for tests: codes registered by the test, and a read side that never
// catches up (when_applied callbacks are kept, not run), so everything the
// service knows about new learners comes from its own reservations.
class fake_facts final : public fact_source {
 public:
  std::optional<invite_ref> invite_by_code(std::string_view code) override {
    std::lock_guard lk(mu_);
    auto it = codes_.find(std::string(code));
    if (it == codes_.end()) return std::nullopt;
    return it->second;
  }
  std::optional<learner_ref> learner_by_email(const uuid&, std::string_view subject) override {
    std::lock_guard lk(mu_);
    auto it = learners_.find(std::string(subject));
    if (it == learners_.end()) return std::nullopt;
    return it->second;
  }
  std::optional<domain::invite_claimed> claim_seed(const uuid&) override { return std::nullopt; }
  void when_applied(std::uint64_t, std::function<void()> fn) override {
    std::lock_guard lk(mu_);
    deferred_.push_back(std::move(fn));
  }

  // The read side catches up: runs the kept when_applied callbacks.
  void catch_up() {
    std::vector<std::function<void()>> fns;
    {
      std::lock_guard lk(mu_);
      fns.swap(deferred_);
    }
    for (auto& fn : fns) fn();
  }

  void add(const std::string& code, invite_ref ref) {
    std::lock_guard lk(mu_);
    codes_[code] = ref;
  }

  // The read side shows a learner for an email subject.
  void add_learner(const std::string& subject, learner_ref ref) {
    std::lock_guard lk(mu_);
    learners_[subject] = ref;
  }

 private:
  std::mutex mu_;
  std::map<std::string, invite_ref> codes_;
  std::map<std::string, learner_ref> learners_;
  std::vector<std::function<void()>> deferred_;
};

template <typename T>
service_result<T> wait(std::function<void(callback<T>)> call) {
  std::promise<service_result<T>> p;
  auto f = p.get_future();
  call([&p](service_result<T> r) { p.set_value(std::move(r)); });
  return f.get();
}

// The store's next commit once armed: held (the commands queued meanwhile decide on the
// state it made) until let go, then refused ("disk full") or stored. Its hook() is the
// store's before_commit.
struct held_commit {
  bool refuse = true;

  std::function<std::optional<std::string>()> hook() {
    return [this]() -> std::optional<std::string> {
      std::unique_lock lk(mu);
      if (!armed) return std::nullopt;
      armed = false;
      held = true;
      cv.notify_all();
      cv.wait(lk, [&] { return released; });
      if (refuse) return std::string("disk full");
      return std::nullopt;
    };
  }
  void arm() {
    std::lock_guard lk(mu);
    armed = true;
  }
  // Whether the armed commit is being held (waits up to 10 s for it).
  bool holding() {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, 10s, [&] { return held; });
  }
  void let_go() {
    {
      std::lock_guard lk(mu);
      released = true;
    }
    cv.notify_all();
  }

 private:
  std::mutex mu;
  std::condition_variable cv;
  bool armed = false, held = false, released = false;
};

class command_service_test : public ::testing::Test {
 protected:
  void SetUp() override {
    codec_ = std::make_unique<eventstore::event_codec>(*keys_, std::string(32, 'p'));
    use_store({.path = dir_.sub("events"), .clock = &clock_});
  }

  // A store whose commit held_ holds once armed, in place of SetUp's.
  void use_held_store() {
    eventstore::event_store_options o{.path = dir_.sub("held-events"), .clock = &clock_};
    o.before_commit = held_.hook();
    use_store(o);
  }
  // Claims `first_code` with `in`, its commit held; claims `second_code` with `in` meanwhile
  // (decided on the state the held commit made, its append queued); then lets the commit go
  // (refused unless held_.refuse was cleared). Both answers, in that order.
  std::pair<service_result<claim_result>, service_result<claim_result>> claims_around_a_held_commit(
      const std::string& first_code, const std::string& second_code, const claim_input& in) {
    std::promise<service_result<claim_result>> first, second;
    held_.arm();
    svc_->claim(first_code, in, {"test", ""},
                [&](service_result<claim_result> r) { first.set_value(std::move(r)); });
    EXPECT_TRUE(held_.holding()) << "the first claim's commit never came";
    svc_->claim(second_code, in, {"test", ""},
                [&](service_result<claim_result> r) { second.set_value(std::move(r)); });
    std::this_thread::sleep_for(50ms);
    held_.let_go();
    auto a = first.get_future().get();
    return {std::move(a), second.get_future().get()};
  }

  // A new service over a store opened with `o` (its hooks), in place of SetUp's.
  void use_store(eventstore::event_store_options o) {
    svc_.reset();
    store_.reset();
    auto s = eventstore::open_event_store(o);
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
    svc_ = std::make_unique<command_service>(*store_, *codec_, *keys_, facts_, clock_,
                                             learner_token_codec(std::string(32, 't')));
    auto org = svc_->ensure_organization(org_id_, "Acme", std::string("psk_owner"));
    ASSERT_TRUE(org) << org.error().message;
    owner_ = {domain::role::owner, org_id_, org->owner_key_id};
  }

  void register_track(const std::string& id, bool pausable = false) {
    auto r = wait<written>([&](auto cb) {
      svc_->register_track(owner_, id, "Track " + id, pausable, {"test", ""}, cb);
    });
    ASSERT_TRUE(r) << r.error().message;
  }

  invite_written create_invite(std::int64_t limit, std::int64_t plays = 0,
                               domain::access_mode access = domain::access_mode::anyone) {
    domain::invite_draft d;
    d.title_ = "Kubernetes 101";
    d.tracks_ = {{"k8s-basics", std::nullopt}};
    d.claim_limit_ = limit;
    d.plays_per_track_ = plays;
    d.access_ = access;
    if (access == domain::access_mode::allowed) d.allowed_domains_ = {"example.com"};
    auto r = wait<invite_written>([&](auto cb) {
      svc_->create_invite(owner_, d, {"test", ""}, cb);
    });
    EXPECT_TRUE(r) << r.error().message;
    if (!r) return {};
    facts_.add(r->code, {org_id_, r->invite_id});
    return *r;
  }

  service_result<claim_result> claim(const std::string& code, std::string email) {
    claim_input in;
    if (!email.empty()) in.email = email;
    return wait<claim_result>([&](auto cb) { svc_->claim(code, in, {"test", ""}, cb); });
  }

  std::vector<eventstore::recorded_event> stream(const std::string& name) {
    auto r = store_->read_stream(name, 1, eventstore::read_direction::forward, 100000);
    EXPECT_TRUE(r);
    return r ? *r : std::vector<eventstore::recorded_event>{};
  }

  passage::testing::temp_dir dir_;
  held_commit held_;
  manual_clock clock_{from_unix_micros(1'790'000'000'000'000)};
  std::unique_ptr<eventstore::event_store> store_;
  std::unique_ptr<eventstore::key_store> keys_ = eventstore::make_memory_key_store();
  std::unique_ptr<eventstore::event_codec> codec_;
  fake_facts facts_;
  std::unique_ptr<command_service> svc_;
  uuid org_id_ = uuid::random();
  domain::principal owner_;
};

TEST_F(command_service_test, TwoHundredConcurrentClaimsNeverExceedALimitOfFifty) {
  register_track("k8s-basics");
  auto invite = create_invite(50);
  std::atomic<int> claimed{0}, full{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        auto r = claim(invite.code, "learner" + std::to_string(t * 25 + i) + "@example.com");
        if (!r) {
          ++other;
          ADD_FAILURE() << r.error().code << ": " << r.error().message;
        } else if (r->outcome == domain::claim_outcome::claimed) {
          ++claimed;
        } else if (r->rejection == domain::rejection_reason::full) {
          ++full;
        } else {
          ++other;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(claimed, 50);
  EXPECT_EQ(full, 150);
  EXPECT_EQ(other, 0);
  int claims = 0, rejections = 0, filled = 0;
  for (const auto& e : stream(domain::invite_stream(invite.invite_id))) {
    claims += e.type == "InviteClaimed";
    rejections += e.type == "ClaimRejected";
    filled += e.type == "InviteFilled";
  }
  EXPECT_EQ(claims, 50);
  EXPECT_EQ(rejections, 150);
  EXPECT_EQ(filled, 1);
}

TEST_F(command_service_test, RepeatClaimReturnsTheSameClaimAndToken) {
  register_track("k8s-basics");
  auto invite = create_invite(10);
  auto first = claim(invite.code, "Ada@Example.com");
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_EQ(first->outcome, domain::claim_outcome::claimed);
  auto again = claim(invite.code, "ada@example.com");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->outcome, domain::claim_outcome::existing);
  EXPECT_EQ(again->claim->claim_id_, first->claim->claim_id_);
  EXPECT_EQ(again->learner_token, first->learner_token);
  EXPECT_EQ(again->at.position, 0u) << "a repeat claim appends nothing";
}

// The store's event id index takes time-ordered ids next to the one before (a search-free
// insert, a flush without a sort): every event a command appends gets a version-7 id, and
// a later command's ids sort after an earlier one's (within one command the log groups the
// events by stream, so their ids need not follow log order there).
TEST_F(command_service_test, EventIdsAreTimeOrderedFromOneCommandToTheNext) {
  register_track("k8s-basics");
  auto invite = create_invite(10);
  std::vector<std::uint64_t> last_of_claim;
  for (int i = 0; i < 5; ++i) {
    auto r = claim(invite.code, "ordered" + std::to_string(i) + "@example.com");
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_NE(r->at.position, 0u);
    last_of_claim.push_back(r->at.position);
  }
  auto log = store_->read_all({}, 1000);
  ASSERT_TRUE(log);
  ASSERT_GE(log->size(), 1u + 5 * 2);  // the invite, and at least two events per new learner
  for (const auto& e : *log) {
    EXPECT_EQ(e.event_id.bytes[6] >> 4, 7) << "event at " << e.position << " (" << e.type << ")";
    EXPECT_EQ(e.event_id.bytes[8] >> 6, 2) << "event at " << e.position << ": RFC 9562 variant";
  }
  // Every id written up to a claim's last event sorts before every id written after it.
  for (std::uint64_t boundary : last_of_claim) {
    uuid newest_before{}, oldest_after{};
    bool any_after = false;
    for (const auto& e : *log) {
      if (e.position <= boundary) {
        newest_before = std::max(newest_before, e.event_id);
      } else if (!any_after || e.event_id < oldest_after) {
        oldest_after = e.event_id;
        any_after = true;
      }
    }
    if (any_after) {
      EXPECT_LT(newest_before, oldest_after) << "around position " << boundary;
    }
  }
}

TEST_F(command_service_test, OneNewEmailClaimingTwoInvitesAtOnceBecomesOneLearner) {
  register_track("k8s-basics");
  auto a = create_invite(0), b = create_invite(0);
  for (int round = 0; round < 20; ++round) {
    std::string email = "race" + std::to_string(round) + "@example.com";
    auto fa = std::async(std::launch::async, [&] { return claim(a.code, email); });
    auto fb = std::async(std::launch::async, [&] { return claim(b.code, email); });
    auto ra = fa.get(), rb = fb.get();
    ASSERT_TRUE(ra && rb);
    EXPECT_EQ(ra->claim->learner_id_, rb->claim->learner_id_) << email;
  }
  int registered = 0;
  auto all = store_->read_all({.types = {"LearnerRegistered"}}, 1000);
  ASSERT_TRUE(all);
  registered = static_cast<int>(all->size());
  EXPECT_EQ(registered, 20);
}

TEST_F(command_service_test, PlaysStopAtTheLimitAndNeedTheLearnersToken) {
  register_track("k8s-basics");
  auto invite = create_invite(0, 2);
  auto c = claim(invite.code, "ada@example.com");
  ASSERT_TRUE(c) << c.error().message;
  auto play = [&](const std::string& token) {
    return wait<play_result>([&](auto cb) {
      svc_->play(c->claim->claim_id_, token, "k8s-basics", {"test", ""}, cb);
    });
  };
  auto p1 = play(c->learner_token);
  ASSERT_TRUE(p1) << p1.error().message;
  EXPECT_EQ(p1->plays_remaining, 1);
  auto p2 = play(c->learner_token);
  ASSERT_TRUE(p2);
  EXPECT_EQ(p2->plays_remaining, 0);
  auto p3 = play(c->learner_token);
  ASSERT_FALSE(p3);
  EXPECT_EQ(p3.error().code, "play_limit_reached");
  auto forged = play("lt1.not-a-token");
  ASSERT_FALSE(forged);
  EXPECT_EQ(forged.error().code, "unauthorized");
  auto other = claim(invite.code, "bob@example.com");
  ASSERT_TRUE(other);
  auto stolen = play(other->learner_token);
  ASSERT_FALSE(stolen) << "another learner's token must not play this claim";
  EXPECT_EQ(stolen.error().code, "not_found");  // as GET /v1/public/claims/{id}: not 403
}

// A new claim's first play needs no read side (the service keeps the claim's seed), but
// only until the read side shows the claim: then it answers, and the seed is dropped (kept,
// seeds would grow by one per claim for the life of the process).
TEST_F(command_service_test, AClaimsSeedIsKeptOnlyUntilTheReadSideShowsIt) {
  register_track("k8s-basics");
  auto invite = create_invite(0, 2);
  auto played = claim(invite.code, "ada@example.com");
  auto unplayed = claim(invite.code, "bob@example.com");
  ASSERT_TRUE(played && unplayed);
  auto play = [&](const claim_result& c) {
    return wait<play_result>([&](auto cb) {
      svc_->play(c.claim->claim_id_, c.learner_token, "k8s-basics", {"test", ""}, cb);
    });
  };
  ASSERT_TRUE(play(*played)) << "the seed answers before the read side shows the claim";
  facts_.catch_up();
  // This fake read side knows no claims: a play now depends on it, so it finds none.
  auto after = play(*unplayed);
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code, "not_found");
  // A claim already loaded stays cached as an aggregate; the seed only started it.
  EXPECT_TRUE(play(*played));
}

TEST_F(command_service_test, StaleCacheIsReloadedAndTheCommandRetried) {
  register_track("k8s-basics");
  auto invite = create_invite(3);
  ASSERT_TRUE(claim(invite.code, "a@example.com"));
  // Someone else appends to the invite stream behind the cache's back.
  domain::event foreign = domain::invite_deactivated{org_id_, invite.invite_id, clock_.now()};
  auto encoded = codec_->encode(foreign, {uuid::random(), "other", "", "other"});
  ASSERT_TRUE(encoded);
  ASSERT_TRUE(store_->append({{domain::invite_stream(invite.invite_id),
                               eventstore::expected_version::any(),
                               {*encoded}}}));
  // The cached state says "active"; the retry sees the deactivation.
  auto r = claim(invite.code, "b@example.com");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->outcome, domain::claim_outcome::rejected);
  EXPECT_EQ(r->rejection, domain::rejection_reason::deactivated);
}

// A claim registering a new learner and capturing a lead reserves both for its email until
// the read side shows them; if its append fails, the next claim by that email (a retry too)
// must register a learner of its own and capture the lead, not take the ones that never were.
TEST_F(command_service_test, AClaimWhoseAppendFailsLeavesNeitherLearnerNorLeadReservedForItsEmail) {
  std::atomic<bool> refuse{false};
  eventstore::event_store_options o{.path = dir_.sub("refusing-events"), .clock = &clock_};
  o.before_commit = [&]() -> std::optional<std::string> {
    if (refuse) return std::string("disk full");
    return std::nullopt;
  };
  use_store(o);
  ASSERT_FALSE(HasFatalFailure());
  register_track("k8s-basics");
  auto invite = create_invite(10, 0, domain::access_mode::lead_form);
  claim_input in;
  in.email = "ada@example.com";
  in.first_name = "Ada";
  in.last_name = "Lovelace";
  auto claim_with_lead = [&] {
    return wait<claim_result>([&](auto cb) { svc_->claim(invite.code, in, {"test", ""}, cb); });
  };

  refuse = true;
  auto failed = claim_with_lead();
  ASSERT_FALSE(failed);
  refuse = false;
  auto ok = claim_with_lead();
  ASSERT_TRUE(ok) << ok.error().message;
  ASSERT_TRUE(ok->claim);
  auto learner = stream(domain::learner_stream(ok->claim->learner_id_));
  ASSERT_FALSE(learner.empty()) << "the claim's learner was never registered";
  EXPECT_EQ(learner[0].type, domain::learner_registered::type_name);
  // Nor was its lead taken for one submitted before.
  auto log = store_->read_all({}, 1000);
  ASSERT_TRUE(log);
  EXPECT_EQ(std::count_if(log->begin(), log->end(),
                          [](const auto& e) { return e.type == domain::lead_captured::type_name; }),
            1);
}

// Two invites claimed by one email: the second claim finds the learner the first reserved and
// names it. If the first claim's append then fails, the learner is never registered: the
// second claim must not be stored naming it, but register a learner of its own.
TEST_F(command_service_test, AClaimNamingAnotherClaimsLearnerIsNotStoredWhenThatRegistrationFails) {
  use_held_store();
  ASSERT_FALSE(HasFatalFailure());
  register_track("k8s-basics");
  auto first_invite = create_invite(10);
  auto second_invite = create_invite(10);
  claim_input in;
  in.email = "ada@example.com";
  // The first claim's events are in the commit being held: its learner is reserved.
  auto [failed, ok] = claims_around_a_held_commit(first_invite.code, second_invite.code, in);
  ASSERT_FALSE(failed);
  ASSERT_TRUE(ok) << ok.error().message;
  ASSERT_TRUE(ok->claim);
  auto learner = stream(domain::learner_stream(ok->claim->learner_id_));
  ASSERT_FALSE(learner.empty()) << "the claim names a learner that was never registered";
  EXPECT_EQ(learner[0].type, domain::learner_registered::type_name);
}

// Two lead-form invites claimed by one email: the first claim captures the lead, the second
// finds it pending and captures none. That lead counts only once the first claim is stored: if
// the first claim's append fails, the second must capture the lead itself (not be stored
// without one, the lead lost). `known` says whether the read side already shows the email's
// learner (its lead then goes to an existing learner stream); `refused`, whether the first
// claim's append fails.
class lead_race_test : public command_service_test,
                       public ::testing::WithParamInterface<std::tuple<bool, bool>> {};

TEST_P(lead_race_test, ALeadAnotherClaimCapturedCountsOnlyOnceThatClaimIsStored) {
  const auto [known, refused] = GetParam();
  held_.refuse = refused;
  use_held_store();
  ASSERT_FALSE(HasFatalFailure());
  register_track("k8s-basics");
  auto first_invite = create_invite(10, 0, domain::access_mode::lead_form);
  auto second_invite = create_invite(10, 0, domain::access_mode::lead_form);
  claim_input in;
  in.email = "ada@example.com";
  in.first_name = "Ada";
  in.last_name = "Lovelace";
  if (known) {
    // Registered by a claim of an invite without a lead form; the read side shows it.
    auto plain = create_invite(10);
    auto r = claim(plain.code, *in.email);
    ASSERT_TRUE(r) << r.error().message;
    facts_.add_learner(codec_->email_subject(org_id_, *in.email), {r->claim->learner_id_, false});
  }

  // The first claim's events are in the commit being held: its lead is pending.
  auto [a, b] = claims_around_a_held_commit(first_invite.code, second_invite.code, in);
  ASSERT_EQ(bool(a), !refused);
  ASSERT_TRUE(b) << b.error().message;
  ASSERT_EQ(b->outcome, domain::claim_outcome::claimed);
  auto log = store_->read_all({.types = {"LeadCaptured"}}, 1000);
  ASSERT_TRUE(log);
  ASSERT_EQ(log->size(), 1u) << "one lead, captured by whichever claim was stored first";
  auto learner = stream(domain::learner_stream(b->claim->learner_id_));
  EXPECT_TRUE(std::any_of(learner.begin(), learner.end(), [](const auto& e) {
    return e.type == domain::lead_captured::type_name;
  })) << "the second claim's learner has no lead";
}

INSTANTIATE_TEST_SUITE_P(, lead_race_test, ::testing::Combine(::testing::Bool(), ::testing::Bool()),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) ? "Known" : "New") +
                                  "Learner" +
                                  (std::get<1>(info.param) ? "FirstRefused" : "FirstStored");
                         });

// A repeat claim appends nothing: its answer names the claim it repeats. When that claim's
// append is still unanswered, the repeat is answered only once it is stored; if it fails, the
// repeat is decided again (a claim of its own), never answered with a claim that was not stored.
TEST_F(command_service_test, ARepeatClaimIsAnsweredOnlyOnceTheClaimItRepeatsIsStored) {
  use_held_store();
  ASSERT_FALSE(HasFatalFailure());
  register_track("k8s-basics");
  auto invite = create_invite(10);
  claim_input in;
  in.email = "ada@example.com";
  auto [first, r] = claims_around_a_held_commit(invite.code, invite.code, in);
  ASSERT_FALSE(first);
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_TRUE(r->claim);
  EXPECT_EQ(r->outcome, domain::claim_outcome::claimed);
  auto log = stream(domain::invite_stream(invite.invite_id));
  EXPECT_EQ(
      std::count_if(log.begin(), log.end(),
                    [](const auto& e) { return e.type == domain::invite_claimed::type_name; }),
      1)
      << "the answer names a claim that was never stored";
  EXPECT_FALSE(stream(domain::learner_stream(r->claim->learner_id_)).empty())
      << "the answer names a learner that was never registered";
}

// A store that answers an append on the spot (closed, or refusing it) answers on the thread
// that queued it while holding the aggregate's lock: the answer must not wait for that lock.
TEST_F(command_service_test, AnAppendRefusedAtOnceFailsTheCommandInsteadOfHanging) {
  register_track("k8s-basics");
  auto invite = create_invite(3);  // cached: the command below reads nothing from the store
  store_->close();
  auto answer = std::make_shared<std::promise<service_result<written>>>();
  auto f = answer->get_future();
  // On a thread of its own: should it hang, the test still ends (and fails).
  std::thread([svc = svc_.get(), owner = owner_, id = invite.invite_id, answer] {
    svc->deactivate_invite(owner, id, std::nullopt, {"t", ""},
                           [answer](service_result<written> r) { answer->set_value(r); });
  }).detach();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready) << "the command hangs";
  auto r = f.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "unavailable");
}

TEST_F(command_service_test, EditsNeedTheCurrentVersionWhenIfMatchIsGiven) {
  register_track("k8s-basics");
  auto invite = create_invite(3);
  domain::invite_patch p;
  p.title_ = "Renamed";
  auto stale = wait<written>([&](auto cb) {
    svc_->update_invite(owner_, invite.invite_id, p, 7, {"test", ""}, cb);
  });
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, "version_conflict");
  auto ok = wait<written>([&](auto cb) {
    svc_->update_invite(owner_, invite.invite_id, p, invite.at.version, {"test", ""}, cb);
  });
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->version, invite.at.version + 1);
}

TEST_F(command_service_test, OtherOrganizationsSeeNotFound) {
  register_track("k8s-basics");
  auto invite = create_invite(3);
  domain::principal stranger{domain::role::owner, uuid::random(), uuid::random()};
  auto r = wait<written>([&](auto cb) {
    svc_->deactivate_invite(stranger, invite.invite_id, std::nullopt, {"test", ""}, cb);
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "not_found");
}

TEST_F(command_service_test, ProfessorsManageOnlyInvitesOfTheirOwnTracks) {
  register_track("k8s-basics");
  auto key = wait<api_key_result>([&](auto cb) {
    svc_->issue_api_key(owner_, domain::role::professor, "prof", std::nullopt, {"test", ""}, cb);
  });
  ASSERT_TRUE(key) << key.error().message;
  domain::principal prof{domain::role::professor, org_id_, key->key_id};
  auto own = wait<written>([&](auto cb) {
    svc_->register_track(prof, "prof-track", "Mine", false, {"test", ""}, cb);
  });
  ASSERT_TRUE(own) << own.error().message;
  domain::invite_draft d;
  d.title_ = "Theirs";
  d.tracks_ = {{"k8s-basics", std::nullopt}};
  auto refused = wait<invite_written>([&](auto cb) {
    svc_->create_invite(prof, d, {"test", ""}, cb);
  });
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, "forbidden");
  d.tracks_ = {{"prof-track", std::nullopt}};
  auto mine = wait<invite_written>([&](auto cb) {
    svc_->create_invite(prof, d, {"test", ""}, cb);
  });
  EXPECT_TRUE(mine) << mine.error().message;
}

TEST_F(command_service_test, EnsureOrganizationIsIdempotentAndAddsANewOwnerKey) {
  auto again = svc_->ensure_organization(org_id_, "Acme", std::string("psk_owner"));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->owner_key, "") << "an existing key is not re-issued";
  auto rotated = svc_->ensure_organization(org_id_, "Acme", std::string("psk_new_owner"));
  ASSERT_TRUE(rotated);
  EXPECT_EQ(rotated->owner_key, "psk_new_owner");
  auto org = svc_->organization(org_id_);
  ASSERT_TRUE(org);
  EXPECT_EQ(org->api_keys_.size(), 2u);
}

TEST_F(command_service_test, ForgettingALearnerShredsTheirPersonalData) {
  register_track("k8s-basics");
  auto invite = create_invite(0);
  auto c = claim(invite.code, "ada@example.com");
  ASSERT_TRUE(c) << c.error().message;
  uuid learner = c->claim->learner_id_;
  auto claimed = stream(domain::invite_stream(invite.invite_id)).back();
  auto before = codec_->to_public_json(claimed);
  ASSERT_TRUE(before);
  EXPECT_NE(before->dump().find("ada@example.com"), std::string::npos);

  auto forgot = wait<written>([&](auto cb) {
    svc_->forget_learner(owner_, learner, {"t", ""}, cb);
  });
  ASSERT_TRUE(forgot) << forgot.error().message;
  EXPECT_GT(forgot->position, 0u);
  auto after = codec_->to_public_json(claimed);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->dump().find("ada@example.com"), std::string::npos) << after->dump();
  auto decoded = codec_->decode(claimed);
  ASSERT_TRUE(decoded);
  EXPECT_TRUE(decoded->forgotten);

  auto again = wait<written>([&](auto cb) {
    svc_->forget_learner(owner_, learner, {"t", ""}, cb);
  });
  ASSERT_TRUE(again);
  EXPECT_EQ(again->position, 0u) << "forgetting twice appends nothing";
  domain::principal stranger{domain::role::owner, uuid::random(), uuid::random()};
  auto foreign = wait<written>([&](auto cb) {
    svc_->forget_learner(stranger, learner, {"t", ""}, cb);
  });
  ASSERT_FALSE(foreign);
  EXPECT_EQ(foreign.error().code, "not_found");
}

// The mailer is told before any key goes (so a mail it is writing has its copy checked
// even should the forget fail midway), and given the address once both went; the Kafka
// relay is told once the keys went (it then encodes again what it has not delivered).
TEST_F(command_service_test, ForgettingTellsTheConsumersBeforeAndAfterTheKeysGo) {
  register_track("k8s-basics");
  auto invite = create_invite(0);
  auto c = claim(invite.code, "ada@example.com");
  ASSERT_TRUE(c) << c.error().message;
  const uuid learner = c->claim->learner_id_;
  const std::string learner_key = "learner:" + learner.to_string();
  const std::string email_key = codec_->email_subject(org_id_, "ada@example.com");
  std::vector<std::string> told;
  command_service_options o;
  o.before_keys_destroyed = [&] {
    told.push_back(std::string("before:") + (keys_->is_destroyed(learner_key) ? "gone" : "kept") +
                   (keys_->is_destroyed(email_key) ? ",gone" : ",kept"));
  };
  o.after_keys_destroyed = [&] {
    told.push_back(std::string("destroyed:") +
                   (keys_->is_destroyed(learner_key) ? "gone" : "kept") +
                   (keys_->is_destroyed(email_key) ? ",gone" : ",kept"));
  };
  o.on_email_forgotten = [&](const uuid&, const std::string& email) {
    told.push_back("after:" + email + (keys_->is_destroyed(learner_key) ? ",gone" : ",kept"));
  };
  command_service hooked(*store_, *codec_, *keys_, facts_, clock_,
                         learner_token_codec(std::string(32, 't')), o);
  auto forgot = wait<written>([&](auto cb) {
    hooked.forget_learner(owner_, learner, {"t", ""}, cb);
  });
  ASSERT_TRUE(forgot) << forgot.error().message;
  EXPECT_EQ(told, (std::vector<std::string>{"before:kept,kept", "destroyed:gone,gone",
                                            "after:ada@example.com,gone"}));
  EXPECT_TRUE(keys_->is_destroyed(email_key));  // the subject the "before" check looked at
}

}  // namespace
}  // namespace passage::service

namespace passage::service {
namespace {

class private_invitation_test : public command_service_test {
 protected:
  service_result<invitation_job> send(
      const uuid& invite, std::vector<std::string> emails,
      domain::on_existing_invitation on_existing = domain::on_existing_invitation::resend) {
    return wait<invitation_job>([&](auto cb) {
      svc_->send_private_invitations(owner_, invite, emails, on_existing, std::nullopt,
                                     {"test", ""}, cb);
    });
  }
  std::vector<domain::private_invitation_sent> invitations(const uuid& invite) {
    std::vector<domain::private_invitation_sent> out;
    for (const auto& rec : stream(domain::invite_stream(invite))) {
      auto d = codec_->decode(rec);
      EXPECT_TRUE(d);
      if (auto* p = d ? std::get_if<domain::private_invitation_sent>(&d->event) : nullptr)
        out.push_back(*p);
    }
    return out;
  }
};

TEST_F(private_invitation_test, ABulkSendIsOneAppendWithOneLinkPerAddress) {
  register_track("k8s-basics");
  auto invite = create_invite(0, 0, domain::access_mode::allowed);
  std::vector<std::string> emails;
  for (int i = 0; i < 500; ++i) emails.push_back("p" + std::to_string(i) + "@other.org");
  auto job = send(invite.invite_id, emails);
  ASSERT_TRUE(job) << job.error().message;
  EXPECT_EQ(job->total, 500);
  auto sent = invitations(invite.invite_id);
  ASSERT_EQ(sent.size(), 500u);
  std::set<uuid> links;
  for (std::size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(sent[i].job_id_, job->job_id);
    EXPECT_EQ(sent[i].job_total_, 500);
    EXPECT_EQ(sent[i].personal_data_.email_, emails[i]);
    links.insert(sent[i].invitation_id_);
  }
  EXPECT_EQ(links.size(), 500u);
  // One append: the invitations hold consecutive positions.
  auto recs = stream(domain::invite_stream(invite.invite_id));
  EXPECT_EQ(recs.back().position - recs[1].position, 499u);
}

TEST_F(private_invitation_test, APersonalLinkClaimsForItsAddresseeOnly) {
  register_track("k8s-basics");
  auto invite = create_invite(0, 0, domain::access_mode::allowed);
  ASSERT_TRUE(send(invite.invite_id, {"ada@other.org", "bob@other.org"}));
  auto sent = invitations(invite.invite_id);
  const std::string bob = svc_->links().issue({invite.invite_id, sent[1].invitation_id_});

  auto r = wait<claim_result>([&](auto cb) {
    svc_->claim_by_link(bob, claim_input{}, {"test", ""}, cb);
  });
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->outcome, domain::claim_outcome::claimed);
  auto claimed = stream(domain::invite_stream(invite.invite_id)).back();
  auto d = codec_->decode(claimed);
  ASSERT_TRUE(d);
  EXPECT_EQ(std::get<domain::invite_claimed>(d->event).personal_data_.email_, "bob@other.org");

  // A link signed with another secret, or for another invite, claims nothing.
  personal_link_codec other(std::string(32, 'x'));
  auto forged = wait<claim_result>([&](auto cb) {
    svc_->claim_by_link(other.issue({invite.invite_id, sent[0].invitation_id_}), claim_input{},
                        {"test", ""}, cb);
  });
  ASSERT_FALSE(forged);
  EXPECT_EQ(forged.error().code, "not_found");
}

TEST_F(private_invitation_test, ARefusedSendAppendsNothing) {
  register_track("k8s-basics");
  auto open = create_invite(0);
  auto refused = send(open.invite_id, {"ada@other.org"});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, "invalid_state");
  EXPECT_EQ(stream(domain::invite_stream(open.invite_id)).size(), 1u);
  auto bad = send(create_invite(0, 0, domain::access_mode::allowed).invite_id,
                  {"ok@other.org", "not an address"});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "emails[1]");
}

}  // namespace
}  // namespace passage::service
