#include "projections/read_models.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <system_error>
#include <thread>

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/write_batch.h>

#include "common/record_format.h"
#include "projections/csv.h"
#include "projections/json_views.h"
#include "projections/tests/fixture.h"
#include "tests/support/crash_image.h"
#include "tests/support/forwarding_store.h"

namespace passage::projections {
namespace {

using namespace std::chrono_literals;
using domain::invite_status;
using testing::at;
using testing::hash_of;
using testing::id;

const uuid org = id(1);
const uuid other_org = id(2);

// `batch` decoded into `out` (its entries reused) an event at a time, as a rebuild's
// decoding thread does; false at the first event that does not decode.
bool decode_each(const read_models& m, std::span<const eventstore::recorded_event> batch,
                 read_models::decoded_batch& out) {
  out.resize(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (auto d = m.decode_event(batch[i], out[i]); !d) {
      ADD_FAILURE() << d.error().message;
      return false;
    }
  }
  return true;
}

class read_models_test : public testing::projections_test {
 protected:
  void SetUp() override {
    projections_test::SetUp();
    create_org(org, "Acme", 'a');
    register_track(org, "k8s", "Kubernetes basics", false);
    register_track(org, "linux", "Linux on a VM", true);
  }

  domain::invite_state& invite_state(const uuid& i) { return invites_[i]; }

  std::vector<std::string> titles(const invite_page& p) {
    std::vector<std::string> out;
    for (const auto& v : p.invites) out.push_back(v.settings.title_);
    return out;
  }

  invite_page list(invite_query q, timestamp now) {
    auto r = models_->list_invites(org, q, now);
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    return r ? *r : invite_page{};
  }

  // Every event of the log, in order.
  std::vector<eventstore::recorded_event> whole_log() {
    std::vector<eventstore::recorded_event> log;
    EXPECT_TRUE(store_->scan({}, [&](const eventstore::recorded_event& e) {
      log.push_back(e);
      return true;
    }));
    return log;
  }

  // What the bulk-load tests compare: an invite, its usage and acceptance list, each
  // claimant's history, and the checkpoint.
  nlohmann::json invite_snapshot(read_models& m, const uuid& inv,
                                 const std::vector<domain::claim_decision>& claims = {}) {
    nlohmann::json j;
    j["invite"] = to_json(*m.invite(org, inv, clock_.now()));
    j["usage"] = to_json(*m.usage(org, inv));
    j["claims"] = to_json(std::span<const acceptance_row>(*m.acceptance_list(org, inv)));
    for (const auto& c : claims) {
      j["learners"].push_back(to_json(*m.learner_history(org, c.claim_->learner_id_)));
    }
    j["applied"] = m.applied_position();
    return j;
  }

  // The folder at `path` reopens at checkpoint 0 with nothing of a load that did not end
  // (not even `absent`'s invite, when given), and applying `log` from there answers as the
  // live-built read models did (`live`, as `snapshot` sees them).
  template <typename Snapshot>
  void expect_reopens_at_zero_and_catches_up(const std::string& path,
                                             std::span<const eventstore::recorded_event> log,
                                             const nlohmann::json& live, Snapshot snapshot,
                                             std::optional<uuid> absent = std::nullopt) {
    auto reopened = read_models::open({.path = path}, *codec_);
    ASSERT_TRUE(reopened) << reopened.error().message;
    EXPECT_EQ((*reopened)->applied_position(), 0u);
    if (absent) {
      EXPECT_FALSE((*reopened)->invite(org, *absent, clock_.now()));
    }
    ASSERT_TRUE((*reopened)->apply(log));
    EXPECT_EQ(snapshot(**reopened), live);
  }

  // Every byte of every file under `folder`.
  static std::string all_bytes(const std::string& folder) {
    std::string out;
    for (const auto& f : std::filesystem::recursive_directory_iterator(folder)) {
      if (!f.is_regular_file()) continue;
      std::ifstream in(f.path(), std::ios::binary);
      out.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    return out;
  }
};

// ---------------------------------------------------------------------------------------
// Lookups for the command side and authentication.

TEST_F(read_models_test, organizations_api_keys_and_tracks) {
  create_org(other_org, "Other", 'b');
  const uuid prof = id(31);
  issue_key(org, prof, domain::role::professor, 'c');
  register_track(org, "docker", "Docker", true, prof);
  catch_up();

  auto o = models_->organization(org);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->name, "Acme");
  EXPECT_EQ(models_->organizations().size(), 2u);

  auto owner = models_->api_key_by_hash(hash_of('a'));
  ASSERT_TRUE(owner);
  EXPECT_EQ(owner->org_id, org);
  EXPECT_EQ(owner->role, domain::role::owner);
  EXPECT_FALSE(owner->revoked);
  auto p = models_->api_key_by_hash(hash_of('c'));
  ASSERT_TRUE(p);
  EXPECT_EQ(p->key_id, prof);
  EXPECT_EQ(p->role, domain::role::professor);
  EXPECT_FALSE(models_->api_key_by_hash(hash_of('z')));
  EXPECT_EQ(models_->api_keys(org).size(), 2u);
  EXPECT_FALSE(models_->api_key(other_org, prof));  // nothing crosses organizations

  append(must(domain::decide(orgs_[org], domain::revoke_api_key{prof}, clock_.now())));
  catch_up();
  EXPECT_TRUE(models_->api_key_by_hash(hash_of('c'))->revoked);

  auto tracks = models_->tracks(org);
  ASSERT_EQ(tracks.size(), 3u);
  EXPECT_EQ(tracks[0].track_id, "docker");
  EXPECT_EQ(tracks[0].owner, prof);
  EXPECT_TRUE(tracks[0].pausable);
  EXPECT_EQ(models_->track(org, "k8s")->title, "Kubernetes basics");
  EXPECT_TRUE(models_->tracks(other_org).empty());
  auto cat = models_->track_catalog(org);
  EXPECT_TRUE(cat.at("linux").pausable_);
  EXPECT_EQ(cat.at("docker").owner_, prof);

  append(must(
      domain::decide(tracks_[{org, "k8s"}], domain::update_track{.title_ = "K8s"}, clock_.now())));
  domain::lead_form form;
  form.fields_.push_back({"company", "Company", true});
  append(
      must(domain::decide(orgs_[org], domain::change_lead_form{form, std::nullopt}, clock_.now())));
  catch_up();
  EXPECT_EQ(models_->track(org, "k8s")->title, "K8s");
  EXPECT_EQ(models_->lead_form(org).fields_.size(), 1u);
  EXPECT_EQ(to_json(*models_->organization(org))["lead_form"]["fields"][0]["name"], "company");
  EXPECT_FALSE(to_json(*models_->api_key_by_hash(hash_of('a'))).contains("key_hash"));
}

// ---------------------------------------------------------------------------------------
// Invite detail, status, code lookup.

TEST_F(read_models_test, invite_detail_with_counts_remaining_spots_and_version) {
  const uuid inv = id(100);
  auto d = draft("Kubernetes 101");
  d.claim_limit_ = 3;
  d.internal_description_ = "budget code 42";
  create_invite(org, inv, "AB2K7MZ", d);
  catch_up();

  auto v = models_->invite(org, inv, clock_.now());
  ASSERT_TRUE(v);
  EXPECT_EQ(v->code, "AB2K7MZ");
  EXPECT_EQ(v->link, "/i/AB2K7MZ");
  EXPECT_EQ(v->version, 1u);
  EXPECT_EQ(v->status.status_, invite_status::active);
  EXPECT_EQ(v->claims_count, 0);
  EXPECT_EQ(v->remaining_spots, 3);
  EXPECT_FALSE(models_->invite(other_org, inv, clock_.now()));  // 404 across orgs

  auto ref = models_->invite_by_code("AB2K7MZ");
  ASSERT_TRUE(ref);
  EXPECT_EQ(ref->invite_id, inv);
  EXPECT_EQ(ref->org_id, org);
  EXPECT_FALSE(models_->invite_by_code("ZZZZZZZ"));

  claim(inv, "ada@example.com", 1);
  claim(inv, "bob@example.com", 2);
  claim(inv, "ada@example.com", 3);  // the same learner again: no second use
  catch_up();
  v = models_->invite(org, inv, clock_.now());
  EXPECT_EQ(v->claims_count, 2);
  EXPECT_EQ(v->remaining_spots, 1);
  EXPECT_EQ(v->version, invite_state(inv).version_);
  EXPECT_GE(v->version, 3u);

  auto j = to_json(*v);
  EXPECT_EQ(j["id"], inv.to_string());
  EXPECT_EQ(j["link"], "/i/AB2K7MZ");
  EXPECT_EQ(j["version"], v->version);
  EXPECT_EQ(j["status"], "active");
  EXPECT_EQ(j["claims_count"], 2);
  EXPECT_EQ(j["remaining_spots"], 1);
  EXPECT_EQ(j["internal_description"], "budget code 42");
  EXPECT_EQ(j["access_duration"], "forever");
  EXPECT_TRUE(j["expires_at"].is_null());
  EXPECT_EQ(j["tracks"][0]["track_id"], "k8s");

  auto pub = to_public_json(*v);
  EXPECT_EQ(pub["title"], "Kubernetes 101");
  EXPECT_EQ(pub["link"], "/i/AB2K7MZ");
  EXPECT_FALSE(pub.contains("internal_description"));
  EXPECT_FALSE(pub.contains("allowed_emails"));
  EXPECT_FALSE(pub.contains("claims_count"));
  EXPECT_EQ(pub.dump().find("budget code"), std::string::npos);

  // Unlimited: remaining spots null.
  const uuid open = id(101);
  create_invite(org, open, "CD3M8NP", draft("Open house"));
  catch_up();
  auto u = models_->invite(org, open, clock_.now());
  EXPECT_FALSE(u->remaining_spots);
  EXPECT_TRUE(to_json(*u)["remaining_spots"].is_null());
}

TEST_F(read_models_test, status_is_computed_at_query_time) {
  const uuid inv = id(100);
  auto d = draft("Expiring");
  d.expires_at_ = at("2026-04-01T00:00:00Z");
  d.claim_limit_ = 1;
  d.show_share_button_ = true;
  create_invite(org, inv, "AB2K7MZ", d);
  catch_up();
  EXPECT_EQ(models_->invite(org, inv, clock_.now())->status.status_, invite_status::active);
  EXPECT_TRUE(models_->invite(org, inv, clock_.now())->share_button_visible);
  EXPECT_EQ(models_->invite(org, inv, at("2026-04-01T00:00:00Z"))->status.status_,
            invite_status::expired);
  EXPECT_FALSE(models_->invite(org, inv, at("2026-04-01T00:00:00Z"))->share_button_visible);

  on_invite(inv, domain::deactivate_invite{});
  catch_up();
  EXPECT_EQ(models_->invite(org, inv, clock_.now())->status.status_, invite_status::deactivated);
  on_invite(inv, domain::reactivate_invite{});
  claim(inv, "ada@example.com", 1);
  catch_up();
  EXPECT_EQ(models_->invite(org, inv, clock_.now())->status.status_, invite_status::full);
  on_invite(inv, domain::delete_invite{});
  catch_up();
  auto v = models_->invite(org, inv, clock_.now());
  EXPECT_EQ(v->status.status_, invite_status::deleted);
  EXPECT_EQ(v->version, invite_state(inv).version_);
  EXPECT_TRUE(models_->invite_by_code("AB2K7MZ"));  // claims on it are still recorded

  const uuid live = id(102);
  auto l = draft("Live");
  l.type_ = domain::invite_type::live_event;
  l.starts_at_ = at("2026-03-11T12:00:00Z");
  l.ends_at_ = at("2026-03-11T18:00:00Z");
  create_invite(org, live, "CD3M8NP", l);
  catch_up();
  auto lv = models_->invite(org, live, clock_.now());
  EXPECT_EQ(lv->status.status_, invite_status::upcoming);
  EXPECT_EQ(lv->status.days_left_, 10);
  EXPECT_EQ(to_json(*lv)["days_left"], 10);
  EXPECT_EQ(models_->invite(org, live, at("2026-03-11T00:00:00Z"))->status.status_,
            invite_status::active);
}

// ---------------------------------------------------------------------------------------
// Lists.

TEST_F(read_models_test, list_filters_and_hides_expired_and_deleted_by_default) {
  create_org(other_org, "Other", 'b');
  register_track(other_org, "k8s", "Kubernetes", false);
  auto a = draft("Kubernetes for beginners", {"k8s"});
  auto b = draft("Linux deep dive", {"linux"});
  auto c = draft("Expired kubernetes", {"k8s", "linux"});
  c.expires_at_ = at("2026-03-02T00:00:00Z");
  auto d = draft("Live kubernetes", {"k8s"});
  d.type_ = domain::invite_type::live_event;
  d.starts_at_ = at("2026-03-20T10:00:00Z");
  d.ends_at_ = at("2026-03-20T12:00:00Z");
  auto e = draft("Deleted one");
  create_invite(org, id(100), "AAAAAA2", a);
  create_invite(org, id(101), "AAAAAA3", b);
  create_invite(org, id(102), "AAAAAA4", c);
  create_invite(org, id(103), "AAAAAA5", d);
  create_invite(org, id(104), "AAAAAA6", e);
  create_invite(other_org, id(105), "AAAAAA7", draft("Other org kubernetes"));
  on_invite(id(104), domain::delete_invite{});
  on_invite(id(101), domain::deactivate_invite{});
  catch_up();
  const auto later = at("2026-03-05T00:00:00Z");

  EXPECT_EQ(titles(list({}, later)), (std::vector<std::string>{"Live kubernetes", "Linux deep dive",
                                                               "Kubernetes for beginners"}));
  EXPECT_EQ(titles(list({}, clock_.now())).size(), 4u);  // not expired yet
  EXPECT_EQ(titles(list({.statuses = {invite_status::expired}}, later)),
            (std::vector<std::string>{"Expired kubernetes"}));
  EXPECT_EQ(titles(list({.statuses = {invite_status::deleted, invite_status::deactivated}}, later)),
            (std::vector<std::string>{"Deleted one", "Linux deep dive"}));
  EXPECT_EQ(titles(list({.statuses = {invite_status::upcoming}}, later)),
            (std::vector<std::string>{"Live kubernetes"}));
  EXPECT_EQ(titles(list({.track = "linux"}, later)), (std::vector<std::string>{"Linux deep dive"}));
  EXPECT_EQ(titles(list({.type = domain::invite_type::live_event}, later)),
            (std::vector<std::string>{"Live kubernetes"}));
  EXPECT_EQ(titles(list({.q = "KUBERNETES"}, later)),
            (std::vector<std::string>{"Live kubernetes", "Kubernetes for beginners"}));
  EXPECT_TRUE(titles(list({.q = "nothing"}, later)).empty());

  // Paging: newest first, a cursor that continues, none after the last page.
  auto p1 = list({.limit = 2}, later);
  EXPECT_EQ(titles(p1), (std::vector<std::string>{"Live kubernetes", "Linux deep dive"}));
  ASSERT_TRUE(p1.next_cursor);
  auto p2 = list({.limit = 2, .cursor = p1.next_cursor}, later);
  EXPECT_EQ(titles(p2), (std::vector<std::string>{"Kubernetes for beginners"}));
  EXPECT_FALSE(p2.next_cursor);
  auto exact = list({.limit = 3}, later);
  EXPECT_FALSE(exact.next_cursor);
  EXPECT_TRUE(to_json(exact)["next_cursor"].is_null());
  EXPECT_EQ(to_json(p1)["invites"].size(), 2u);

  auto bad = models_->list_invites(org, {.cursor = "x1"}, later);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "cursor");
}

TEST_F(read_models_test, list_owned_by_professor) {
  const uuid prof = id(31);
  issue_key(org, prof, domain::role::professor, 'c');
  register_track(org, "mine", "Mine", false, prof);
  create_invite(org, id(100), "AAAAAA2", draft("Mine only", {"mine"}));
  create_invite(org, id(101), "AAAAAA3", draft("Mixed", {"mine", "k8s"}));
  catch_up();
  EXPECT_EQ(titles(list({.owned_by = prof}, clock_.now())),
            (std::vector<std::string>{"Mine only"}));
}

// ---------------------------------------------------------------------------------------
// Usage, acceptance list, rejections.

TEST_F(read_models_test, usage_counts_claims_per_day_and_plays_per_track) {
  const uuid inv = id(100);
  auto d = draft("Two tracks", {"k8s", "linux"});
  d.claim_limit_ = 10;
  d.plays_per_track_ = 5;
  create_invite(org, inv, "AB2K7MZ", d);
  auto c1 = claim(inv, "ada@example.com", 1);
  auto c2 = claim(inv, std::nullopt, 2);
  clock_.advance(24h);
  auto c3 = claim(inv, "bob@example.com", 3);
  play(c1.claim_->claim_id_, c1.claim_->learner_id_, "k8s");
  play(c1.claim_->claim_id_, c1.claim_->learner_id_, "k8s");
  play(c3.claim_->claim_id_, c3.claim_->learner_id_, "k8s");
  play(c3.claim_->claim_id_, c3.claim_->learner_id_, "linux");
  catch_up();

  auto u = models_->usage(org, inv);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->claims, 3);
  EXPECT_EQ(u->unique_learners, 3);
  EXPECT_EQ(u->anonymous_claims, 1);
  EXPECT_EQ(u->plays, 4);
  EXPECT_EQ(u->plays_per_track, (std::map<std::string, std::int64_t>{{"k8s", 3}, {"linux", 1}}));
  EXPECT_EQ(u->remaining_spots, 7);
  EXPECT_EQ(u->claims_per_day,
            (std::map<std::string, std::int64_t>{{"2026-03-01", 2}, {"2026-03-02", 1}}));
  auto j = to_json(*u);
  EXPECT_EQ(j["claims_per_day"][1]["date"], "2026-03-02");
  EXPECT_EQ(j["plays_per_track"][0]["plays"], 3);
  EXPECT_FALSE(models_->usage(other_org, inv));
}

