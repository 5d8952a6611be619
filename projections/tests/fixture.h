#pragma once
// A small world for the read-model tests: a real event store and read models in a temp
// folder, a memory key store and codec, and helpers that run the domain's decide()
// functions, encode their events with the codec and append them grouped by stream.

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "domain/claim.h"
#include "domain/invite.h"
#include "domain/learner.h"
#include "domain/organization.h"
#include "domain/streams.h"
#include "domain/track.h"
#include "eventstore/event_codec.h"
#include "eventstore/event_store.h"
#include "eventstore/key_store.h"
#include "projections/projector.h"
#include "projections/read_models.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_values.h"

namespace passage::projections::testing {

using passage::testing::at;

// A uuid with `n` in its last bytes: stable across runs.
inline uuid id(std::uint64_t n) { return passage::testing::numbered_uuid(n, 0xCD); }

inline std::string hash_of(char c) { return std::string(64, c); }

class projections_test : public ::testing::Test {
 protected:
  void SetUp() override {
    eventstore::event_store_options o;
    o.path = dir_.sub("events");
    o.clock = &clock_;
    o.sync = false;
    auto s = eventstore::open_event_store(o);
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
    keys_ = eventstore::make_memory_key_store();
    codec_ = std::make_unique<eventstore::event_codec>(*keys_, std::string(48, 'p'));
    open_models();
  }

  void TearDown() override {
    projector_.reset();
    models_.reset();
  }

  std::string models_path() const { return dir_.sub("readmodels"); }

  void open_models() {
    projector_.reset();
    models_.reset();
    auto m = read_models::open({.path = models_path()}, *codec_);
    ASSERT_TRUE(m) << m.error().message;
    models_ = std::move(*m);
  }

  void start_projector() {
    projector_ = std::make_unique<projector>(*store_, *models_);
    auto started = projector_->start();
    ASSERT_TRUE(started) << started.error().message;
  }

  // Waits until the read models have applied the whole log.
  void catch_up() {
    if (!projector_) start_projector();
    const auto head = store_->head_position();
    std::promise<void> done;
    auto f = done.get_future();
    models_->when_applied(head, [&] { done.set_value(); });
    ASSERT_EQ(f.wait_for(std::chrono::seconds(20)), std::future_status::ready)
        << "applied " << models_->applied_position() << " of " << head
        << (projector_->error() ? " error: " + projector_->error()->message : "");
  }

  // Encodes and appends events grouped by stream (in order of first appearance); keeps the
  // test's aggregate states in step. Returns the last position.
  std::uint64_t append(const domain::event_list& events) {
    if (events.empty()) return store_->head_position();
    std::vector<eventstore::stream_append> appends;
    for (const auto& e : events) {
      const auto stream = domain::stream_of(e);
      auto it = std::find_if(appends.begin(), appends.end(),
                             [&](const auto& a) { return a.stream == stream; });
      if (it == appends.end()) {
        appends.push_back({stream, eventstore::expected_version::any(), {}});
        it = appends.end() - 1;
      }
      auto encoded = codec_->encode(e, {.event_id = uuid::random(), .actor = "test"});
      EXPECT_TRUE(encoded) << (encoded ? "" : encoded.error().message);
      if (!encoded) return 0;
      if (on_encoded) on_encoded(*encoded);
      it->events.push_back(std::move(*encoded));
      fold(e);
    }
    auto r = store_->append(std::move(appends));
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    return r ? r->last_position : 0;
  }

  template <typename T>
  T must(domain::domain_result<T> r) {
    EXPECT_TRUE(r) << (r ? ""
                         : std::string(domain::to_string(r.error().code_)) + " " +
                               r.error().field_ + ": " + r.error().message_);
    return r ? std::move(*r) : T{};
  }

  void fold(const domain::event& e) {
    std::visit(
        [&](const auto& v) {
          using E = std::decay_t<decltype(v)>;
          if constexpr (requires { v.invite_id_; }) {
            if constexpr (std::is_same_v<E, domain::track_played> ||
                          std::is_same_v<E, domain::track_paused> ||
                          std::is_same_v<E, domain::track_resumed>) {
              claims_[v.claim_id_] = domain::evolve(claims_[v.claim_id_], e);
            } else if constexpr (!std::is_same_v<E, domain::lead_captured> &&
                                 !std::is_same_v<E, domain::email_sent> &&
                                 !std::is_same_v<E, domain::email_failed> &&
                                 !std::is_same_v<E, domain::password_setup_issued>) {
              invites_[v.invite_id_] = domain::evolve(invites_[v.invite_id_], e);
              if constexpr (std::is_same_v<E, domain::invite_claimed>) {
                claims_[v.claim_id_] = domain::evolve(domain::claim_state{}, e);
              }
            }
          }
          if constexpr (requires { v.learner_id_; }) {
            if constexpr (std::is_same_v<E, domain::learner_registered> ||
                          std::is_same_v<E, domain::lead_captured> ||
                          std::is_same_v<E, domain::learner_forgotten> ||
                          std::is_same_v<E, domain::password_setup_issued> ||
                          std::is_same_v<E, domain::learner_password_set>) {
              learners_[v.learner_id_] = domain::evolve(learners_[v.learner_id_], e);
            }
          }
          if constexpr (std::is_same_v<E, domain::organization_created> ||
                        std::is_same_v<E, domain::api_key_issued> ||
                        std::is_same_v<E, domain::api_key_revoked> ||
                        std::is_same_v<E, domain::api_key_email_changed> ||
                        std::is_same_v<E, domain::lead_form_changed>) {
            orgs_[v.org_id_] = domain::evolve(orgs_[v.org_id_], e);
          }
          if constexpr (std::is_same_v<E, domain::track_registered> ||
                        std::is_same_v<E, domain::track_updated>) {
            auto& t = tracks_[{v.org_id_, v.track_id_}];
            t = domain::evolve(t, e);
          }
        },
        e);
  }

