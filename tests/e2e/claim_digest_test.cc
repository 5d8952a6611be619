// Claim notifications end to end: notify_on_claim over the API (create, edit, duplicate,
// the 422 without a contact email) and the digest mails against a real SMTP server
// (aiosmtpd) on loopback, with the node's manual clock moving the digest windows.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "consumers/state_db.h"
#include "tests/e2e/node_fixture.h"
#include "tests/support/received_mail.h"
#include "tests/support/smtp_sink.h"

namespace passage::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// A received digest, and how many claims it lists (its "- " lines).
struct digest_mail : received_mail {
  int listed() const {
    int n = 0;
    for (std::size_t at = text.find("\n- "); at != std::string::npos;
         at = text.find("\n- ", at + 1))
      ++n;
    return n;
  }
};

digest_mail parse(const std::string& raw) { return {parse_received_mail(raw)}; }

class ClaimDigestTest : public node_test {
 protected:
  void SetUp() override {
    sink_.start();
    configure_ = [this](app::server_options& o) {
      o.smtp_url = sink_.url();
      o.mail_initial_backoff = 20ms;
      o.mail_max_backoff = 200ms;
      o.mail_batch_delay = 0ms;  // no wait after each welcome mail
      o.mail_reminder_poll = 20ms;
      o.mail_claim_digest_window = 15min;
    };
    node_test::SetUp();
    make_track("k8s");
    // A staff key with a contact address, and one without.
    staff_key_ = issue_key("Prof. Staff", "Staff@Example.ORG");
    plain_key_ = issue_key("No mail", std::nullopt);
  }

  std::string issue_key(const std::string& name, std::optional<std::string> email) {
    json body{{"role", "admin"}, {"name", name}};
    if (email) body["email"] = *email;
    auto r = client_->post("/v1/api-keys", body.dump(), auth());
    EXPECT_EQ(r.status, 201u) << r.body;
    EXPECT_EQ(r.json()["email"], email ? json(domain_lower(*email)) : json()) << r.body;
    return r.json().value("key", "");
  }
  static std::string domain_lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }

  json invite_body(const std::string& title, bool notify) {
    return {{"title", title}, {"tracks", {{{"track_id", "k8s"}}}}, {"notify_on_claim", notify}};
  }

  json notifying_invite(const std::string& title = "Kubernetes 101") {
    return make_invite(invite_body(title, true), staff_key_);
  }

  void claim_as(const json& invite, int n) {
    const std::string email = "learner" + std::to_string(n) + "@example.com";
    auto r = claim(invite["code"],
                   {{"email", email}, {"first_name", "Learner"}, {"last_name", std::to_string(n)}});
    ASSERT_EQ(r.status, 201u) << r.body;
  }

  json mail_stats() { return client_->get("/v1/system").json()["mail"]; }
  // Waits until the mailer has batched `n` claims since it started: after that, what is in
  // the inbox is all that is due at the current clock. Fails the test after 60 s.
  void wait_batched(int n) {
    ASSERT_TRUE(wait_until([&] { return mail_stats()["digest_claims"].get<int>() >= n; }))
        << mail_stats().dump() << ", want digest_claims " << n;
  }
  void wait_digests(int n) {
    ASSERT_TRUE(wait_until([&] { return mail_stats()["digests_sent"].get<int>() >= n; }))
        << mail_stats().dump() << ", want digests_sent " << n;
  }
  // The digests received (the claims' new accounts also get welcome mails: left out).
  std::vector<digest_mail> inbox() {
    std::vector<digest_mail> out;
    for (const auto& raw : sink_.messages()) {
      auto m = parse(raw);
      if (!m.header("Subject").starts_with("Welcome")) out.push_back(std::move(m));
    }
    return out;
  }
  // The digests' outcome events in the log (a welcome mail's names its learner).
  int logged_digest_outcomes() {
    auto r = client_->get("/v1/events?type=EmailSent&limit=1000", auth());
    EXPECT_EQ(r.status, 200u) << r.body;
    int n = 0;
    const json body = r.json();
    for (const auto& e : body["events"]) {
      const auto& data = e["data"];
      if (!data.contains("learner_id") || data["learner_id"].is_null()) ++n;
    }
    return n;
  }

  smtp_sink sink_{dir_.sub("inbox")};
  std::string staff_key_, plain_key_;
};

// --- the setting over the API ------------------------------------------------------------

