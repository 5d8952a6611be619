#include "app/replica.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "api/http_server.h"
#include "api/logging.h"
#include "api/metrics.h"
#include "api/router.h"
#include "api/v1/endpoints.h"
#include "api/v1/idempotency.h"
#include "app/server.h"
#include "common/random.h"
#include "common/time_format.h"
#include "eventstore/event_codec.h"
#include "eventstore/key_store.h"
#include "projections/read_models.h"

namespace passage::app {

namespace fs = std::filesystem;

struct replica_node::impl {
  replica_node_options options;
  passage::system_clock system_clock;
  const passage::clock* clock = nullptr;

  std::unique_ptr<eventstore::key_store> keys;
  std::unique_ptr<eventstore::event_codec> codec;
  std::unique_ptr<projections::read_models> reads;
  std::unique_ptr<consumers::replica> feed;
  std::unique_ptr<api::v1::idempotency_store> idempotency;  // registration only: no commands
  std::shared_ptr<api::metrics> metrics;
  std::unique_ptr<api::router> router;
  boost::asio::io_context ioc;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work;
  std::unique_ptr<api::http_server> http;
  std::vector<std::thread> threads;
  std::mutex stop_mu;
  bool stopped = false;

  void say(const std::string& s) {
    if (options.say) {
      options.say(s);
    } else {
      std::fprintf(stderr, "%s\n", s.c_str());
    }
  }
  nlohmann::json system_info() const;
  void add_metrics_route();
};

nlohmann::json replica_node::impl::system_info() const {
  auto st = feed->stats();
  nlohmann::json replica = {{"primary", options.primary},
                            {"topic", options.kafka_topic},
                            {"bootstrap", options.kafka_brokers},
                            {"applied_position", st.applied_position},
                            {"last_seen_position", st.last_seen_position},
                            {"lag_events", st.lag_events},
                            {"lag_seconds", st.lag_seconds},
                            {"kafka_lag_messages", st.kafka_lag_messages},
                            {"buffered", st.buffered},
                            {"waiting_for_position", st.waiting_for_position},
                            {"partitions", st.partitions},
                            {"paused", st.paused},
                            {"messages", st.messages},
                            {"duplicates", st.duplicates},
                            {"conflicts", st.conflicts},
                            {"rejected", st.rejected},
                            {"caught_up", st.caught_up},
                            {"failed", st.failed}};
  if (!st.last_error.empty()) replica["last_error"] = st.last_error;
  return nlohmann::json{{"role", "replica"}, {"replica", replica}};
}

void replica_node::impl::add_metrics_route() {
  struct gauge_of {
    prometheus::Gauge* gauge;
    double (*value)(const consumers::replica_stats&);
  };
  auto& m = *metrics;
  std::vector<gauge_of> gauges = {
      {&m.gauge("passage_replica_applied_position", "Last position applied to the read models"),
       [](const consumers::replica_stats& s) { return double(s.applied_position); }},
      {&m.gauge("passage_replica_last_seen_position", "Highest position read from Kafka"),
       [](const consumers::replica_stats& s) { return double(s.last_seen_position); }},
      {&m.gauge("passage_replica_lag_events", "Positions seen on Kafka not yet applied"),
       [](const consumers::replica_stats& s) { return double(s.lag_events); }},
      {&m.gauge("passage_replica_lag_seconds",
                "Event time between the newest event seen and the last applied"),
       [](const consumers::replica_stats& s) { return s.lag_seconds; }},
      {&m.gauge("passage_replica_buffered_events", "Events held for an earlier position"),
       [](const consumers::replica_stats& s) { return double(s.buffered); }},
      {&m.gauge("passage_replica_duplicates", "Messages dropped as already applied or held"),
       [](const consumers::replica_stats& s) { return double(s.duplicates); }},
      {&m.gauge("passage_replica_kafka_lag_messages", "Messages behind the high watermarks"),
       [](const consumers::replica_stats& s) { return double(s.kafka_lag_messages); }},
  };
  router->add(api::http::verb::get, "/metrics",
              [this, gauges, handler = metrics->metrics_handler()](
                  const api::request& req, api::request_context& ctx, api::responder respond) {
                auto st = feed->stats();
                for (const auto& g : gauges) g.gauge->Set(g.value(st));
                handler(req, ctx, std::move(respond));
              });
}

replica_node::replica_node(std::unique_ptr<impl> i) : impl_(std::move(i)) {}
replica_node::~replica_node() { stop(std::chrono::seconds(2)); }

std::uint16_t replica_node::port() const { return impl_->http ? impl_->http->port() : 0; }
consumers::replica_stats replica_node::stats() const { return impl_->feed->stats(); }

result<std::unique_ptr<replica_node>, std::string> replica_node::start(
    replica_node_options options) {
  auto im = std::make_unique<impl>();
  im->options = std::move(options);
  auto& o = im->options;
  im->clock = o.clock ? o.clock : &im->system_clock;
  if (o.kafka_brokers.empty() || o.kafka_brokers == "none")
    return fail(
        std::string("--kafka-brokers: a replica needs the brokers the primary publishes to"));
  if (o.kafka_topic.empty()) return fail(std::string("--kafka-topic must not be empty"));

  fs::path dir(o.data_dir);
  // The replica's own secret: its pepper keys its email hashes; nothing is shared with
  // the primary, whose personal data arrives decrypted and is encrypted again here.
  auto secret = open_node_folder(o.data_dir, "replica.secret");
  if (!secret) return fail(secret.error());
  auto keys = eventstore::open_key_store({.path = (dir / "keys").string(), .sync_new_keys = false});
  if (!keys) return fail(keys.error().message);
  im->keys = std::move(*keys);
  im->codec = std::make_unique<eventstore::event_codec>(*im->keys, derive_key(*secret, "pepper"));
  // fsync per batch: the consumed offsets are written after it and must never be ahead.
  projections::read_models_options reads_options{.path = (dir / "readmodels").string(),
                                                 .sync = true};
  // Read models of another record format are not wiped here: a replica has no log of
  // its own, and what Kafka still retains (topic retention) may no longer start at
  // position 1, so the operator decides. Its consumed offsets (<dir>/replica) go too:
  // kept, they would resume past what emptied read models need.
  reads_options.format_advice = "delete " + (dir / "readmodels").string() + " and " +
                                (dir / "replica").string() +
                                " and restart to re-consume from Kafka";
  auto reads = projections::read_models::open(reads_options, *im->codec);
  if (!reads) return fail(reads.error().message);
  im->reads = std::move(*reads);

  im->feed = std::make_unique<consumers::replica>(
      *im->reads, *im->keys, *im->codec,
      consumers::replica_options{.brokers = o.kafka_brokers,
                                 .topic = o.kafka_topic,
                                 .state_path = (dir / "replica").string(),
                                 .max_buffered = o.max_buffered});
  if (auto started = im->feed->start(); !started) return fail(started.error().message);
  im->say("passage replica: following Kafka topic " + o.kafka_topic + " at " + o.kafka_brokers +
          " from position " + std::to_string(im->reads->applied_position() + 1));

  auto idem = api::v1::idempotency_store::open(
      {.path = (dir / "idempotency").string(), .clock = im->clock});
  if (!idem) return fail(idem.error());
  im->idempotency = std::move(*idem);

  im->metrics = std::make_shared<api::metrics>();
  im->router = std::make_unique<api::router>();
  auto* raw = im.get();
  api::v1::endpoint_deps deps;
  deps.reads = im->reads.get();
  deps.codec = im->codec.get();
  deps.idempotency = im->idempotency.get();
  deps.clock = im->clock;
  deps.primary = o.primary;
  deps.log_position = [raw] { return raw->feed->stats().last_seen_position; };
  // A replica that stopped applying (an event it cannot apply) serves ever older
  // answers: out of rotation, not ready.
  deps.not_ready = [raw]() -> std::string {
    auto st = raw->feed->stats();
    if (st.failed) return "failed";
    return st.caught_up ? "" : "starting";
  };
  deps.system_info = [raw] { return raw->system_info(); };
  api::v1::register_routes(*im->router, deps);
  im->add_metrics_route();

  api::http_server_options http;
  http.address = o.address;
  http.port = o.port;
  http.trust_proxy = o.trust_proxy;
  http.metrics = im->metrics;
  if (o.access_log) http.access_log = api::make_json_logger("passage.access");
  http.clock = im->clock;
  im->http = std::make_unique<api::http_server>(im->ioc, http, im->router->as_handler());
  if (auto started = im->http->start(); !started) return fail(started.error());
  im->work.emplace(boost::asio::make_work_guard(im->ioc));
  for (unsigned i = 0; i < std::max(1u, o.threads); ++i) {
    im->threads.emplace_back([raw] { raw->ioc.run(); });
  }
  im->say("passage replica: listening on http://" + o.address + ":" +
          std::to_string(im->http->port()));
  return std::unique_ptr<replica_node>(new replica_node(std::move(im)));
}

void replica_node::stop(std::chrono::milliseconds grace) {
  auto& im = *impl_;
  std::lock_guard lk(im.stop_mu);
  if (im.stopped) return;
  im.stopped = true;
  if (im.http) (void)im.http->stop(grace);
  im.work.reset();
  im.ioc.stop();
  for (auto& t : im.threads) t.join();
  im.threads.clear();
  im.http.reset();
  if (im.feed) im.feed->stop();
  // Closed here rather than by a destructor, which would keep a failing disk to itself;
  // and once stop() returns the folder is free for another process or a replay.
  if (im.reads) {
    if (auto closed = im.reads->close(); !closed) {
      im.say("passage replica: " + closed.error().message);
    }
  }
}

}  // namespace passage::app