TEST_F(read_models_test, acceptance_list_json_and_csv) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Workshop"));
  claim(inv, "ada@example.com", 1, "Ada", "Lovelace");
  clock_.advance(1h);
  claim(inv, std::nullopt, 2);
  clock_.advance(1h);
  claim(inv, "=evil@example.com", 3, "@Bob", "Tables, \"Little\"");
  catch_up();

  auto rows = models_->acceptance_list(org, inv);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[0].who.email, "ada@example.com");
  EXPECT_EQ((*rows)[0].learner_id, id(6001));
  EXPECT_EQ((*rows)[0].claimed_at, at("2026-03-01T10:00:00Z"));
  EXPECT_TRUE((*rows)[1].anonymous);
  EXPECT_EQ((*rows)[1].who.email, "");
  EXPECT_EQ((*rows)[2].who.email, "=evil@example.com");

  auto j = to_json(std::span<const acceptance_row>(*rows));
  EXPECT_EQ(j["claims"][0]["email"], "ada@example.com");
  EXPECT_EQ(j["claims"][0]["claimed_at"], "2026-03-01T10:00:00Z");
  EXPECT_EQ(j["claims"][0]["forgotten"], false);
  EXPECT_TRUE(j["claims"][1]["email"].is_null());

  const auto csv = acceptance_csv(*rows);
  EXPECT_EQ(csv.substr(0, csv.find("\r\n")),
            "claim_id,learner_id,anonymous,email,first_name,last_name,claimed_at,access_expires_at,"
            "seconds_since_invite_created");
  EXPECT_NE(csv.find(",false,ada@example.com,Ada,Lovelace,2026-03-01T10:00:00Z,,0\r\n"),
            std::string::npos)
      << csv;
  EXPECT_NE(csv.find(",true,,,,2026-03-01T11:00:00Z,,3600\r\n"), std::string::npos) << csv;
  // Formula-looking cells are neutralised, names with commas and quotes escaped.
  EXPECT_NE(csv.find(",'=evil@example.com,'@Bob,\"Tables, \"\"Little\"\"\","), std::string::npos)
      << csv;
  EXPECT_EQ(j["claims"][2]["seconds_since_invite_created"], 7200);
  EXPECT_FALSE(models_->acceptance_list(other_org, inv));
}

// A block in a layout the binary row form does not take (here the subject an upstream
// forget leaves, "forgotten") is kept as its text: it reads as it did (forgotten, with the
// claim's counts and times), beside rows kept in binary.
TEST_F(read_models_test, a_block_kept_as_text_reads_as_its_event_says) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Workshop"));
  claim(inv, "ada@example.com", 1, "Ada", "Lovelace");
  on_encoded = [](eventstore::new_event& e) {
    if (e.type != domain::invite_claimed::type_name) return;
    const auto at = e.data.find("\"subject\":\"learner:");
    ASSERT_NE(at, std::string::npos) << e.data;
    const auto end = e.data.find('"', at + 11);
    e.data.replace(at, end + 1 - at, "\"subject\":\"forgotten\"");
  };
  clock_.advance(1h);
  const auto eve = claim(inv, "eve@example.com", 2, "Eve", "Smith");
  on_encoded = nullptr;
  clock_.advance(1h);
  claim(inv, "bob@example.com", 3, "Bob", "Builder");
  catch_up();

  auto rows = models_->acceptance_list(org, inv);
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 3u);
  EXPECT_EQ((*rows)[0].who.email, "ada@example.com");
  EXPECT_FALSE((*rows)[0].who.forgotten);
  EXPECT_TRUE((*rows)[1].who.forgotten);
  EXPECT_EQ((*rows)[1].learner_id, eve.claim_->learner_id_);
  EXPECT_EQ((*rows)[1].claimed_at, at("2026-03-01T11:00:00Z"));
  EXPECT_EQ((*rows)[1].who.email, "");
  EXPECT_EQ(to_json(std::span<const acceptance_row>(*rows))["claims"][1]["email"], "forgotten");
  EXPECT_EQ((*rows)[2].who.email, "bob@example.com");
  auto history = models_->learner_history(org, eve.claim_->learner_id_);
  ASSERT_TRUE(history);
  EXPECT_NE(to_json(*history).dump().find(eve.claim_->claim_id_.to_string()), std::string::npos)
      << to_json(*history).dump();
}

TEST_F(read_models_test, rejections_are_listed_with_reason_and_email) {
  const uuid inv = id(100);
  auto d = draft("Only example.org");
  d.access_ = domain::access_mode::allowed;
  d.allowed_domains_ = {"example.org"};
  create_invite(org, inv, "AB2K7MZ", d);
  claim(inv, "mallory@evil.test", 1);
  on_invite(inv, domain::deactivate_invite{});
  claim(inv, "eve@example.org", 2);
  catch_up();
  auto r = models_->rejections(org, inv);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].reason, domain::rejection_reason::not_allowed);
  EXPECT_EQ((*r)[0].who.email, "mallory@evil.test");
  EXPECT_EQ((*r)[1].reason, domain::rejection_reason::deactivated);
  EXPECT_EQ(to_json(std::span<const rejection_row>(*r))["rejections"][1]["reason"], "deactivated");
  EXPECT_EQ(models_->usage(org, inv)->rejections, 2);
  EXPECT_EQ(models_->invite(org, inv, clock_.now())->claims_count, 0);

  // No learner behind either (new emails): the block is sealed under the email's own key,
  // and forgetting the email shows the row as forgotten, names and all.
  ASSERT_FALSE((*r)[0].learner_id);
  ASSERT_TRUE(codec_->forget_email(org, "mallory@evil.test"));
  auto after = models_->rejections(org, inv);
  ASSERT_TRUE(after);
  ASSERT_EQ(after->size(), 2u);
  EXPECT_TRUE((*after)[0].who.forgotten);
  EXPECT_EQ((*after)[0].who.email, "");
  EXPECT_EQ((*after)[0].who.first_name, "");
  EXPECT_FALSE((*after)[1].who.forgotten);
  EXPECT_EQ((*after)[1].who.email, "eve@example.org");
}

// ---------------------------------------------------------------------------------------
// Learners.

TEST_F(read_models_test, learner_access_per_claim_and_per_learner) {
  const uuid inv = id(100);
  auto d = draft("Access", {"k8s", "linux"});
  d.access_duration_ = "P30D";
  d.plays_per_track_ = 2;
  create_invite(org, inv, "AB2K7MZ", d);
  auto c = claim(inv, "ada@example.com", 1);
  const auto claim_id = c.claim_->claim_id_;
  const auto learner_id = c.claim_->learner_id_;
  play(claim_id, learner_id, "linux");
  append(must(
      domain::decide(claims_[claim_id], domain::pause_track{learner_id, "linux"}, clock_.now())));
  catch_up();

  auto a = models_->claim_access(claim_id, clock_.now());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->learner_id, learner_id);
  EXPECT_EQ(a->access_expires_at, at("2026-03-31T10:00:00Z"));
  EXPECT_FALSE(a->access_expired);
  ASSERT_EQ(a->tracks.size(), 2u);
  EXPECT_EQ(a->tracks[0].track_id, "k8s");
  EXPECT_EQ(a->tracks[0].plays_remaining, 2);
  EXPECT_EQ(a->tracks[1].plays_used, 1);
  EXPECT_EQ(a->tracks[1].plays_remaining, 1);
  EXPECT_TRUE(a->tracks[1].paused);
  EXPECT_TRUE(a->tracks[1].pausable);
  EXPECT_TRUE(models_->claim_access(claim_id, at("2026-03-31T10:00:00Z"))->access_expired);
  EXPECT_EQ(to_json(*a)["tracks"][0]["plays_remaining"], 2);

  auto seed = models_->claim_seed(claim_id);
  ASSERT_TRUE(seed);
  auto folded = domain::evolve(domain::claim_state{}, *seed);
  EXPECT_EQ(folded.restrictions_, claims_[claim_id].restrictions_);
  EXPECT_EQ(folded.access_expires_at_, claims_[claim_id].access_expires_at_);

  const uuid inv2 = id(101);
  create_invite(org, inv2, "CD3M8NP", draft("Second"));
  claim(inv2, "ADA@example.com", 2);  // the same learner, found by email
  catch_up();
  auto mine = models_->learner_claims(org, learner_id, clock_.now());
  ASSERT_EQ(mine.size(), 2u);
  EXPECT_EQ(mine[1].invite_id, inv2);
  EXPECT_TRUE(models_->learner_claims(other_org, learner_id, clock_.now()).empty());
  EXPECT_EQ(models_->learner(org, learner_id)->claims.size(), 2u);
}

// A, R and L rows keep only the personal_data block of their event (format 5): the rest
// is in the row's own fields and the records. Queries still show the personal data.
TEST_F(read_models_test, rows_keep_only_the_personal_data_block_of_their_event) {
  const uuid inv = id(100);
  create_lead_form_invite(org, inv, "Leads", 1);
  claim(inv, "ada@example.com", 1, "Ada", "Lovelace", {{"company", "Analytical"}});
  claim(inv, "bob@example.com", 2, "Bob", "Builder", {{"company", "Bob & Co"}});  // full
  catch_up();
  open_models();  // a clean close flushes (no write-ahead log): the rows are in the files

  std::map<char, std::vector<std::string>> rows;
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::OpenForReadOnly(rocksdb::Options(), models_path(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const char prefix = it->key()[0];
      if (prefix == 'A' || prefix == 'R' || prefix == 'L') {
        rows[prefix].push_back(it->value().ToString());
      }
    }
  }
  ASSERT_EQ(rows['A'].size(), 1u);
  ASSERT_EQ(rows['R'].size(), 1u);
  ASSERT_EQ(rows['L'].size(), 1u);
  for (const auto& [prefix, values] : rows) {
    SCOPED_TRACE(std::string(1, prefix));
    const auto& v = values[0];
    // Format 7: the sealed block in binary form (no envelope text, no type name).
    for (const char* field :
         {"\"org_id\"", "\"invite_id\"", "\"restrictions\"", "\"reason\"", "\"captured_at\"",
          "\"personal_data\"", "\"alg\"", "A256GCM", "\"subject\"", "learner:", "InviteClaimed",
          "ClaimRejected", "LeadCaptured"}) {
      EXPECT_EQ(v.find(field), std::string::npos) << field;
    }
    EXPECT_LT(v.size(), 200u);
  }

  EXPECT_EQ((*models_->acceptance_list(org, inv))[0].who.first_name, "Ada");
  const auto rejected = *models_->rejections(org, inv);
  ASSERT_EQ(rejected.size(), 1u);
  EXPECT_EQ(rejected[0].who.email, "bob@example.com");
  const auto leads = models_->leads(org);
  ASSERT_EQ(leads.size(), 1u);
  EXPECT_EQ(leads[0].answers.at("company"), "Analytical");
  const auto history = models_->learner_history(org, leads[0].learner_id);
  ASSERT_TRUE(history);
  ASSERT_FALSE(history->entries.empty());
  EXPECT_EQ(history->entries[0].who.email, "ada@example.com");
}

