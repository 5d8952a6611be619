// Private invitations end to end: a node in-process, a real SMTP server (aiosmtpd) as a
// child process on loopback. Bulk sends, personal links, resend versus new, the SMTP
// server killed mid-job, header injection, .eml fallback, forgotten recipients; welcome
// mails of new accounts with their one-time set-password link, and logging in.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "consumers/mailer.h"
#include "consumers/state_db.h"
#include "tests/e2e/node_fixture.h"
#include "tests/support/received_mail.h"
#include "tests/support/smtp_sink.h"

namespace passage::testing {
namespace {

// The events of a job's stream once it holds at least `n` (or after 60 s): a mail's outcome
// event is appended after its ledger entry (which the job's counters show) and its
// delivery, by the mailer's thread, which runs at low priority.
nlohmann::json job_events(http_client& client, const http_client::headers& auth,
                          const std::string& job, std::size_t n) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    auto r = client.get("/v1/streams/job-" + job, auth);
    if (r.status == 200u) {
      auto events = r.json()["events"];
      if (events.size() >= n || std::chrono::steady_clock::now() > give_up) return events;
    } else if (std::chrono::steady_clock::now() > give_up) {
      return nlohmann::json::array();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

using nlohmann::json;
using namespace std::chrono_literals;

// One received mail, and the personal link token in its text.
struct received : received_mail {
  std::string token() const {
    std::smatch m;
    static const std::regex re("invitation=(pl1\\.[A-Za-z0-9_-]+)");
    return std::regex_search(text, m, re) ? m[1].str() : std::string();
  }
};

received parse_mail(const std::string& raw) { return {parse_received_mail(raw)}; }

class MailTest : public node_test {
 protected:
  void SetUp() override {
    sink_.start();
    configure_ = [this](app::server_options& o) {
      o.smtp_url = smtp_url_.empty() ? sink_.url() : smtp_url_;
      o.mail_initial_backoff = 20ms;
      o.mail_max_backoff = 200ms;
      o.mail_batch_delay = 0ms;  // no wait after each welcome mail
      o.mail_max_attempts = max_attempts_;
      o.mail_reminder_poll = 20ms;
      o.public_url = "https://learn.example.com/";
    };
    node_test::SetUp();
    make_track("k8s");
  }

  json private_invite(const std::string& title = "Kubernetes 101") {
    return make_invite({{"title", title},
                        {"public_description", "Hands-on <b>cluster</b> basics"},
                        {"tracks", {{{"track_id", "k8s"}}}},
                        {"access", "allowed"},
                        {"allowed_domains", {"staff.example.org"}}});
  }

  std::string send(const std::string& invite_id, const std::vector<std::string>& emails,
                   const std::string& on_existing = "resend") {
    auto r = client_->post("/v1/invites/" + invite_id + "/send",
                           json{{"emails", emails}, {"on_existing", on_existing}}.dump(), auth());
    EXPECT_EQ(r.status, 202u) << r.body;
    return r.json().value("job_id", "");
  }

  // Polls the job until every address was handled (no timing asserted: the ctest timeout
  // bounds a hang).
  // The job once it is no longer "started"; fails the test after 5 minutes (a bound on a
  // hang only: the largest job here sends 400 mails).
  json wait_job(const std::string& job_id) {
    json j;
    const bool done = wait_until(
        [&] {
          auto r = client_->get("/v1/jobs/" + job_id, auth());
          EXPECT_EQ(r.status, 200u) << r.body;
          j = r.json();
          return r.status != 200u || j["status"] != "started";
        },
        std::chrono::minutes(5));
    EXPECT_TRUE(done) << "job " << job_id << " still started: " << j.dump();
    return j;
  }

  std::vector<received> inbox() {
    std::vector<received> out;
    for (const auto& raw : sink_.messages()) out.push_back(parse_mail(raw));
    return out;
  }

  http_reply claim_link(const std::string& token, json body = json::object()) {
    return client_->post("/v1/public/invitations/" + token + "/claims", body.dump());
  }

  std::string email_of_claim(const std::string& invite_id, const std::string& claim_id) {
    auto r = client_->get("/v1/invites/" + invite_id + "/claims", auth());
    auto body = r.json();
    for (const auto& row : body["claims"])
      if (row.value("claim_id", "") == claim_id) return row.value("email", "");
    return {};
  }

  smtp_sink sink_{dir_.sub("inbox")};
  std::string smtp_url_;
  int max_attempts_ = 1000;
};

TEST_F(MailTest, BulkSendOfAThousandGivesAThousandDistinctPersonalLinks) {
  auto invite = private_invite();
  const std::string id = invite["id"];
  std::vector<std::string> emails;
  for (int i = 0; i < 1000; ++i) emails.push_back("learner" + std::to_string(i) + "@example.com");
  auto job = wait_job(send(id, emails));
  EXPECT_EQ(job["status"], "complete") << job.dump();
  EXPECT_EQ(job["total"], 1000);
  EXPECT_EQ(job["processed"], 1000);
  EXPECT_EQ(job["failed"], 0);

  auto mails = inbox();
  ASSERT_EQ(mails.size(), 1000u);
  std::map<std::string, std::string> token_of;  // address -> token
  std::set<std::string> tokens, message_ids;
  for (const auto& m : mails) {
    EXPECT_EQ(m.header("Subject"), "You are invited: Kubernetes 101");
    EXPECT_NE(m.text.find("Hands-on <b>cluster</b> basics"), std::string::npos);
    EXPECT_NE(m.text.find("https://learn.example.com/i/" + invite["code"].get<std::string>() +
                          "?invitation=pl1."),
              std::string::npos);
    token_of[m.envelope_to] = m.token();
    tokens.insert(m.token());
    message_ids.insert(m.header("Message-ID"));
  }
  EXPECT_EQ(token_of.size(), 1000u);  // every address got mail
  EXPECT_EQ(tokens.size(), 1000u);    // with its own link
  EXPECT_EQ(message_ids.size(), 1000u);

  // The link in the mail opens the claim page, whose form claims through the personal
  // link, also without scripts (learner.js posts to /v1/public/invitations/{token}/claims).
  const std::string page_url =
      "/i/" + invite["code"].get<std::string>() + "?invitation=" + token_of["learner0@example.com"];
  auto page = client_->get(page_url);
  EXPECT_EQ(page.status, 200u);
  EXPECT_NE(page.body.find("action=\"" + page_url + "\""), std::string::npos);
  const http_client::headers form{{"Content-Type", "application/x-www-form-urlencoded"}};
  auto foreign = client_->post(page_url, "email=eve%40example.com", form);
  EXPECT_EQ(foreign.status, 403u) << foreign.body;
  auto posted = client_->post(page_url, "email=learner0%40example.com", form);
  EXPECT_EQ(posted.status, 201u) << posted.body;
  EXPECT_NE(posted.body.find("You have access."), std::string::npos);

  // Each link claims for its own addressee (a sample of them: each claim is an fsync).
  for (int i = 97; i < 1000; i += 97) {  // learner0 claimed through the page above
    const std::string email = "learner" + std::to_string(i) + "@example.com";
    auto r = claim_link(token_of[email]);
    ASSERT_EQ(r.status, 201u) << r.body;
    EXPECT_EQ(email_of_claim(id, r.json()["claim_id"]), email);
  }
}

// The SMTP server crashes in the middle of a transaction (at RCPT TO, after 50 accepted
// mails), then comes back: every mail arrives exactly once. A crash at a known point keeps
// the test exact; a SIGKILL could land between a message's acceptance and its "250", the
// one window no SMTP client can close (see consumers/README.md).
TEST_F(MailTest, SmtpServerDiesMidJobEveryMailDeliveredExactlyOnce) {
  sink_.kill();
  sink_.start(50);
  auto invite = private_invite();
  std::vector<std::string> emails;
  for (int i = 0; i < 300; ++i) emails.push_back("p" + std::to_string(i) + "@example.com");
  const std::string job_id = send(invite["id"], emails);
  sink_.wait_exit();
  const auto delivered_before = sink_.count();
  // The mailer meets the dead server (a failed attempt), then SMTP comes back.
  ASSERT_TRUE(wait_until([&] {
    return client_->get("/v1/system").json()["mail"]["attempts_failed"].get<std::uint64_t>() > 0;
  })) << "no failed attempt against the dead server";
  EXPECT_EQ(delivered_before, 50u);
  EXPECT_EQ(client_->get("/v1/jobs/" + job_id, auth()).json()["status"], "started");
  sink_.start();
  auto job = wait_job(job_id);
  EXPECT_EQ(job["status"], "complete") << job.dump();
  EXPECT_EQ(job["processed"], 300);

  std::map<std::string, int> per_address, per_message_id;
  for (const auto& m : inbox()) {
    ++per_address[m.envelope_to];
    ++per_message_id[m.header("Message-ID")];
  }
  EXPECT_EQ(per_address.size(), 300u);
  for (const auto& [address, n] : per_address) EXPECT_EQ(n, 1) << address;
  for (const auto& [mid, n] : per_message_id) EXPECT_EQ(n, 1) << mid;

  // One EmailSent per invitation in the job's stream, also after a restart of the node.
  restart();
  auto stream = client_->get("/v1/streams/job-" + job_id, auth()).json();
  std::size_t sent = 0;
  for (const auto& e : stream["events"]) sent += e["type"] == "EmailSent";
  EXPECT_EQ(sent, 300u);
  EXPECT_EQ(sink_.count(), 300u);
}

// /v1/system under load: each counter moves only once what it counts is in the log, so a
// reader never sees more mails sent than EmailSent events (read right after), while a job
// of 300 goes out; at the end both say 300.
TEST_F(MailTest, StatsNeverCountMoreMailsThanTheLogRecords) {
  auto invite = private_invite();
  std::vector<std::string> emails;
  for (int i = 0; i < 300; ++i) emails.push_back("c" + std::to_string(i) + "@example.com");
  const std::string job_id = send(invite["id"], emails);
  auto shown = [&] { return client_->get("/v1/system").json()["mail"]["sent"].get<std::size_t>(); };
  auto logged = [&] {
    auto r = client_->get("/v1/events?type=EmailSent&limit=10000", auth());
    EXPECT_EQ(r.status, 200u) << r.body;
    return r.json()["events"].size();
  };
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (int sample = 0;; ++sample) {
    const auto counted = shown();
    const auto in_log = logged();
    ASSERT_LE(counted, in_log) << "sample " << sample;
    if (in_log >= 300u) break;
    ASSERT_LT(std::chrono::steady_clock::now(), give_up) << in_log << " of 300 mails logged";
  }
  wait_mails_sent(300);
  EXPECT_EQ(shown(), 300u);
  EXPECT_EQ(logged(), 300u);
}

// The node stops in the middle of a job and starts again: the mailer resumes from its
// checkpoint and ledger, and no mail is sent twice.
TEST_F(MailTest, NodeRestartMidJobSendsEachMailOnce) {
  auto invite = private_invite();
  std::vector<std::string> emails;
  for (int i = 0; i < 400; ++i) emails.push_back("r" + std::to_string(i) + "@example.com");
  const std::string job_id = send(invite["id"], emails);
  ASSERT_TRUE(wait_until([&] { return sink_.count() >= 30; })) << sink_.count() << " mails";
  restart();
  EXPECT_LT(sink_.count(), 400u);
  auto job = wait_job(job_id);
  EXPECT_EQ(job["status"], "complete") << job.dump();
  std::map<std::string, int> per_address;
  for (const auto& m : inbox()) ++per_address[m.envelope_to];
  EXPECT_EQ(per_address.size(), 400u);
  for (const auto& [address, n] : per_address) EXPECT_EQ(n, 1) << address;
}

// The mailer's state folder is lost: the outcome events in the log keep every mail from
// going out again, and the job's counters are rebuilt from them.
TEST_F(MailTest, LostMailerStateSendsNothingTwice) {
  auto invite = private_invite();
  std::vector<std::string> emails;
  for (int i = 0; i < 40; ++i) emails.push_back("s" + std::to_string(i) + "@example.com");
  const std::string first = send(invite["id"], emails);
  wait_job(first);
  client_.reset();
  node_.reset();
  std::filesystem::remove_all(dir_.sub("data") + "/mailer");
  start();
  auto second = wait_job(send(invite["id"], {"late@example.com"}));
  EXPECT_EQ(second["status"], "complete");
  EXPECT_EQ(sink_.count(), 41u);
  auto job = client_->get("/v1/jobs/" + first, auth()).json();
  EXPECT_EQ(job["status"], "complete") << job.dump();
  EXPECT_EQ(job["sent"], 40);
}

TEST_F(MailTest, ResendKeepsTheLinkAndNewReplacesIt) {
  auto invite = private_invite();
  const std::string id = invite["id"];
  wait_job(send(id, {"ada@example.com"}));
  const std::string first = inbox().at(0).token();
  ASSERT_FALSE(first.empty());

  wait_job(send(id, {"Ada@Example.com"}, "resend"));
  std::set<std::string> tokens;
  for (const auto& m : inbox()) tokens.insert(m.token());
  EXPECT_EQ(tokens, std::set<std::string>{first});  // two mails, the same link

  wait_job(send(id, {"ada@example.com"}, "new"));
  tokens.clear();
  for (const auto& m : inbox()) tokens.insert(m.token());
  ASSERT_EQ(tokens.size(), 2u);
  tokens.erase(first);
  const std::string renewed = *tokens.begin();

  auto old_claim = claim_link(first);
  EXPECT_EQ(old_claim.status, 403u) << old_claim.body;
  EXPECT_EQ(old_claim.json()["code"], "not_allowed");
  auto ok = claim_link(renewed);
  ASSERT_EQ(ok.status, 201u) << ok.body;
  EXPECT_EQ(email_of_claim(id, ok.json()["claim_id"]), "ada@example.com");
}

TEST_F(MailTest, AClaimedPersonalLinkCannotBeUsedByAnotherLearner) {
  auto invite = private_invite();
  wait_job(send(invite["id"], {"ada@example.com", "bob@example.com"}));
  std::map<std::string, std::string> token_of;
  for (const auto& m : inbox()) token_of[m.envelope_to] = m.token();
  const std::string ada = token_of["ada@example.com"];

  // Someone else's email on ada's link: refused, and recorded.
  auto other = claim_link(ada, {{"email", "eve@staff.example.org"}});
  EXPECT_EQ(other.status, 403u) << other.body;

  auto claimed = claim_link(ada);
  ASSERT_EQ(claimed.status, 201u) << claimed.body;
  const std::string token = claimed.json()["learner_token"];

  // The forwarded link: anyone without ada's learner token is refused.
  EXPECT_EQ(claim_link(ada).status, 403u);
  auto bob = claim_link(token_of["bob@example.com"]).json();
  EXPECT_EQ(claim_link(ada, {{"learner_token", bob["learner_token"]}}).status, 403u);
  // Ada's own browser gets her claim back.
  auto again = claim_link(ada, {{"learner_token", token}});
  EXPECT_EQ(again.status, 200u) << again.body;
  EXPECT_EQ(again.json()["claim_id"], claimed.json()["claim_id"]);
  // A forged token is not a link.
  EXPECT_EQ(claim_link("pl1.AAAA").status, 404u);

  auto rejections =
      client_->get("/v1/invites/" + invite["id"].get<std::string>() + "/rejections", auth()).json();
  EXPECT_GE(rejections["rejections"].size(), 3u) << rejections.dump();
}

TEST_F(MailTest, HeaderInjectionInTitlesIsNeutralised) {
  // Titles are free text (only trimmed), so CR/LF reach the mail renderer.
  auto invite = private_invite("Welcome\r\nBcc: victim@evil.example\r\nX-Evil: 1");
  ASSERT_TRUE(invite.contains("id"));
  wait_job(send(invite["id"], {"ada@example.com"}));
  auto mails = inbox();
  ASSERT_EQ(mails.size(), 1u);
  expect_headers_not_injected(mails[0], "ada@example.com");
}

TEST_F(MailTest, InvalidSendsAreRefusedWithAField) {
  auto invite = private_invite();
  const std::string path = "/v1/invites/" + invite["id"].get<std::string>() + "/send";
  auto bad = client_->post(path, json{{"emails", {"ok@example.com", "nope"}}}.dump(), auth());
  EXPECT_EQ(bad.status, 400u);
  EXPECT_NE(bad.body.find("emails[1]"), std::string::npos) << bad.body;
  EXPECT_EQ(client_->post(path, json{{"emails", json::array()}}.dump(), auth()).status, 400u);
  EXPECT_EQ(
      client_->post(path, json{{"emails", {"a@example.com"}}, {"on_existing", "x"}}.dump(), auth())
          .status,
      400u);
  std::vector<std::string> many(10001, "a@example.com");
  EXPECT_EQ(client_->post(path, json{{"emails", many}}.dump(), auth()).status, 400u);
  // An invite that is not `allowed` sends no private invitations.
  auto open = make_invite({{"title", "Open"}, {"tracks", {{{"track_id", "k8s"}}}}});
  auto r = client_->post("/v1/invites/" + open["id"].get<std::string>() + "/send",
                         json{{"emails", {"a@example.com"}}}.dump(), auth());
  EXPECT_EQ(r.status, 409u) << r.body;
  EXPECT_EQ(client_->get("/v1/jobs/" + uuid::random().to_string(), auth()).status, 404u);
}

TEST_F(MailTest, AProfessorSeesTheJobsOfItsOwnInvitesOnly) {
  auto professor = [&](const std::string& name) -> std::string {
    auto r =
        client_->post("/v1/api-keys", json{{"role", "professor"}, {"name", name}}.dump(), auth());
    EXPECT_EQ(r.status, 201u) << r.body;
    return r.json().value("key", "");
  };
  const std::string prof = professor("prof"), other = professor("other");
  ASSERT_EQ(client_->post("/v1/tracks", R"({"track_id":"own","title":"Own"})", auth(prof)).status,
            201u);
  auto own = make_invite({{"title", "Own"},
                          {"tracks", {"own"}},
                          {"access", "allowed"},
                          {"allowed_domains", {"staff.example.org"}}},
                         prof);
  auto r = client_->post("/v1/invites/" + own["id"].get<std::string>() + "/send",
                         json{{"emails", {"ann@staff.example.org"}}}.dump(), auth(prof));
  ASSERT_EQ(r.status, 202u) << r.body;
  const std::string own_job = r.json()["job_id"];
  const std::string admin_job = send(private_invite()["id"], {"bob@staff.example.org"});

  EXPECT_EQ(client_->get("/v1/jobs/" + own_job, auth(prof)).status, 200u);
  EXPECT_EQ(client_->get("/v1/jobs/" + own_job, auth()).status, 200u) << "the owner sees all";
  EXPECT_EQ(client_->get("/v1/jobs/" + own_job, auth(other)).status, 404u);
  EXPECT_EQ(client_->get("/v1/jobs/" + admin_job, auth(prof)).status, 404u);
}

// Opt-in reminders go, after the delay, only to addressees who have not claimed and whose
// link is still current, with the same personal link.
TEST_F(MailTest, RemindersGoOnlyToAddresseesWhoHaveNotClaimed) {
  auto invite = private_invite();
  const std::string id = invite["id"];
  auto r = client_->post("/v1/invites/" + id + "/send",
                         json{{"emails", {"ada@example.com", "bob@example.com", "cy@example.com"}},
                              {"remind_after", "P2D"}}
                             .dump(),
                         auth());
  ASSERT_EQ(r.status, 202u) << r.body;
  wait_job(r.json()["job_id"]);
  std::map<std::string, std::string> token_of;
  for (const auto& m : inbox()) token_of[m.envelope_to] = m.token();
  ASSERT_EQ(claim_link(token_of["ada@example.com"]).status, 201u);  // ada claims
  wait_job(send(id, {"cy@example.com"}, "new"));  // cy's first link is replaced (no reminder)

  auto reminders = [&] {
    auto mail = client_->get("/v1/system").json()["mail"];
    return mail["reminders_sent"].get<int>() + mail["reminders_skipped"].get<int>();
  };
  EXPECT_EQ(reminders(), 0);  // not due: the clock has not moved
  clock_.advance(std::chrono::hours(49));
  ASSERT_TRUE(wait_until([&] { return reminders() >= 3; })) << reminders() << " reminders";
  auto mail = client_->get("/v1/system").json()["mail"];
  EXPECT_EQ(mail["reminders_sent"], 1);
  EXPECT_EQ(mail["reminders_skipped"], 2);

  std::vector<received> to_bob;
  for (const auto& m : inbox())
    if (m.envelope_to == "bob@example.com") to_bob.push_back(m);
  ASSERT_EQ(to_bob.size(), 2u);
  const auto& reminder =
      to_bob[0].header("Subject").starts_with("Reminder") ? to_bob[0] : to_bob[1];
  EXPECT_EQ(reminder.header("Subject"), "Reminder: you are invited to Kubernetes 101");
  EXPECT_EQ(reminder.token(), token_of["bob@example.com"]);
  // invitations, ada's welcome mail (her claim made her account), cy's new link, bob's reminder
  EXPECT_EQ(inbox().size(), 3u + 1u + 1u + 1u);
  EXPECT_EQ(claim_link(reminder.token()).status, 201u);
}

// The mailer's state folder is lost after a reminder went out: the reminder's outcome event
// in the log keeps it from going out again when the invitation is scheduled anew.
TEST_F(MailTest, LostMailerStateSendsNoReminderTwice) {
  auto invite = private_invite();
  const std::string id = invite["id"];
  auto send_reminded = [&](const std::string& email) {
    auto r = client_->post(
        "/v1/invites/" + id + "/send",
        json{{"emails", {email}}, {"remind_after", "P2D"}, {"on_existing", "resend"}}.dump(),
        auth());
    ASSERT_EQ(r.status, 202u) << r.body;
    wait_job(r.json()["job_id"]);
  };
  auto reminders_sent = [&] {
    return client_->get("/v1/system").json()["mail"]["reminders_sent"].get<int>();
  };
  send_reminded("bob@example.com");
  clock_.advance(std::chrono::hours(49));
  ASSERT_TRUE(wait_until([&] { return reminders_sent() >= 1; })) << "no reminder sent";
  ASSERT_EQ(sink_.count(), 2u);  // bob's invitation and reminder

  client_.reset();
  node_.reset();
  std::filesystem::remove_all(dir_.sub("data") + "/mailer");
  start();
  // A later reminder, due after bob's: once it went out, bob's was handled too (due order).
  send_reminded("dan@example.com");
  clock_.advance(std::chrono::hours(49));
  ASSERT_TRUE(wait_until([&] { return reminders_sent() >= 1; })) << "no reminder sent";
  std::map<std::string, int> per_address;
  for (const auto& m : inbox()) ++per_address[m.envelope_to];
  EXPECT_EQ(per_address["bob@example.com"], 2);
  EXPECT_EQ(per_address["dan@example.com"], 2);
  EXPECT_EQ(client_->get("/v1/system").json()["mail"]["reminders_sent"], 1);
}

// No SMTP server: mails become .eml files in the data folder.
class EmlTest : public node_test {
 protected:
  void SetUp() override {
    node_test::SetUp();
    make_track("k8s");
  }
};

TEST_F(EmlTest, WithoutSmtpMailsAreWrittenAsEmlFiles) {
  auto invite = make_invite({{"title", "Kubernetes 101"},
                             {"tracks", {{{"track_id", "k8s"}}}},
                             {"access", "allowed"},
                             {"allowed_domains", {"example.org"}}});
  auto r = client_->post("/v1/invites/" + invite["id"].get<std::string>() + "/send",
                         json{{"emails", {"ada@example.com", "bob@example.com"}}}.dump(), auth());
  ASSERT_EQ(r.status, 202u) << r.body;
  const std::string job = r.json()["job_id"];
  json j;
  ASSERT_TRUE(wait_until([&] {
    j = client_->get("/v1/jobs/" + job, auth()).json();
    return j["status"] != "started";
  })) << "job "
      << job << " still started";
  EXPECT_EQ(j["status"], "complete") << j.dump();
  std::size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_.sub("data") + "/outbox")) {
    ASSERT_EQ(e.path().extension(), ".eml");
    std::ifstream in(e.path());
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(all.find("Subject: You are invited: Kubernetes 101"), std::string::npos);
    ++files;
  }
  EXPECT_EQ(files, 2u);
}

// The outbox keeps no copy of a forgotten learner's mail: their welcome mail's .eml goes.
TEST_F(EmlTest, ForgettingALearnerRemovesTheirMailsFromTheOutbox) {
  auto open = make_invite({{"title", "Open"}, {"tracks", {{{"track_id", "k8s"}}}}});
  auto c = claim(open["code"], {{"email", "ada@example.com"}, {"first_name", "Adalind"}});
  ASSERT_EQ(c.status, 201u) << c.body;
  const auto outbox = dir_.sub("data") + "/outbox";
  auto files = [&] {
    std::size_t n = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(outbox, ec))
      n += e.path().extension() == ".eml" ? 1 : 0;
    return n;
  };
  ASSERT_TRUE(wait_until([&] { return files() >= 1; })) << "no .eml file";
  auto f = client_->post("/v1/learners/" + c.json()["learner_id"].get<std::string>() + "/forget",
                         "", auth());
  ASSERT_EQ(f.status, 200u) << f.body;
  EXPECT_EQ(files(), 0u);
}

