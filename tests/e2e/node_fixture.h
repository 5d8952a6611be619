#pragma once
// A whole Passage node in-process on a free loopback port, in a temp data
// folder, with a manual clock; plus helpers for the common admin steps.

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "app/server.h"
#include "tests/support/http_client.h"
#include "tests/support/temp_dir.h"

namespace passage::testing {

// Polls `done` every 10 ms until it holds; false once `limit` has passed. The limit only
// bounds a hang: a wait that never ends fails its test with a message instead of running
// into the ctest timeout. Never a timing assertion: keep it generous.
template <typename F>
bool wait_until(F&& done, std::chrono::milliseconds limit = std::chrono::seconds(60)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

class node_test : public ::testing::Test {
 protected:
  void SetUp() override { start(); }
  void TearDown() override { node_.reset(); }

  void start(std::string per_ip = "0", std::string per_email = "0", std::string kafka = "none") {
    app::server_options o;
    o.kafka_brokers = kafka;
    o.data_dir = dir_.sub("data");
    o.port = 0;
    o.owner_token = owner_;
    o.operator_token = operator_;
    o.claim_limit_per_ip = per_ip;
    o.claim_limit_per_email = per_email;
    o.clock = &clock_;
    o.say = [](const std::string&) {};
    o.access_log = false;
    if (configure_) configure_(o);
    auto n = app::server::start(o);
    ASSERT_TRUE(n) << n.error();
    node_ = std::move(*n);
    client_ = std::make_unique<http_client>(node_->port());
  }
  // Stops the node cleanly (its folder stays for the next start()).
  void stop() {
    client_.reset();
    node_->stop();
    node_.reset();
  }
  void restart(std::string per_ip = "0", std::string per_email = "0", std::string kafka = "none") {
    stop();
    start(std::move(per_ip), std::move(per_email), std::move(kafka));
  }

  http_client::headers auth(const std::string& key = {}) {
    return {{"Authorization", "Bearer " + (key.empty() ? owner_ : key)}};
  }

  void make_track(const std::string& id, bool pausable = false) {
    auto r = client_->post(
        "/v1/tracks",
        nlohmann::json{{"track_id", id}, {"title", id}, {"pausable", pausable}}.dump(), auth());
    ASSERT_EQ(r.status, 201u) << r.body;
  }

  nlohmann::json make_invite(nlohmann::json body, const std::string& key = {}) {
    auto r = client_->post("/v1/invites", body.dump(), auth(key));
    EXPECT_EQ(r.status, 201u) << r.body;
    return r.json();
  }

  http_reply claim(const std::string& code, nlohmann::json body) {
    return client_->post("/v1/public/invites/" + code + "/claims", body.dump());
  }

  // Waits until the mailer has handled `n` mails since the node started: their outcome
  // events (EmailSent) are appended after the claim that caused them (a new account's
  // welcome mail), so a test counting the log waits for them. Fails the test after 60 s.
  void wait_mails_sent(std::uint64_t n) {
    ASSERT_TRUE(wait_until([&] {
      return client_->get("/v1/system").json()["mail"]["sent"].get<std::uint64_t>() >= n;
    })) << "mails sent: "
        << client_->get("/v1/system").json()["mail"].dump() << ", want " << n;
  }

  // Extra settings for start() (e.g. SMTP), applied last.
  std::function<void(app::server_options&)> configure_;
  temp_dir dir_;
  manual_clock clock_{from_unix_micros(1'790'000'000'000'000)};  // 2026-09-21
  std::string owner_ = "psk_test_owner_0123456789";
  std::string operator_ = "psk_test_operator_0123456789";
  std::unique_ptr<app::server> node_;
  std::unique_ptr<http_client> client_;
};

}  // namespace passage::testing