// Record format 6: claim and learner records are keyed by a position (a new claim's go
// after every record of their kind), a claim's by its InviteClaimed's, a learner's by the
// first event that named it; a record rewritten later (a play, another claim) keeps its
// key, also after a restart.
TEST_F(read_models_test, claim_and_learner_records_are_keyed_by_position) {
  const std::vector<uuid> invites{id(100), id(101), id(102), id(103)};
  create_invite(org, invites[0], "AB2K7MZ", draft("Positions", {"k8s", "linux"}));
  create_invite(org, invites[1], "CD3M8NP", draft("Second"));
  create_invite(org, invites[2], "EF4P9QR", draft("Third"));
  create_invite(org, invites[3], "GH5R2ST", draft("Fourth"));
  const auto ada = claim(invites[0], "ada@example.com", 1);
  claim(invites[0], std::nullopt, 2);
  catch_up();
  const uuid ada_id = ada.claim_->learner_id_;
  claim(invites[1], "ada@example.com", 3);  // the same learner: her record is rewritten
  play(ada.claim_->claim_id_, ada_id, "linux");
  catch_up();

  // Where the records should be: the claims' positions, and for each learner the first
  // of its own stream's events and its claims.
  auto expected = [&] {
    std::set<std::uint64_t> claims;
    std::map<uuid, std::uint64_t> first_named;
    auto named = [&](const uuid& learner, std::uint64_t position) {
      auto [it, added] = first_named.emplace(learner, position);
      if (!added) it->second = std::min(it->second, position);
    };
    for (const auto& invite : invites) {
      const auto rows = models_->acceptance_list(org, invite);
      if (!rows) continue;
      for (const auto& row : *rows) {
        claims.insert(row.position);
        named(row.learner_id, row.position);
      }
    }
    for (const auto& e : whole_log()) {
      if (e.stream == domain::learner_stream(ada_id)) named(ada_id, e.position);
    }
    std::set<std::uint64_t> learners;
    for (const auto& [learner, position] : first_named) learners.insert(position);
    EXPECT_EQ(first_named.size(), 2u);
    return std::pair(claims, learners);
  };
  auto record_positions = [&](char prefix) {
    std::set<std::uint64_t> found;
    rocksdb::DB* raw = nullptr;
    EXPECT_TRUE(rocksdb::DB::OpenForReadOnly(rocksdb::Options(), models_path(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    const std::string p(1, prefix);
    for (it->Seek(p); it->Valid() && it->key().starts_with(p); it->Next()) {
      EXPECT_EQ(it->key().size(), 9u) << prefix;
      std::uint64_t position = 0;
      for (std::size_t i = 1; i < it->key().size(); ++i) {
        position = position << 8 | static_cast<std::uint8_t>(it->key()[i]);
      }
      EXPECT_TRUE(found.insert(position).second);
    }
    return found;
  };
  for (int restart = 0; restart < 2; ++restart) {
    SCOPED_TRACE(restart);
    open_models();  // a clean close flushes: the records are in the files
    const auto [claims, learners] = expected();
    EXPECT_EQ(claims.size(), 3u + restart);
    EXPECT_EQ(record_positions('c'), claims);
    EXPECT_EQ(record_positions('l'), learners);
    EXPECT_EQ(models_->learner(org, ada_id)->claims.size(), 2u + restart);
    const auto access = models_->claim_access(ada.claim_->claim_id_, clock_.now());
    ASSERT_TRUE(access);
    EXPECT_EQ(access->tracks[1].plays_used, 1 + restart);
    // Rewritten after a restart: the same keys (and one more claim).
    start_projector();
    play(ada.claim_->claim_id_, ada_id, "linux");
    claim(invites[2 + restart], "ada@example.com", 4 + restart);
    catch_up();
  }
}

// A repeated InviteClaimed of a claim (same claim id, a later position) rewrites the claim's
// record under the key of its first one: after a restart there is one record, and the read
// models answer as before it (the claim's place in the history is the repeat's, as before).
TEST_F(read_models_test, a_repeated_claim_keeps_one_record_under_its_first_key) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Twice", {"k8s", "linux"}));
  const auto ada = claim(inv, "ada@example.com", 1);
  const uuid claim_id = ada.claim_->claim_id_;
  const uuid learner_id = ada.claim_->learner_id_;
  play(claim_id, learner_id, "linux");
  catch_up();
  const auto* claimed = [&]() -> const domain::invite_claimed* {
    for (const auto& e : ada.events_) {
      if (const auto* c = std::get_if<domain::invite_claimed>(&e)) return c;
    }
    return nullptr;
  }();
  ASSERT_NE(claimed, nullptr);
  const auto repeated_at = append({*claimed});
  catch_up();

  auto answers = [&] {
    nlohmann::json j;
    j["invite"] = to_json(*models_->invite(org, inv, clock_.now()));
    j["claims"] = to_json(std::span<const acceptance_row>(*models_->acceptance_list(org, inv)));
    j["history"] = to_json(*models_->learner_history(org, learner_id));
    j["learner"] = to_json(*models_->learner(org, learner_id));
    j["access"] = to_json(*models_->claim_access(claim_id, clock_.now()));
    return j;
  };
  auto claim_keys = [&] {
    std::vector<std::string> keys;
    rocksdb::DB* raw = nullptr;
    EXPECT_TRUE(rocksdb::DB::OpenForReadOnly(rocksdb::Options(), models_path(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek("c"); it->Valid() && it->key().starts_with("c"); it->Next()) {
      keys.push_back(it->key().ToString());
    }
    return keys;
  };
  const auto before = answers();
  std::size_t claimed_entries = 0;
  for (const auto& x : before["history"]["history"]) {
    if (x["fact"] != "claimed") continue;
    ++claimed_entries;
    EXPECT_EQ(x["position"], repeated_at) << x.dump();
  }
  EXPECT_GE(claimed_entries, 1u) << before["history"].dump();
  open_models();  // a clean close flushes: the records are in the files
  const auto keys = claim_keys();
  EXPECT_EQ(keys.size(), 1u);
  EXPECT_EQ(answers(), before);

  // Rewritten after the restart: under the same key, with the play since.
  start_projector();
  play(claim_id, learner_id, "k8s");
  catch_up();
  open_models();
  EXPECT_EQ(claim_keys(), keys);
  const auto access = models_->claim_access(claim_id, clock_.now());
  ASSERT_TRUE(access);
  std::int64_t plays = 0;
  for (const auto& t : access->tracks) plays += t.plays_used;
  EXPECT_EQ(plays, 2);
}

TEST_F(read_models_test, email_index_and_lead_form_submissions) {
  const uuid inv = id(100);
  create_lead_form_invite(org, inv, "Leads");
  auto subject = codec_->email_subject(org, "ada@example.com");
  catch_up();
  EXPECT_FALSE(models_->learner_by_email(org, subject));

  auto c = claim(inv, "ada@example.com", 1, "Ada", "Lovelace", {{"company", "Analytical"}});
  ASSERT_EQ(c.outcome_, domain::claim_outcome::claimed);
  catch_up();
  auto ref = models_->learner_by_email(org, subject);
  ASSERT_TRUE(ref);
  EXPECT_EQ(ref->learner_id, c.claim_->learner_id_);
  EXPECT_TRUE(ref->lead_submitted);
  EXPECT_FALSE(models_->learner_by_email(other_org, subject));

  auto leads = models_->leads(org);
  ASSERT_EQ(leads.size(), 1u);
  EXPECT_EQ(leads[0].who.email, "ada@example.com");
  EXPECT_EQ(leads[0].who.last_name, "Lovelace");
  EXPECT_EQ(leads[0].answers.at("company"), "Analytical");
  EXPECT_EQ(leads[0].invite_id, inv);
  EXPECT_EQ(to_json(leads[0])["answers"]["company"], "Analytical");
}

// A learner record keeps the keyed email hash as its 32 bytes: read back from the folder
// (a restart loads every record) it is the codec's text again, and still finds the learner.
TEST_F(read_models_test, a_learners_email_hash_is_the_same_after_a_restart) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Hash"));
  auto c = claim(inv, "Ada.Hash@Example.com", 1);
  const uuid learner = c.claim_->learner_id_;
  const auto subject = codec_->email_subject(org, "ada.hash@example.com");
  ASSERT_EQ(subject.size(), 6u + 64u);
  catch_up();
  EXPECT_EQ(models_->learner_email_subject(learner), subject);
  open_models();
  EXPECT_EQ(models_->learner_email_subject(learner), subject);
  auto ref = models_->learner_by_email(org, subject);
  ASSERT_TRUE(ref);
  EXPECT_EQ(ref->learner_id, learner);
}

TEST_F(read_models_test, forgotten_learner_shows_as_forgotten_with_counts_intact) {
  const uuid inv = id(100);
  create_lead_form_invite(org, inv, "Forget me", 5);
  auto c = claim(inv, "ada.forgettable@example.com", 1, "Augusta", "Byronsdottir",
                 {{"company", "Difference Engines Ltd"}});
  claim(inv, "bob@example.com", 2, "Bob", "Builder", {{"company", "Bob & Co"}});
  const auto learner_id = c.claim_->learner_id_;
  play(c.claim_->claim_id_, learner_id, "k8s");
  const auto subject = codec_->email_subject(org, "ada.forgettable@example.com");
  catch_up();
  ASSERT_TRUE(models_->learner_by_email(org, subject));
  const auto claimed_at = (*models_->acceptance_list(org, inv))[0].claimed_at;

  forget(learner_id);
  catch_up();

  EXPECT_FALSE(models_->learner_by_email(org, subject));
  EXPECT_TRUE(models_->learner(org, learner_id)->forgotten);
  auto rows = *models_->acceptance_list(org, inv);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_TRUE(rows[0].who.forgotten);
  EXPECT_EQ(rows[0].who.email, "");
  EXPECT_EQ(rows[0].claimed_at, claimed_at);
  EXPECT_EQ(rows[0].learner_id, learner_id);
  EXPECT_EQ(rows[1].who.email, "bob@example.com");
  EXPECT_EQ(to_json(rows[0])["email"], "forgotten");
  EXPECT_NE(acceptance_csv(rows).find(",forgotten,"), std::string::npos);
  auto leads = models_->leads(org);
  ASSERT_EQ(leads.size(), 2u);
  EXPECT_TRUE(leads[0].who.forgotten);
  EXPECT_TRUE(leads[0].answers.empty());
  auto v = models_->invite(org, inv, clock_.now());
  EXPECT_EQ(v->claims_count, 2);
  EXPECT_EQ(v->remaining_spots, 3);
  EXPECT_EQ(models_->usage(org, inv)->plays, 1);
  EXPECT_EQ(models_->claim_access(c.claim_->claim_id_, clock_.now())->tracks[0].plays_used, 1);

  // A later claim with that email starts a new learner.
  auto again = claim(inv, "ada.forgettable@example.com", 3, "Augusta", "Byronsdottir",
                     {{"company", "Difference Engines Ltd"}});
  ASSERT_EQ(again.outcome_, domain::claim_outcome::claimed);
  EXPECT_NE(again.claim_->learner_id_, learner_id);
  catch_up();
  EXPECT_EQ(models_->learner_by_email(org, subject)->learner_id, again.claim_->learner_id_);
  forget(again.claim_->learner_id_);
  catch_up();

  // The auditor's grep: no clear personal data in any file of the read-model folder.
  const auto bytes = all_bytes(models_path());
  ASSERT_FALSE(bytes.empty());
  for (std::string secret :
       {"ada.forgettable@example.com", "ada.forgettable", "Augusta", "Byronsdottir",
        "Difference Engines", "bob@example.com", "Builder", "Bob & Co"}) {
    EXPECT_EQ(bytes.find(secret), std::string::npos) << secret;
  }
}

// ---------------------------------------------------------------------------------------
// Checkpoint, restart, rebuild, read-your-writes.

TEST_F(read_models_test, restart_resumes_from_the_checkpoint_without_reapplying) {
  const uuid inv = id(100);
  auto d = draft("Restart");
  d.claim_limit_ = 10;
  create_invite(org, inv, "AB2K7MZ", d);
  auto c = claim(inv, "ada@example.com", 1);
  claim(inv, "bob@example.com", 2);
  play(c.claim_->claim_id_, c.claim_->learner_id_, "k8s");
  catch_up();
  const auto applied = models_->applied_position();
  EXPECT_EQ(applied, store_->head_position());
  const auto before = to_json(*models_->invite(org, inv, clock_.now()));

  open_models();  // closes the projector and the read models, opens them again
  EXPECT_EQ(models_->applied_position(), applied);
  EXPECT_EQ(to_json(*models_->invite(org, inv, clock_.now())), before);
  EXPECT_EQ(models_->usage(org, inv)->plays, 1);
  EXPECT_TRUE(models_->api_key_by_hash(hash_of('a')));
  EXPECT_EQ(models_->invite_by_code("AB2K7MZ")->invite_id, inv);
  EXPECT_TRUE(models_->learner_by_email(org, codec_->email_subject(org, "ada@example.com")));

  // The same events delivered again are skipped (counts not doubled).
  auto all = store_->read_all({}, 1000);
  ASSERT_TRUE(all);
  ASSERT_TRUE(models_->apply(*all));
  EXPECT_EQ(models_->invite(org, inv, clock_.now())->claims_count, 2);

  claim(inv, "carol@example.com", 3);  // starts the projector from the checkpoint
  catch_up();
  auto v = models_->invite(org, inv, clock_.now());
  EXPECT_EQ(v->claims_count, 3);
  EXPECT_EQ(models_->acceptance_list(org, inv)->size(), 3u);
  EXPECT_EQ(models_->usage(org, inv)->plays, 1);
}

TEST_F(read_models_test, rebuild_from_zero_gives_identical_answers) {
  const uuid prof = id(31);
  issue_key(org, prof, domain::role::professor, 'c');
  const uuid inv = id(100);
  auto d = draft("Rebuild", {"k8s", "linux"});
  d.claim_limit_ = 10;
  d.plays_per_track_ = 3;
  create_invite(org, inv, "AB2K7MZ", d);
  create_invite(org, id(101), "CD3M8NP", draft("Second"));
  auto c = claim(inv, "ada@example.com", 1);
  claim(inv, std::nullopt, 2);
  clock_.advance(48h);
  claim(inv, "bob@example.com", 3);
  play(c.claim_->claim_id_, c.claim_->learner_id_, "linux");
  on_invite(id(101), domain::deactivate_invite{});
  forget(c.claim_->learner_id_);
  catch_up();

  auto snapshot = [&] {
    nlohmann::json j;
    j["list"] = to_json(*models_->list_invites(
        org, {.statuses = {invite_status::active, invite_status::deactivated}}, clock_.now()));
    j["usage"] = to_json(*models_->usage(org, inv));
    j["claims"] = to_json(std::span<const acceptance_row>(*models_->acceptance_list(org, inv)));
    j["access"] = to_json(*models_->claim_access(c.claim_->claim_id_, clock_.now()));
    j["key"] = to_json(*models_->api_key_by_hash(hash_of('c')));
    j["tracks"] = nlohmann::json::array();
    for (const auto& t : models_->tracks(org)) j["tracks"].push_back(to_json(t));
    j["bob"] = models_->learner_by_email(org, codec_->email_subject(org, "bob@example.com"))
                   ->learner_id.to_string();
    j["applied"] = models_->applied_position();
    return j;
  };
  const auto before = snapshot();
  projector_.reset();

  std::vector<rebuild_progress> reports;
  auto r = rebuild(
      *store_, *models_,
      {.batch_size = 3, .on_progress = [&](const rebuild_progress& p) { reports.push_back(p); }});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->events_done, store_->head_position());
  EXPECT_EQ(r->events_total, store_->head_position());
  ASSERT_FALSE(reports.empty());
  EXPECT_EQ(reports.back().events_done, r->events_done);
  EXPECT_EQ(snapshot(), before);

  // And after a restart on the rebuilt folder.
  open_models();
  EXPECT_EQ(snapshot(), before);
}

// A claim keeps the progress of up to three tracks in itself and more in a block of
// their own, in track id order either way, naming each track by one copy of its id for
// all claims: a claim of five tracks played out of order, beside a claim of two of the
// same tracks, answers the same live, after a restart (claim records read back) and
// after a rebuild.
TEST_F(read_models_test, a_claims_progress_on_many_tracks_reads_back_in_any_order) {
  for (const char* t : {"t1", "t2", "t3", "t4"}) register_track(org, t, t, true);
  const uuid inv = id(100);
  auto d = draft("Many tracks", {"t4", "linux", "t2", "k8s", "t1", "t3"});
  d.plays_per_track_ = 5;
  create_invite(org, inv, "AB2K7MZ", d);
  auto c = claim(inv, "ada@example.com", 1);
  auto small = claim(inv, "bob@example.com", 2);
  const auto claim_id = c.claim_->claim_id_, learner_id = c.claim_->learner_id_;
  // In and past the claim's own room (three), each new track before or between the others.
  for (const char* t : {"t4", "t2", "t3", "linux", "t1", "t4", "k8s", "t1", "t1"}) {
    play(claim_id, learner_id, t);
  }
  play(small.claim_->claim_id_, small.claim_->learner_id_, "t2");
  play(small.claim_->claim_id_, small.claim_->learner_id_, "t2");
  append(
      must(domain::decide(claims_[claim_id], domain::pause_track{learner_id, "t3"}, clock_.now())));
  catch_up();

  const std::map<std::string, std::int64_t> plays = {{"t4", 2},  {"linux", 1}, {"t2", 1},
                                                     {"k8s", 1}, {"t1", 3},    {"t3", 1}};
  auto expect_progress = [&](const char* when) {
    SCOPED_TRACE(when);
    auto a = models_->claim_access(claim_id, clock_.now());
    ASSERT_TRUE(a);
    ASSERT_EQ(a->tracks.size(), 6u);
    for (const auto& t : a->tracks) {
      EXPECT_EQ(t.plays_used, plays.at(t.track_id)) << t.track_id;
      EXPECT_EQ(t.plays_remaining, 5 - plays.at(t.track_id)) << t.track_id;
      EXPECT_EQ(t.paused, t.track_id == "t3") << t.track_id;
    }
    auto b = models_->claim_access(small.claim_->claim_id_, clock_.now());
    ASSERT_TRUE(b);
    for (const auto& t : b->tracks) {
      EXPECT_EQ(t.plays_used, t.track_id == "t2" ? 2 : 0) << t.track_id;
      EXPECT_FALSE(t.paused);
    }
  };
  expect_progress("live");
  const auto live = to_json(*models_->claim_access(claim_id, clock_.now()));

  open_models();
  expect_progress("after a restart");
  EXPECT_EQ(to_json(*models_->claim_access(claim_id, clock_.now())), live);

  projector_.reset();
  auto r = rebuild(*store_, *models_, {.batch_size = 4});
  ASSERT_TRUE(r) << r.error().message;
  expect_progress("after a rebuild");
  open_models();
  expect_progress("after a rebuild and a restart");
  EXPECT_EQ(to_json(*models_->claim_access(claim_id, clock_.now())), live);
}

// Claims of one invite share their terms (tracks, access duration, plays per track) while
// they are the same: each claim still keeps the terms it was made under when the invite
// changes between claims, live, after a restart (claims read back) and after a rebuild.
TEST_F(read_models_test, claims_keep_the_terms_they_were_made_under) {
  const uuid inv = id(100);
  auto d = draft("Terms", {"k8s", "linux"});
  d.plays_per_track_ = 2;
  create_invite(org, inv, "AB2K7MZ", d);
  auto first = claim(inv, "ada@example.com", 1);
  auto second = claim(inv, "bob@example.com", 2);
  domain::invite_patch patch;
  patch.tracks_ = std::vector<domain::invite_track_request>{{"linux", std::nullopt}};
  patch.plays_per_track_ = 5;
  patch.access_duration_ = "P7D";
  on_invite(inv, domain::update_invite{patch, catalog(org)});
  auto third = claim(inv, "carol@example.com", 3);
  on_invite(inv, domain::update_invite{domain::invite_patch{.plays_per_track_ = 2}, catalog(org)});
  auto fourth = claim(inv, "dan@example.com", 4);
  play(first.claim_->claim_id_, first.claim_->learner_id_, "linux");
  catch_up();

  auto terms = [&](const domain::claim_decision& c) {
    const auto seed = models_->claim_seed(c.claim_->claim_id_);
    EXPECT_TRUE(seed);
    return seed ? seed->restrictions_ : domain::claim_snapshot{};
  };
  auto check = [&] {
    for (const auto* c : {&first, &second, &third, &fourth}) {
      EXPECT_EQ(terms(*c), claims_[c->claim_->claim_id_].restrictions_);
    }
    EXPECT_EQ(terms(first), terms(second));
    EXPECT_EQ(terms(third).tracks_.size(), 1u);
    EXPECT_EQ(terms(third).plays_per_track_, 5);
    EXPECT_EQ(terms(fourth).plays_per_track_, 2);
    EXPECT_EQ(terms(fourth).tracks_, terms(third).tracks_);
    auto access = models_->claim_access(first.claim_->claim_id_, clock_.now());
    ASSERT_TRUE(access);
    ASSERT_EQ(access->tracks.size(), 2u);
    EXPECT_EQ(access->tracks[1].plays_remaining, 1);
    access = models_->claim_access(third.claim_->claim_id_, clock_.now());
    ASSERT_TRUE(access);
    ASSERT_EQ(access->tracks.size(), 1u);
    EXPECT_EQ(access->tracks[0].plays_remaining, 5);
  };
  check();
  open_models();  // the claims read back from their records
  check();
  projector_.reset();
  ASSERT_TRUE(rebuild(*store_, *models_));
  check();
}

// decode_event() takes the email index's keyed hash of each registration (so that a
// rebuild's applying thread only stores it): for a LearnerRegistered with an email still
// readable, and for nothing else, even in slots a previous batch used.
TEST_F(read_models_test, decoded_events_carry_the_email_subject_of_registrations) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Subjects", {"linux"}));
  std::vector<domain::claim_decision> claims;
  for (std::uint64_t n = 1; n <= 6; ++n) {
    claims.push_back(claim(
        inv, n % 3 == 0 ? std::nullopt : std::optional("s" + std::to_string(n) + "@x.org"), n));
  }
  forget(claims[1].claim_->learner_id_);  // s2@x.org
  catch_up();
  const auto log = whole_log();

  read_models::decoded_batch decoded;
  std::size_t invite_events = 0;
  auto check = [&](std::span<const eventstore::recorded_event> batch) -> std::size_t {
    std::size_t subjects = 0;
    EXPECT_TRUE(decode_each(*models_, batch, decoded));
    EXPECT_EQ(decoded.size(), batch.size());
    if (decoded.size() != batch.size()) return subjects;
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto& d = decoded[i];
      const auto* lr = d.event ? std::get_if<domain::learner_registered>(&d.event->event) : nullptr;
      if (lr != nullptr && !d.event->forgotten && !lr->personal_data_.email_.empty()) {
        EXPECT_EQ(d.email_hash, codec_->email_hash(org, lr->personal_data_.email_));
        ++subjects;
      } else {
        EXPECT_FALSE(d.email_hash) << batch[i].type << " at " << batch[i].position;
      }
      // The invite whose version the event moves: the one of its stream, if any.
      if (batch[i].stream.starts_with("invite-")) {
        EXPECT_EQ(d.invite_stream, inv) << batch[i].type << " at " << batch[i].position;
        ++invite_events;
      } else {
        EXPECT_FALSE(d.invite_stream) << batch[i].stream << " at " << batch[i].position;
      }
    }
    return subjects;
  };
  // s1, s4, s5: s2 is forgotten, s3 and s6 came without an email.
  EXPECT_EQ(check(log), 3u);
  // The same slots, shifted by one event: no subject stays behind from the batch before.
  EXPECT_EQ(check(std::span(log).subspan(1)), 3u);
  EXPECT_EQ(check(log), 3u);
  EXPECT_GT(invite_events, 0u);
}