TEST_F(ClaimDigestTest, NotifyOnClaimIsShownEditableAndNeedsACreatorEmail) {
  auto created = notifying_invite();
  EXPECT_EQ(created["notify_on_claim"], true);
  EXPECT_FALSE(created["created_by"].is_null());
  const std::string id = created["id"];

  // The default is off, and shown.
  auto quiet = make_invite(invite_body("Quiet", false), plain_key_);
  EXPECT_EQ(quiet["notify_on_claim"], false);
  auto defaulted = make_invite({{"title", "Default"}, {"tracks", {{{"track_id", "k8s"}}}}});
  EXPECT_EQ(defaulted["notify_on_claim"], false);

  // Turning it on without a contact email on the creating key: 422 with a stable code,
  // and nothing stored.
  auto before = client_->get("/v1/events?limit=1000", auth()).json()["events"].size();
  auto refused =
      client_->post("/v1/invites", invite_body("Refused", true).dump(), auth(plain_key_));
  EXPECT_EQ(refused.status, 422u) << refused.body;
  EXPECT_EQ(refused.header("Content-Type"), "application/problem+json");
  EXPECT_EQ(refused.json()["code"], "notify_email_missing");
  EXPECT_EQ(client_->get("/v1/events?limit=1000", auth()).json()["events"].size(), before);

  const std::string quiet_id = quiet["id"];
  auto patch_on =
      client_->patch("/v1/invites/" + quiet_id, json{{"notify_on_claim", true}}.dump(), auth());
  EXPECT_EQ(patch_on.status, 422u) << patch_on.body;  // the creator (plain key) has no email
  EXPECT_EQ(patch_on.json()["code"], "notify_email_missing");
  auto dup_refused = client_->post("/v1/invites/" + id + "/duplicate", "", auth(plain_key_));
  EXPECT_EQ(dup_refused.status, 422u) << dup_refused.body;

  // Off and on again for the staff key's invite; a copy made by the staff key keeps it.
  auto off = client_->patch("/v1/invites/" + id, json{{"notify_on_claim", false}}.dump(), auth());
  EXPECT_EQ(off.status, 200u) << off.body;
  EXPECT_EQ(client_->get("/v1/invites/" + id, auth()).json()["notify_on_claim"], false);
  auto on = client_->patch("/v1/invites/" + id, json{{"notify_on_claim", true}}.dump(), auth());
  EXPECT_EQ(on.status, 200u) << on.body;
  EXPECT_EQ(client_->get("/v1/invites/" + id, auth()).json()["notify_on_claim"], true);
  auto dup = client_->post("/v1/invites/" + id + "/duplicate", "", auth(staff_key_));
  EXPECT_EQ(dup.status, 201u) << dup.body;
  EXPECT_EQ(dup.json()["notify_on_claim"], true);

  // Mistyped values and bad key emails are 400 invalid_request.
  auto mistyped =
      client_->patch("/v1/invites/" + id, json{{"notify_on_claim", "yes"}}.dump(), auth());
  EXPECT_EQ(mistyped.status, 400u) << mistyped.body;
  auto bad_email = client_->post(
      "/v1/api-keys", json{{"role", "admin"}, {"name", "x"}, {"email", "not-an-address"}}.dump(),
      auth());
  EXPECT_EQ(bad_email.status, 400u) << bad_email.body;
  EXPECT_EQ(bad_email.json()["code"], "invalid_request");

  // The key list shows the contact address.
  auto keys = client_->get("/v1/api-keys", auth()).json();
  bool found = false;
  for (const auto& k : keys["api_keys"])
    if (k["name"] == "Prof. Staff") found = k["email"] == "staff@example.org";
  EXPECT_TRUE(found) << keys.dump();
}

// --- digests ------------------------------------------------------------------------------

TEST_F(ClaimDigestTest, ClaimsWithinAWindowGoOutAsOneDigest) {
  auto invite = notifying_invite();
  claim_as(invite, 0);  // the first claim after a quiet window is told at once
  wait_digests(1);
  auto first = inbox();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].envelope_to, "staff@example.org");
  EXPECT_EQ(first[0].header("Subject"), "New claims (1): Kubernetes 101");
  EXPECT_EQ(first[0].listed(), 1);
  EXPECT_NE(first[0].text.find("Learner 0 <learner0@example.com>"), std::string::npos);

  for (int i = 1; i <= 5; ++i) claim_as(invite, i);
  wait_batched(6);
  EXPECT_EQ(inbox().size(), 1u);  // the window is open: nothing more until it closes
  clock_.advance(15min);
  wait_digests(2);
  auto mails = inbox();
  ASSERT_EQ(mails.size(), 2u);
  const auto& digest = mails[0].listed() == 5 ? mails[0] : mails[1];
  EXPECT_EQ(digest.listed(), 5) << digest.text;
  EXPECT_EQ(digest.header("Subject"), "New claims (5): Kubernetes 101");
  for (int i = 1; i <= 5; ++i) {
    EXPECT_NE(digest.text.find("learner" + std::to_string(i) + "@example.com"), std::string::npos);
  }
  EXPECT_NE(mails[0].header("Message-ID"), mails[1].header("Message-ID"));
  EXPECT_EQ(logged_digest_outcomes(), 2);
}

// The creating key's contact email changed after the invite was made
// (PATCH /v1/api-keys/{id}, ApiKeyEmailChanged): the digest goes to the new address.
TEST_F(ClaimDigestTest, DigestsGoToTheKeysChangedEmail) {
  auto invite = notifying_invite();
  std::string key_id;
  const json keys = client_->get("/v1/api-keys", auth()).json();
  for (const auto& k : keys["api_keys"])
    if (k["name"] == "Prof. Staff") key_id = k["id"];
  ASSERT_FALSE(key_id.empty()) << keys.dump();
  auto r = client_->patch("/v1/api-keys/" + key_id, R"({"email":"desk@example.org"})", auth());
  ASSERT_EQ(r.status, 200u) << r.body;
  claim_as(invite, 0);
  wait_digests(1);
  auto mails = inbox();
  ASSERT_EQ(mails.size(), 1u);
  EXPECT_EQ(mails[0].envelope_to, "desk@example.org");
}