// A recipient forgotten while their mail waits for the SMTP server gets no mail.
TEST_F(MailTest, ForgottenRecipientGetsNoMail) {
  auto invite = private_invite();
  // Ada becomes a learner through an ordinary claim of an open invite.
  auto open = make_invite({{"title", "Open"}, {"tracks", {{{"track_id", "k8s"}}}}});
  auto c = claim(open["code"], {{"email", "ada@example.com"}});
  ASSERT_EQ(c.status, 201u) << c.body;
  const std::string learner = c.json()["learner_id"];
  ASSERT_TRUE(wait_until([&] { return sink_.count() >= 1; })) << "no welcome mail";

  sink_.kill();
  const std::string job = send(invite["id"], {"ada@example.com"});
  // The mail is waiting for the server.
  ASSERT_TRUE(wait_until([&] {
    return client_->get("/v1/system").json()["mail"]["attempts_failed"].get<std::uint64_t>() > 0;
  })) << "no failed attempt against the dead server";
  auto f = client_->post("/v1/learners/" + learner + "/forget", "", auth());
  ASSERT_EQ(f.status, 200u) << f.body;
  sink_.start();
  auto j = wait_job(job);
  EXPECT_EQ(j["failed"], 1) << j.dump();
  EXPECT_EQ(j["dead_letters"].size(), 0u);
  EXPECT_EQ(sink_.count(), 1u);  // the welcome mail only
  const auto events = job_events(*client_, auth(), job, 1);
  ASSERT_EQ(events.size(), 1u) << events.dump();
  EXPECT_EQ(events[0]["type"], "EmailFailed");
  EXPECT_EQ(events[0]["data"]["error"], "recipient forgotten");
}