// `passage replay --out`: a rebuild into a folder of its own (bulk loaded, then
// compacted) answers every query exactly as the folder the projector built live.
TEST_F(read_models_test, a_rebuild_into_a_new_folder_answers_as_the_live_built_one) {
  const uuid inv = id(100), full = id(101);
  auto d = draft("Live", {"k8s", "linux"});
  d.plays_per_track_ = 3;
  create_invite(org, inv, "AB2K7MZ", d);
  auto small = draft("Small");
  small.claim_limit_ = 1;
  create_invite(org, full, "CD3M8NP", small);
  std::vector<domain::claim_decision> claims;
  for (std::uint64_t n = 1; n <= 40; ++n) {
    claims.push_back(claim(
        inv, n % 7 == 0 ? std::nullopt : std::optional("l" + std::to_string(n) + "@x.org"), n));
    if (n % 3 == 0) clock_.advance(5h);
  }
  claim(full, "l1@x.org", 100);
  claim(full, "l2@x.org", 101);  // full: a rejection
  for (std::size_t i = 0; i < claims.size(); i += 2) {
    play(claims[i].claim_->claim_id_, claims[i].claim_->learner_id_, "linux");
  }
  forget(claims[4].claim_->learner_id_);
  catch_up();

  auto snapshot = [&](read_models& m) {
    nlohmann::json j;
    j["list"] = to_json(*m.list_invites(
        org, {.statuses = {invite_status::active, invite_status::full}}, clock_.now()));
    for (const auto& i : {inv, full}) {
      const auto key = i.to_string();
      j[key]["invite"] = to_json(*m.invite(org, i, clock_.now()));
      j[key]["usage"] = to_json(*m.usage(org, i));
      j[key]["claims"] = to_json(std::span<const acceptance_row>(*m.acceptance_list(org, i)));
      j[key]["rejections"] = to_json(std::span<const rejection_row>(*m.rejections(org, i)));
    }
    j["history"] = to_json(m.claim_history(org, {.bucket = claim_bucket::hour}));
    for (const auto& c : claims) {
      const auto learner = c.claim_->learner_id_;
      j["access"].push_back(to_json(*m.claim_access(c.claim_->claim_id_, clock_.now())));
      if (auto h = m.learner_history(org, learner)) j["learners"].push_back(to_json(*h));
      if (auto l = m.learner(org, learner)) j["learner"].push_back(to_json(*l));
    }
    for (const auto& l : m.leads(org)) j["leads"].push_back(to_json(l));
    j["by_email"] =
        m.learner_by_email(org, codec_->email_subject(org, "l2@x.org"))->learner_id.to_string();
    j["forgotten_by_email"] =
        m.learner_by_email(org, codec_->email_subject(org, "l5@x.org")).has_value();
    j["applied"] = m.applied_position();
    return j;
  };
  const auto live = snapshot(*models_);
  // The scenario reaches every kind of row.
  EXPECT_EQ(live[full.to_string()]["rejections"]["rejections"].size(), 1u);
  EXPECT_EQ(live[inv.to_string()]["claims"]["claims"].size(), 40u);
  EXPECT_EQ(live["forgotten_by_email"], false);

  auto rebuilt = read_models::open({.path = dir_.sub("rebuilt")}, *codec_);
  ASSERT_TRUE(rebuilt) << rebuilt.error().message;
  auto r = rebuild(*store_, **rebuilt);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->events_done, store_->head_position());
  EXPECT_EQ(snapshot(**rebuilt), live);

  // Reopened from disk (nothing of it only in memory).
  rebuilt->reset();
  auto reopened = read_models::open({.path = dir_.sub("rebuilt")}, *codec_);
  ASSERT_TRUE(reopened) << reopened.error().message;
  EXPECT_EQ(snapshot(**reopened), live);

  // Rows added a tiny sorted run per batch (many overlapping files merged at the end).
  auto in_runs = read_models::open({.path = dir_.sub("in-runs"), .bulk_run_bytes = 1}, *codec_);
  ASSERT_TRUE(in_runs) << in_runs.error().message;
  ASSERT_TRUE(rebuild(*store_, **in_runs, {.batch_size = 3}));
  EXPECT_EQ(snapshot(**in_runs), live);
  in_runs->reset();
  in_runs = read_models::open({.path = dir_.sub("in-runs")}, *codec_);
  ASSERT_TRUE(in_runs) << in_runs.error().message;
  EXPECT_EQ(snapshot(**in_runs), live);

  // Tiny batches over several decoding threads: they finish out of order, yet are applied
  // in the log's order.
  auto spread = read_models::open({.path = dir_.sub("spread")}, *codec_);
  ASSERT_TRUE(spread) << spread.error().message;
  auto sr = rebuild(*store_, **spread, {.batch_size = 2, .decode_threads = 3});
  ASSERT_TRUE(sr) << sr.error().message;
  EXPECT_EQ(sr->events_done, store_->head_position());
  EXPECT_EQ(snapshot(**spread), live);
}