TEST_F(ClaimDigestTest, ClaimsInTwoWindowsGiveTwoDigests) {
  auto invite = notifying_invite();
  claim_as(invite, 0);
  wait_digests(1);
  claim_as(invite, 1);
  wait_batched(2);
  clock_.advance(15min);  // window 1 closes: claim 1 goes out
  wait_digests(2);
  clock_.advance(1h);  // a quiet window later: the next claim is told at once
  claim_as(invite, 2);
  wait_digests(3);
  auto mails = inbox();
  ASSERT_EQ(mails.size(), 3u);
  int total = 0;
  for (const auto& m : mails) {
    EXPECT_EQ(m.listed(), 1) << m.text;
    total += m.listed();
  }
  EXPECT_EQ(total, 3);
}

TEST_F(ClaimDigestTest, RestartMidWindowNeitherRepeatsNorLosesClaims) {
  auto invite = notifying_invite();
  claim_as(invite, 0);
  wait_digests(1);
  claim_as(invite, 1);
  claim_as(invite, 2);
  wait_batched(3);
  restart();  // the batch (claims 1, 2) waits in the mailer's state
  claim_as(invite, 3);
  wait_batched(1);  // counters restart with the node
  EXPECT_EQ(inbox().size(), 1u);
  clock_.advance(15min);
  wait_digests(1);
  restart();  // nothing is due any more: no second copy after this restart
  clock_.advance(15min);
  claim_as(invite, 4);  // and the next window still works
  wait_digests(1);
  auto mails = inbox();
  ASSERT_EQ(mails.size(), 3u);
  std::map<std::string, int> per_learner;
  for (const auto& m : mails) {
    for (int i = 0; i <= 4; ++i) {
      if (m.text.find("learner" + std::to_string(i) + "@") != std::string::npos) {
        ++per_learner[std::to_string(i)];
      }
    }
  }
  EXPECT_EQ(per_learner,
            (std::map<std::string, int>{{"0", 1}, {"1", 1}, {"2", 1}, {"3", 1}, {"4", 1}}));
  EXPECT_EQ(logged_digest_outcomes(), 3);
}

// A claim joins its batch in a write that carries the checkpoint from before a pending run
// of welcome mails (the claim's own new account brings one), so a node killed after the
// claim's digest went out, and before the run was ledgered, reads the claim again on
// restart. That state is made here by putting such a checkpoint into the stopped node's
// mailer state: the claim is reported in one digest only.
TEST_F(ClaimDigestTest, AClaimReadAgainAfterItsDigestWentOutIsNotReportedTwice) {
  auto invite = notifying_invite();
  claim_as(invite, 0);
  wait_digests(1);
  wait_mails_sent(1);  // her welcome mail: the mailer is past the claim
  auto claims = client_->get("/v1/events?type=InviteClaimed", auth()).json();
  ASSERT_EQ(claims["events"].size(), 1u) << claims.dump();
  const auto at = claims["events"][0]["position"].get<std::uint64_t>();

  stop();
  {
    std::unique_ptr<rocksdb::DB> db;
    ASSERT_TRUE(consumers::open_state_db(dir_.sub("data") + "/mailer", db).ok());
    std::string cp(8, '\0');
    for (int i = 7, p = 0; i >= 0; --i, p += 8)
      cp[static_cast<std::size_t>(i)] = static_cast<char>((at - 1) >> p);
    rocksdb::WriteOptions w;
    w.sync = true;
    ASSERT_TRUE(db->Put(w, "m:cp", cp).ok());
  }
  start();
  claim_as(invite, 1);
  wait_batched(1);  // claim 1 is batched, so claim 0 (before it) was read again
  clock_.advance(15min);
  wait_digests(1);
  auto mails = inbox();
  ASSERT_EQ(mails.size(), 2u);
  std::map<int, int> per_learner;
  for (const auto& m : mails) {
    for (int i = 0; i <= 1; ++i)
      if (m.text.find("learner" + std::to_string(i) + "@") != std::string::npos) ++per_learner[i];
  }
  EXPECT_EQ(per_learner, (std::map<int, int>{{0, 1}, {1, 1}}));
  EXPECT_EQ(mail_stats()["digest_claims"], 1);
  EXPECT_EQ(logged_digest_outcomes(), 2);
}