// After max_attempts the mail is dead-lettered, visible on the job.
TEST_F(MailTest, UndeliverableMailIsDeadLetteredAndVisible) {
  client_.reset();
  node_.reset();
  smtp_url_ = "smtp://127.0.0.1:" + std::to_string(free_loopback_port());  // nobody listens
  max_attempts_ = 3;
  start();
  auto invite = private_invite();
  auto j = wait_job(send(invite["id"], {"ada@example.com"}));
  EXPECT_EQ(j["status"], "error");
  EXPECT_EQ(j["failed"], 1);
  ASSERT_EQ(j["dead_letters"].size(), 1u) << j.dump();
  EXPECT_EQ(j["dead_letters"][0]["attempts"], 3);
  EXPECT_EQ(j["dead_letters"][0]["error"].get<std::string>().find("ada@"), std::string::npos);
}

// A recipient whose mailbox the server refuses for good (550, 551 or 553 at RCPT TO, or a
// 5.1.x enhanced code) is dead-lettered at the first attempt: retrying would hold every
// later mail for the whole backoff (minutes) and be refused again. The others in the job
// are sent.
TEST_F(MailTest, ARecipientRefusedForGoodIsNotRetried) {
  client_.reset();
  node_.reset();
  max_attempts_ = 3;
  start();
  auto invite = private_invite();
  auto j = wait_job(send(invite["id"], {"refused-ada@example.com", "bob@example.com"}));
  EXPECT_EQ(j["status"], "error") << j.dump();
  EXPECT_EQ(j["sent"], 1);
  EXPECT_EQ(j["failed"], 1);
  ASSERT_EQ(j["dead_letters"].size(), 1u) << j.dump();
  EXPECT_EQ(j["dead_letters"][0]["attempts"], 1);
  EXPECT_EQ(j["dead_letters"][0]["error"], "the server refused the recipient (SMTP 550 5.1.1)");
  EXPECT_EQ(client_->get("/v1/system").json()["mail"]["attempts_failed"], 1);
  const auto mails = inbox();
  ASSERT_EQ(mails.size(), 1u);
  EXPECT_EQ(mails[0].envelope_to, "bob@example.com");

  // Without an enhanced code, 550 and 553 still say the mailbox is bad (smtp_sink.py).
  for (const auto& [to, error] : std::vector<std::pair<std::string, std::string>>{
           {"nouser-ada@example.com", "the server refused the recipient (SMTP 550)"},
           {"badname-ada@example.com", "the server refused the recipient (SMTP 553 5.1.3)"}}) {
    auto refused = wait_job(send(invite["id"], {to}));
    ASSERT_EQ(refused["dead_letters"].size(), 1u) << to << ": " << refused.dump();
    EXPECT_EQ(refused["dead_letters"][0]["attempts"], 1) << to;
    EXPECT_EQ(refused["dead_letters"][0]["error"], error) << to;
  }
}

