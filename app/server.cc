#include "app/server.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "api/http_server.h"
#include "api/logging.h"
#include "api/metrics.h"
#include "api/problem.h"
#include "api/rate_limiter.h"
#include "api/router.h"
#include "api/v1/endpoints.h"
#include "api/v1/idempotency.h"
#include "common/random.h"
#include "common/time_format.h"
#include "consumers/embedded_broker.h"
#include "consumers/mailer.h"
#include "consumers/relay.h"
#include "eventstore/event_codec.h"
#include "eventstore/event_store.h"
#include "eventstore/key_store.h"
#include "projections/projector.h"
#include "projections/read_models.h"
#include "service/command_service.h"
#include "service/expiry_scheduler.h"
#include "web/static_assets.h"

namespace passage::app {
namespace {

namespace fs = std::filesystem;

}  // namespace

std::string derive_key(const std::string& secret, std::string_view label) {
  unsigned char out[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(label.data()), label.size(), out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

result<std::string, std::string> secret_file(const std::string& file,
                                             const std::function<std::string()>& make,
                                             bool& created) {
  const fs::path path(file);
  created = false;
  if (fs::exists(path)) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    if (line.empty()) return fail("secret file " + path.string() + " is empty");
    return line;
  }
  std::string value = make();
  // Made 0600 from the start (never readable by others, not even for a moment), and only
  // if it is still absent: two nodes started at once on one folder do not both write one.
  const std::string text = value + "\n";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return fail("cannot create " + path.string() + ": " + std::strerror(errno));
  bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                 ::fsync(fd) == 0;
  int saved = errno;
  ::close(fd);
  if (!written) {
    ::unlink(path.c_str());
    return fail("cannot write " + path.string() + ": " + std::strerror(saved));
  }
  created = true;
  return value;
}

namespace {

// The read models as the command side's facts.
class read_model_facts final : public service::fact_source {
 public:
  explicit read_model_facts(projections::read_models& reads) : reads_(reads) {}

  std::optional<service::invite_ref> invite_by_code(std::string_view code) override {
    auto r = reads_.invite_by_code(code);
    if (!r) return std::nullopt;
    return service::invite_ref{r->org_id, r->invite_id};
  }
  std::optional<service::learner_ref> learner_by_email(const uuid& org,
                                                       std::string_view subject) override {
    auto r = reads_.learner_by_email(org, subject);
    if (!r) return std::nullopt;
    return service::learner_ref{r->learner_id, r->lead_submitted};
  }
  std::optional<domain::invite_claimed> claim_seed(const uuid& claim_id) override {
    return reads_.claim_seed(claim_id);
  }
  void when_applied(std::uint64_t position, std::function<void()> fn) override {
    reads_.when_applied(position, std::move(fn));
  }

 private:
  projections::read_models& reads_;
};

}  // namespace

struct server::impl {
  server_options options;
  passage::system_clock system_clock;
  const passage::clock* clock = nullptr;
  std::string owner_token, operator_token;
  // Declared before every member that may hold a responder (the command service's queued
  // retries, the read models' waits, the work queues, the log's commit callbacks), so that
  // it is destroyed after them: a responder released in their destructors hands its answer
  // over to this io_context, which must still exist (api::http_server's contract); its
  // queued handlers, never run once the threads are joined, are dropped when it goes.
  boost::asio::io_context ioc;

  std::unique_ptr<eventstore::event_store> store;
  std::unique_ptr<eventstore::key_store> keys;
  std::unique_ptr<eventstore::event_codec> codec;
  std::unique_ptr<projections::read_models> reads;
  std::unique_ptr<projections::projector> projector;
  std::unique_ptr<consumers::embedded_broker> broker;
  std::unique_ptr<consumers::relay> relay;
  std::string kafka_bootstrap;
  std::unique_ptr<read_model_facts> facts;
  std::unique_ptr<service::command_service> commands;
  std::unique_ptr<service::expiry_scheduler> expiry;
  std::unique_ptr<consumers::mailer> mailer;
  std::unique_ptr<api::v1::idempotency_store> idempotency;
  // Claims and learner logins, each per client IP and per email: the same limits,
  // counted apart.
  std::unique_ptr<api::rate_limiter> per_ip, per_email, logins_per_ip, logins_per_email;
  std::shared_ptr<api::metrics> metrics;
  std::unique_ptr<api::router> router;
  std::unique_ptr<api::work_queue> slow_queries;
  std::unique_ptr<api::work_queue> password_hashing;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work;
  std::unique_ptr<api::http_server> http;
  std::vector<std::thread> threads;
  std::vector<int> io_thread_ids;  // gettid() of each of `threads`

  std::mutex stop_mu;
  std::condition_variable stopped_cv;
  bool stopping = false;
  bool stopped = false;

  void say(const std::string& s) {
    if (options.say) {
      options.say(s);
    } else {
      std::fprintf(stderr, "%s\n", s.c_str());
    }
  }
};

namespace {

nlohmann::json job_json(const consumers::email_job_view& v) {
  nlohmann::json dead = nlohmann::json::array();
  for (const auto& d : v.dead_letters) {
    dead.push_back({{"event_id", d.event_id.to_string()},
                    {"invitation_id", d.invitation_id.to_string()},
                    {"error", d.error},
                    {"attempts", d.attempts},
                    {"failed_at", format_rfc3339(d.failed_at)}});
  }
  return {{"job_id", v.job_id.to_string()},
          {"invite_id", v.invite_id.to_string()},
          {"status", v.status()},
          {"total", v.total},
          {"processed", v.processed()},
          {"sent", v.sent},
          {"failed", v.failed},
          {"dead_letters", dead}};
}

// The mailer: SMTP when configured, else .eml files in <data>/outbox. Started once the
// HTTP port is known (the personal links name it).
void make_mailer(server::impl& im, const fs::path& dir) {
  const auto& o = im.options;
  std::unique_ptr<consumers::mail_transport> transport;
  if (o.smtp_url.empty()) {
    transport = consumers::make_eml_transport((dir / "outbox").string());
  } else {
    transport = consumers::make_smtp_transport({.url = o.smtp_url,
                                                .starttls = o.smtp_starttls,
                                                .username = o.smtp_user,
                                                .password = o.smtp_password});
  }
  consumers::mailer_options mo;
  mo.state_path = (dir / "mailer").string();
  mo.outbox_path = (dir / "outbox").string();  // copies kept before a switch to SMTP too
  mo.from = o.mail_from;
  mo.templates_dir = o.mail_templates;
  mo.max_attempts = o.mail_max_attempts;
  mo.initial_backoff = o.mail_initial_backoff;
  mo.max_backoff = o.mail_max_backoff;
  mo.batch_delay = o.mail_batch_delay;
  mo.reminder_poll = o.mail_reminder_poll;
  mo.claim_digest_window = o.mail_claim_digest_window;
  mo.clock = im.clock;
  auto* raw = &im;
  auto base_url = [raw] {
    std::string base = raw->options.public_url;
    if (base.empty()) {
      base = "http://" + raw->options.address + ":" +
             std::to_string(raw->http ? raw->http->port() : raw->options.port);
    }
    while (!base.empty() && base.back() == '/') base.pop_back();
    return base;
  };
  mo.personal_link = [raw, base_url](std::string_view code, const uuid& invite,
                                     const uuid& invitation) {
    return base_url() + "/i/" + std::string(code) +
           "?invitation=" + raw->commands->links().issue({invite, invitation});
  };
  // Welcome mails of accounts made by a claim: the one-time set-password page.
  mo.password_link = [raw, base_url](const uuid& learner, const uuid& setup) {
    return base_url() + "/p/" + raw->commands->password_setups().issue({learner, setup});
  };
  im.mailer = std::make_unique<consumers::mailer>(*im.store, *im.codec, std::move(transport),
                                                  std::move(mo));
}

// Blocks until the read models have applied `position`, or the projector failed.
result<void, std::string> wait_for_read_models(server::impl& im, std::uint64_t position) {
  while (im.reads->applied_position() < position) {
    if (auto e = im.projector->error()) return fail("read models: " + e->message);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return {};
}

}  // namespace

result<std::string, std::string> open_node_folder(const std::string& dir,
                                                  const std::string& secret_name) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail("cannot create data folder " + dir + ": " + ec.message());
  // The folder holds every learner's key, the node's secret and tokens: for this user only.
  // A folder others may enter (made by hand, or by an older build) is closed to them.
  constexpr auto others = fs::perms::group_all | fs::perms::others_all;
  // One this user may not change (owned by another, e.g. a volume shared by group) is
  // used as it is, with a warning: its owner decides who may enter it.
  if (auto st = fs::status(dir, ec); !ec && (st.permissions() & others) != fs::perms::none) {
    fs::permissions(dir, others, fs::perm_options::remove, ec);
    if (ec) {
      spdlog::warn(
          "data folder {} is open to other users and cannot be made private ({}): "
          "it holds every learner's key",
          dir, ec.message());
    }
  }
  bool created = false;
  return secret_file((fs::path(dir) / secret_name).string(), [] { return secure_random_hex(32); },
                     created);
}

server::server(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

server::~server() { stop(std::chrono::seconds(2)); }

std::uint16_t server::port() const { return impl_->http ? impl_->http->port() : 0; }
const std::string& server::owner_token() const { return impl_->owner_token; }
const std::string& server::operator_token() const { return impl_->operator_token; }
const std::string& server::kafka_bootstrap() const { return impl_->kafka_bootstrap; }
const std::vector<int>& server::io_thread_ids() const { return impl_->io_thread_ids; }

std::string unreachable_links_warning(const server_options& o) {
  if (!o.public_url.empty()) return {};
  const std::string& a = o.address;
  if (a != "0.0.0.0" && a != "::" && a != "[::]" && !a.empty()) return {};
  return "passage: warning: --public-url is not set and --listen is a wildcard address (" +
         (a.empty() ? std::string("any") : a) +
         "): links in mails (invitations, reminders, set-password) would point at it; set "
         "--public-url (PASSAGE_PUBLIC_URL) to the URL learners open";
}

result<std::unique_ptr<server>, std::string> server::start(server_options options) {
  auto im = std::make_unique<impl>();
  im->options = std::move(options);
  auto& o = im->options;
  im->clock = o.clock ? o.clock : &im->system_clock;
  // Refuse bad settings before touching the data folder.
  auto per_ip = api::parse_rate_limit(o.claim_limit_per_ip);
  if (!per_ip) return fail("--claim-limit-per-ip: " + per_ip.error());
  auto per_email = api::parse_rate_limit(o.claim_limit_per_email);
  if (!per_email) return fail("--claim-limit-per-email: " + per_email.error());
  if (auto warning = unreachable_links_warning(o); !warning.empty()) im->say(warning);

  fs::path dir(o.data_dir);
  auto secret = open_node_folder(o.data_dir, "server.secret");
  if (!secret) return fail(secret.error());

  // New learners' keys are synced once per group commit of the log, just before
  // the events encrypted with them, instead of one fsync per learner.
  auto keys = eventstore::open_key_store({.path = (dir / "keys").string(), .sync_new_keys = false});
  if (!keys) return fail(keys.error().message);
  im->keys = std::move(*keys);
  auto* key_store = im->keys.get();
  im->metrics = std::make_shared<api::metrics>();
  eventstore::event_store_options store_options{
      .path = (dir / "events").string(), .sync = o.sync, .clock = im->clock};
  // The disk's share of an append's latency: one fsync makes every commit written before
  // it durable, so its count against the appends' says how many share one.
  // (The metrics, destroyed before the store, are kept alive by the hook.)
  store_options.after_sync =
      [metrics = im->metrics,
       &fsync_duration = im->metrics->histogram(
           "passage_log_fsync_duration_seconds",
           "Time one fsync of the event log takes (each makes one or more group commits durable)",
           {0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 1})](
          std::chrono::nanoseconds took) {
        fsync_duration.Observe(std::chrono::duration<double>(took).count());
      };
  store_options.before_commit = [key_store]() -> std::optional<std::string> {
    if (auto r = key_store->sync(); !r) return r.error().message;
    return std::nullopt;
  };
  auto store = eventstore::open_event_store(store_options);
  if (!store) return fail(store.error().message);
  im->store = std::move(*store);
  im->codec = std::make_unique<eventstore::event_codec>(*im->keys, derive_key(*secret, "pepper"));

  // Read models written in another record format rebuild from the log as the
  // projector catches up (at start, before /readyz says ready).
  projections::read_models_options reads_options{.path = (dir / "readmodels").string()};
  bool rebuilding = false;
  reads_options.on_format_change = [raw = im.get(), &rebuilding](std::string_view found) {
    rebuilding = true;
    raw->say("passage: read models were in record format " + std::string(found) +
             "; rebuilding them from the log");
  };
  auto reads = projections::read_models::open(reads_options, *im->codec);
  if (!reads) return fail(reads.error().message);
  im->reads = std::move(*reads);
  // Behind after a crash (the tail since their last flush), far behind after a rebuild
  // or a restored log: serving waits for them, so say why it does not start at once.
  if (const auto from = im->reads->applied_position(), to = im->store->head_position(); from < to) {
    im->say("passage: read models catching up from position " + std::to_string(from) + " to " +
            std::to_string(to));
  }
  im->projector = std::make_unique<projections::projector>(*im->store, *im->reads);
  if (auto started = im->projector->start(); !started) return fail(started.error().message);
  // Commands decide on facts the read models hold (a learner by email, an invite by
  // code): while they rebuild from 0, or re-apply the tail a crash took from them (they
  // keep no write-ahead log), serving would act on missing facts. Wait.
  if (auto caught_up = wait_for_read_models(*im, im->store->head_position()); !caught_up)
    return fail(caught_up.error());
  if (rebuilding) {
    im->say("passage: read models rebuilt to position " +
            std::to_string(im->reads->applied_position()));
  }

  // Kafka: the relay only reads the log, so commands never wait for brokers.
  if (o.kafka_brokers != "none") {
    consumers::relay_options relay_options;
    relay_options.topic = o.kafka_topic;
    relay_options.checkpoint_path = (dir / "relay").string();
    relay_options.clock = im->clock;
    if (o.kafka_brokers.empty()) {
      auto broker = consumers::embedded_broker::start({.topic = o.kafka_topic});
      if (!broker) return fail("embedded Kafka broker: " + broker.error().message);
      im->broker = std::move(*broker);
      relay_options.brokers = im->broker->bootstrap_servers();
      // A new embedded broker starts empty: publish the whole log into it.
      relay_options.from_start = true;
    } else {
      relay_options.brokers = o.kafka_brokers;
    }
    im->kafka_bootstrap = relay_options.brokers;
    im->relay = std::make_unique<consumers::relay>(*im->store, *im->codec, relay_options);
    if (auto started = im->relay->start(); !started) {
      return fail("Kafka relay: " + started.error().message);
    }
    im->say("passage: publishing events to Kafka topic " + o.kafka_topic + " at " +
            im->kafka_bootstrap + (im->broker ? " (embedded broker)" : ""));
  }

  auto& append_latency = im->metrics->histogram(
      "passage_append_duration_seconds", "Time from queueing an append to its fsync",
      {0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1});
  im->facts = std::make_unique<read_model_facts>(*im->reads);
  service::command_service_options command_options;
  command_options.on_append_latency = [&append_latency](std::chrono::duration<double> d) {
    append_latency.Observe(d.count());
  };
  command_options.personal_link_secret = derive_key(*secret, "personal-link");
  command_options.password_setup_secret = derive_key(*secret, "password-setup");
  // Forgetting a learner also deletes the .eml copies of mails to them (SPEC §6).
  command_options.before_keys_destroyed = [raw = im.get()] {
    if (raw->mailer) raw->mailer->keys_being_destroyed();
  };
  // ... and messages the Kafka relay has not delivered yet are encoded again.
  command_options.after_keys_destroyed = [raw = im.get()] {
    if (raw->relay) raw->relay->keys_destroyed();
  };
  command_options.on_email_forgotten = [raw = im.get()](const uuid& org, const std::string& email) {
    if (raw->mailer) raw->mailer->forget_email(org, email);
  };
  im->commands = std::make_unique<service::command_service>(
      *im->store, *im->codec, *im->keys, *im->facts, *im->clock,
      service::learner_token_codec(derive_key(*secret, "learner-token")), command_options);

  im->expiry = std::make_unique<service::expiry_scheduler>(*im->store, *im->codec, *im->commands,
                                                           *im->clock);
  im->expiry->start();
  make_mailer(*im, dir);

  // The default organization and its owner key.
  std::optional<std::string> owner = o.owner_token;
  bool owner_created = false;
  if (!owner) {
    auto stored = secret_file((dir / "owner.token").string(),
                              [] { return service::generate_api_key(); }, owner_created);
    if (!stored) return fail(stored.error());
    owner = *stored;
  }
  auto org = im->commands->ensure_organization(default_org_id(), "Default organization", owner);
  if (!org) return fail("creating the default organization: " + org.error().message);
  if (o.owner_token || owner_created) im->owner_token = *owner;
  if (owner_created) {
    im->say("passage: owner API key of the default organization (shown once, kept in " +
            (dir / "owner.token").string() + "): " + *owner);
  }
  std::string operator_key;
  if (o.operator_token) {
    operator_key = *o.operator_token;
  } else {
    bool op_created = false;
    auto stored = secret_file((dir / "operator.token").string(),
                              [] { return service::generate_api_key(); }, op_created);
    if (!stored) return fail(stored.error());
    operator_key = *stored;
    if (op_created) {
      im->say("passage: operator key (creates organizations; kept in " +
              (dir / "operator.token").string() + "): " + operator_key);
    }
  }
  im->operator_token = operator_key;

  auto idem = api::v1::idempotency_store::open(
      {.path = (dir / "idempotency").string(), .clock = im->clock});
  if (!idem) return fail(idem.error());
  im->idempotency = std::move(*idem);

  im->per_ip = std::make_unique<api::rate_limiter>(
      api::rate_limiter_options{.limit = *per_ip, .clock = im->clock});
  im->per_email = std::make_unique<api::rate_limiter>(
      api::rate_limiter_options{.limit = *per_email, .clock = im->clock});
  im->logins_per_ip = std::make_unique<api::rate_limiter>(
      api::rate_limiter_options{.limit = *per_ip, .clock = im->clock});
  im->logins_per_email = std::make_unique<api::rate_limiter>(
      api::rate_limiter_options{.limit = *per_email, .clock = im->clock});

  im->router = std::make_unique<api::router>();
  im->slow_queries = std::make_unique<api::work_queue>(api::work_queue_options{
      .threads = std::max(1U, o.slow_query_threads), .max_jobs = o.slow_query_limit});
  api::v1::endpoint_deps deps;
  deps.slow_queries = im->slow_queries.get();
  // scrypt takes ~100 ms of CPU and 32 MiB a hash: two at a time.
  im->password_hashing = std::make_unique<api::work_queue>(
      api::work_queue_options{.threads = 2, .max_jobs = o.password_hash_limit});
  deps.password_hashing = im->password_hashing.get();
  deps.live_tail_max_clients = o.max_live_clients;
  deps.events_page_scan = std::max<std::uint64_t>(1, o.events_page_scan);
  deps.commands = im->commands.get();
  deps.reads = im->reads.get();
  deps.codec = im->codec.get();
  deps.store = im->store.get();
  deps.idempotency = im->idempotency.get();
  deps.clock = im->clock;
  deps.operator_key_hash = service::hash_api_key(operator_key);
  deps.applied = std::make_shared<api::v1::applied_wait>(*im->reads, std::chrono::seconds(5));
  auto* raw = im.get();
  auto check = [](api::rate_limiter* limiter) {
    return [limiter](std::string_view key) -> std::optional<std::chrono::seconds> {
      auto d = limiter->acquire(key);
      if (d.allowed) return std::nullopt;
      return d.retry_after;
    };
  };
  if (!per_ip->disabled()) {
    deps.claims_per_ip = check(im->per_ip.get());
    deps.logins_per_ip = check(im->logins_per_ip.get());
  }
  if (!per_email->disabled()) {
    deps.claims_per_email = check(im->per_email.get());
    deps.logins_per_email = check(im->logins_per_email.get());
  }
  deps.not_ready = [raw]() -> std::string {
    if (raw->projector->is_live()) return "";
    return raw->projector->error() ? "failed" : "starting";
  };
  deps.on_invitation_job = [raw](const service::invitation_job& job) {
    if (auto r = raw->mailer->register_job(job.job_id, job.org_id, job.invite_id, job.total); !r) {
      raw->say("passage: mailer: " + r.error().message);
    }
  };
  deps.on_learner_forgotten = [raw](const uuid& learner) { raw->mailer->forget_learner(learner); };
  deps.job_status = [raw](const uuid& org, const uuid& job) -> std::optional<nlohmann::json> {
    auto v = raw->mailer->job(org, job);
    if (!v) return std::nullopt;
    return job_json(*v);
  };
  deps.system_info = [raw] {
    nlohmann::json kafka = {{"enabled", raw->relay != nullptr}};
    if (raw->relay) {
      auto st = raw->relay->stats();
      kafka["bootstrap"] = raw->kafka_bootstrap;
      kafka["embedded"] = raw->broker != nullptr;
      kafka["topic"] = raw->options.kafka_topic;
      kafka["published_position"] = st.published_position;
      kafka["backlog"] = st.backlog;
      kafka["publish_lag_seconds"] = st.lag_seconds;
      kafka["connected"] = st.connected;
      kafka["messages_published"] = st.messages_published;
      kafka["errors"] = st.errors;
      if (!st.last_error.empty()) kafka["last_error"] = st.last_error;
    }
    auto mail = raw->mailer->stats();
    return nlohmann::json{{"kafka", kafka},
                          {"projector_live", raw->projector->is_live()},
                          {"mail",
                           {{"transport", raw->mailer->transport()},
                            {"checkpoint", mail.checkpoint},
                            {"sent", mail.sent},
                            {"failed", mail.failed},
                            {"attempts_failed", mail.attempts_failed},
                            {"reminders_sent", mail.reminders_sent},
                            {"reminders_skipped", mail.reminders_skipped},
                            {"digests_sent", mail.digests_sent},
                            {"digest_claims", mail.digest_claims},
                            {"digests_skipped", mail.digests_skipped},
                            {"outbox_upgraded", mail.outbox_upgraded},
                            {"restarts", mail.restarts}}}};
  };
  api::v1::register_routes(*im->router, deps);
  web::register_routes(*im->router);  // the console and the learner page's assets
  // Positions and lags are read when scraped, so they are never stale.
  auto& log_position = im->metrics->gauge("passage_log_position", "Last position in the event log");
  auto& read_position =
      im->metrics->gauge("passage_read_model_position", "Last position applied to the read models");
  auto& read_lag = im->metrics->gauge("passage_read_model_lag_events",
                                      "Events in the log not yet applied to the read models");
  auto& kafka_backlog = im->metrics->gauge("passage_kafka_backlog_events",
                                           "Events in the log not yet acknowledged by Kafka");
  auto& kafka_lag = im->metrics->gauge("passage_kafka_publish_lag_seconds",
                                       "Age of the oldest event not yet acknowledged by Kafka");
  auto& kafka_published = im->metrics->gauge("passage_kafka_published_position",
                                             "Every position up to this one is in Kafka");
  im->router->add(api::http::verb::get, "/metrics",
                  [raw, &log_position, &read_position, &read_lag, &kafka_backlog, &kafka_lag,
                   &kafka_published, handler = im->metrics->metrics_handler()](
                      const api::request& req, api::request_context& ctx, api::responder respond) {
                    auto head = raw->store->head_position();
                    auto applied = raw->reads->applied_position();
                    log_position.Set(double(head));
                    read_position.Set(double(applied));
                    read_lag.Set(double(head - std::min(head, applied)));
                    if (raw->relay) {
                      auto st = raw->relay->stats();
                      kafka_backlog.Set(double(st.backlog));
                      kafka_lag.Set(st.lag_seconds);
                      kafka_published.Set(double(st.published_position));
                    }
                    handler(req, ctx, std::move(respond));
                  });
  auto openapi = std::make_shared<std::string>();
  im->router->add(
      api::http::verb::get, "/openapi.json",
      [openapi](const api::request&, api::request_context&, api::responder respond) {
        respond(api::text_response(api::http::status::ok, *openapi, "application/json"));
      });
  *openapi = api::v1::openapi_document(*im->router).dump(2);

  // Gauges that read live values at scrape time would need a collectable; the
  // positions are refreshed by the projector's progress instead.
  api::http_server_options http;
  http.address = o.address;
  http.port = o.port;
  http.trust_proxy = o.trust_proxy;
  // A bulk send carries up to 10,000 addresses; every other route keeps the 64 KiB default.
  http.route_body_bytes = {{"POST /v1/invites/{id}/send", std::size_t{1} << 20}};
  http.route_of = [r = im->router.get()](api::http::verb method, std::string_view target) {
    return r->route_of(method, target);
  };
  http.metrics = im->metrics;
  if (o.access_log) http.access_log = api::make_json_logger("passage.access");
  http.clock = im->clock;
  im->http = std::make_unique<api::http_server>(im->ioc, http, im->router->as_handler());
  if (auto started = im->http->start(); !started) return fail(started.error());
  if (auto started = im->mailer->start(); !started) {
    return fail("mailer: " + started.error().message);
  }
  im->work.emplace(boost::asio::make_work_guard(im->ioc));
  std::vector<std::future<int>> tids;
  for (unsigned i = 0; i < std::max(1u, o.threads); ++i) {
    std::promise<int> tid;
    tids.push_back(tid.get_future());
    im->threads.emplace_back([raw, tid = std::move(tid)]() mutable {
      // Named, so that top -H and perf can tell the I/O threads apart (threads they start
      // inherit the name; io_thread_ids() names these alone).
      pthread_setname_np(pthread_self(), "passage-io");
      tid.set_value(static_cast<int>(::gettid()));
      raw->ioc.run();
    });
  }
  for (auto& tid : tids) im->io_thread_ids.push_back(tid.get());
  im->say("passage: listening on http://" + o.address + ":" + std::to_string(im->http->port()));
  return std::unique_ptr<server>(new server(std::move(im)));
}

void server::stop(std::chrono::milliseconds grace) {
  auto& im = *impl_;
  {
    std::lock_guard lk(im.stop_mu);
    if (im.stopping) return;
    im.stopping = true;
  }
  if (im.expiry) im.expiry->stop();
  if (im.mailer) im.mailer->stop();
  if (im.http) (void)im.http->stop(grace);
  // Slow work still queued answers now, while the I/O threads can still deliver.
  if (im.slow_queries) im.slow_queries->stop();
  if (im.password_hashing) im.password_hashing->stop();
  im.work.reset();
  im.ioc.stop();
  for (auto& t : im.threads) t.join();
  im.threads.clear();
  im.http.reset();
  im.router.reset();  // its routes own the live tail, whose reader ends here
  if (im.relay) im.relay->stop();
  im.relay.reset();
  im.broker.reset();
  if (im.projector) im.projector->stop();
  // The read models keep no write-ahead log: what the memtable holds reaches their files
  // here. A failure costs nothing the log cannot give back, but a failing disk is news.
  if (im.reads) {
    if (auto closed = im.reads->close(); !closed) im.say("passage: " + closed.error().message);
  }
  if (im.store) im.store->close();
  {
    std::lock_guard lk(im.stop_mu);
    im.stopped = true;
  }
  im.stopped_cv.notify_all();
}

void server::wait() {
  std::unique_lock lk(impl_->stop_mu);
  impl_->stopped_cv.wait(lk, [&] { return impl_->stopped; });
}

}  // namespace passage::app
