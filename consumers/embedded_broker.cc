#include "consumers/embedded_broker.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <vector>

namespace passage::consumers {

namespace {

constexpr std::int16_t produce_api_key = 0;  // Kafka protocol ApiKey of Produce

rd_kafka_resp_err_t to_kafka(produce_fault f) {
  switch (f) {
    case produce_fault::not_leader_for_partition:
      return RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION;
    case produce_fault::request_timed_out:
      return RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT;
    case produce_fault::not_enough_replicas:
      return RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS;
    case produce_fault::topic_authorization_failed:
      return RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED;
  }
  return RD_KAFKA_RESP_ERR_UNKNOWN;
}

consumer_error broker_error(std::string what, rd_kafka_resp_err_t err) {
  return {errc::broker, what + ": " + rd_kafka_err2str(err)};
}

}  // namespace

struct embedded_broker::impl {
  rd_kafka_t* handle = nullptr;  // owns the cluster's threads; never produces
  rd_kafka_mock_cluster_t* cluster = nullptr;

  ~impl() {
    if (cluster) rd_kafka_mock_cluster_destroy(cluster);
    if (handle) rd_kafka_destroy(handle);
  }
};

result<std::unique_ptr<embedded_broker>, consumer_error> embedded_broker::start(
    const embedded_broker_options& options) {
  if (options.broker_count < 1 || options.partitions < 1 || options.replication_factor < 1 ||
      options.replication_factor > options.broker_count || options.topic.empty()) {
    return consumer_error{errc::invalid_config,
                          "embedded broker: need broker_count >= 1, partitions >= 1, "
                          "1 <= replication_factor <= broker_count and a topic"};
  }
  auto state = std::make_unique<impl>();
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The handle only hosts the cluster: keep it quiet about having no brokers itself.
  rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
  state->handle = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!state->handle) {
    rd_kafka_conf_destroy(conf);
    return consumer_error{errc::broker, std::string("embedded broker: ") + errstr};
  }
  // Listens on 127.0.0.1 with ephemeral ports: never reachable from outside the host.
  state->cluster = rd_kafka_mock_cluster_new(state->handle, options.broker_count);
  if (!state->cluster) return consumer_error{errc::broker, "embedded broker: cannot start"};
  if (auto err = rd_kafka_mock_topic_create(state->cluster, options.topic.c_str(),
                                            options.partitions, options.replication_factor)) {
    return broker_error("embedded broker: create topic " + options.topic, err);
  }
  return std::unique_ptr<embedded_broker>(new embedded_broker(options, std::move(state)));
}

embedded_broker::embedded_broker(embedded_broker_options options, std::unique_ptr<impl> state)
    : options_(std::move(options)),
      impl_(std::move(state)),
      bootstraps_(rd_kafka_mock_cluster_bootstraps(impl_->cluster)) {}

embedded_broker::~embedded_broker() = default;

result<void, consumer_error> embedded_broker::set_down(int id) {
  if (auto err = rd_kafka_mock_broker_set_down(impl_->cluster, id))
    return broker_error("set_down", err);
  return {};
}

result<void, consumer_error> embedded_broker::set_up(int id) {
  if (auto err = rd_kafka_mock_broker_set_up(impl_->cluster, id))
    return broker_error("set_up", err);
  return {};
}

result<void, consumer_error> embedded_broker::set_rtt(int id, std::chrono::milliseconds rtt) {
  if (auto err = rd_kafka_mock_broker_set_rtt(impl_->cluster, id, static_cast<int>(rtt.count())))
    return broker_error("set_rtt", err);
  return {};
}

void embedded_broker::push_produce_errors(std::size_t count, produce_fault fault) {
  std::vector<rd_kafka_resp_err_t> errors(count, to_kafka(fault));
  rd_kafka_mock_push_request_errors_array(impl_->cluster, produce_api_key, count, errors.data());
}

void embedded_broker::clear_produce_errors() {
  rd_kafka_mock_clear_request_errors(impl_->cluster, produce_api_key);
}

}  // namespace passage::consumers