// A temporary refusal (451) is retried up to max_attempts, as a server that is down.
TEST_F(MailTest, ATemporaryRefusalIsRetried) {
  client_.reset();
  node_.reset();
  max_attempts_ = 3;
  start();
  auto invite = private_invite();
  auto j = wait_job(send(invite["id"], {"busy-ada@example.com"}));
  EXPECT_EQ(j["failed"], 1);
  ASSERT_EQ(j["dead_letters"].size(), 1u) << j.dump();
  EXPECT_EQ(j["dead_letters"][0]["attempts"], 3);
  EXPECT_EQ(j["dead_letters"][0]["error"], "the server refused the recipient (SMTP 451 4.3.0)");
}

// A 5xx at RCPT TO that refuses the relay, a policy or a missing login (554, 530, a 5.7.x
// enhanced code even on a 550) says nothing against the address: the server's or our
// configuration, which the operator can fix, so it is retried like a 4xx. The reply's text
// (which may name the address) stays out of the error.
TEST_F(MailTest, ARefusedRelayOrLoginIsRetried) {
  client_.reset();
  node_.reset();
  max_attempts_ = 3;
  start();
  auto invite = private_invite();
  for (const auto& [to, error] : std::vector<std::pair<std::string, std::string>>{
           {"denied-ada@example.com", "the server refused the recipient (SMTP 554 5.7.1)"},
           {"unrelayed-ada@example.com", "the server refused the recipient (SMTP 550 5.7.1)"},
           {"unauth-ada@example.com", "the server refused the recipient (SMTP 530 5.7.0)"}}) {
    auto j = wait_job(send(invite["id"], {to}));
    EXPECT_EQ(j["failed"], 1) << to;
    ASSERT_EQ(j["dead_letters"].size(), 1u) << to << ": " << j.dump();
    EXPECT_EQ(j["dead_letters"][0]["attempts"], 3) << to;
    EXPECT_EQ(j["dead_letters"][0]["error"], error) << to;
  }
}