  // --- commands ---

  std::uint64_t create_org(const uuid& org, std::string name, char owner_hash) {
    return append(must(
        domain::decide(orgs_[org],
                       domain::create_organization{org, std::move(name), id(900 + org.bytes[15]),
                                                   "owner", hash_of(owner_hash)},
                       clock_.now())));
  }

  std::uint64_t issue_key(const uuid& org, const uuid& key, domain::role role, char hash) {
    return append(must(domain::decide(
        orgs_[org], domain::issue_api_key{key, role, "key", hash_of(hash)}, clock_.now())));
  }

  std::uint64_t register_track(const uuid& org, std::string track_id, std::string title,
                               bool pausable, std::optional<uuid> owner = {}) {
    return append(must(domain::decide(
        tracks_[{org, track_id}],
        domain::register_track{org, track_id, std::move(title), pausable, owner}, clock_.now())));
  }

  domain::track_catalog catalog(const uuid& org) { return models_->track_catalog(org); }

  domain::invite_draft draft(std::string title, std::vector<std::string> tracks = {"k8s"}) {
    domain::invite_draft d;
    d.title_ = std::move(title);
    for (auto& t : tracks) d.tracks_.push_back({std::move(t), std::nullopt});
    return d;
  }

  // The org asks one required lead-form question ("company"); the invite (code AB2K7MZ)
  // takes claims through that form.
  void create_lead_form_invite(const uuid& org, const uuid& invite, std::string title,
                               std::int64_t claim_limit = 0) {
    domain::lead_form form;
    form.fields_.push_back({"company", "Company", true});
    append(must(
        domain::decide(orgs_[org], domain::change_lead_form{form, std::nullopt}, clock_.now())));
    auto d = draft(std::move(title));
    d.access_ = domain::access_mode::lead_form;
    d.claim_limit_ = claim_limit;  // 0: no limit
    create_invite(org, invite, "AB2K7MZ", d);
  }

  std::uint64_t create_invite(const uuid& org, const uuid& invite, std::string code,
                              const domain::invite_draft& d) {
    catch_up();
    return append(must(domain::decide(
        domain::invite_state{},
        domain::create_invite{org, invite, std::move(code), d, catalog(org)}, clock_.now())));
  }

  template <typename Command>
  std::uint64_t on_invite(const uuid& invite, const Command& c) {
    return append(must(domain::decide(invites_[invite], c, clock_.now())));
  }

  // Claims with the facts looked up in the read models, as the application does.
  domain::claim_decision claim(const uuid& invite, std::optional<std::string> email,
                               std::uint64_t n, std::string first = "Ada",
                               std::string last = "Lovelace",
                               std::map<std::string, std::string> answers = {}) {
    catch_up();
    const auto& s = invites_[invite];
    domain::claim_invite c;
    c.claim_id_ = id(5000 + n);
    c.new_learner_id_ = id(6000 + n);
    c.email_ = email;
    c.first_name_ = std::move(first);
    c.last_name_ = std::move(last);
    c.lead_answers_ = std::move(answers);
    if (email) {
      if (auto l = models_->learner_by_email(s.org_id_, codec_->email_subject(s.org_id_, *email))) {
        c.existing_learner_id_ = l->learner_id;
        c.lead_already_submitted_ = l->lead_submitted;
      }
    } else {
      c.anonymous_learner_id_ = id(7000 + n);
    }
    c.lead_form_ = models_->lead_form(s.org_id_);
    auto d = must(domain::decide(s, c, clock_.now()));
    append(d.events_);
    return d;
  }

  std::uint64_t play(const uuid& claim, const uuid& learner, std::string track) {
    return append(must(domain::decide(claims_[claim], domain::play_track{learner, std::move(track)},
                                      clock_.now())));
  }

  std::uint64_t forget(const uuid& learner) {
    auto destroyed = keys_->destroy("learner:" + learner.to_string());
    EXPECT_TRUE(destroyed);
    return append(must(domain::decide(learners_[learner], domain::forget_learner{}, clock_.now())));
  }

  passage::testing::temp_dir dir_;
  manual_clock clock_{at("2026-03-01T10:00:00Z")};
  std::unique_ptr<eventstore::event_store> store_;
  std::unique_ptr<eventstore::key_store> keys_;
  std::unique_ptr<eventstore::event_codec> codec_;
  // When set, sees every event append() encoded before it is appended (a test's way to
  // store what another writer, e.g. an import, would have).
  std::function<void(eventstore::new_event&)> on_encoded;
  std::unique_ptr<read_models> models_;
  std::unique_ptr<projector> projector_;

  std::map<uuid, domain::organization_state> orgs_;
  std::map<std::pair<uuid, std::string>, domain::track_state> tracks_;
  std::map<uuid, domain::invite_state> invites_;
  std::map<uuid, domain::claim_state> claims_;
  std::map<uuid, domain::learner_state> learners_;
};

}  // namespace passage::projections::testing