// The mailer ran with SMTP, which keeps no copies, so it read no registrations (`s:` has no
// learner of that time); then without SMTP (.eml files). A digest kept since lists a
// learner registered in the SMTP days. Forgetting her deletes it, also when the node died
// before the purge and LearnerForgotten is replayed (the mailer state and outbox of before
// the forget put back): the replay finds her address, read from the log at the switch.
TEST_F(ClaimDigestTest, AfterASwitchFromSmtpToEmlAReplayedForgetFindsEarlierLearners) {
  auto quiet = make_invite(invite_body("Quiet", false), staff_key_);
  auto zelda = claim(quiet["code"], {{"email", "zelda.q@example.com"}, {"first_name", "Zelda"}});
  ASSERT_EQ(zelda.status, 201u) << zelda.body;
  const std::string learner = zelda.json()["learner_id"];
  wait_mails_sent(1);  // her welcome mail, over SMTP

  auto stop_node = [&] { stop(); };
  stop_node();
  configure_ = [](app::server_options& o) {
    o.mail_reminder_poll = 20ms;
    o.mail_claim_digest_window = 15min;
  };
  start();  // no SMTP: .eml files from now on
  auto invite = notifying_invite();
  ASSERT_EQ(claim(invite["code"], {{"email", "zelda.q@example.com"}}).status, 201u);
  wait_digests(1);

  const std::string data = dir_.sub("data");
  auto naming_her = [&] {
    int n = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(data + "/outbox", ec)) {
      std::ifstream in(e.path(), std::ios::binary);
      auto m = parse_received_mail(
          std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
      n += m.text.find("zelda.q@") != std::string::npos ? 1 : 0;
    }
    return n;
  };
  auto copy_folder = [](const std::string& from, const std::string& to) {
    std::filesystem::remove_all(to);
    std::filesystem::copy(from, to, std::filesystem::copy_options::recursive);
  };
  ASSERT_EQ(naming_her(), 1) << "the digest listing her";
  stop_node();
  copy_folder(data + "/mailer", dir_.sub("mailer-before"));
  copy_folder(data + "/outbox", dir_.sub("outbox-before"));
  start();
  ASSERT_EQ(client_->post("/v1/learners/" + learner + "/forget", "", auth()).status, 200u);
  EXPECT_EQ(naming_her(), 0);
  auto forgotten = client_->get("/v1/events?type=LearnerForgotten", auth()).json();
  ASSERT_EQ(forgotten["events"].size(), 1u) << forgotten.dump();
  const auto at = forgotten["events"][0]["position"].get<std::uint64_t>();

  stop_node();
  copy_folder(dir_.sub("mailer-before"), data + "/mailer");
  copy_folder(dir_.sub("outbox-before"), data + "/outbox");
  ASSERT_EQ(naming_her(), 1) << "the purge undone, as if it never ran";
  start();
  ASSERT_TRUE(wait_until([&] { return mail_stats()["checkpoint"].get<std::uint64_t>() >= at; }))
      << mail_stats().dump() << ", want checkpoint " << at;
  EXPECT_EQ(naming_her(), 0);
}

// The mailer's state folder is lost: it reads the log from the start again, and the
// digests already recorded there keep their claims from being reported a second time.
TEST_F(ClaimDigestTest, LostMailerStateReportsNoClaimTwice) {
  auto invite = notifying_invite();
  claim_as(invite, 0);
  wait_digests(1);
  claim_as(invite, 1);
  wait_batched(2);
  clock_.advance(15min);
  wait_digests(2);

  client_.reset();
  node_.reset();
  std::filesystem::remove_all(dir_.sub("data") + "/mailer");
  start();
  clock_.advance(15min);
  claim_as(invite, 2);
  wait_digests(1);
  auto mails = inbox();
  ASSERT_EQ(mails.size(), 3u);
  std::map<int, int> per_learner;
  for (const auto& m : mails) {
    EXPECT_EQ(m.listed(), 1) << m.text;
    for (int i = 0; i <= 2; ++i)
      if (m.text.find("learner" + std::to_string(i) + "@") != std::string::npos) ++per_learner[i];
  }
  EXPECT_EQ(per_learner, (std::map<int, int>{{0, 1}, {1, 1}, {2, 1}}));
  EXPECT_EQ(mail_stats()["digest_claims"], 1);
}

TEST_F(ClaimDigestTest, OptedOutInvitesSendNoDigest) {
  auto quiet = make_invite(invite_body("Quiet", false), staff_key_);
  claim_as(quiet, 0);
  // Turned off while claims wait: the batch is dropped.
  auto invite = notifying_invite();
  claim_as(invite, 1);
  wait_digests(1);
  claim_as(invite, 2);
  wait_batched(2);
  auto off = client_->patch("/v1/invites/" + invite["id"].get<std::string>(),
                            json{{"notify_on_claim", false}}.dump(), auth());
  ASSERT_EQ(off.status, 200u) << off.body;
  claim_as(invite, 3);  // after the edit: not batched at all
  clock_.advance(1h);
  ASSERT_TRUE(wait_until([&] { return mail_stats()["digests_skipped"].get<int>() >= 1; }))
      << mail_stats().dump();
  auto other = notifying_invite("Other");
  claim_as(other, 4);
  wait_digests(2);
  auto mails = inbox();
  ASSERT_EQ(mails.size(), 2u);
  for (const auto& m : mails) {
    EXPECT_EQ(m.text.find("learner0@"), std::string::npos);
    EXPECT_EQ(m.text.find("learner2@"), std::string::npos);
    EXPECT_EQ(m.text.find("learner3@"), std::string::npos);
  }
  EXPECT_EQ(mail_stats()["digest_claims"], 3);  // 1, 2 and 4
}

TEST_F(ClaimDigestTest, ForgottenLearnersAreListedAsForgotten) {
  auto invite = notifying_invite();
  claim_as(invite, 0);
  wait_digests(1);
  auto r = claim(invite["code"],
                 {{"email", "gone@example.com"}, {"first_name", "Gone"}, {"last_name", "Away"}});
  ASSERT_EQ(r.status, 201u) << r.body;
  wait_batched(2);
  auto forgot = client_->post(
      "/v1/learners/" + r.json()["learner_id"].get<std::string>() + "/forget", "", auth());
  ASSERT_EQ(forgot.status / 100, 2u) << forgot.body;
  clock_.advance(15min);
  wait_digests(2);
  auto mails = inbox();
  ASSERT_EQ(mails.size(), 2u);
  const auto& digest = mails[0].text.find("learner0@") == std::string::npos ? mails[0] : mails[1];
  EXPECT_NE(digest.text.find("forgotten learner"), std::string::npos) << digest.text;
  EXPECT_EQ(digest.text.find("gone@example.com"), std::string::npos);
  EXPECT_EQ(digest.text.find("Gone"), std::string::npos);
}

