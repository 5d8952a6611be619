#pragma once
// An in-process Kafka-protocol broker (librdkafka's mock cluster) for
// `passage serve` without --kafka-brokers, for tests and for benchmarks. It
// speaks the real protocol on loopback, so any client (kcat, kafka-python, the
// relay) can produce and consume; it keeps everything in memory and starts empty.
//
//   auto broker = embedded_broker::start({.topic = "passage.events"});
//   if (!broker) die(broker.error().message);
//   std::cout << (*broker)->bootstrap_servers();   // "127.0.0.1:40123"
//   // kcat -b 127.0.0.1:40123 -C -t passage.events

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "consumers/errors.h"

namespace passage::consumers {

struct embedded_broker_options {
  // Brokers in the cluster, ids 1..broker_count. Default: 1.
  int broker_count = 1;
  // Topic created at start. Default: "passage.events".
  std::string topic = "passage.events";
  // Partitions of that topic. Default: 12.
  int partitions = 12;
  // Replicas per partition (at most broker_count). Default: 1.
  int replication_factor = 1;
};

// Faults the broker can be told to answer Produce requests with (testing and chaos).
enum class produce_fault {
  not_leader_for_partition,    // retriable: the client refreshes metadata and retries
  request_timed_out,           // retriable
  not_enough_replicas,         // retriable
  topic_authorization_failed,  // permanent: the message fails
};

// Owned by the application (or a test); every method is safe from any thread.
// The cluster's own threads stop in the destructor.
class embedded_broker {
 public:
  static result<std::unique_ptr<embedded_broker>, consumer_error> start(
      const embedded_broker_options& options = {});
  ~embedded_broker();
  embedded_broker(const embedded_broker&) = delete;
  embedded_broker& operator=(const embedded_broker&) = delete;

  // Comma-separated host:port list for clients' bootstrap.servers.
  const std::string& bootstrap_servers() const { return bootstraps_; }
  const embedded_broker_options& options() const { return options_; }

  // Disconnects broker `id` (1-based) and refuses new connections until set_up().
  result<void, consumer_error> set_down(int id);
  result<void, consumer_error> set_up(int id);
  // Delays every response of broker `id` by `rtt`.
  result<void, consumer_error> set_rtt(int id, std::chrono::milliseconds rtt);
  // The next `count` Produce requests (to any broker) fail with `fault`.
  void push_produce_errors(std::size_t count, produce_fault fault);
  // Forgets faults pushed and not yet used.
  void clear_produce_errors();

 private:
  struct impl;
  embedded_broker(embedded_broker_options options, std::unique_ptr<impl> impl);

  embedded_broker_options options_;
  std::unique_ptr<impl> impl_;
  std::string bootstraps_;
};

}  // namespace passage::consumers
