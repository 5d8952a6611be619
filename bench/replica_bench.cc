// Read replica benchmark: a log of learners registering (personal data, so every event
// is decrypted on the primary, published in clear, validated and encrypted again on the
// replica, and its email indexed) is published by the relay into the embedded broker
// over 12 partitions; then a replica consumes it from the beginning into fresh read
// models (fsynced batches, as `passage replica` runs them). Prints events/s from start
// to the last position applied.
//
// Usage: replica_bench [--events N (<= ~60000, the embedded broker's retention)] [--dir DIR]

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include "bench/bench_args.h"
#include "common/random.h"
#include "consumers/embedded_broker.h"
#include "consumers/relay.h"
#include "consumers/replica.h"
#include "domain/events.h"
#include "eventstore/event_store.h"
#include "eventstore/key_store.h"
#include "projections/read_models.h"

using namespace passage;
using namespace passage::consumers;
using steady = std::chrono::steady_clock;

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "replica_bench: %s\n", what.c_str());
  std::exit(1);
}

// Appends `n` LearnerRegistered events with an email and names.
void fill(eventstore::event_store& store, const eventstore::event_codec& codec, std::size_t n) {
  const auto org = uuid::random();
  for (std::size_t i = 0; i < n;) {
    std::vector<eventstore::stream_append> batch;
    for (std::size_t k = 0; k < 1000 && i < n; ++k, ++i) {
      domain::learner_registered ev{.org_id_ = org, .learner_id_ = uuid::random()};
      ev.personal_data_.email_ = "learner" + std::to_string(i) + "@example.com";
      ev.personal_data_.first_name_ = "Ada";
      ev.personal_data_.last_name_ = "Lovelace";
      auto stored = codec.encode(domain::event{ev}, {.event_id = uuid::random()});
      if (!stored) die(stored.error().message);
      batch.push_back({domain::stream_of(domain::event{ev}),
                       eventstore::expected_version::any(),
                       {std::move(*stored)}});
    }
    if (auto r = store.append(std::move(batch)); !r) die(r.error().message);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // The embedded broker keeps ~5 MB per partition: more would drop the log's start.
  std::size_t events = 50'000;
  std::string dir;
  passage::bench::bench_args args("replica_bench",
                                  "A Kafka-fed read replica catching up with a primary's log.");
  args.value("--events", events, "events in the primary's log (default 50000)");
  args.value("--dir", dir, "the folders' parent (default: a new one under $TMPDIR)");
  if (int code = args.parse_or_exit_code(argc, argv); code >= 0) return code;
  const bool own_dir = dir.empty();
  if (own_dir)
    dir =
        (std::filesystem::temp_directory_path() / ("passage-replica-bench-" + secure_random_hex(6)))
            .string();

  auto primary_keys = eventstore::make_memory_key_store();
  eventstore::event_codec primary(*primary_keys, std::string(32, 'p'));
  auto store = eventstore::open_event_store({.path = dir + "/events", .sync = false});
  if (!store) die(store.error().message);
  fill(**store, primary, events);
  auto broker = embedded_broker::start({});
  if (!broker) die(broker.error().message);
  {
    relay r(**store, primary,
            {.brokers = (*broker)->bootstrap_servers(), .checkpoint_path = dir + "/relay"});
    if (auto ok = r.start(); !ok) die(ok.error().message);
    if (!r.wait_for_published((*store)->head_position(), std::chrono::minutes(10)))
      die("relay did not publish the log");
  }

  auto keys = eventstore::open_key_store({.path = dir + "/replica-keys", .sync_new_keys = false});
  if (!keys) die(keys.error().message);
  eventstore::event_codec codec(**keys, std::string(32, 'r'));
  auto models =
      projections::read_models::open({.path = dir + "/replica-models", .sync = true}, codec);
  if (!models) die(models.error().message);
  replica rep(**models, **keys, codec,
              {.brokers = (*broker)->bootstrap_servers(), .state_path = dir + "/replica"});
  const auto t0 = steady::now();
  if (auto ok = rep.start(); !ok) die(ok.error().message);
  double first_message = -1;
  while (rep.stats().applied_position < events) {
    if (rep.stats().failed) die(rep.stats().last_error);
    if (first_message < 0 && rep.stats().messages > 0)
      first_message = std::chrono::duration<double>(steady::now() - t0).count();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const double s = std::chrono::duration<double>(steady::now() - t0).count();
  std::printf("replica: first message after %.2f s (connect, metadata, watermarks)\n",
              first_message);
  auto st = rep.stats();
  std::printf(
      "replica: %zu LearnerRegistered events from 12 partitions applied in %.2f s, %.0f events/s "
      "(max buffered %s, duplicates %llu)\n",
      events, s, double(events) / s, st.paused ? "reached" : "not reached",
      static_cast<unsigned long long>(st.duplicates));
  rep.stop();
  if (own_dir) std::filesystem::remove_all(dir);
}