TEST_F(ClaimDigestTest, HeaderInjectionThroughTheTitleIsNeutralised) {
  auto invite = notifying_invite("Welcome\r\nBcc: victim@evil.example\r\nX-Evil: 1");
  ASSERT_TRUE(invite.contains("id"));
  claim_as(invite, 0);
  wait_digests(1);
  auto mails = inbox();
  ASSERT_EQ(mails.size(), 1u);
  expect_headers_not_injected(mails[0], "staff@example.org");
}

// No SMTP server: mails are .eml files in <data>/outbox. Forgetting a learner deletes the
// files that name them (SPEC §6: no copy of their personal data stays behind).
class EmlForgetTest : public node_test {
 protected:
  void SetUp() override {
    configure_ = [](app::server_options& o) { o.mail_reminder_poll = 20ms; };
    node_test::SetUp();
  }
  std::string outbox() { return dir_.sub("data") + "/outbox"; }
  // Every .eml in the outbox, headers and decoded text.
  std::vector<received_mail> outbox_mails() {
    std::vector<received_mail> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(outbox(), ec)) {
      if (e.path().extension() != ".eml") continue;
      std::ifstream in(e.path(), std::ios::binary);
      out.push_back(parse_received_mail(
          std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>())));
    }
    return out;
  }
  std::vector<std::string> recipients() {
    std::vector<std::string> to;
    for (const auto& m : outbox_mails()) to.push_back(m.header("To"));
    std::sort(to.begin(), to.end());
    return to;
  }
  // A "Kubernetes 101" invite open to example.org (track k8s, registered here), with the
  // `extra` settings, created with `key`, and its invitations sent to `emails`.
  json invite_mailed_to(const std::vector<std::string>& emails, json extra = json::object(),
                        const std::string& key = {}) {
    make_track("k8s");
    json body = {{"title", "Kubernetes 101"},
                 {"tracks", {{{"track_id", "k8s"}}}},
                 {"access", "allowed"},
                 {"allowed_domains", {"example.org"}}};
    body.update(extra);
    auto invite = make_invite(body, key);
    auto r = client_->post("/v1/invites/" + invite["id"].get<std::string>() + "/send",
                           json{{"emails", emails}}.dump(), auth());
    EXPECT_EQ(r.status, 202u) << r.body;
    invite["job_id"] = r.json()["job_id"];
    return invite;
  }
  void stop_node() { stop(); }
  // Copies (or restores) a folder of the stopped node whole.
  static void copy_folder(const std::string& from, const std::string& to) {
    std::filesystem::remove_all(to);
    std::filesystem::copy(from, to, std::filesystem::copy_options::recursive);
  }
  // Ada (first name Adalind) claims an invite whose invitations went to Ada and Bob; her
  // claim's answer, once both invitations and her welcome mail are in the outbox.
  json ada_claims_an_invite_mailed_to_her_and_bob() {
    auto invite = invite_mailed_to({"ada@example.org", "bob@example.org"});
    auto c = claim(invite["code"], {{"email", "ada@example.org"}, {"first_name", "Adalind"}});
    EXPECT_EQ(c.status, 201u) << c.body;
    wait_mails_sent(3);
    EXPECT_EQ(recipients(),
              (std::vector<std::string>{"ada@example.org", "ada@example.org", "bob@example.org"}));
    return c.json();
  }
  // Forgets the learner; the position of their LearnerForgotten.
  std::uint64_t forget(const std::string& learner_id) {
    EXPECT_EQ(client_->post("/v1/learners/" + learner_id + "/forget", "", auth()).status, 200u);
    auto forgotten = client_->get("/v1/events?type=LearnerForgotten", auth()).json();
    EXPECT_EQ(forgotten["events"].size(), 1u) << forgotten.dump();
    return forgotten["events"].empty() ? 0
                                       : forgotten["events"][0]["position"].get<std::uint64_t>();
  }
  void wait_mailer_checkpoint(std::uint64_t at) {
    ASSERT_TRUE(wait_until([&] {
      return client_->get("/v1/system").json()["mail"]["checkpoint"].get<std::uint64_t>() >= at;
    })) << "mailer checkpoint short of "
        << at;
  }
};

TEST_F(EmlForgetTest, ForgettingALearnerDeletesTheirEmlFiles) {
  auto invite = invite_mailed_to({"ada@example.org", "bob@example.org"});
  const std::string job = invite["job_id"];
  ASSERT_TRUE(wait_until([&] {
    return client_->get("/v1/jobs/" + job, auth()).json()["status"] != "started";
  })) << "job "
      << job << " still started";
  ASSERT_EQ(recipients(), (std::vector<std::string>{"ada@example.org", "bob@example.org"}));

  auto c = claim(invite["code"], {{"email", "Ada@Example.org"}});
  ASSERT_EQ(c.status, 201u) << c.body;
  auto forgot = client_->post(
      "/v1/learners/" + c.json()["learner_id"].get<std::string>() + "/forget", "", auth());
  ASSERT_EQ(forgot.status / 100, 2u) << forgot.body;
  EXPECT_EQ(recipients(), (std::vector<std::string>{"bob@example.org"}));
}

