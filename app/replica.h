#pragma once
// A read replica node (`passage replica`): the read models fed from the Kafka topic the
// primary publishes (consumers::replica), served read-only over the same HTTP API. It
// needs no access to the primary's data folder: API keys, invites and claims all come
// from the events. Commands answer 409 read_only_replica naming the primary.
//
//   auto node = replica_node::start({.data_dir = "replica-1", .kafka_brokers = "kafka:9092"});
//   if (!node) die(node.error());
//   (*node)->stats().applied_position;
//   (*node)->stop();

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/result.h"
#include "consumers/replica.h"

namespace passage::app {

struct replica_node_options {
  // The replica's own folder (keys, read models, consumed offsets). Default: "replica".
  std::string data_dir = "replica";
  // Address and port of the HTTP API. Default: 127.0.0.1:8081; port 0 picks one.
  std::string address = "127.0.0.1";
  std::uint16_t port = 8081;
  // I/O threads. Default: 2.
  unsigned threads = 2;
  // Kafka bootstrap servers host:port,... Required.
  std::string kafka_brokers;
  // Default: "passage.events".
  std::string kafka_topic = "passage.events";
  // Where the primary answers, named in refusals. Default: "the primary".
  std::string primary = "the primary";
  // Events held for an earlier position before partitions are paused. Default: 100000.
  std::size_t max_buffered = 100'000;
  // Take the client IP from the last X-Forwarded-For entry. Default: false.
  bool trust_proxy = false;
  // Where "now" comes from. Default: the system clock. Must outlive the node.
  const passage::clock* clock = nullptr;
  // One JSON line per request on stderr. Default: true.
  bool access_log = true;
  // Where start-up messages go. Default: stderr.
  std::function<void(const std::string&)> say;
};

// Owned by main or a test. start() and stop() from one thread.
class replica_node {
 public:
  static result<std::unique_ptr<replica_node>, std::string> start(replica_node_options options);
  ~replica_node();
  replica_node(const replica_node&) = delete;
  replica_node& operator=(const replica_node&) = delete;

  std::uint16_t port() const;
  consumers::replica_stats stats() const;
  // Graceful stop: HTTP first, then the consumer (offsets written), then the read models
  // are closed (a failure is said through `say`). Afterwards only stats() and destruction.
  // Idempotent.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

  struct impl;

 private:
  explicit replica_node(std::unique_ptr<impl> i);
  std::unique_ptr<impl> impl_;
};

}  // namespace passage::app