// Learners keep their claims (one in place, more on the heap) and their email hash (32
// bytes, the email index naming the learner's entry and reading the hash from it). One
// learner claiming six invites, one registering again under a new email, one taking over
// another's email, two forgotten (one of them after losing its email to another): the
// same answers and the same learner records, byte for byte, live, after a restart, after
// a rebuild and after both.
TEST_F(read_models_test, learners_with_many_claims_and_moved_emails_read_back_the_same) {
  std::vector<uuid> invites;
  for (int i = 0; i < 6; ++i) {
    invites.push_back(id(100 + i));
    create_invite(org, invites.back(), "AB2K7M" + std::string(1, static_cast<char>('A' + i)),
                  draft("Invite " + std::to_string(i)));
  }
  const auto ada = claim(invites[0], "ada@example.com", 1).claim_->learner_id_;
  for (std::uint64_t i = 1; i < 6; ++i) claim(invites[i], "ada@example.com", 1 + i);
  const auto bob = claim(invites[0], "bob@example.com", 10).claim_->learner_id_;
  const auto eve = claim(invites[1], "eve@example.com", 11).claim_->learner_id_;
  const uuid carol = id(9001);
  auto registered = [&](const uuid& learner, const char* email) {
    domain::personal_data pd;
    pd.email_ = email;
    append({domain::learner_registered{org, learner, domain::learner_role::student, true,
                                       clock_.now(), pd}});
  };
  registered(bob, "bob.new@example.com");  // bob moves to a new email
  registered(carol, "ada@example.com");    // carol takes ada's over
  registered(eve, "eve@example.com");      // the same again
  forget(ada);                             // no longer named for her email: carol keeps it
  forget(eve);
  catch_up();

  const std::vector<uuid> learners{ada, bob, eve, carol};
  const std::vector<std::string> emails{"ada@example.com", "bob@example.com", "bob.new@example.com",
                                        "eve@example.com"};
  auto snapshot = [&](read_models& m) {
    nlohmann::json j;
    for (const auto& l : learners) {
      if (auto v = m.learner(org, l)) j["learner"].push_back(to_json(*v));
      if (auto h = m.learner_history(org, l)) j["history"].push_back(to_json(*h));
      for (const auto& a : m.learner_claims(org, l, clock_.now())) {
        j["claims"].push_back(to_json(a));
      }
      j["subject"].push_back(m.learner_email_subject(l).value_or("none"));
    }
    for (const auto& e : emails) {
      auto ref = m.learner_by_email(org, codec_->email_subject(org, e));
      j["by_email"].push_back(ref ? ref->learner_id.to_string() : "none");
    }
    return j;
  };
  const auto live = snapshot(*models_);
  EXPECT_EQ(live["learner"][0]["claims"].size(), 6u);
  EXPECT_EQ(live["by_email"], nlohmann::json({carol.to_string(), "none", bob.to_string(), "none"}));
  EXPECT_EQ(live["subject"][1], codec_->email_subject(org, "bob.new@example.com"));
  EXPECT_EQ(live["subject"][0], "none");  // forgotten

  auto learner_records = [&](const std::string& path) {
    std::map<std::string, std::string> found;
    rocksdb::DB* raw = nullptr;
    EXPECT_TRUE(rocksdb::DB::OpenForReadOnly(rocksdb::Options(), path, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek("l"); it->Valid() && it->key().starts_with("l"); it->Next()) {
      found[it->key().ToString()] = it->value().ToString();
    }
    return found;
  };
  open_models();  // a clean close flushes: the records are in the files
  EXPECT_EQ(snapshot(*models_), live);
  const auto records = learner_records(models_path());
  EXPECT_EQ(records.size(), learners.size());

  auto rebuilt = read_models::open({.path = dir_.sub("rebuilt")}, *codec_);
  ASSERT_TRUE(rebuilt) << rebuilt.error().message;
  ASSERT_TRUE(rebuild(*store_, **rebuilt, {.batch_size = 3}));
  EXPECT_EQ(snapshot(**rebuilt), live);
  rebuilt->reset();
  EXPECT_EQ(learner_records(dir_.sub("rebuilt")), records);
  auto reopened = read_models::open({.path = dir_.sub("rebuilt")}, *codec_);
  ASSERT_TRUE(reopened) << reopened.error().message;
  EXPECT_EQ(snapshot(**reopened), live);
}

// A rebuild sizes its learner and claim tables for a learner per 4 events, never for more
// than 3 << 20 of them (tables of 2^22 slots) however long the log.
TEST(read_models_reserve, EntriesForALogAreAQuarterOfItsEventsCapped) {
  EXPECT_EQ(read_models::reserved_entries_for_log(0), 0u);
  EXPECT_EQ(read_models::reserved_entries_for_log(3), 0u);
  EXPECT_EQ(read_models::reserved_entries_for_log(1000), 250u);
  EXPECT_EQ(read_models::reserved_entries_for_log(10'000'000), 2'500'000u);
  EXPECT_EQ(read_models::reserved_entries_for_log(std::uint64_t{12} << 20), std::size_t{3} << 20);
  EXPECT_EQ(read_models::reserved_entries_for_log(std::uint64_t{1} << 40), std::size_t{3} << 20);
  EXPECT_EQ(read_models::reserved_entries_for_log(~std::uint64_t{0}), std::size_t{3} << 20);
}

// An event the read models cannot decode stops a rebuild, wherever its batch was decoded,
// with the message the live projector gives for it.
TEST_F(read_models_test, a_rebuild_stops_at_the_first_event_it_cannot_decode) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Damaged", {"linux"}));
  std::vector<domain::claim_decision> claims;
  for (std::uint64_t n = 1; n <= 6; ++n) {
    claims.push_back(claim(inv, "d" + std::to_string(n) + "@x.org", n));
  }
  projector_.reset();  // it would stop at the damaged events
  auto damaged = [&](std::string data) {
    eventstore::new_event e;
    e.event_id = uuid::random();
    e.type = "TrackPlayed";
    e.org_id = org.to_string();
    e.data = std::move(data);
    auto r = store_->append({{"damaged", eventstore::expected_version::any(), {e}}});
    EXPECT_TRUE(r) << r.error().message;
    return r ? r->last_position : 0;
  };
  const auto first_bad = damaged(R"({"org_id":"not a uuid"})");
  play(claims[0].claim_->claim_id_, claims[0].claim_->learner_id_, "linux");
  damaged("{not json");
  play(claims[1].claim_->claim_id_, claims[1].claim_->learner_id_, "linux");

  auto all = store_->read_all({}, 1000);
  ASSERT_TRUE(all);
  auto live = read_models::open({.path = dir_.sub("live")}, *codec_);
  ASSERT_TRUE(live);
  auto applied = (*live)->apply(*all);
  ASSERT_FALSE(applied);
  EXPECT_NE(
      applied.error().message.find("at position " + std::to_string(first_bad) + " (TrackPlayed)"),
      std::string::npos)
      << applied.error().message;

  for (std::size_t threads : {1, 3}) {
    auto rebuilt = read_models::open({.path = dir_.sub("rb" + std::to_string(threads))}, *codec_);
    ASSERT_TRUE(rebuilt);
    auto r = rebuild(*store_, **rebuilt, {.batch_size = 2, .decode_threads = threads});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message, applied.error().message);
  }
}

// The entries a live apply() keeps between batches to decode into hold no decrypted
// personal data once their batch is applied: not the claimant's email, nor the names of
// her LearnerRegistered (nor, after she is forgotten, anything of hers at all).
TEST_F(read_models_test, no_decrypted_personal_data_is_kept_after_its_batch) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Private"));
  const auto ada = claim(inv, "ada@example.com", 1, "Ada", "Lovelace");
  auto live = read_models::open({.path = dir_.sub("live")}, *codec_);
  ASSERT_TRUE(live) << live.error().message;
  auto first = store_->read_all({}, 1000);
  ASSERT_TRUE(first);
  ASSERT_TRUE(std::any_of(first->begin(), first->end(),
                          [](const auto& e) { return e.type == "LearnerRegistered"; }));
  ASSERT_TRUE((*live)->apply(*first));
  ASSERT_TRUE((*live)->learner_by_email(org, codec_->email_subject(org, "ada@example.com")));
  auto kept = (*live)->kept_decoded_for_test();
  EXPECT_GE(kept.entries, first->size());
  EXPECT_EQ(kept.with_personal_data, 0u);
  EXPECT_EQ(kept.with_invite_settings, 0u);

  const auto forgotten_at = forget(ada.claim_->learner_id_);
  auto second = store_->read_all({.from_position = first->back().position + 1}, 1000);
  ASSERT_TRUE(second);
  ASSERT_FALSE(second->empty());
  ASSERT_TRUE((*live)->apply(*second));
  EXPECT_EQ((*live)->applied_position(), forgotten_at);
  kept = (*live)->kept_decoded_for_test();
  EXPECT_GE(kept.entries, first->size());  // the first batch's entries, still there to reuse
  EXPECT_EQ(kept.with_personal_data, 0u);
}

// A rebuild's batches hold no decrypted personal data once applied either: the names and
// email of each LearnerRegistered are wiped before the batch is decoded into again (and
// the email index still finds every learner: applied first).
TEST_F(read_models_test, a_rebuild_keeps_no_decrypted_personal_data_after_a_batch) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Private"));
  for (std::uint64_t n = 1; n <= 4; ++n) {
    claim(inv, "l" + std::to_string(n) + "@example.com", n, "Ada", "Lovelace");
  }
  auto m = read_models::open({.path = dir_.sub("rebuilt")}, *codec_);
  ASSERT_TRUE(m) << m.error().message;
  std::size_t batches = 0, registrations = 0, with_personal_data = 0, with_settings = 0;
  auto r =
      rebuild(*store_, **m,
              {.batch_size = 3,
               .on_batch_wiped_for_test = [&](std::span<const read_models::decoded_entry> batch) {
                 ++batches;
                 for (const auto& d : batch) {
                   if (!d.event) continue;
                   const auto& ev = d.event->event;
                   if (std::holds_alternative<domain::learner_registered>(ev)) {
                     ++registrations;
                   }
                   const auto* pd = domain::personal_data_of(ev);
                   if (d.email_hash || (pd != nullptr && !pd->empty())) {
                     ++with_personal_data;
                   }
                   if (std::holds_alternative<domain::invite_created>(ev) ||
                       std::holds_alternative<domain::invite_updated>(ev)) {
                     ++with_settings;
                   }
                 }
               }});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_GT(batches, 1u);
  // Each seen once applied, then again as the batches are all wiped at the end.
  EXPECT_GE(registrations, 4u);
  EXPECT_EQ(with_personal_data, 0u);
  EXPECT_EQ(with_settings, 0u);
  for (std::uint64_t n = 1; n <= 4; ++n) {
    EXPECT_TRUE((*m)->learner_by_email(
        org, codec_->email_subject(org, "l" + std::to_string(n) + "@example.com")));
  }
}

// wipe_decoded() also wipes an email hash still in its entry (one apply() did not move
// out: never applied, or its learner forgotten already), and the personal data beside it.
TEST_F(read_models_test, wiping_a_decoded_entry_wipes_an_email_hash_left_in_it) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Private"));
  claim(inv, "ada@example.com", 1, "Ada", "Lovelace");
  auto log = store_->read_all({}, 1000);
  ASSERT_TRUE(log);
  auto reg = std::find_if(log->begin(), log->end(),
                          [](const auto& e) { return e.type == "LearnerRegistered"; });
  ASSERT_NE(reg, log->end());
  read_models::decoded_entry d;
  ASSERT_TRUE(models_->decode_event(*reg, d));
  EXPECT_EQ(d.email_hash, codec_->email_hash(org, "ada@example.com"));
  read_models::wipe_decoded(d);
  EXPECT_FALSE(d.email_hash);
  ASSERT_TRUE(d.event);
  const auto* pd = domain::personal_data_of(d.event->event);
  ASSERT_NE(pd, nullptr);
  EXPECT_TRUE(pd->empty());
  // Decoded into again, it holds the hash again (nothing left behind stops it).
  ASSERT_TRUE(models_->decode_event(*reg, d));
  EXPECT_EQ(d.email_hash, codec_->email_hash(org, "ada@example.com"));
  read_models::wipe_decoded(d);
  EXPECT_FALSE(d.email_hash);
}

// A batch that fails to decode leaves the kept entries as a batch that applies does: no
// invite settings, no personal data, and no more of them than live batches keep.
TEST_F(read_models_test, a_batch_that_does_not_decode_keeps_no_settings_or_personal_data) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Damaged", {"linux"}));
  claim(inv, "ada@example.com", 1);
  std::vector<eventstore::new_event> damaged(600);
  for (auto& e : damaged) {
    e.event_id = uuid::random();
    e.type = "TrackPlayed";
    e.org_id = org.to_string();
    e.data = "{not json";
  }
  ASSERT_TRUE(store_->append({{"damaged", eventstore::expected_version::any(), damaged}}));
  auto all = store_->read_all({}, 1000);
  ASSERT_TRUE(all);
  ASSERT_GT(all->size(), 600u);
  auto live = read_models::open({.path = dir_.sub("live")}, *codec_);
  ASSERT_TRUE(live) << live.error().message;
  auto applied = (*live)->apply(*all);
  ASSERT_FALSE(applied);
  EXPECT_NE(applied.error().message.find("(TrackPlayed)"), std::string::npos)
      << applied.error().message;
  const auto kept = (*live)->kept_decoded_for_test();
  EXPECT_LE(kept.entries, 512u);
  EXPECT_EQ(kept.with_personal_data, 0u);
  EXPECT_EQ(kept.with_invite_settings, 0u);
  EXPECT_EQ((*live)->applied_position(), 0u);
}

// A store whose record at `damaged` reads back with a byte flipped (a damaged table file
// a rebuild reads as bytes); the rest it forwards.
class damaging_store final : public passage::testing::forwarding_store {
 public:
  damaging_store(eventstore::event_store& inner, std::uint64_t damaged)
      : forwarding_store(inner), damaged_(damaged) {}
  eventstore::store_result<std::uint64_t> scan_records(
      const eventstore::log_filter& filter,
      const std::function<bool(std::uint64_t, std::string_view)>& visit) override {
    return inner_.scan_records(filter, [&](std::uint64_t position, std::string_view bytes) {
      if (position != damaged_) return visit(position, bytes);
      std::string copy(bytes);
      copy.back() ^= 0x20;
      return visit(position, copy);
    });
  }
  eventstore::store_result<void> decode_record(std::uint64_t position, std::string_view bytes,
                                               eventstore::recorded_event& out) const override {
    return inner_.decode_record(position, bytes, out);
  }

 private:
  std::uint64_t damaged_;
};

// A damaged record of the log stops a rebuild as reading it fails (the store's message),
// however the records were spread over batches and decoding threads, with the events
// before it applied, as when the rebuild's reader met it.
TEST_F(read_models_test, a_rebuild_stops_at_a_damaged_record_with_the_events_before_it_applied) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Damaged", {"linux"}));
  for (std::uint64_t n = 1; n <= 6; ++n) claim(inv, "d" + std::to_string(n) + "@x.org", n);
  catch_up();
  const std::uint64_t head = store_->head_position();
  const std::uint64_t damaged = head - 3;
  std::string expected;
  {
    damaging_store s(*store_, damaged);
    eventstore::recorded_event e;
    ASSERT_TRUE(s.scan_records({}, [&](std::uint64_t position, std::string_view bytes) {
      if (auto d = s.decode_record(position, bytes, e); !d) expected = d.error().message;
      return true;
    }));
    ASSERT_NE(expected.find("position " + std::to_string(damaged)), std::string::npos) << expected;
  }
  for (std::size_t threads : {1, 3}) {
    for (std::size_t batch : {1, 2, 512}) {
      const auto name = "rb" + std::to_string(threads) + "-" + std::to_string(batch);
      auto rebuilt = read_models::open({.path = dir_.sub(name)}, *codec_);
      ASSERT_TRUE(rebuilt);
      damaging_store s(*store_, damaged);
      // Every batch is wiped by the time the rebuild returns, applied or not.
      std::size_t with_personal_data = 0;
      auto r = rebuild(
          s, **rebuilt,
          {.batch_size = batch,
           .decode_threads = threads,
           .on_batch_wiped_for_test = [&](std::span<const read_models::decoded_entry> entries) {
             for (const auto& d : entries) {
               const auto* pd = d.event ? domain::personal_data_of(d.event->event) : nullptr;
               if (d.email_hash || (pd != nullptr && !pd->empty())) {
                 ++with_personal_data;
               }
             }
           }});
      ASSERT_FALSE(r) << name;
      EXPECT_EQ(r.error().message, "rebuild: reading the log failed: " + expected) << name;
      EXPECT_EQ((*rebuilt)->applied_position(), damaged - 1) << name;
      EXPECT_EQ(with_personal_data, 0u) << name;
    }
  }
}

// A callback that throws on the applying thread (here on_progress) ends the rebuild with
// its exception: the reading and decoding threads are stopped and joined on the way out
// (left joinable, they would terminate the process), and a rebuild runs again after it.
TEST_F(read_models_test, an_exception_on_the_applying_thread_leaves_the_rebuild_cleanly) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Thrown"));
  for (std::uint64_t n = 1; n <= 12; ++n) claim(inv, "t" + std::to_string(n) + "@x.org", n);
  catch_up();
  projector_.reset();
  auto rebuilt = read_models::open({.path = dir_.sub("thrown")}, *codec_);
  ASSERT_TRUE(rebuilt);
  std::size_t reports = 0;
  EXPECT_THROW(rebuild(*store_, **rebuilt,
                       {.batch_size = 2,
                        .on_progress =
                            [&](const rebuild_progress&) {
                              ++reports;
                              throw std::runtime_error("stop");
                            },
                        .progress_interval = std::chrono::milliseconds(0),
                        .decode_threads = 2}),
               std::runtime_error);
  EXPECT_EQ(reports, 1u);
  (void)(*rebuilt)->set_bulk_load(false);
  auto again = rebuild(*store_, **rebuilt, {.batch_size = 2});
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ((*rebuilt)->applied_position(), store_->head_position());
}