// The command side forgot Ada (keys destroyed, LearnerForgotten in the log), then the node
// died before the mailer purged the outbox: the restart, reading LearnerForgotten, purges
// it. Simulated by putting back the outbox and the mailer's state as they were before.
TEST_F(EmlForgetTest, ACrashBetweenForgetAndPurgeIsMadeGoodOnRestart) {
  const auto ada = ada_claims_an_invite_mailed_to_her_and_bob();
  ASSERT_FALSE(HasFailure());

  stop_node();
  const std::string data = dir_.sub("data");
  copy_folder(data + "/mailer", dir_.sub("mailer-before"));
  copy_folder(outbox(), dir_.sub("outbox-before"));
  start();
  const auto at = forget(ada["learner_id"]);
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(recipients(), (std::vector<std::string>{"bob@example.org"}));

  stop_node();
  copy_folder(dir_.sub("mailer-before"), data + "/mailer");
  copy_folder(dir_.sub("outbox-before"), outbox());
  ASSERT_EQ(recipients().size(), 3u) << "the purge undone, as if it never ran";
  start();
  wait_mailer_checkpoint(at);
  EXPECT_EQ(recipients(), (std::vector<std::string>{"bob@example.org"}));
}

// Index entries whose .eml is gone or stuck. Ada's invitation was deleted by hand: the
// forget neither fails nor stalls on it and drops its entry. Her welcome mail's file cannot
// be deleted (a folder in its place here): its entry stays, and once the file can go, the
// LearnerForgotten read again after a crash (the checkpoint put back) deletes it.
TEST_F(EmlForgetTest, AMissingEmlIsPassedOverAndAStuckOneIsPurgedLater) {
  auto invite = invite_mailed_to({"ada@example.org", "bob@example.org", "cy@example.org"});
  auto c = claim(invite["code"], {{"email", "ada@example.org"}, {"first_name", "Adalind"}});
  ASSERT_EQ(c.status, 201u) << c.body;
  wait_mails_sent(4);  // three invitations, Ada's welcome mail
  std::string invitation_file, welcome_file;
  for (const auto& e : std::filesystem::directory_iterator(outbox())) {
    std::ifstream in(e.path(), std::ios::binary);
    auto m = parse_received_mail(
        std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
    if (m.header("To") != "ada@example.org") continue;
    (m.header("Subject").starts_with("Welcome") ? welcome_file : invitation_file) = e.path();
  }
  ASSERT_FALSE(invitation_file.empty());
  ASSERT_FALSE(welcome_file.empty());
  std::filesystem::remove(invitation_file);
  std::filesystem::remove(welcome_file);
  std::filesystem::create_directories(welcome_file + "/stuck");

  const std::string data = dir_.sub("data");
  auto index_entries = [&] {
    std::unique_ptr<rocksdb::DB> db;
    EXPECT_TRUE(consumers::open_state_db(data + "/mailer", db).ok());
    int n = 0;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek("a:"); it->Valid() && it->key().starts_with("a:"); it->Next()) ++n;
    return n;
  };
  const auto at = forget(c.json()["learner_id"]);
  ASSERT_FALSE(HasFailure());
  wait_mailer_checkpoint(at);
  stop_node();
  EXPECT_TRUE(std::filesystem::is_directory(welcome_file));
  EXPECT_EQ(index_entries(), 3) << "bob's, cy's and the stuck copy's; the missing one's went";

  // The file can go now; the node died before the mailer's checkpoint passed the forget.
  std::filesystem::remove_all(welcome_file);
  std::ofstream(welcome_file) << "Subject: Welcome\r\n\r\nAdalind";
  {
    std::unique_ptr<rocksdb::DB> db;
    ASSERT_TRUE(consumers::open_state_db(data + "/mailer", db).ok());
    std::string cp(8, '\0');
    for (int i = 7, p = 0; i >= 0; --i, p += 8)
      cp[static_cast<std::size_t>(i)] = static_cast<char>((at - 1) >> p);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "m:cp", cp).ok());
  }
  start();
  wait_mailer_checkpoint(at);
  EXPECT_FALSE(std::filesystem::exists(welcome_file));
  EXPECT_EQ(recipients(), (std::vector<std::string>{"bob@example.org", "cy@example.org"}));
  stop_node();
  EXPECT_EQ(index_entries(), 2);
}

