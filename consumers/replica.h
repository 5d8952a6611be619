#pragma once
// A Kafka-fed read replica (SPEC §5): consumes the events topic the relay publishes and
// builds the full read models from it, beside the primary, without access to its log.
// Every partition is read (manual assignment, so replicas never share them); messages
// are put back into log order (reorder_buffer) and de-duplicated on position and event
// id; personal data is encrypted again under the replica's own keys (event_codec::
// encode_public_json), so that LearnerForgotten destroys it here as on the primary.
// Consumed offsets live in the replica's own RocksDB folder and are written after the
// read models (which fsync each batch with their checkpoint), so a restart re-reads at
// most what was already applied, and drops it.
//
//   replica r(*models, *keys, *codec, {.brokers = "kafka:9092", .state_path = "data/replica"});
//   if (auto ok = r.start(); !ok) die(ok.error().message);
//   auto s = r.stats();   // applied_position, last_seen_position, lag_events, caught_up, …
//   r.stop();

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "consumers/errors.h"
#include "eventstore/event_codec.h"
#include "eventstore/key_store.h"
#include "projections/read_models.h"

namespace passage::consumers {

struct replica_options {
  // Comma-separated host:port list. Required.
  std::string brokers;
  // Default: "passage.events".
  std::string topic = "passage.events";
  // RocksDB folder for the consumed offsets and the replica's consumer group id. Required.
  std::string state_path;
  // Events held waiting for an earlier position before partitions holding some are
  // paused (resumed at half). Default: 100000.
  std::size_t max_buffered = 100'000;
  // Most events applied (and written) per read-model batch. Default: 4096.
  std::size_t max_batch = 4096;
};

struct replica_stats {
  std::uint64_t applied_position = 0;    // the read models' checkpoint
  std::uint64_t last_seen_position = 0;  // highest position read from the topic
  std::uint64_t lag_events = 0;          // last_seen_position - applied_position
  // recorded_at of the newest event seen minus that of the last applied one (of the
  // oldest held one while nothing is applied yet).
  double lag_seconds = 0;
  std::uint64_t buffered = 0;  // held for an earlier position
  // The position everything held waits for (0 when nothing is held). Lasting while
  // kafka_lag_messages is 0, it is not in the topic (retention, see consumers/README.md).
  std::uint64_t waiting_for_position = 0;
  // Messages behind the partitions' high watermarks (librdkafka's cached view).
  std::int64_t kafka_lag_messages = 0;
  std::uint64_t messages = 0;    // read from Kafka
  std::uint64_t duplicates = 0;  // dropped: position already applied or held
  std::uint64_t conflicts = 0;   // dropped: another event id at a held position
  std::uint64_t rejected = 0;    // not a Passage CloudEvent
  int partitions = 0;            // assigned (0 until the topic's metadata arrived)
  bool paused = false;           // over max_buffered
  // Every message present in the topic when the replica started has been applied.
  bool caught_up = false;
  // Applying stopped for good (see last_error); restart after fixing the cause.
  bool failed = false;
  std::string last_error;
};

// Owned by the application next to the read models, key store and codec it feeds (all
// must outlive it). start() and stop() from one controlling thread, stats() from any.
// Consumes and applies on its own thread.
class replica {
 public:
  replica(projections::read_models& models, eventstore::key_store& keys,
          const eventstore::event_codec& codec, replica_options options);
  ~replica();
  replica(const replica&) = delete;
  replica& operator=(const replica&) = delete;

  // Opens the state folder and the Kafka consumer, then consumes in the background.
  result<void, consumer_error> start();
  // Stops after the batch being applied and writes the offsets. Idempotent.
  void stop();
  replica_stats stats() const;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace passage::consumers