// A thread that cannot be started (the system's limit reached) fails the rebuild with an
// error naming it, whichever of its threads it is: those already started are stopped and
// joined (left joinable, they would terminate the process), and a rebuild runs again after.
TEST_F(read_models_test, a_thread_that_cannot_start_fails_the_rebuild_cleanly) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Threads"));
  for (std::uint64_t n = 1; n <= 12; ++n) claim(inv, "t" + std::to_string(n) + "@x.org", n);
  catch_up();
  projector_.reset();
  auto rebuilt = read_models::open({.path = dir_.sub("no-thread")}, *codec_);
  ASSERT_TRUE(rebuilt);
  for (std::size_t refused : {0, 1, 2}) {  // the reader, the first decoder, the second
    std::size_t asked = 0;
    auto r = rebuild(
        *store_, **rebuilt,
        {.batch_size = 2, .decode_threads = 2, .before_thread_start_for_test = [&](std::size_t i) {
           asked = i + 1;
           if (i == refused) {
             throw std::system_error(
                 std::make_error_code(std::errc::resource_unavailable_try_again));
           }
         }});
    ASSERT_FALSE(r) << refused;
    EXPECT_NE(r.error().message.find("rebuild: cannot start its threads"), std::string::npos)
        << r.error().message;
    EXPECT_EQ(asked, refused + 1);
  }
  auto again = rebuild(*store_, **rebuilt, {.batch_size = 2});
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ((*rebuilt)->applied_position(), store_->head_position());
}

// A key store that forwards to another and records how a rebuild uses its preload: the
// calls, and whether each lookup came while a preload was in place.
class observed_key_store final : public eventstore::key_store {
 public:
  explicit observed_key_store(eventstore::key_store& inner) : inner_(inner) {}
  result<eventstore::data_key, eventstore::key_store_error> get_or_create(
      std::string_view subject) override {
    return inner_.get_or_create(subject);
  }
  result<std::optional<eventstore::data_key>, eventstore::key_store_error> find(
      std::string_view subject) override {
    (preloaded.load() ? finds_preloaded : finds_plain).fetch_add(1);
    return inner_.find(subject);
  }
  bool is_destroyed(std::string_view subject) override { return inner_.is_destroyed(subject); }
  result<void, eventstore::key_store_error> destroy(std::string_view subject) override {
    return inner_.destroy(subject);
  }
  result<void, eventstore::key_store_error> sync() override { return inner_.sync(); }
  result<void, eventstore::key_store_error> create_ahead(
      const std::vector<std::string>& subjects) override {
    return inner_.create_ahead(subjects);
  }
  bool preload() override {
    ++preloads;
    const bool kept = inner_.preload();
    preloaded = kept;
    return kept;
  }
  void end_preload() override {
    ++ends;
    preloaded = false;
    inner_.end_preload();
  }

  std::atomic<int> preloads{0}, ends{0};
  std::atomic<bool> preloaded{false};
  std::atomic<int> finds_preloaded{0}, finds_plain{0};

 private:
  eventstore::key_store& inner_;
};

// A store whose event at `bad` reads back with data that is not JSON: the record reads,
// the event does not decode (on a rebuild's decoding thread).
class undecodable_store final : public passage::testing::forwarding_store {
 public:
  undecodable_store(eventstore::event_store& inner, std::uint64_t bad)
      : forwarding_store(inner), bad_(bad) {}
  eventstore::store_result<std::uint64_t> scan_records(
      const eventstore::log_filter& filter,
      const std::function<bool(std::uint64_t, std::string_view)>& visit) override {
    return inner_.scan_records(filter, visit);
  }
  eventstore::store_result<void> decode_record(std::uint64_t position, std::string_view bytes,
                                               eventstore::recorded_event& out) const override {
    auto r = inner_.decode_record(position, bytes, out);
    if (r && position == bad_) out.data = "{not json";
    return r;
  }

 private:
  std::uint64_t bad_;
};

// A rebuild that fails at an event that does not decode leaves no decrypted personal data
// in the batches decoded after it and never applied: every batch is wiped once the
// threads are joined, not when the batches go after the bulk load's merge. (Which batches
// the decoder reached before the applier stopped varies; none may hold anything.)
TEST_F(read_models_test, a_failed_rebuild_wipes_the_batches_it_decoded_but_never_applied) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Failing", {"linux"}));
  claim(inv, "f1@x.org", 1);
  const std::uint64_t bad = store_->head_position() + 1;  // the next claim's first event
  claim(inv, "f2@x.org", 2);
  claim(inv, "f3@x.org", 3);
  catch_up();
  projector_.reset();

  auto m = read_models::open({.path = dir_.sub("failing")}, *codec_);
  ASSERT_TRUE(m) << m.error().message;
  undecodable_store s(*store_, bad);
  std::size_t with_personal_data = 0;
  auto r =
      rebuild(s, **m,
              {.batch_size = 2,
               .decode_threads = 1,
               .on_batch_wiped_for_test = [&](std::span<const read_models::decoded_entry> batch) {
                 for (const auto& d : batch) {
                   const auto* pd = d.event ? domain::personal_data_of(d.event->event) : nullptr;
                   if (d.email_hash || (pd != nullptr && !pd->empty())) {
                     ++with_personal_data;
                   }
                 }
               }});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("position " + std::to_string(bad)), std::string::npos)
      << r.error().message;
  EXPECT_EQ(with_personal_data, 0u);
}

// rebuild_options::preload_keys: on (the default), the learners' keys are preloaded for the
// decoding and the preload is ended after it; off, each lookup goes to the store. Both give
// the live-built answers, a forgotten learner (key destroyed) included. With as_of there is
// no preload.
TEST_F(read_models_test, a_rebuild_with_or_without_the_key_preload_answers_the_same) {
  const uuid inv = id(100);
  auto d = draft("Preload", {"linux"});
  create_invite(org, inv, "AB2K7MZ", d);
  std::vector<domain::claim_decision> claims;
  for (std::uint64_t n = 1; n <= 12; ++n) {
    claims.push_back(
        claim(inv, "p" + std::to_string(n) + "@x.org", n, "First" + std::to_string(n)));
  }
  play(claims[0].claim_->claim_id_, claims[0].claim_->learner_id_, "linux");
  const auto cut = clock_.now();
  clock_.advance(1h);
  claim(inv, "late@x.org", 50);
  forget(claims[3].claim_->learner_id_);
  catch_up();
  projector_.reset();

  auto snapshot = [&](read_models& m) {
    nlohmann::json j;
    j["claims"] = to_json(std::span<const acceptance_row>(*m.acceptance_list(org, inv)));
    for (const auto& c : claims) {
      if (auto l = m.learner(org, c.claim_->learner_id_)) j["learner"].push_back(to_json(*l));
    }
    for (std::uint64_t n = 1; n <= 12; ++n) {
      const auto subject = codec_->email_subject(org, "p" + std::to_string(n) + "@x.org");
      auto l = m.learner_by_email(org, subject);
      j["by_email"].push_back(l ? l->learner_id.to_string() : "none");
    }
    j["applied"] = m.applied_position();
    return j;
  };
  const auto live = snapshot(*models_);
  ASSERT_EQ(live["by_email"][3], "none");  // the forgotten learner
  ASSERT_EQ(live["claims"]["claims"].size(), 13u);

  observed_key_store keys(*keys_);
  eventstore::event_codec codec(keys, std::string(48, 'p'));  // the fixture's pepper
  auto rebuild_into = [&](const std::string& name, const rebuild_options& o) {
    auto m = read_models::open({.path = dir_.sub(name)}, codec);
    EXPECT_TRUE(m) << m.error().message;
    auto r = rebuild(*store_, **m, o);
    EXPECT_TRUE(r) << r.error().message;
    return std::move(*m);
  };

  auto with = rebuild_into("with", {.batch_size = 4, .decode_threads = 2});
  EXPECT_EQ(keys.preloads, 1);
  EXPECT_EQ(keys.ends, 1) << "the preload is given back after the rebuild";
  EXPECT_FALSE(keys.preloaded);
  EXPECT_GT(keys.finds_preloaded, 12) << "each registration's key looked up in the preload";
  EXPECT_EQ(keys.finds_plain, 0);
  EXPECT_EQ(snapshot(*with), live);

  keys.finds_preloaded = 0;
  auto without =
      rebuild_into("without", {.batch_size = 4, .decode_threads = 2, .preload_keys = false});
  EXPECT_EQ(keys.preloads, 1) << "not asked for";
  EXPECT_EQ(keys.finds_preloaded, 0);
  EXPECT_GT(keys.finds_plain, 12);
  EXPECT_EQ(snapshot(*without), live);

  // As of an instant: the log's start only, and no preload (it would hold every key).
  auto then = rebuild_into("then", {.as_of = cut});
  EXPECT_EQ(keys.preloads, 1);
  EXPECT_EQ(keys.finds_preloaded, 0);
  EXPECT_FALSE(then->learner_by_email(org, codec_->email_subject(org, "late@x.org")));
  EXPECT_TRUE(then->learner_by_email(org, codec_->email_subject(org, "p1@x.org")));
  // Forgotten after the instant, yet forgotten in every replay since (its key is gone).
  EXPECT_FALSE(then->learner_by_email(org, codec_->email_subject(org, "p4@x.org")));
}

// A rebuild that fails (an event it cannot decode) still gives the preload back.
TEST_F(read_models_test, a_failed_rebuild_ends_the_key_preload) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Damaged", {"linux"}));
  for (std::uint64_t n = 1; n <= 5; ++n) claim(inv, "f" + std::to_string(n) + "@x.org", n);
  projector_.reset();
  eventstore::new_event bad;
  bad.event_id = uuid::random();
  bad.type = "TrackPlayed";
  bad.org_id = org.to_string();
  bad.data = "{not json";
  ASSERT_TRUE(store_->append({{"damaged", eventstore::expected_version::any(), {bad}}}));

  observed_key_store keys(*keys_);
  eventstore::event_codec codec(keys, std::string(48, 'p'));
  auto m = read_models::open({.path = dir_.sub("failing")}, codec);
  ASSERT_TRUE(m) << m.error().message;
  auto r = rebuild(*store_, **m, {.batch_size = 2, .decode_threads = 2});
  ASSERT_FALSE(r);
  EXPECT_EQ(keys.preloads, 1);
  EXPECT_EQ(keys.ends, 1);
  EXPECT_FALSE(keys.preloaded);
}

// A bulk load that never ends (a crash) leaves run files beside the folder but nothing in
// it: the folder reopens at position 0 (the runs deleted) and applying the log again
// gives the live-built answers.
// clear() ends a bulk load under way with everything else: what is applied after it is
// written at once (readable rows, a checkpoint that survives a reopen), not into runs that
// wait for a set_bulk_load(false) that never comes.
TEST_F(read_models_test, clear_ends_a_bulk_load_under_way) {
  const uuid inv = id(101);
  create_invite(org, inv, "AB2K7MQ", draft("Cleared", {"linux"}));
  for (std::uint64_t n = 1; n <= 3; ++n) claim(inv, "c" + std::to_string(n) + "@x.org", n);
  catch_up();
  const auto log = whole_log();
  {
    auto m = read_models::open({.path = dir_.sub("cleared"), .bulk_run_bytes = 1}, *codec_);
    ASSERT_TRUE(m) << m.error().message;
    ASSERT_TRUE((*m)->set_bulk_load(true));
    ASSERT_TRUE((*m)->apply(std::span(log).first(2)));
    ASSERT_TRUE((*m)->clear());
    ASSERT_TRUE((*m)->apply(log));
    auto claims = (*m)->acceptance_list(org, inv);
    ASSERT_TRUE(claims);
    EXPECT_EQ(claims->size(), 3u) << "rows written as applied, not held for a load's end";
  }
  auto reopened = read_models::open({.path = dir_.sub("cleared")}, *codec_);
  ASSERT_TRUE(reopened) << reopened.error().message;
  EXPECT_EQ((*reopened)->applied_position(), log.back().position);
}

TEST_F(read_models_test, a_bulk_load_cut_short_reopens_at_its_start_and_catches_up) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Cut", {"linux"}));
  std::vector<domain::claim_decision> claims;
  for (std::uint64_t n = 1; n <= 12; ++n)
    claims.push_back(claim(inv, "c" + std::to_string(n) + "@x.org", n));
  for (const auto& c : claims) play(c.claim_->claim_id_, c.claim_->learner_id_, "linux");
  catch_up();
  auto snapshot = [&](read_models& m) { return invite_snapshot(m, inv, claims); };
  const auto live = snapshot(*models_);

  const auto log = whole_log();
  {
    auto cut = read_models::open({.path = dir_.sub("cut"), .bulk_run_bytes = 1}, *codec_);
    ASSERT_TRUE(cut) << cut.error().message;
    ASSERT_TRUE((*cut)->set_bulk_load(true));
    const std::size_t half = log.size() / 2;
    ASSERT_TRUE((*cut)->apply(std::span(log).first(half)));
    ASSERT_TRUE((*cut)->apply(std::span(log).subspan(half)));
    EXPECT_EQ((*cut)->applied_position(), log.back().position);
  }  // closed without set_bulk_load(false)
  expect_reopens_at_zero_and_catches_up(dir_.sub("cut"), log, live, snapshot, inv);
}