// A copy that cannot be deleted when Ada is forgotten (a folder in its place here) is
// deleted by the mailer's next poll once it can be, without a restart or another forget;
// then the note of the unfinished purge and Ada's mapping to her address go too.
TEST_F(EmlForgetTest, AStuckEmlIsDeletedByALaterPollOnceItCanBe) {
  const auto ada = ada_claims_an_invite_mailed_to_her_and_bob();
  ASSERT_FALSE(HasFailure());
  std::vector<std::string> adas;
  for (const auto& e : std::filesystem::directory_iterator(outbox())) {
    std::ifstream in(e.path(), std::ios::binary);
    auto m = parse_received_mail(
        std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
    if (m.header("To") == "ada@example.org") adas.push_back(e.path());
  }
  ASSERT_EQ(adas.size(), 2u);
  std::filesystem::remove(adas[0]);
  std::filesystem::create_directories(adas[0] + "/stuck");

  wait_mailer_checkpoint(forget(ada["learner_id"]));
  ASSERT_FALSE(HasFailure());
  EXPECT_FALSE(std::filesystem::exists(adas[1]));
  ASSERT_TRUE(std::filesystem::is_directory(adas[0]));
  std::this_thread::sleep_for(100ms);  // a few polls: it stays stuck, nothing breaks
  ASSERT_TRUE(std::filesystem::is_directory(adas[0]));

  // Deletable from now on, and never missing meanwhile: a poll that found the name gone
  // would count the copy as deleted, and a file written there afterwards would stay.
  std::filesystem::remove(adas[0] + "/stuck");
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::filesystem::exists(adas[0]) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(std::filesystem::exists(adas[0]));
  EXPECT_EQ(recipients(), (std::vector<std::string>{"bob@example.org"}));

  stop_node();
  std::unique_ptr<rocksdb::DB> db;
  ASSERT_TRUE(consumers::open_state_db(dir_.sub("data") + "/mailer", db).ok());
  std::vector<std::string> left;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const auto k = it->key().ToString();
    if (k.starts_with("p:") || k.starts_with("s:") || k.starts_with("a:")) left.push_back(k);
  }
  EXPECT_EQ(left.size(), 1u) << "only Bob's invitation is indexed";
}

// The node ran without SMTP (Ada's invitation and welcome mail kept as .eml), then was
// restarted with an SMTP server configured: forgetting Ada still deletes her copies, though
// the SMTP transport keeps none of its own, and no file of the outbox names her.
TEST_F(EmlForgetTest, CopiesKeptBeforeASwitchToSmtpAreDeletedByAForget) {
  const auto ada = ada_claims_an_invite_mailed_to_her_and_bob();
  ASSERT_FALSE(HasFailure());

  stop_node();
  smtp_sink sink(dir_.sub("inbox"));
  sink.start();
  configure_ = [url = sink.url()](app::server_options& o) { o.smtp_url = url; };
  start();
  ASSERT_EQ(client_->get("/v1/system").json()["mail"]["transport"], sink.url())
      << client_->get("/v1/system").body;
  forget(ada["learner_id"]);
  EXPECT_EQ(recipients(), (std::vector<std::string>{"bob@example.org"}));
  stop_node();
  for (const auto& e : std::filesystem::recursive_directory_iterator(outbox())) {
    std::ifstream in(e.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (e.path().extension() == ".eml") bytes += parse_received_mail(bytes).text;
    for (const char* secret : {"ada@example.org", "Adalind"})
      EXPECT_EQ(bytes.find(secret), std::string::npos) << secret << " in " << e.path();
  }
  EXPECT_EQ(sink.count(), 0u) << "nothing was sent again";
}

// A digest in the outbox lists a claimant who is then forgotten: the digest's copy is
// deleted whole (the one listing only others stays), and no file of the data folder holds
// her name or address, decoded bodies included.
TEST_F(EmlForgetTest, ADigestNamingAForgottenClaimantIsDropped) {
  make_track("k8s");
  auto key = client_->post(
      "/v1/api-keys",
      json{{"role", "admin"}, {"name", "Staff"}, {"email", "staff@example.org"}}.dump(), auth());
  ASSERT_EQ(key.status, 201u) << key.body;
  auto invite = make_invite(
      {{"title", "Kubernetes 101"}, {"tracks", {{{"track_id", "k8s"}}}}, {"notify_on_claim", true}},
      key.json()["key"]);
  auto digests = [&] {
    return client_->get("/v1/system").json()["mail"]["digests_sent"].get<int>();
  };
  auto zelda = claim(invite["code"], {{"email", "zelda.quartermaine@example.org"},
                                      {"first_name", "Zeldarine"},
                                      {"last_name", "Quartermaine"}});
  ASSERT_EQ(zelda.status, 201u) << zelda.body;
  ASSERT_TRUE(wait_until([&] { return digests() >= 1; })) << "no digest";
  ASSERT_EQ(claim(invite["code"], {{"email", "otto@example.org"}, {"first_name", "Otto"}}).status,
            201u);
  ASSERT_TRUE(wait_until([&] {
    return client_->get("/v1/system").json()["mail"]["digest_claims"].get<int>() >= 2;
  })) << "fewer than 2 claims batched";
  clock_.advance(15min);
  ASSERT_TRUE(wait_until([&] { return digests() >= 2; })) << "fewer than 2 digests";
  auto staff_mails = [&] {
    std::vector<std::string> texts;
    for (const auto& m : outbox_mails())
      if (m.header("To") == "staff@example.org") texts.push_back(m.text);
    return texts;
  };
  auto before = staff_mails();
  ASSERT_EQ(before.size(), 2u);
  EXPECT_NE((before[0] + before[1]).find("Zeldarine Quartermaine <zelda.quartermaine@"),
            std::string::npos);

  ASSERT_EQ(client_
                ->post("/v1/learners/" + zelda.json()["learner_id"].get<std::string>() + "/forget",
                       "", auth())
                .status,
            200u);
  auto after = staff_mails();
  ASSERT_EQ(after.size(), 1u) << "the digest listing her is dropped";
  EXPECT_NE(after[0].find("Otto <otto@example.org>"), std::string::npos) << after[0];
  stop_node();
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir_.sub("data"))) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (e.path().extension() == ".eml") bytes += parse_received_mail(bytes).text;
    for (const char* secret : {"zelda.quartermaine", "Zeldarine", "Quartermaine"}) {
      EXPECT_EQ(bytes.find(secret), std::string::npos) << secret << " in " << e.path();
    }
  }
}

