#pragma once
// The Kafka outbox relay (SPEC §5): tails the event log and publishes every event,
// in log order, as a CloudEvents 1.0 structured JSON message keyed by its stream,
// with librdkafka's idempotent producer. At-least-once: a checkpoint (its own small
// RocksDB) advances only past positions the brokers acknowledged, and a restart
// resumes from checkpoint + 1. The checkpoint belongs to one destination (the topic
// and the Kafka cluster id the brokers report): a relay pointed at another cluster or
// topic publishes the whole log there, and one pointed back resumes where it was. The relay only
// reads the log, so commands keep succeeding while Kafka is down; the backlog goes out when it
// returns.
//
//   relay r(store, codec, {.brokers = broker->bootstrap_servers(),
//                          .checkpoint_path = "data/relay", .from_start = true});
//   if (auto ok = r.start(); !ok) die(ok.error().message);
//   ... r.stats().backlog ...
//   r.stop();   // waits (bounded) for in-flight messages, stores the checkpoint

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/clock.h"
#include "consumers/errors.h"
#include "eventstore/event_codec.h"
#include "eventstore/event_store.h"

namespace passage::consumers {

struct relay_options {
  // Kafka bootstrap servers, "host:port,host:port". Required.
  std::string brokers;
  // Topic every event goes to. Default: "passage.events".
  std::string topic = "passage.events";
  // Kafka client.id. Default: "passage-relay".
  std::string client_id = "passage-relay";
  // librdkafka properties applied after the relay's own (they win). Turning off
  // enable.idempotence or raising max.in.flight.requests.per.connection above 5
  // gives up per-key ordering across retries. Default: none.
  std::map<std::string, std::string> kafka_overrides;
  // Folder of the checkpoint's RocksDB database. Default: "data/relay".
  std::string checkpoint_path = "data/relay";
  // Publish from position 1 whatever the stored checkpoint says: for a broker
  // that starts empty (the embedded one, whose cluster id may repeat). The stored checkpoint never
  // moves back; it is overwritten only once this run passes it. Default: false.
  bool from_start = false;
  // Most messages handed to the producer and not yet acknowledged; reading the
  // log pauses at this bound, so an outage never buffers the whole log. Default: 50000.
  std::size_t max_in_flight_messages = 50'000;
  // The same bound in bytes (value + key); one message is always let through. Default: 64 MiB.
  std::size_t max_in_flight_bytes = 64u << 20;
  // librdkafka linger.ms: how long a batch waits for more messages. Default: 5 ms.
  std::chrono::milliseconds linger{5};
  // librdkafka batch.num.messages. Default: 10000.
  std::size_t batch_messages = 10'000;
  // librdkafka batch.size in bytes. Default: 1 MiB.
  std::size_t batch_bytes = 1u << 20;
  // librdkafka compression.type: none, gzip, snappy, lz4, zstd. Default: "none".
  std::string compression = "none";
  // Threads that encode a batch of events into messages (the codec's JSON is
  // most of the relay's CPU while it catches up); 1 encodes on the reading
  // thread only. Default: 2.
  std::size_t encode_threads = 2;
  // Events per read of the log. Default: 1024.
  std::size_t read_batch = 1024;
  // How often the checkpoint is written while running (without fsync; stop()
  // writes it with fsync). Default: 100 ms.
  std::chrono::milliseconds checkpoint_interval{100};
  // Wait before a new producer after a fatal error or a failed delivery. Default: 1 s.
  std::chrono::milliseconds restart_backoff{1000};
  // stop(): longest wait for in-flight messages to be acknowledged. Default: 5 s.
  std::chrono::milliseconds stop_timeout{5000};
  // Source of "now" for lag_seconds. Default: nullptr means the system clock.
  const passage::clock* clock = nullptr;
  // Called with the new checkpoint each time it advances, on the relay's thread;
  // must be quick and must not call the relay. Default: none.
  std::function<void(std::uint64_t checkpoint)> on_checkpoint;
};

// For /metrics and /v1/system.
struct relay_stats {
  std::uint64_t published_position = 0;  // the checkpoint: every position <= it is acknowledged
  std::uint64_t head_position = 0;       // the log's last position
  std::uint64_t backlog = 0;             // head_position - published_position
  double lag_seconds = 0;       // now - recorded_at of the oldest unpublished event; 0 if none
  std::uint64_t in_flight = 0;  // sent, not yet acknowledged
  std::uint64_t messages_published = 0;  // acknowledgements received (duplicates included)
  std::uint64_t errors = 0;              // client errors and failed deliveries
  std::uint64_t restarts = 0;            // producers replaced after a fatal error
  bool running = false;
  bool connected = false;  // the brokers answered last time we heard from them
  std::string last_error;  // "" if none yet
};

// Owned by the application. start(), stop(), stats() and wait_for_published() may
// be called from any thread; the relay publishes on threads of its own (one reads
// the log and produces, one serves librdkafka's callbacks and the checkpoint).
// `store` and `codec` must outlive it.
class relay {
 public:
  relay(eventstore::event_store& store, const eventstore::event_codec& codec,
        relay_options options);
  ~relay();  // stop()
  relay(const relay&) = delete;
  relay& operator=(const relay&) = delete;

  // Opens the checkpoint, checks the Kafka configuration and starts publishing
  // from checkpoint + 1 (1 with from_start) once the brokers tell their cluster id.
  // Brokers need not be reachable yet: until then stats() shows the checkpoint of
  // the destination published to last.
  result<void, consumer_error> start();
  // Stops reading, waits up to stop_timeout for acknowledgements, stores the
  // checkpoint durably. Unacknowledged messages are published again next time.
  void stop();

  // Tells the relay that personal-data keys were destroyed (a forget). Messages it
  // encoded before and the brokers have not acknowledged (all of them during an outage)
  // are dropped and encoded again, so none arrives with the data after the forget.
  // Those already on their way to a broker that answers may still arrive: they were
  // sent before the forget. Call it after the keys are destroyed; it does not block.
  void keys_destroyed();

  relay_stats stats() const;
  // Blocks until the checkpoint of the brokers reached reaches `position` or `timeout`
  // passes.
  bool wait_for_published(std::uint64_t position, std::chrono::milliseconds timeout) const;

  const relay_options& options() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// The checkpoint stored in `path` for the destination published to last (0 when
// none), without starting a relay.
result<std::uint64_t, consumer_error> read_checkpoint(const std::string& path);

}  // namespace passage::consumers