// A bulk load whose rows could not all be added (a run that cannot be written) ends for
// good: neither its end nor a retry writes records and a checkpoint that would show
// invites without their claims. The folder stays at its checkpoint of before the load,
// and a new load from there gives the live-built answers.
TEST_F(read_models_test, a_bulk_load_that_loses_rows_never_ends_with_a_checkpoint) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Lost", {"linux"}));
  for (std::uint64_t n = 1; n <= 8; ++n) claim(inv, "f" + std::to_string(n) + "@x.org", n);
  catch_up();
  auto snapshot = [&](read_models& m) { return invite_snapshot(m, inv); };
  const auto live = snapshot(*models_);
  const auto log = whole_log();
  // A folder where the run file about to be written cannot be (a folder has its name).
  auto block = [&](const std::string& path, int run) {
    std::filesystem::create_directory(path + "/bulk-run-" + std::to_string(run) + ".run");
  };
  auto unblock = [&](const std::string& path, int run) {
    std::filesystem::remove(path + "/bulk-run-" + std::to_string(run) + ".run");
  };

  // The last rows fail as the load ends; asking again fails again.
  const auto at_end = dir_.sub("at-end");
  {
    auto m = read_models::open({.path = at_end}, *codec_);
    ASSERT_TRUE(m) << m.error().message;
    ASSERT_TRUE((*m)->set_bulk_load(true));
    ASSERT_TRUE((*m)->apply(log));  // rows stay in memory (one run)
    block(at_end, 1);
    EXPECT_FALSE((*m)->set_bulk_load(false));
    EXPECT_FALSE((*m)->set_bulk_load(false));
    EXPECT_FALSE((*m)->apply(log));
    // Also with events decoded beforehand (the rebuild's way), from the middle of the log.
    const auto rest = std::span(log).subspan(log.size() / 2);
    read_models::decoded_batch decoded;
    ASSERT_TRUE(decode_each(**m, rest, decoded));
    EXPECT_FALSE((*m)->apply(rest, decoded));
    EXPECT_EQ((*m)->applied_position(), 0u);
    EXPECT_FALSE((*m)->invite(org, inv, clock_.now()));
  }
  unblock(at_end, 1);
  {
    auto m = read_models::open({.path = at_end}, *codec_);
    ASSERT_TRUE(m) << m.error().message;
    EXPECT_EQ((*m)->applied_position(), 0u);
    EXPECT_FALSE((*m)->invite(org, inv, clock_.now()));
    // A new load (after clear(), as a replay does) ends as usual.
    ASSERT_TRUE((*m)->clear());
    ASSERT_TRUE((*m)->set_bulk_load(true));
    ASSERT_TRUE((*m)->apply(log));
    ASSERT_TRUE((*m)->set_bulk_load(false));
    EXPECT_EQ(snapshot(**m), live);
  }

  // A run fails midway (one run per batch): the load's end refuses to write records.
  const auto midway = dir_.sub("midway");
  {
    auto m = read_models::open({.path = midway, .bulk_run_bytes = 1}, *codec_);
    ASSERT_TRUE(m) << m.error().message;
    ASSERT_TRUE((*m)->set_bulk_load(true));
    const std::size_t half = log.size() / 2;
    ASSERT_TRUE((*m)->apply(std::span(log).first(half)));
    block(midway, 2);
    // Runs go in behind the applied batches: the failure shows here or when the load ends.
    (void)(*m)->apply(std::span(log).subspan(half));
    EXPECT_FALSE((*m)->set_bulk_load(false));
    EXPECT_FALSE((*m)->set_bulk_load(false));
    EXPECT_EQ((*m)->applied_position(), 0u);
  }
  unblock(midway, 2);
  expect_reopens_at_zero_and_catches_up(midway, log, live, snapshot);
}

// A load whose rows are merged but whose records cannot be written (as a crash between the
// merge and the ingestion): nothing of it reaches the folder, its files are deleted, and
// the folder catches up from its checkpoint of before the load.
TEST_F(read_models_test,
       a_bulk_load_failing_between_merge_and_ingestion_leaves_the_folder_as_it_was) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Merged", {"linux"}));
  std::vector<domain::claim_decision> claims;
  for (std::uint64_t n = 1; n <= 10; ++n)
    claims.push_back(claim(inv, "m" + std::to_string(n) + "@x.org", n));
  for (const auto& c : claims) play(c.claim_->claim_id_, c.claim_->learner_id_, "linux");
  catch_up();
  auto snapshot = [&](read_models& m) { return invite_snapshot(m, inv, claims); };
  const auto live = snapshot(*models_);
  const auto log = whole_log();
  const auto path = dir_.sub("merged");
  auto files = [&] {
    std::vector<std::string> names;
    for (const auto& f : std::filesystem::directory_iterator(path)) {
      if (f.path().filename().string().starts_with("bulk-run-")) {
        names.push_back(f.path().filename().string());
      }
    }
    return names;
  };
  const std::string blocked = "bulk-run-records-1.sst";
  {
    auto m = read_models::open({.path = path, .bulk_run_bytes = 1}, *codec_);
    ASSERT_TRUE(m) << m.error().message;
    ASSERT_TRUE((*m)->set_bulk_load(true));
    for (std::size_t i = 0; i < log.size(); i += 4) {  // a run per batch: overlapping runs
      ASSERT_TRUE((*m)->apply(std::span(log).subspan(i, std::min<std::size_t>(4, log.size() - i))));
    }
    std::filesystem::create_directory(path + "/" + blocked);
    EXPECT_FALSE((*m)->set_bulk_load(false));
    EXPECT_EQ((*m)->applied_position(), 0u);
    EXPECT_FALSE((*m)->invite(org, inv, clock_.now()));
    EXPECT_EQ(files(), std::vector<std::string>{blocked});  // runs and merged rows deleted
  }
  std::filesystem::remove(path + "/" + blocked);
  expect_reopens_at_zero_and_catches_up(path, log, live, snapshot, inv);
}

// A rebuilt folder's files sit at the bottom level: nothing is left for RocksDB to compact
// after the load (clear() leaves no deletion spanning every key that the load's files
// would overlap, which would put them in level 0).
TEST_F(read_models_test, a_rebuilt_folder_has_its_files_at_the_bottom_level) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Bottom", {"linux"}));
  for (std::uint64_t n = 1; n <= 10; ++n) claim(inv, "b" + std::to_string(n) + "@x.org", n);
  catch_up();
  const auto path = dir_.sub("bottom");
  {
    auto m = read_models::open({.path = path, .bulk_run_bytes = 1}, *codec_);
    ASSERT_TRUE(m) << m.error().message;
    ASSERT_TRUE((*m)->apply(*store_->read_all({}, 1000)));  // a folder with rows to clear
    ASSERT_TRUE(rebuild(*store_, **m, {.batch_size = 3}));
  }
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::OpenForReadOnly(rocksdb::Options(), path, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  std::string l0, bottom;
  ASSERT_TRUE(db->GetProperty("rocksdb.num-files-at-level0", &l0));
  ASSERT_TRUE(db->GetProperty("rocksdb.num-files-at-level6", &bottom));
  EXPECT_EQ(l0, "0");
  EXPECT_GE(std::stoi(bottom), 4);  // rows, records, checkpoint, more records
}

// Run files a crash left before they were ingested are removed when the folder is next
// opened or cleared; RocksDB's own files stay.
TEST_F(read_models_test, run_files_left_by_a_crash_are_removed_on_open_and_clear) {
  const auto path = dir_.sub("left");
  auto leave = [&](const std::string& name) {
    std::ofstream(path + "/" + name) << "half-written run";
  };
  auto count_runs = [&] {
    int n = 0;
    for (const auto& f : std::filesystem::directory_iterator(path)) {
      if (f.path().filename().string().starts_with("bulk-run-")) ++n;
    }
    return n;
  };
  {
    auto m = read_models::open({.path = path}, *codec_);
    ASSERT_TRUE(m) << m.error().message;
  }
  leave("bulk-run-3.run");
  leave("bulk-run-out-2-1.sst");  // merged, not yet ingested
  leave("bulk-run-records-2.sst");
  ASSERT_EQ(count_runs(), 3);
  auto m = read_models::open({.path = path}, *codec_);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(count_runs(), 0);
  EXPECT_TRUE(std::filesystem::exists(path + "/CURRENT"));

  leave("bulk-run-1.run");
  ASSERT_TRUE((*m)->clear());
  EXPECT_EQ(count_runs(), 0);
  EXPECT_TRUE(std::filesystem::exists(path + "/CURRENT"));
}

// A batch's records and rows are written in key order, not in the order the events
// touched them (which this does not observe): whatever the order, read models fed the
// whole log in one batch answer as those fed one event at a time, also after a restart,
// which loads them from their records.
TEST_F(read_models_test, one_batch_of_many_claims_answers_as_one_event_at_a_time) {
  const uuid inv = id(100);
  auto d = draft("Batch", {"k8s", "linux"});
  d.claim_limit_ = 24;
  d.plays_per_track_ = 3;
  create_invite(org, inv, "AB2K7MZ", d);
  std::vector<domain::claim_decision> claims;
  for (std::uint64_t n = 1; n <= 26; ++n) {  // the last two are refused: full
    auto email = n % 5 == 0 ? std::nullopt : std::optional("b" + std::to_string(n) + "@x.org");
    claims.push_back(claim(inv, email, n));
    if (n % 4 == 0 && claims.back().claim_) {
      play(claims.back().claim_->claim_id_, claims.back().claim_->learner_id_, "linux");
    }
  }
  claims.push_back(claim(inv, "b1@x.org", 99));  // a returning learner
  catch_up();
  const auto log = whole_log();

  auto snapshot = [&](read_models& m) {
    nlohmann::json j;
    j["invite"] = to_json(*m.invite(org, inv, clock_.now()));
    j["usage"] = to_json(*m.usage(org, inv));
    j["claims"] = to_json(std::span<const acceptance_row>(*m.acceptance_list(org, inv)));
    j["rejections"] = nlohmann::json::array();
    const auto rejected = m.rejections(org, inv);
    for (const auto& r : *rejected) j["rejections"].push_back(to_json(r));
    for (const auto& c : claims) {
      if (!c.claim_) continue;
      j["access"].push_back(to_json(*m.claim_access(c.claim_->claim_id_, clock_.now())));
      j["learners"].push_back(to_json(*m.learner_history(org, c.claim_->learner_id_)));
    }
    j["b7"] =
        m.learner_by_email(org, codec_->email_subject(org, "b7@x.org"))->learner_id.to_string();
    j["applied"] = m.applied_position();
    return j;
  };
  auto open = [&](const std::string& name) {
    auto m = read_models::open({.path = dir_.sub(name)}, *codec_);
    EXPECT_TRUE(m) << m.error().message;
    return m ? std::move(*m) : nullptr;
  };
  auto batched = open("batched");
  auto single = open("single");
  ASSERT_TRUE(batched && single);
  ASSERT_TRUE(batched->apply(log));
  for (std::size_t i = 0; i < log.size(); ++i) {
    ASSERT_TRUE(single->apply(std::span<const eventstore::recorded_event>(&log[i], 1)));
  }
  const auto live = snapshot(*models_);
  EXPECT_EQ(live["rejections"].size(), 2u);
  EXPECT_EQ(snapshot(*batched), live);
  EXPECT_EQ(snapshot(*single), live);

  batched.reset();
  single.reset();
  batched = open("batched");
  single = open("single");
  ASSERT_TRUE(batched && single);
  EXPECT_EQ(snapshot(*batched), live);
  EXPECT_EQ(snapshot(*single), live);
}

// The folder without a write-ahead log: what a crash leaves is the folder as of its last
// flush (here the close after the first half), records and checkpoint together; the
// batches since then were only in the memtable. Applying the log from that checkpoint
// answers as the read models that never crashed.
TEST_F(read_models_test, a_crash_image_reopens_at_its_last_flush_and_catches_up) {
  const uuid inv = id(100);
  auto d = draft("Crash", {"linux"});
  d.claim_limit_ = 20;
  create_invite(org, inv, "AB2K7MZ", d);
  std::vector<domain::claim_decision> claims;
  for (std::uint64_t n = 1; n <= 12; ++n)
    claims.push_back(claim(inv, "k" + std::to_string(n) + "@x.org", n));
  for (const auto& c : claims) play(c.claim_->claim_id_, c.claim_->learner_id_, "linux");
  catch_up();
  auto snapshot = [&](read_models& m) { return invite_snapshot(m, inv, claims); };
  const auto live = snapshot(*models_);
  const auto log = whole_log();
  const std::size_t half = log.size() / 2;

  const auto path = dir_.sub("live");
  {
    auto first = read_models::open({.path = path}, *codec_);
    ASSERT_TRUE(first) << first.error().message;
    ASSERT_TRUE((*first)->apply(std::span(log).first(half)));
    auto closed = (*first)->close();
    ASSERT_TRUE(closed) << closed.error().message;
  }
  auto running = read_models::open({.path = path}, *codec_);
  ASSERT_TRUE(running) << running.error().message;
  ASSERT_TRUE((*running)->apply(std::span(log).subspan(half)));
  EXPECT_EQ(snapshot(**running), live);

  // The files as a crash (SIGKILL, or the OS's) would leave them, the folder still open.
  const auto crashed = dir_.sub("crashed");
  passage::testing::copy_open_folder(path, crashed);
  auto reopened = read_models::open({.path = crashed}, *codec_);
  ASSERT_TRUE(reopened) << reopened.error().message;
  EXPECT_EQ((*reopened)->applied_position(), log[half - 1].position);
  EXPECT_NE(snapshot(**reopened), live);
  ASSERT_TRUE((*reopened)->apply(log));
  EXPECT_EQ(snapshot(**reopened), live);
}

// Creates no table file (.sst) while `fail` is set: a disk that refuses the flush.
class failing_tables final : public rocksdb::FileSystemWrapper {
 public:
  failing_tables() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "failing_tables"; }
  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* file,
                                    rocksdb::IODebugContext* dbg) override {
    if (fail && name.ends_with(".sst")) return rocksdb::IOStatus::IOError(name, "injected");
    return FileSystemWrapper::NewWritableFile(name, options, file, dbg);
  }
  std::atomic<bool> fail{false};
};

// close() writes the memtable to the folder's files, and says so when it cannot (a
// destructor could only drop the error); the folder then holds the last flush, from which
// the log is applied again.
TEST_F(read_models_test, close_reports_a_flush_that_fails_and_the_folder_catches_up) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Flush", {"linux"}));
  std::vector<domain::claim_decision> claims;
  for (std::uint64_t n = 1; n <= 4; ++n)
    claims.push_back(claim(inv, "f" + std::to_string(n) + "@x.org", n));
  catch_up();
  auto snapshot = [&](read_models& m) { return invite_snapshot(m, inv, claims); };
  const auto live = snapshot(*models_);
  const auto log = whole_log();

  auto fs = std::make_shared<failing_tables>();
  auto env = rocksdb::NewCompositeEnv(fs);
  const auto path = dir_.sub("failing");
  {
    auto m = read_models::open({.path = path, .env = env.get()}, *codec_);
    ASSERT_TRUE(m) << m.error().message;
    ASSERT_TRUE((*m)->apply(log));
    fs->fail = true;
    auto closed = (*m)->close();
    ASSERT_FALSE(closed);
    EXPECT_NE(closed.error().message.find("flushing " + path + " failed"), std::string::npos)
        << closed.error().message;
    EXPECT_NE(closed.error().message.find("injected"), std::string::npos) << closed.error().message;
    EXPECT_TRUE((*m)->close());  // once closed, nothing more to report
  }
  fs->fail = false;
  auto reopened = read_models::open({.path = path, .env = env.get()}, *codec_);
  ASSERT_TRUE(reopened) << reopened.error().message;
  EXPECT_EQ((*reopened)->applied_position(), 0u);
  ASSERT_TRUE((*reopened)->apply(log));
  EXPECT_EQ(snapshot(**reopened), live);
  auto closed = (*reopened)->close();
  ASSERT_TRUE(closed) << closed.error().message;
  reopened = read_models::open({.path = path}, *codec_);
  ASSERT_TRUE(reopened) << reopened.error().message;
  EXPECT_EQ(snapshot(**reopened), live);
}

// Counts the page-cache drops (InvalidateCache) asked of the files a bulk load writes
// (bulk-run-*: its runs, merged rows and records), and how many such table files it made.
class counting_invalidations final : public rocksdb::FileSystemWrapper {
 public:
  counting_invalidations() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "counting_invalidations"; }
  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* file,
                                    rocksdb::IODebugContext* dbg) override {
    auto st = FileSystemWrapper::NewWritableFile(name, options, file, dbg);
    if (!st.ok() || name.find("bulk-run-") == std::string::npos) return st;
    if (name.ends_with(".sst")) ++tables;
    *file = std::make_unique<counted>(std::move(*file), invalidations);
    return st;
  }
  std::atomic<int> tables{0}, invalidations{0};

 private:
  struct counted final : rocksdb::FSWritableFileOwnerWrapper {
    counted(std::unique_ptr<rocksdb::FSWritableFile> f, std::atomic<int>& n)
        : FSWritableFileOwnerWrapper(std::move(f)), count(n) {}
    rocksdb::IOStatus InvalidateCache(size_t offset, size_t length) override {
      ++count;
      return FSWritableFileOwnerWrapper::InvalidateCache(offset, length);
    }
    std::atomic<int>& count;
  };
};