// A data folder of the build before the outbox index by address: the outbox holds an
// invitation to Ada (sent before she was a learner), her welcome mail and a digest listing
// her; the mailer's state has `o:<learner id><message id>` for her welcome mail (what that
// build indexed) and no `a:`, `s:` or `m:format`. Made here from a run of this build by
// putting its state into that shape. The first start indexes the outbox once (a second
// does not); forgetting Ada then deletes all three, also when the node died before the
// purge and LearnerForgotten is replayed, and no file of the data folder names her.
TEST_F(EmlForgetTest, AnOutboxOfTheBuildBeforeTheIndexIsIndexedOnceOnStart) {
  auto key = client_->post(
      "/v1/api-keys",
      json{{"role", "admin"}, {"name", "Staff"}, {"email", "staff@example.org"}}.dump(), auth());
  ASSERT_EQ(key.status, 201u) << key.body;
  auto invite = invite_mailed_to({"ada.lovelacey@example.org", "bob@example.org"},
                                 {{"notify_on_claim", true}}, key.json()["key"]);
  wait_mails_sent(2);
  auto c = claim(invite["code"], {{"email", "ada.lovelacey@example.org"},
                                  {"first_name", "Adalind"},
                                  {"last_name", "Lovelacey"}});
  ASSERT_EQ(c.status, 201u) << c.body;
  const std::string learner = c.json()["learner_id"];
  wait_mails_sent(3);  // + her welcome mail
  ASSERT_TRUE(wait_until([&] {
    return client_->get("/v1/system").json()["mail"]["digests_sent"].get<int>() >= 1;
  })) << "no digest sent";
  ASSERT_EQ(recipients(),
            (std::vector<std::string>{"ada.lovelacey@example.org", "ada.lovelacey@example.org",
                                      "bob@example.org", "staff@example.org"}));
  stop_node();

  // The state as the build before wrote it.
  const std::string data = dir_.sub("data");
  const std::string pending_digest = "o:" + std::string(uuid::random().as_bytes());
  {
    std::unique_ptr<rocksdb::DB> db;
    ASSERT_TRUE(consumers::open_state_db(data + "/mailer", db).ok());
    rocksdb::WriteBatch b;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const auto k = it->key().ToStringView();
      if (k.starts_with("a:") || k.starts_with("s:") || k == "m:format") b.Delete(it->key());
    }
    const auto learner_id = uuid::parse(learner);
    ASSERT_TRUE(learner_id.has_value());
    for (const auto& e : std::filesystem::directory_iterator(outbox())) {
      std::ifstream in(e.path(), std::ios::binary);
      auto m = parse_received_mail(
          std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
      if (!m.header("Subject").starts_with("Welcome")) continue;
      b.Put("o:" + std::string(learner_id->as_bytes()) + m.header("Message-ID"), "");
    }
    // A claim digest's outcome still to append has an `o:` key too (no JSON here, so the
    // digest code passes over it): the upgrade keeps it.
    b.Put(pending_digest, "not json");
    ASSERT_TRUE(db->Write(rocksdb::WriteOptions(), &b).ok());
  }
  auto upgraded = [&] {
    return client_->get("/v1/system").json()["mail"]["outbox_upgraded"].get<int>();
  };
  start();
  EXPECT_EQ(upgraded(), 4) << "every copy indexed once";
  stop_node();
  copy_folder(data + "/mailer", dir_.sub("mailer-before"));
  copy_folder(outbox(), dir_.sub("outbox-before"));
  start();
  EXPECT_EQ(upgraded(), 0) << "the second start does not index again";

  const auto at = forget(learner);
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(recipients(), (std::vector<std::string>{"bob@example.org"}));

  // The node died before the purge: the replayed LearnerForgotten finds her mails through
  // the address the upgrade learnt from her registration.
  stop_node();
  copy_folder(dir_.sub("mailer-before"), data + "/mailer");
  copy_folder(dir_.sub("outbox-before"), outbox());
  ASSERT_EQ(recipients().size(), 4u);
  start();
  wait_mailer_checkpoint(at);
  EXPECT_EQ(recipients(), (std::vector<std::string>{"bob@example.org"}));
  stop_node();

  {
    std::unique_ptr<rocksdb::DB> db;
    ASSERT_TRUE(consumers::open_state_db(data + "/mailer", db).ok());
    std::string format;
    EXPECT_TRUE(db->Get(rocksdb::ReadOptions(), "m:format", &format).ok());
    EXPECT_EQ(format, "2");
    std::vector<std::string> old_keys;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek("o:"); it->Valid() && it->key().starts_with("o:"); it->Next())
      old_keys.push_back(it->key().ToString());
    EXPECT_EQ(old_keys, std::vector<std::string>{pending_digest})
        << "the old index is dropped, the digest's pending outcome kept";
  }
  for (const auto& e : std::filesystem::recursive_directory_iterator(data)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (e.path().extension() == ".eml") bytes += parse_received_mail(bytes).text;
    for (const char* secret : {"ada.lovelacey", "Adalind", "Lovelacey"}) {
      EXPECT_EQ(bytes.find(secret), std::string::npos) << secret << " in " << e.path();
    }
  }
}

}  // namespace
}  // namespace passage::testing