// ---- welcome mails and passwords ----------------------------------------------

// The set-password token of a welcome mail's link.
std::string welcome_token(const received& m) {
  std::smatch found;
  static const std::regex re("https://learn\\.example\\.com/p/(ps1\\.[A-Za-z0-9_-]+)");
  return std::regex_search(m.text, found, re) ? found[1].str() : std::string();
}

class WelcomeTest : public MailTest {
 protected:
  void SetUp() override {
    MailTest::SetUp();
    open_ = make_invite({{"title", "Kubernetes 101"}, {"tracks", {{{"track_id", "k8s"}}}}});
  }

  // Claims the open invite with a new email; waits for the welcome mail and returns it.
  received join(const std::string& email, const std::string& first = "Ada") {
    const auto before = sink_.count();
    auto c = claim(open_["code"], {{"email", email}, {"first_name", first}});
    EXPECT_EQ(c.status, 201u) << c.body;
    claim_ = c.json();
    if (!wait_until([&] { return sink_.count() >= before + 1; })) {
      ADD_FAILURE() << "no mail after the claim by " << email;
      return {};
    }
    for (const auto& m : inbox())
      if (m.envelope_to == email && !welcome_token(m).empty()) return m;
    ADD_FAILURE() << "no welcome mail to " << email;
    return {};
  }

  http_reply set_password(const std::string& token, const std::string& password) {
    return client_->post("/v1/public/password/" + token, json{{"password", password}}.dump());
  }
  http_reply login(json body) { return client_->post("/v1/public/learners/login", body.dump()); }
  std::size_t learner_events(const std::string& learner_id) {
    return client_->get("/v1/streams/learner-" + learner_id, auth()).json()["events"].size();
  }
  // Every byte the node stored (event log, mailer state, keys, ...).
  std::string stored_bytes() {
    std::string all;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir_.sub("data"))) {
      if (!e.is_regular_file()) continue;
      std::ifstream in(e.path(), std::ios::binary);
      all.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    return all;
  }

  json open_;
  json claim_;
};