// A rebuild writes its final files without asking the kernel to drop their pages as it
// goes (SstFileWriter's default: a write-out and a drop every megabyte, on the threads
// that merge the rows and write the records, for files read right after), and the
// rebuilt folder answers as the live one.
TEST_F(read_models_test, a_rebuild_leaves_its_files_in_the_page_cache) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Cached", {"linux"}));
  std::vector<domain::claim_decision> claims;
  for (std::uint64_t n = 1; n <= 5; ++n)
    claims.push_back(claim(inv, "p" + std::to_string(n) + "@x.org", n));
  catch_up();
  const auto live = invite_snapshot(*models_, inv, claims);

  auto fs = std::make_shared<counting_invalidations>();
  auto env = rocksdb::NewCompositeEnv(fs);
  auto m = read_models::open({.path = dir_.sub("cached"), .env = env.get()}, *codec_);
  ASSERT_TRUE(m) << m.error().message;
  ASSERT_TRUE(rebuild(*store_, **m));
  EXPECT_GE(fs->tables.load(), 2);  // merged rows and records at least
  EXPECT_EQ(fs->invalidations.load(), 0);
  EXPECT_EQ(invite_snapshot(**m, inv, claims), live);
}

TEST_F(read_models_test, when_applied_fires_once_the_position_is_applied) {
  catch_up();
  bool ran = false;
  models_->when_applied(models_->applied_position(), [&] { ran = true; });
  EXPECT_TRUE(ran);  // already applied: at once

  std::promise<std::uint64_t> seen;
  auto f = seen.get_future();
  const auto next = store_->head_position() + 2;
  models_->when_applied(next, [&] { seen.set_value(models_->applied_position()); });
  EXPECT_EQ(f.wait_for(50ms), std::future_status::timeout);
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("One"));
  EXPECT_EQ(f.wait_for(50ms), std::future_status::timeout);
  const auto pos = create_invite(org, id(101), "CD3M8NP", draft("Two"));
  ASSERT_EQ(pos, next);
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_GE(f.get(), next);
  EXPECT_TRUE(models_->invite(org, id(101), clock_.now()));  // read your write
}

TEST_F(read_models_test, projector_refuses_read_models_ahead_of_the_log) {
  catch_up();
  projector_.reset();
  passage::testing::temp_dir other;
  auto empty = eventstore::open_event_store({.path = other.sub("events"), .sync = false});
  ASSERT_TRUE(empty);
  projector p(**empty, *models_);
  auto started = p.start();
  ASSERT_FALSE(started);
  EXPECT_NE(started.error().message.find("rebuild"), std::string::npos);
}

}  // namespace
}  // namespace passage::projections

namespace passage::projections {
namespace {

TEST_F(read_models_test, readers_run_while_the_projector_applies) {
  const uuid inv = id(100);
  auto d = draft("Busy");
  create_invite(org, inv, "AB2K7MZ", d);
  catch_up();
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> max_seen{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        auto v = models_->invite(org, inv, at("2026-03-01T10:00:00Z"));
        if (v) max_seen.store(std::max(max_seen.load(), v->claims_count));
        (void)models_->list_invites(org, {}, at("2026-03-01T10:00:00Z"));
        (void)models_->acceptance_list(org, inv);
        (void)models_->usage(org, inv);
      }
    });
  }
  for (std::uint64_t n = 1; n <= 40; ++n) claim(inv, "learner" + std::to_string(n) + "@x.test", n);
  catch_up();
  stop.store(true);
  for (auto& t : readers) t.join();
  EXPECT_EQ(models_->invite(org, inv, clock_.now())->claims_count, 40);
  EXPECT_LE(max_seen.load(), 40);
  EXPECT_EQ(models_->acceptance_list(org, inv)->size(), 40u);
}

// A folder written in another record format: refused (naming `passage replay`) unless
// the opener asks for a rebuild, which wipes it and lets the projector catch up from 0.
TEST_F(read_models_test, a_folder_in_another_record_format_is_refused_or_rebuilt_from_the_log) {
  const uuid inv = id(100);
  create_invite(org, inv, "AB2K7MZ", draft("Format", {"k8s"}));
  claim(inv, "ada@example.com", 1);
  catch_up();
  const auto usage_before = to_json(*models_->usage(org, inv));
  projector_.reset();
  models_.reset();
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), models_path(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    // 4: the format before rows kept only their event's personal_data block, whose rows
    // this version would misread.
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "m:fmt", "4").ok());
  }

  auto refused = read_models::open({.path = models_path()}, *codec_);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("passage replay"), std::string::npos);
  // A replica has no log to replay: it names its own way back.
  read_models_options replica_like{.path = models_path()};
  replica_like.format_advice = "delete the folder";
  refused = read_models::open(replica_like, *codec_);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("record format 4, expected"), std::string::npos)
      << refused.error().message;
  EXPECT_NE(refused.error().message.find("; delete the folder"), std::string::npos);
  EXPECT_EQ(refused.error().message.find("passage replay"), std::string::npos);

  std::string found;
  read_models_options o{.path = models_path()};
  o.on_format_change = [&](std::string_view f) { found = f; };
  auto rebuilt = read_models::open(o, *codec_);
  ASSERT_TRUE(rebuilt) << rebuilt.error().message;
  EXPECT_EQ(found, "4");
  models_ = std::move(*rebuilt);
  EXPECT_EQ(models_->applied_position(), 0u);
  EXPECT_FALSE(models_->usage(org, inv));
  start_projector();
  catch_up();
  EXPECT_EQ(to_json(*models_->usage(org, inv)), usage_before);

  // The wiped folder now carries the current format: a plain open accepts it.
  projector_.reset();
  models_.reset();
  open_models();
  EXPECT_EQ(to_json(*models_->usage(org, inv)), usage_before);
}

// What a row of record format 6 (main before the binary personal data) kept of its
// event: id, type, schema version, position, then 1 and the personal_data block's text.
// The test writes such rows itself, as format 6 did.
std::string format6_event(const eventstore::recorded_event& e) {
  record_writer w;
  w.id(e.event_id);
  w.str(e.type);
  w.u64(e.schema_version);
  w.u64(e.position);
  w.u64(1);
  const auto at = e.data.find("\"personal_data\":");
  EXPECT_NE(at, std::string::npos);
  const auto block_at = at + std::string_view("\"personal_data\":").size();
  const auto end =
      e.data.compare(block_at, 4, "null") == 0 ? block_at + 4 : e.data.find('}', block_at) + 1;
  w.str(std::string_view(e.data).substr(block_at, end - block_at));
  return w.take();
}

// A folder of record format 6, its rows as that format wrote them (the sealed block as
// JSON text, H rows with their position), is never read as format 7: a plain open refuses
// it, an open that may rebuild wipes it, and the rebuilt read models answer every query
// built from rows (acceptance list as JSON and CSV, rejections, leads, learner history,
// a forgotten learner) exactly as before.
TEST_F(read_models_test, a_folder_of_format_6_is_rebuilt_from_the_log_with_the_same_answers) {
  const uuid inv = id(100);
  create_lead_form_invite(org, inv, "Format six", 2);
  const auto ada = claim(inv, "ada@example.com", 1, "Ada", "Lovelace", {{"company", "Analytical"}});
  const auto eve = claim(inv, "eve@example.com", 2, "Eve", "Smith", {{"company", "=1+1"}});
  claim(inv, "bob@example.com", 3, "Bob", "Builder", {{"company", "Bob & Co"}});  // full
  play(ada.claim_->claim_id_, ada.claim_->learner_id_, "k8s");
  catch_up();
  forget(eve.claim_->learner_id_);
  catch_up();
  auto answers = [&] {
    nlohmann::json j;
    const auto rows = *models_->acceptance_list(org, inv);
    j["claims"] = to_json(std::span<const acceptance_row>(rows));
    j["csv"] = acceptance_csv(rows);
    j["rejections"] = to_json(std::span<const rejection_row>(*models_->rejections(org, inv)));
    for (const auto& l : models_->leads(org)) j["leads"].push_back(to_json(l));
    for (const auto& c : {ada, eve}) {
      j["history"].push_back(to_json(*models_->learner_history(org, c.claim_->learner_id_)));
    }
    return j;
  };
  const auto before = answers();
  ASSERT_EQ(before["claims"]["claims"].size(), 2u);
  EXPECT_NE(before["csv"].get<std::string>().find("forgotten"), std::string::npos);
  EXPECT_NE(before["csv"].get<std::string>().find("Lovelace"), std::string::npos);
  EXPECT_NE(before["rejections"].dump().find("bob@example.com"), std::string::npos);
  projector_.reset();
  models_.reset();

  // The rows rewritten as format 6 wrote them.
  std::map<std::uint64_t, eventstore::recorded_event> by_position;
  for (auto& e : whole_log()) by_position[e.position] = e;
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), models_path(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    rocksdb::WriteBatch batch;
    std::map<char, int> rewritten;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const auto key = it->key().ToString();
      const auto value = it->value().ToString();
      const char kind = key[0];
      if (key.size() != 25 || (kind != 'A' && kind != 'R' && kind != 'L' && kind != 'H')) continue;
      std::uint64_t position = 0;
      for (std::size_t i = 17; i < 25; ++i)
        position = position << 8 | static_cast<std::uint8_t>(key[i]);
      std::string old;
      if (kind == 'H') {  // fact, position, the rest
        record_writer w;
        w.u64(static_cast<std::uint8_t>(value[0]));
        w.u64(position);
        old = w.take() + value.substr(1);
      } else {  // the row's fields, then its event
        const auto& e = by_position.at(position);
        const auto at = value.find(e.event_id.as_bytes());
        ASSERT_NE(at, std::string::npos);
        old = value.substr(0, at) + format6_event(e);
      }
      batch.Put(key, old);
      ++rewritten[kind];
    }
    EXPECT_EQ(rewritten['A'], 2);
    EXPECT_EQ(rewritten['R'], 1);
    EXPECT_EQ(rewritten['L'], 2);
    EXPECT_EQ(rewritten['H'], 1);  // Ada's play
    batch.Put("m:fmt", "6");
    ASSERT_TRUE(db->Write(rocksdb::WriteOptions(), &batch).ok());
  }

  auto refused = read_models::open({.path = models_path()}, *codec_);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("record format 6, expected 7"), std::string::npos)
      << refused.error().message;

  std::string found;
  read_models_options o{.path = models_path()};
  o.on_format_change = [&](std::string_view f) { found = f; };
  auto rebuilt = read_models::open(o, *codec_);
  ASSERT_TRUE(rebuilt) << rebuilt.error().message;
  EXPECT_EQ(found, "6");
  models_ = std::move(*rebuilt);
  EXPECT_EQ(models_->applied_position(), 0u);
  start_projector();
  catch_up();
  EXPECT_EQ(answers(), before);
  open_models();  // and from the files written in format 7
  EXPECT_EQ(answers(), before);
}

// Ada's and Eve's claims of a lead-form invite; with the read models stopped, Ada's A and L
// rows (the sealed block at their end) are changed by `damage` in the folder. Each query
// reading them must then fail, naming its row, the way out and `why` (when not empty).
class damaged_rows_test : public read_models_test {
 protected:
  void expect_damaged_rows_fail_their_queries(const std::function<void(std::string&)>& damage,
                                              std::string_view why) {
    const uuid inv = id(100);
    create_lead_form_invite(org, inv, "Damaged", 5);
    const auto ada =
        claim(inv, "ada@example.com", 1, "Ada", "Lovelace", {{"company", "Analytical"}});
    claim(inv, "eve@example.com", 2, "Eve", "Smith", {{"company", "Bletchley"}});
    catch_up();
    ASSERT_EQ(models_->acceptance_list(org, inv)->size(), 2u);
    ASSERT_EQ(models_->leads(org).size(), 2u);
    ASSERT_FALSE(models_->leads(org).at(0).who.forgotten);
    projector_.reset();
    models_.reset();
    {
      rocksdb::DB* raw = nullptr;
      ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), models_path(), &raw).ok());
      std::unique_ptr<rocksdb::DB> db(raw);
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
      rocksdb::WriteBatch batch;
      int damaged = 0;
      for (it->SeekToFirst(); it->Valid(); it->Next()) {
        const auto key = it->key().ToString();
        auto value = it->value().ToString();
        if (key.size() != 25 || (key[0] != 'A' && key[0] != 'L')) continue;
        if (value.find(ada.claim_->learner_id_.as_bytes()) == std::string::npos) continue;
        damage(value);
        batch.Put(key, value);
        ++damaged;
      }
      ASSERT_EQ(damaged, 2);
      ASSERT_TRUE(db->Write(rocksdb::WriteOptions(), &batch).ok());
    }
    open_models();

    auto fails_naming = [&](auto&& query, std::string_view row) {
      try {
        (void)query();
        ADD_FAILURE() << "the query answered without reading its " << row << " row";
      } catch (const unreadable_row& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("the " + std::string(row) + " row of"), std::string::npos) << what;
        EXPECT_NE(what.find("passage replay"), std::string::npos) << what;
        EXPECT_NE(what.find(why), std::string::npos) << what;
      }
    };
    fails_naming([&] { return models_->acceptance_list(org, inv); }, "A");
    fails_naming([&] { return models_->learner_history(org, ada.claim_->learner_id_); }, "A");
    fails_naming([&] { return models_->leads(org); }, "L");
  }
};

// A row a query cannot read (a damaged folder) makes the query fail, naming the row and the
// way out, instead of answering without it: an acceptance list one claim short, or a
// learner's history without the email of a claim, would read as a right answer. Here the
// rows lose their last bytes (the sealed block's tail); the message says what the sealed
// block's reader found.
TEST_F(damaged_rows_test, a_row_that_cannot_be_read_fails_its_query_instead_of_going_missing) {
  expect_damaged_rows_fail_their_queries([](std::string& v) { v.resize(v.size() - 20); },
                                         "sealed block: input ends inside its ciphertext");
}

// A sealed block that reads as one (format 7: raw subject, iv and ciphertext) but whose
// ciphertext was damaged (the last byte, its authentication tag, flipped) cannot be
// decrypted: the query fails naming the row, as for a row it cannot read, instead of showing
// its person as forgotten (a learner's details silently missing from the answer; a forgotten
// learner's key is gone, this one's is not).
TEST_F(damaged_rows_test,
       a_sealed_block_that_cannot_be_decrypted_fails_its_query_instead_of_showing_forgotten) {
  expect_damaged_rows_fail_their_queries(
      [](std::string& v) { v.back() = static_cast<char>(v.back() ^ 0x01); }, "");
}

}  // namespace
}  // namespace passage::projections
