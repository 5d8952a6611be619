#pragma once
// A whole Passage node: the event log, the key store, the read models and their
// projector, the command service and the HTTP API, wired together. `passage
// serve` runs one; end-to-end tests start one in-process on a free port.
//
//   auto node = server::start({.data_dir = dir, .port = 0});
//   if (!node) die(node.error());
//   http_get("127.0.0.1", (*node)->port(), "/healthz");
//   (*node)->stop();

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "common/uuid.h"

namespace passage::app {

// The organization every server starts with.
inline const uuid& default_org_id() {
  static const uuid id = *uuid::parse("00000000-0000-4000-8000-000000000001");
  return id;
}

// A key for one purpose ("pepper", "learner-token") from the node's secret
// (<data_dir>/server.secret): HMAC-SHA256(secret, label).
std::string derive_key(const std::string& secret, std::string_view label);

// Reads the one-line secret file at `path`, or creates it (mode 0600) with `make()`;
// `created` tells which.
result<std::string, std::string> secret_file(const std::string& path,
                                             const std::function<std::string()>& make,
                                             bool& created);

// Creates a node's data folder when missing and reads the node's secret, kept in the
// file `secret_name` there (made of 32 random bytes on first start).
result<std::string, std::string> open_node_folder(const std::string& dir,
                                                  const std::string& secret_name);

struct server_options {
  // Folder for everything the node keeps. Default: "data".
  std::string data_dir = "data";
  // Address and port of the HTTP API. Default: 127.0.0.1:8080; port 0 picks one.
  std::string address = "127.0.0.1";
  std::uint16_t port = 8080;
  // I/O threads. Default: 2.
  unsigned threads = 2;
  // Point-in-time answers (`as_of`, rebuilt from the log) run on their own threads, at
  // most this many taken at once (running or waiting); more get 503 with Retry-After.
  // 0 refuses them all. Defaults: 2 threads, 32.
  unsigned slow_query_threads = 2;
  std::size_t slow_query_limit = 32;
  // Password hashes (set-password, login) taken at once, computed two at a time off the
  // I/O threads; more get 503 with Retry-After. 0 refuses them all. Default: 64.
  std::size_t password_hash_limit = 64;
  // Clients of the live tail (GET /v1/events/live) connected at once; more get 503.
  // Default: 1024.
  std::size_t max_live_clients = 1024;
  // Log positions one GET /v1/events page examines at most (the log holds every
  // organization's events: a page of a small one, or of a rare type, stops there and says
  // where to go on). Default: 20,000.
  std::uint64_t events_page_scan = 20'000;
  // Claim abuse limits as COUNT/DURATION; "0" disables. Defaults: 5/15m, 3/1h.
  std::string claim_limit_per_ip = "5/15m";
  std::string claim_limit_per_email = "3/1h";
  // Take the client IP from the last X-Forwarded-For entry. Default: false.
  bool trust_proxy = false;
  // Owner key of the default organization; Default: generated on first start,
  // printed once and kept in <data_dir>/owner.token.
  std::optional<std::string> owner_token;
  // Operator key (creates organizations); Default: generated, kept in
  // <data_dir>/operator.token.
  std::optional<std::string> operator_token;
  // Kafka: "" starts an embedded Kafka-protocol broker (librdkafka's mock
  // cluster) on loopback and publishes there; "host:port,..." publishes to a real
  // cluster; "none" disables publishing. Default: "".
  std::string kafka_brokers;
  // Topic the events are published to. Default: "passage.events".
  std::string kafka_topic = "passage.events";
  // Mail (private invitations). SMTP server as smtp://host[:port] or smtps://host[:port];
  // "" writes each mail as an .eml file into <data_dir>/outbox instead. Default: "".
  std::string smtp_url;
  // Require STARTTLS on smtp://. Default: false.
  bool smtp_starttls = false;
  // SMTP AUTH credentials; empty: none. Default: none.
  std::string smtp_user;
  std::string smtp_password;
  // From header of every mail. Default: "Passage <no-reply@passage.invalid>".
  std::string mail_from = "Passage <no-reply@passage.invalid>";
  // Base URL of the learner pages in mails. Default: "" = http://<address>:<port>.
  std::string public_url;
  // Per-organization mail templates (<dir>/<org id>/invitation.subject|.txt|.html).
  // Default: "" (built-in).
  std::string mail_templates;
  // Attempts per mail before it is dead-lettered, and the backoff between attempts
  // (doubling from initial to max). Defaults: 8, 1 s, 5 min.
  int mail_max_attempts = 8;
  std::chrono::milliseconds mail_initial_backoff{1000};
  std::chrono::milliseconds mail_max_backoff{300'000};
  // The mailer's wait after a read that caught up with welcome mails, to gather the next
  // claims' mails in one run (mailer_options::batch_delay; tests set 0). Default: 200 ms.
  std::chrono::milliseconds mail_batch_delay{200};
  // How often due reminders (opt-in per send) are looked for. Default: 30 s.
  std::chrono::milliseconds mail_reminder_poll{30'000};
  // At most one claim digest (notify_on_claim) per invite per window. Default: 15 min.
  std::chrono::milliseconds mail_claim_digest_window{15 * 60 * 1000};
  // fsync every append before acknowledging it. Default: true.
  bool sync = true;
  // Where "now" comes from. Default: the system clock. Must outlive the server.
  const passage::clock* clock = nullptr;
  // One JSON line per request on stderr. Default: true.
  bool access_log = true;
  // Where start-up messages go (the generated owner key, the address). Default: stderr.
  std::function<void(const std::string&)> say;
};

// A warning when links in mails would name an address no learner can reach: no
// public_url and a wildcard listen address (0.0.0.0, ::); "" otherwise.
std::string unreachable_links_warning(const server_options& options);

// Owned by main or a test. start() and stop() from one thread.
class server {
 public:
  static result<std::unique_ptr<server>, std::string> start(server_options options);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  std::uint16_t port() const;
  // The owner key of the default organization when this start generated or was
  // given it; empty when it was generated by an earlier start (see owner.token).
  const std::string& owner_token() const;
  const std::string& operator_token() const;
  // The Kafka bootstrap address events are published to ("" when disabled).
  const std::string& kafka_bootstrap() const;
  // The Linux thread ids (gettid) of the HTTP I/O threads, for tools that measure them
  // (api_bench); threads those start are not among them.
  const std::vector<int>& io_thread_ids() const;

  // Graceful stop: no new connections, in-flight requests finish (up to
  // `grace`), the projector and the log close. Idempotent.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  // Blocks until stop() has completed (from another thread or a signal).
  void wait();

  struct impl;

 private:
  explicit server(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

}  // namespace passage::app