TEST_F(WelcomeTest, ANewAccountGetsOneWelcomeMailWhoseLinkSetsThePasswordOnce) {
  auto mail = join("ada@example.com");
  EXPECT_EQ(mail.header("Subject"), "Welcome: choose your password (Kubernetes 101)");
  EXPECT_NE(mail.text.find("Hello Ada,"), std::string::npos) << mail.text;
  const std::string token = welcome_token(mail);
  const std::string learner = claim_["learner_id"];
  ASSERT_FALSE(token.empty()) << mail.text;

  // The page: a plain form, no scripts, not cached, the token never sent as a referrer.
  auto page = client_->get("/p/" + token);
  ASSERT_EQ(page.status, 200u);
  EXPECT_NE(page.body.find("<form id=\"password\""), std::string::npos);
  EXPECT_NE(page.body.find("name=\"password\""), std::string::npos);
  EXPECT_EQ(page.body.find("<script"), std::string::npos);
  EXPECT_EQ(page.header("Cache-Control"), "no-store");
  EXPECT_EQ(page.header("Referrer-Policy"), "no-referrer");

  // The policy: refused passwords store nothing.
  const auto events_before = learner_events(learner);
  auto weak = set_password(token, "short");
  EXPECT_EQ(weak.status, 400u) << weak.body;
  EXPECT_EQ(weak.json()["code"], "invalid_request");
  EXPECT_EQ(weak.json()["errors"][0]["field"], "password");
  EXPECT_EQ(set_password(token, std::string(257, 'x')).status, 400u);
  EXPECT_EQ(
      client_->post("/v1/public/password/" + token, "{\"password\":\"abcdefghij\xff\"}").status,
      400u);
  EXPECT_EQ(client_->post("/v1/public/password/" + token, "{}").status, 400u);
  EXPECT_EQ(learner_events(learner), events_before);

  const std::string password = "correct horse battery staple";
  auto set = set_password(token, password);
  ASSERT_EQ(set.status, 200u) << set.body;
  EXPECT_EQ(set.json()["learner_id"], learner);
  EXPECT_EQ(learner_events(learner), events_before + 1);

  // Once only: the JSON endpoint and the form both refuse a used link.
  auto again = set_password(token, "another fine password");
  EXPECT_EQ(again.status, 410u) << again.body;
  EXPECT_EQ(again.json()["code"], "token_used");
  auto form = client_->post("/p/" + token,
                            "password=another+fine+password&password_confirm="
                            "another+fine+password",
                            {{"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(form.status, 410u);
  EXPECT_NE(form.body.find("used already"), std::string::npos) << form.body;

  // The password logs in (by invite code or by org), with the learner token claims use.
  auto in = login({{"code", open_["code"]}, {"email", "ADA@example.com"}, {"password", password}});
  ASSERT_EQ(in.status, 200u) << in.body;
  EXPECT_EQ(in.json()["learner_id"], learner);
  auto mine =
      client_->get("/v1/public/claims/" + claim_["claim_id"].get<std::string>(),
                   {{"Authorization", "Bearer " + in.json()["learner_token"].get<std::string>()}});
  EXPECT_EQ(mine.status, 200u) << mine.body;
  auto by_org =
      login({{"org", in.json()["org_id"]}, {"email", "ada@example.com"}, {"password", password}});
  EXPECT_EQ(by_org.status, 200u) << by_org.body;

  // Wrong password and unknown email: the same answer.
  auto wrong = login({{"code", open_["code"]}, {"email", "ada@example.com"}, {"password", "nope"}});
  auto nobody =
      login({{"code", open_["code"]}, {"email", "zed@example.com"}, {"password", password}});
  EXPECT_EQ(wrong.status, 401u);
  EXPECT_EQ(nobody.status, 401u);
  EXPECT_EQ(wrong.json()["code"], "invalid_credentials");
  EXPECT_EQ(wrong.json()["detail"], nobody.json()["detail"]);
  EXPECT_EQ(login({{"email", "ada@example.com"}, {"password", password}}).status, 400u);

  // The same email claiming again (another invite) is no new account: no second mail. A
  // private invitation sent after it, once delivered, shows the mailer got past the claim.
  auto other = make_invite({{"title", "Helm"}, {"tracks", {{{"track_id", "k8s"}}}}});
  ASSERT_EQ(claim(other["code"], {{"email", "ada@example.com"}}).status, 201u);
  wait_job(send(private_invite()["id"], {"bob@staff.example.org"}));
  std::size_t welcomes = 0;
  for (const auto& m : inbox()) welcomes += welcome_token(m).empty() ? 0 : 1;
  EXPECT_EQ(welcomes, 1u);

  // Neither the password, its hash nor the link is stored or shown in clear.
  auto stream = client_->get("/v1/streams/learner-" + learner, auth()).json();
  bool saw_set = false;
  for (const auto& e : stream["events"]) {
    if (e["type"] != "LearnerPasswordSet") continue;
    saw_set = true;
    EXPECT_FALSE(e["data"]["personal_data"].contains("password_hash")) << e.dump();
  }
  EXPECT_TRUE(saw_set);
  const std::string bytes = stored_bytes() + client_->get("/v1/events", auth()).body;
  EXPECT_EQ(bytes.find(password), std::string::npos);
  EXPECT_EQ(bytes.find("scrypt$"), std::string::npos);
  EXPECT_EQ(bytes.find(token), std::string::npos);
  EXPECT_EQ(bytes.find(token.substr(4, 40)), std::string::npos);
}

TEST_F(WelcomeTest, TheFormSetsThePasswordWithoutScripts) {
  const std::string token = welcome_token(join("ada@example.com"));
  const http_client::headers form = {{"Content-Type", "application/x-www-form-urlencoded"}};
  auto differ =
      client_->post("/p/" + token, "password=correct+horse+battery&password_confirm=x", form);
  EXPECT_EQ(differ.status, 400u);
  EXPECT_NE(differ.body.find("differ"), std::string::npos);
  auto weak = client_->post("/p/" + token, "password=short&password_confirm=short", form);
  EXPECT_EQ(weak.status, 400u);
  EXPECT_NE(weak.body.find("<form"), std::string::npos) << "the form is shown again";
  auto ok = client_->post(
      "/p/" + token, "password=correct+horse+battery&password_confirm=correct+horse+battery", form);
  ASSERT_EQ(ok.status, 200u) << ok.body;
  EXPECT_NE(ok.body.find("Your password is set"), std::string::npos);
  EXPECT_EQ(ok.header("Cache-Control"), "no-store");
  auto in = login({{"code", open_["code"]},
                   {"email", "ada@example.com"},
                   {"password", "correct horse battery"}});
  EXPECT_EQ(in.status, 200u) << in.body;
}

TEST_F(WelcomeTest, TheLinkExpiresAfterSevenDaysAndForgeriesAreRefused) {
  const std::string token = welcome_token(join("ada@example.com"));
  const std::string learner = claim_["learner_id"];
  const auto events = learner_events(learner);
  clock_.advance(std::chrono::hours(24 * 7) + std::chrono::seconds(1));
  auto late = set_password(token, "correct horse battery");
  EXPECT_EQ(late.status, 410u) << late.body;
  EXPECT_EQ(late.json()["code"], "token_expired");
  auto page = client_->post("/p/" + token,
                            "password=correct+horse+battery&password_confirm=correct+horse+battery",
                            {{"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(page.status, 410u);
  EXPECT_NE(page.body.find("expired"), std::string::npos);
  EXPECT_EQ(learner_events(learner), events);

  std::string tampered = token;
  tampered[10] = tampered[10] == 'A' ? 'B' : 'A';
  for (const std::string& bad : {std::string("ps1.AAAA"), tampered, std::string("nothing")}) {
    auto r = set_password(bad, "correct horse battery");
    EXPECT_EQ(r.status, 400u) << bad;
    EXPECT_EQ(r.json()["code"], "token_invalid");
  }
  EXPECT_EQ(learner_events(learner), events);
  EXPECT_EQ(login({{"code", open_["code"]},
                   {"email", "ada@example.com"},
                   {"password", "correct horse battery"}})
                .status,
            401u);
}

TEST_F(WelcomeTest, ANewLinkReplacesTheOldOne) {
  const std::string old_token = welcome_token(join("ada@example.com"));
  const std::string learner = claim_["learner_id"];
  EXPECT_EQ(client_
                ->post("/v1/learners/" + learner + "/password-setup", "",
                       {{"Authorization", "Bearer psk_nobody"}})
                .status,
            401u);
  auto r = client_->post("/v1/learners/" + learner + "/password-setup", "", auth());
  ASSERT_EQ(r.status, 202u) << r.body;
  ASSERT_TRUE(wait_until([&] { return sink_.count() >= 2; })) << sink_.count() << " mails";
  std::string new_token;
  for (const auto& m : inbox()) {
    if (auto t = welcome_token(m); !t.empty() && t != old_token) {
      new_token = t;
      // Greeted by the name she registered with, like in the first mail, and told it is a
      // new link for her account (not that a claim created it).
      EXPECT_NE(m.text.find("Hello Ada,"), std::string::npos) << m.text;
      EXPECT_EQ(m.header("Subject"), "Your new link to choose a password");
      EXPECT_NE(m.text.find("here is a new link"), std::string::npos) << m.text;
      EXPECT_EQ(m.text.find("account was created"), std::string::npos) << m.text;
    }
  }
  ASSERT_FALSE(new_token.empty());
  auto old_use = set_password(old_token, "correct horse battery");
  EXPECT_EQ(old_use.status, 410u) << old_use.body;
  EXPECT_EQ(old_use.json()["code"], "token_replaced");
  EXPECT_EQ(set_password(new_token, "correct horse battery").status, 200u);
  EXPECT_EQ(
      client_->post("/v1/learners/" + uuid::random().to_string() + "/password-setup", "", auth())
          .status,
      404u);
}

// Opening the link shows what became of it before anything is typed: the form while it
// works; used, replaced, expired or not valid as a plain page without the form, with the
// status its post would get and the same headers.
TEST_F(WelcomeTest, OpeningTheLinkShowsItsState) {
  auto open = [&](const std::string& token, unsigned status, const std::string& says) {
    auto page = client_->get("/p/" + token);
    EXPECT_EQ(page.status, status) << token << "\n" << page.body;
    EXPECT_EQ(page.header("Cache-Control"), "no-store");
    EXPECT_EQ(page.header("Referrer-Policy"), "no-referrer");
    EXPECT_NE(page.body.find("<meta name=\"referrer\" content=\"no-referrer\">"),
              std::string::npos);
    EXPECT_EQ(page.body.find("<script"), std::string::npos);
    if (says.empty()) {
      EXPECT_NE(page.body.find("<form id=\"password\""), std::string::npos) << page.body;
    } else {
      EXPECT_EQ(page.body.find("<form"), std::string::npos) << page.body;
      EXPECT_NE(page.body.find("role=\"alert\""), std::string::npos) << page.body;
      EXPECT_NE(page.body.find(says), std::string::npos) << page.body;
    }
  };
  const std::string first = welcome_token(join("ada@example.com"));
  const std::string learner = claim_["learner_id"];
  open(first, 200u, "");

  ASSERT_EQ(client_->post("/v1/learners/" + learner + "/password-setup", "", auth()).status, 202u);
  ASSERT_TRUE(wait_until([&] { return sink_.count() >= 2; })) << sink_.count() << " mails";
  std::string second;
  for (const auto& m : inbox())
    if (auto t = welcome_token(m); !t.empty() && t != first) second = t;
  ASSERT_FALSE(second.empty());
  open(first, 410u, "A newer link was sent to you");
  open(second, 200u, "");
  ASSERT_EQ(set_password(second, "correct horse battery").status, 200u);
  open(second, 410u, "This link was used already");

  std::string tampered = second;
  tampered[10] = tampered[10] == 'A' ? 'B' : 'A';
  open(tampered, 400u, "This link is not valid");
  open("nothing", 400u, "This link is not valid");

  const std::string bobs = welcome_token(join("bob@example.com", "Bob"));
  open(bobs, 200u, "");
  clock_.advance(std::chrono::hours(24 * 7) + std::chrono::seconds(1));
  open(bobs, 410u, "This link has expired");
  // A forgotten learner's link is no longer valid.
  ASSERT_EQ(
      client_
          ->post("/v1/learners/" + claim_["learner_id"].get<std::string>() + "/forget", "", auth())
          .status,
      200u);
  open(bobs, 400u, "This link is not valid");
}

TEST_F(WelcomeTest, AMailerRestartOrLostStateSendsNoWelcomeMailTwice) {
  join("ada@example.com");
  restart();
  join("bob@example.com", "Bob");
  client_.reset();
  node_.reset();
  std::filesystem::remove_all(dir_.sub("data") + "/mailer");
  start();
  join("cy@example.com", "Cy");
  std::map<std::string, int> per_address;
  for (const auto& m : inbox()) ++per_address[m.envelope_to];
  EXPECT_EQ(per_address,
            (std::map<std::string, int>{
                {"ada@example.com", 1}, {"bob@example.com", 1}, {"cy@example.com", 1}}));
}

// The state is lost and the node restarts again at once, before the mailer may have caught
// up: the new state remembers up to where the log may hold outcomes it has no ledger for.
TEST_F(WelcomeTest, ARestartRightAfterLostStateSendsNoWelcomeMailTwice) {
  for (int i = 0; i < 10; ++i) join("l" + std::to_string(i) + "@example.com");
  client_.reset();
  node_.reset();
  std::filesystem::remove_all(dir_.sub("data") + "/mailer");
  start();
  restart();
  join("late@example.com");
  std::map<std::string, int> per_address;
  for (const auto& m : inbox()) ++per_address[m.envelope_to];
  EXPECT_EQ(per_address.size(), 11u);
  for (const auto& [address, count] : per_address) EXPECT_EQ(count, 1) << address;
}

// A state made by the build before `m:logged`, which had lost its ledger and not yet
// caught up: the mails it sent are known only by their outcome events in the log, and are
// not sent again by this build.
TEST_F(WelcomeTest, AStateOfTheBuildBeforeMissingItsLedgerSendsNoWelcomeMailTwice) {
  join("ada@example.com");
  wait_mails_sent(1);
  client_.reset();
  node_.reset();
  {
    std::unique_ptr<rocksdb::DB> db;
    ASSERT_TRUE(consumers::open_state_db(dir_.sub("data") + "/mailer", db).ok());
    rocksdb::WriteBatch b;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (it->key().starts_with("l:") || it->key().starts_with("w:") || it->key() == "m:logged") {
        b.Delete(it->key());
      }
    }
    b.Put("m:cp", std::string(8, '\0'));
    ASSERT_TRUE(db->Write(rocksdb::WriteOptions(), &b).ok());
  }
  start();
  join("bob@example.com", "Bob");  // the mailer has passed Ada's event by then
  std::map<std::string, int> per_address;
  for (const auto& m : inbox()) ++per_address[m.envelope_to];
  EXPECT_EQ(per_address,
            (std::map<std::string, int>{{"ada@example.com", 1}, {"bob@example.com", 1}}));
}

// A state of the build before one ledger record per run of welcome mails (an `l:<event
// id>` entry per mail) whose checkpoint was lost: the mails it ledgered are not sent again.
TEST_F(WelcomeTest, WelcomeMailsLedgeredOneEntryEachByTheBuildBeforeAreNotSentAgain) {
  join("ada@example.com");
  wait_mails_sent(1);
  client_.reset();
  node_.reset();
  {
    std::unique_ptr<rocksdb::DB> db;
    ASSERT_TRUE(consumers::open_state_db(dir_.sub("data") + "/mailer", db).ok());
    rocksdb::WriteBatch b;
    int entries = 0;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek("w:"); it->Valid() && it->key().starts_with("w:"); it->Next()) {
      auto mails = consumers::decode_welcome_ledger(it->value().ToStringView());
      ASSERT_TRUE(mails);
      for (const auto& m : *mails) {
        b.Put("l:" + std::string(m.event_id.as_bytes()),
              consumers::ledger_entry_json(m.sent, m.error, m.attempts, m.at_micros, m.forgotten));
        ++entries;
      }
      b.Delete(it->key());
    }
    ASSERT_EQ(entries, 1);
    b.Put("m:cp", std::string(8, '\0'));  // the checkpoint lost: Ada's event is read again
    ASSERT_TRUE(db->Write(rocksdb::WriteOptions(), &b).ok());
  }
  start();
  join("bob@example.com", "Bob");  // the mailer has passed Ada's event by then
  std::map<std::string, int> per_address;
  for (const auto& m : inbox()) ++per_address[m.envelope_to];
  EXPECT_EQ(per_address,
            (std::map<std::string, int>{{"ada@example.com", 1}, {"bob@example.com", 1}}));
}

// The host crashed after a welcome mail's outcome event was appended but before the
// mailer's checkpoint reached the disk: on restart the mail is in the ledger, so it is not
// sent again, and its outcome, rebuilt with personal data sealed under a new IV, has other
// bytes than the stored one. The mailer takes it as logged and goes on with later mails.
TEST_F(WelcomeTest, AnOutcomeLoggedBeforeACheckpointWasLostIsNotAStall) {
  join("ada@example.com");
  const std::string setup = [&] {
    const json stream =
        client_->get("/v1/streams/learner-" + claim_["learner_id"].get<std::string>(), auth())
            .json();
    for (const auto& e : stream["events"])
      if (e["type"] == "PasswordSetupIssued") return e["data"]["setup_id"].get<std::string>();
    return std::string();
  }();
  ASSERT_FALSE(setup.empty());
  wait_mails_sent(1);  // EmailSent is in the log
  client_.reset();
  node_.reset();
  {
    std::unique_ptr<rocksdb::DB> db;
    ASSERT_TRUE(consumers::open_state_db(dir_.sub("data") + "/mailer", db).ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "m:cp", std::string(8, '\0')).ok());
  }
  start();
  auto c = claim(open_["code"], {{"email", "bob@example.com"}, {"first_name", "Bob"}});
  ASSERT_EQ(c.status, 201u) << c.body;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  auto mails_to = [&](const std::string& address) {
    int n = 0;
    for (const auto& m : inbox()) n += m.envelope_to == address;
    return n;
  };
  while (mails_to("bob@example.com") == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_EQ(mails_to("bob@example.com"), 1) << "the mailer went on after the old outcome";
  EXPECT_EQ(mails_to("ada@example.com"), 1);
  const json events = job_events(*client_, auth(), setup, 1);
  ASSERT_EQ(events.size(), 1u) << events.dump();
  EXPECT_EQ(events[0]["type"], "EmailSent");
}

// Claims faster than mails go out: the mailer sends welcome mails in runs (one synced
// ledger write and one append per run). A restart in the middle of it sends no mail twice
// and records exactly one EmailSent per mail.
TEST_F(WelcomeTest, ManyNewAccountsAcrossARestartGetOneMailAndOneOutcomeEach) {
  constexpr int n = 60;
  std::vector<std::string> learners;
  for (int i = 0; i < n; ++i) {
    auto c = claim(open_["code"], {{"email", "w" + std::to_string(i) + "@example.com"}});
    ASSERT_EQ(c.status, 201u) << c.body;
    learners.push_back(c.json()["learner_id"]);
    if (i == n / 2) restart();  // runs of mails in flight
  }
  ASSERT_TRUE(wait_until([&] { return sink_.count() >= std::size_t(n); }))
      << sink_.count() << " of " << n << " mails";
  std::map<std::string, int> per_address;
  for (const auto& m : inbox()) ++per_address[m.envelope_to];
  EXPECT_EQ(per_address.size(), std::size_t(n));
  for (const auto& [address, count] : per_address) EXPECT_EQ(count, 1) << address;
  for (const auto& learner : learners) {
    std::string setup;
    const json stream = client_->get("/v1/streams/learner-" + learner, auth()).json();
    for (const auto& e : stream["events"])
      if (e["type"] == "PasswordSetupIssued") setup = e["data"]["setup_id"];
    ASSERT_FALSE(setup.empty()) << stream.dump();
    json events;
    ASSERT_TRUE(wait_until([&] {
      events = client_->get("/v1/streams/job-" + setup, auth()).json()["events"];
      return !events.empty();
    })) << "no outcome for job-"
        << setup;
    ASSERT_EQ(events.size(), 1u) << events.dump();
    EXPECT_EQ(events[0]["type"], "EmailSent");
  }
  EXPECT_EQ(sink_.count(), std::size_t(n));
}

TEST_F(WelcomeTest, AForgottenLearnerGetsNoWelcomeMail) {
  sink_.kill();
  auto c = claim(open_["code"], {{"email", "ada@example.com"}});
  ASSERT_EQ(c.status, 201u) << c.body;
  const std::string learner = c.json()["learner_id"];
  // The welcome mail is waiting for the server.
  ASSERT_TRUE(wait_until([&] {
    return client_->get("/v1/system").json()["mail"]["attempts_failed"].get<std::uint64_t>() > 0;
  })) << "no failed attempt against the dead server";
  std::string setup;
  auto stream = client_->get("/v1/streams/learner-" + learner, auth()).json();
  for (const auto& e : stream["events"])
    if (e["type"] == "PasswordSetupIssued") setup = e["data"]["setup_id"];
  ASSERT_FALSE(setup.empty()) << stream.dump();
  ASSERT_EQ(client_->post("/v1/learners/" + learner + "/forget", "", auth()).status, 200u);
  sink_.start();
  json events;
  ASSERT_TRUE(wait_until([&] {
    events = client_->get("/v1/streams/job-" + setup, auth()).json()["events"];
    return !events.empty();
  })) << "no outcome for job-"
      << setup;
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["type"], "EmailFailed");
  EXPECT_EQ(events[0]["data"]["error"], "recipient forgotten");
  EXPECT_EQ(sink_.count(), 0u);
}

TEST_F(WelcomeTest, LoginIsRateLimitedPerAddressApartFromClaims) {
  client_.reset();
  node_.reset();
  start("3/1h");
  open_ = make_invite({{"title", "Kubernetes 101"}, {"tracks", {{{"track_id", "k8s"}}}}});
  json body = {{"code", open_["code"]}, {"email", "zed@example.com"}, {"password", "whatever!!"}};
  for (int i = 0; i < 3; ++i) EXPECT_EQ(login(body).status, 401u);
  auto limited = login(body);
  EXPECT_EQ(limited.status, 429u) << limited.body;
  EXPECT_FALSE(limited.header("Retry-After").empty());
  // Logins are counted apart from claims: failed logins (anyone's, for any address)
  // do not keep this address from claiming.
  auto claimed = claim(open_["code"], {{"email", "zed@example.com"}});
  EXPECT_EQ(claimed.status, 201u) << claimed.body;
}

TEST_F(WelcomeTest, PasswordWorkPastItsLimitGets503AndChangesNothing) {
  auto mail = join("ivy@example.com");
  const std::string token = welcome_token(mail);
  ASSERT_FALSE(token.empty());
  const std::string learner = claim_["learner_id"];
  const auto events = learner_events(learner);
  configure_ = [base = configure_](app::server_options& o) {
    base(o);
    o.password_hash_limit = 0;
  };
  restart();
  auto busy = set_password(token, "correct horse battery");
  EXPECT_EQ(busy.status, 503u) << busy.body;
  EXPECT_EQ(busy.json()["code"], "unavailable");
  EXPECT_EQ(busy.header("Retry-After"), "1");
  auto login_busy = login({{"code", open_["code"]},
                           {"email", "ivy@example.com"},
                           {"password", "correct horse battery"}});
  EXPECT_EQ(login_busy.status, 503u) << login_busy.body;
  EXPECT_EQ(learner_events(learner), events) << "nothing recorded";
}

}  // namespace
}  // namespace passage::testing
