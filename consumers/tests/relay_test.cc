// The relay against a real Kafka-protocol broker on loopback (the embedded mock
// cluster) and a real event store in a temporary folder: every event published,
// per-key order kept, at-least-once through outages, errors, latency and restarts.

#include "consumers/relay.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/time_format.h"
#include "consumers/cloudevent.h"
#include "consumers/embedded_broker.h"
#include "consumers/state_db.h"
#include "consumers/tests/kafka_reader.h"
#include "eventstore/key_store.h"
#include "tests/support/temp_dir.h"

namespace passage::consumers {
namespace {

using namespace std::chrono_literals;
using testing::check_delivery;
using testing::consumed_message;
using testing::read_topic;

class relay_test : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = eventstore::open_event_store(
        {.path = dir_.sub("events"), .sync = false, .clock = store_clock_});
    ASSERT_TRUE(store) << store.error().message;
    store_ = std::move(*store);
    keys_ = eventstore::make_memory_key_store();
    codec_ = std::make_unique<eventstore::event_codec>(*keys_, std::string(32, 'p'));
    broker_ = start_broker({});
  }

  std::unique_ptr<embedded_broker> start_broker(embedded_broker_options o) {
    auto b = embedded_broker::start(o);
    EXPECT_TRUE(b) << b.error().message;
    return b ? std::move(*b) : nullptr;
  }

  relay_options options() {
    return {.brokers = broker_->bootstrap_servers(),
            .checkpoint_path = dir_.sub("relay"),
            .restart_backoff = 100ms};
  }

  // Appends `n` events spread round-robin over `keys` streams; returns the head.
  std::uint64_t append(int n, int keys = 16, const std::string& prefix = "invite-") {
    for (int i = 0; i < n;) {
      std::vector<eventstore::stream_append> batch;
      for (int k = 0; k < keys && i < n; ++k, ++i) {
        eventstore::new_event e{.event_id = uuid::random(),
                                .type = "InviteUpdated",
                                .org_id = "org-1",
                                .correlation_id = "corr-" + std::to_string(i),
                                .actor = "key:test",
                                .data = "{}"};
        batch.push_back({prefix + std::to_string(k), eventstore::expected_version::any(), {e}});
      }
      auto r = store_->append(std::move(batch));
      EXPECT_TRUE(r) << r.error().message;
    }
    return store_->head_position();
  }

  // Runs a relay with `o` until it has published up to `head`, then stops it.
  void publish_until(const relay_options& o, std::uint64_t head) {
    relay r(*store_, *codec_, o);
    ASSERT_TRUE(r.start());
    ASSERT_TRUE(r.wait_for_published(head, 30s)) << r.stats().last_error;
  }

  // Polls `done` until it holds or `deadline` passes; returns its last answer.
  template <typename F>
  static bool wait_until(std::chrono::milliseconds deadline, F done) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= until) return false;
      std::this_thread::sleep_for(20ms);
    }
    return true;
  }

  std::vector<consumed_message> read_all() {
    return read_topic(broker_->bootstrap_servers(), "passage.events");
  }

  const clock* store_clock_ = nullptr;
  passage::testing::temp_dir dir_;
  std::unique_ptr<eventstore::event_store> store_;
  std::unique_ptr<eventstore::key_store> keys_;
  std::unique_ptr<eventstore::event_codec> codec_;
  std::unique_ptr<embedded_broker> broker_;
};

TEST_F(relay_test, PublishesEveryEventExactlyOnceInOrderPerKey) {
  append(2000, 20);
  relay r(*store_, *codec_, options());
  ASSERT_TRUE(r.start());
  // Live phase too: events appended while the relay runs.
  const auto head = append(500, 20);
  ASSERT_TRUE(r.wait_for_published(head, 30s)) << r.stats().last_error;

  auto got = read_all();
  auto report = check_delivery(*store_, got);
  EXPECT_EQ(report.messages, head);
  EXPECT_EQ(report.duplicates, 0u);
  for (const auto& m : got) EXPECT_EQ(m.content_type, "application/cloudevents+json");

  // One message in full: the stored event as a CloudEvent, data as the codec shows it.
  auto first = store_->read_all({.from_position = 1}, 1);
  ASSERT_TRUE(first);
  const auto& e = first->front();
  auto expected = to_cloudevent_json(e, *codec_->to_public_json(e));
  EXPECT_TRUE(std::any_of(got.begin(), got.end(), [&](const consumed_message& m) {
    return m.value == expected;
  })) << expected;

  auto st = r.stats();
  EXPECT_EQ(st.published_position, head);
  EXPECT_EQ(st.backlog, 0u);
  EXPECT_EQ(st.lag_seconds, 0.0);
  EXPECT_EQ(st.messages_published, head);
  EXPECT_TRUE(st.connected);
  r.stop();
  auto stored = read_checkpoint(dir_.sub("relay"));
  ASSERT_TRUE(stored);
  EXPECT_EQ(*stored, head);
}

TEST_F(relay_test, PersonalDataIsPublishedDecryptedOrForgottenNeverAsCiphertext) {
  const auto ada = uuid::random(), bob = uuid::random(), org = uuid::random();
  for (const auto& [id, email] : {std::pair{ada, "ada@example.com"}, {bob, "bob@example.com"}}) {
    domain::learner_registered ev{.org_id_ = org, .learner_id_ = id};
    ev.personal_data_.email_ = email;
    ev.personal_data_.first_name_ = "First";
    auto encoded = codec_->encode(domain::event{ev}, {.event_id = uuid::random()});
    ASSERT_TRUE(encoded) << encoded.error().message;
    ASSERT_TRUE(store_->append(
        {{domain::stream_of(domain::event{ev}), eventstore::expected_version::any(), {*encoded}}}));
  }
  ASSERT_TRUE(keys_->destroy("learner:" + ada.to_string()));

  relay r(*store_, *codec_, options());
  ASSERT_TRUE(r.start());
  ASSERT_TRUE(r.wait_for_published(2, 30s));
  auto got = read_all();
  ASSERT_EQ(got.size(), 2u);
  for (const auto& m : got) {
    EXPECT_EQ(m.value.find("A256GCM"), std::string::npos) << m.value;
    auto ce = nlohmann::json::parse(m.value);
    EXPECT_EQ(ce["type"], "io.passage.LearnerRegistered.v1");
    const auto& pd = ce["data"]["personal_data"];
    if (ce["data"].dump().find(ada.to_string()) != std::string::npos) {
      EXPECT_EQ(pd, (nlohmann::json{{"forgotten", true}})) << m.value;
    } else {
      EXPECT_EQ(pd["email"], "bob@example.com") << m.value;
    }
  }
}

TEST_F(relay_test, AForgetDuringAnOutageReachesTheMessagesStillWaitingForTheBrokers) {
  // Two learners registered while the brokers are down; the window lets one message
  // into the producer, the other waits encoded. Both are forgotten before the brokers
  // return: neither may arrive with its personal data.
  auto o = options();
  o.max_in_flight_messages = 1;
  relay r(*store_, *codec_, o);
  ASSERT_TRUE(r.start());
  ASSERT_TRUE(r.wait_for_published(append(1), 30s)) << r.stats().last_error;
  ASSERT_TRUE(broker_->set_down(1));
  const auto org = uuid::random();
  std::vector<uuid> learners{uuid::random(), uuid::random()};
  for (const auto& id : learners) {
    domain::learner_registered ev{.org_id_ = org, .learner_id_ = id};
    ev.personal_data_.email_ = id.to_string() + "@example.com";
    auto encoded = codec_->encode(domain::event{ev}, {.event_id = uuid::random()});
    ASSERT_TRUE(encoded) << encoded.error().message;
    ASSERT_TRUE(store_->append(
        {{domain::stream_of(domain::event{ev}), eventstore::expected_version::any(), {*encoded}}}));
  }
  for (int i = 0; i < 1000 && r.stats().in_flight == 0; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(r.stats().in_flight, 1u);

  for (const auto& id : learners) ASSERT_TRUE(keys_->destroy("learner:" + id.to_string()));
  r.keys_destroyed();
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(broker_->set_up(1));
  const auto head = append(3);
  ASSERT_TRUE(r.wait_for_published(head, 30s))
      << r.stats().last_error << " published " << r.stats().published_position << " restarts "
      << r.stats().restarts << " connected " << r.stats().connected;
  r.stop();

  auto got = read_all();
  check_delivery(*store_, got);
  for (const auto& m : got) {
    for (const auto& id : learners)
      EXPECT_EQ(m.value.find(id.to_string() + "@example.com"), std::string::npos) << m.value;
  }
}

TEST_F(relay_test, CleanStopStoresTheCheckpointAndARestartResumesAfterIt) {
  auto head = append(1000);
  ASSERT_NO_FATAL_FAILURE(publish_until(options(), head));
  auto stored = read_checkpoint(dir_.sub("relay"));
  ASSERT_TRUE(stored);
  EXPECT_EQ(*stored, head);

  head = append(500);
  relay r(*store_, *codec_, options());
  ASSERT_TRUE(r.start());
  ASSERT_TRUE(r.wait_for_published(head, 30s));
  auto report = check_delivery(*store_, read_all());
  EXPECT_EQ(report.messages, head);
  EXPECT_EQ(report.duplicates, 0u);
}

TEST_F(relay_test, FromStartRepublishesTheWholeLogToAnEmptyBroker) {
  auto head = append(800);
  ASSERT_NO_FATAL_FAILURE(publish_until(options(), head));
  broker_ = start_broker({});  // a new, empty broker (what `passage serve` gets on each start)
  auto o = options();
  o.from_start = true;
  ASSERT_NO_FATAL_FAILURE(publish_until(o, head));
  EXPECT_EQ(check_delivery(*store_, read_all()).messages, head);
  auto stored = read_checkpoint(dir_.sub("relay"));
  ASSERT_TRUE(stored);
  EXPECT_EQ(*stored, head);
}

// A broker that reports the same cluster id (an embedded one may) is republished to from
// position 1 with from_start, and its stored checkpoint never moves back meanwhile.
TEST_F(relay_test, FromStartToTheSameClusterNeverMovesItsStoredCheckpointBack) {
  auto head = append(800);
  ASSERT_NO_FATAL_FAILURE(publish_until(options(), head));
  auto o = options();
  o.from_start = true;
  relay r(*store_, *codec_, o);
  ASSERT_TRUE(r.start());
  for (int i = 0; i < 20; ++i) {
    auto stored = read_checkpoint(dir_.sub("relay"));
    ASSERT_TRUE(stored);
    EXPECT_EQ(*stored, head);
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(r.wait_for_published(head, 30s)) << r.stats().last_error;
  r.stop();
  EXPECT_EQ(check_delivery(*store_, read_all()).messages, 2 * head) << "every event again";
  auto stored = read_checkpoint(dir_.sub("relay"));
  ASSERT_TRUE(stored);
  EXPECT_EQ(*stored, head);
}

TEST_F(relay_test, AnotherClusterGetsTheWholeLogAndTheFirstResumesWhereItLeftOff) {
  auto head = append(600);
  auto first_options = options();
  ASSERT_NO_FATAL_FAILURE(publish_until(first_options, head));
  // The node is pointed at another cluster (its brokers have never seen this log):
  // without from_start, as with `--kafka-brokers`.
  auto first = std::move(broker_);
  broker_ = start_broker({});
  head = append(200);
  ASSERT_NO_FATAL_FAILURE(publish_until(options(), head));
  auto report = check_delivery(*store_, read_all());
  EXPECT_EQ(report.messages, head) << "the second cluster must get the whole log";
  EXPECT_EQ(report.duplicates, 0u);

  // Back to the first cluster: it resumes after the 600 it acknowledged.
  head = append(100);
  ASSERT_NO_FATAL_FAILURE(publish_until(first_options, head));
  report = check_delivery(*store_, read_topic(first->bootstrap_servers(), "passage.events"));
  EXPECT_EQ(report.messages, head);
  EXPECT_EQ(report.duplicates, 0u);
}

TEST_F(relay_test, AnotherTopicGetsTheWholeLog) {
  auto head = append(300);
  ASSERT_NO_FATAL_FAILURE(publish_until(options(), head));
  auto o = options();
  o.topic = "passage.audit";
  relay r(*store_, *codec_, o);
  ASSERT_TRUE(r.start());
  ASSERT_TRUE(r.wait_for_published(head, 30s)) << r.stats().last_error;
  r.stop();
  auto report = check_delivery(*store_, read_topic(broker_->bootstrap_servers(), "passage.audit"));
  EXPECT_EQ(report.messages, head);
}

TEST_F(relay_test, ACheckpointOfAnOlderBuildBelongsToTheFirstClusterReached) {
  // Older builds kept one checkpoint, whatever the brokers: BE64 under "checkpoint".
  const auto head = append(500);
  {
    std::unique_ptr<rocksdb::DB> db;
    ASSERT_TRUE(open_state_db(dir_.sub("relay"), db).ok());
    const std::string be64_300("\0\0\0\0\0\0\x01\x2c", 8);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "checkpoint", be64_300).ok());
  }
  {
    relay r(*store_, *codec_, options());
    ASSERT_TRUE(r.start());
    EXPECT_GE(r.stats().published_position, 300u) << "the stored checkpoint, assumed at start";
    ASSERT_TRUE(r.wait_for_published(head, 30s)) << r.stats().last_error;
  }
  EXPECT_EQ(read_all().size(), head - 300) << "resumes after the stored checkpoint";
  auto stored = read_checkpoint(dir_.sub("relay"));
  ASSERT_TRUE(stored);
  EXPECT_EQ(*stored, head);

  // It was adopted by that cluster, not by any: another one gets the whole log.
  broker_ = start_broker({});
  relay r(*store_, *codec_, options());
  ASSERT_TRUE(r.start());
  ASSERT_TRUE(r.wait_for_published(head, 30s)) << r.stats().last_error;
  r.stop();
  EXPECT_EQ(check_delivery(*store_, read_all()).messages, head);
}

TEST_F(relay_test, WhileTheBrokerIsDownAppendsSucceedAndTheBacklogFollowsItsReturn) {
  auto o = options();
  o.max_in_flight_messages = 256;
  relay r(*store_, *codec_, o);
  ASSERT_TRUE(r.start());
  auto head = append(500);
  ASSERT_TRUE(r.wait_for_published(head, 30s));

  ASSERT_TRUE(r.stats().connected);

  ASSERT_TRUE(broker_->set_down(1));
  const auto before = head;
  head = append(3000);  // append() asserts that every append succeeds
  EXPECT_EQ(head, before + 3000);
  // The outage is noticed: an error is reported and the brokers count as unreachable. The
  // deadline only bounds a hang (slow under ASan or on a loaded host).
  EXPECT_TRUE(wait_until(60s,
                         [&] {
                           auto s = r.stats();
                           return !s.last_error.empty() && !s.connected;
                         }))
      << "last_error: '" << r.stats().last_error << "', connected: " << r.stats().connected;
  auto st = r.stats();
  EXPECT_LT(st.published_position, head);
  EXPECT_GT(st.backlog, 0u);
  EXPECT_LE(st.in_flight, 256u) << "the in-flight window must bound what an outage buffers";

  ASSERT_TRUE(broker_->set_up(1));
  ASSERT_TRUE(r.wait_for_published(head, 60s)) << r.stats().last_error;
  check_delivery(*store_, read_all());
  EXPECT_EQ(r.stats().backlog, 0u);
  EXPECT_TRUE(r.stats().connected);
}

TEST_F(relay_test, RetriableProduceErrorsAreRetriedWithoutLossOrReordering) {
  broker_->push_produce_errors(3, produce_fault::not_leader_for_partition);
  broker_->push_produce_errors(3, produce_fault::request_timed_out);
  broker_->push_produce_errors(2, produce_fault::not_enough_replicas);
  auto head = append(3000, 24);
  relay r(*store_, *codec_, options());
  ASSERT_TRUE(r.start());
  ASSERT_TRUE(r.wait_for_published(head, 60s)) << r.stats().last_error;
  check_delivery(*store_, read_all());
}

TEST_F(relay_test, APermanentProduceErrorRestartsFromTheCheckpointKeepingKeyOrder) {
  auto head = append(1000, 8);
  broker_->push_produce_errors(1, produce_fault::topic_authorization_failed);
  relay r(*store_, *codec_, options());
  ASSERT_TRUE(r.start());
  ASSERT_TRUE(r.wait_for_published(head, 60s)) << r.stats().last_error;
  head = append(500, 8);
  ASSERT_TRUE(r.wait_for_published(head, 60s)) << r.stats().last_error;
  auto st = r.stats();
  EXPECT_GE(st.errors, 1u);
  EXPECT_GE(st.restarts, 1u);
  check_delivery(*store_, read_all());
}

TEST_F(relay_test, ARestartMidBacklogOnASlowBrokerLosesNothingAndKeepsKeyOrder) {
  auto head = append(6000, 12);
  ASSERT_TRUE(broker_->set_rtt(1, 50ms));
  auto o = options();
  o.max_in_flight_messages = 300;
  o.linger = 1ms;
  o.batch_messages = 50;
  o.stop_timeout = 0ms;  // drop what is in flight: those are sent again (at-least-once)
  {
    relay r(*store_, *codec_, o);
    ASSERT_TRUE(r.start());
    ASSERT_TRUE(r.wait_for_published(600, 30s));
    r.stop();
    EXPECT_LT(r.stats().published_position, head) << "the restart should happen mid-backlog";
  }
  auto stored = read_checkpoint(dir_.sub("relay"));
  ASSERT_TRUE(stored);
  EXPECT_GE(*stored, 600u);
  EXPECT_LT(*stored, head);

  ASSERT_TRUE(broker_->set_rtt(1, 0ms));
  relay r(*store_, *codec_, options());
  ASSERT_TRUE(r.start());
  EXPECT_EQ(r.stats().published_position, *stored);
  ASSERT_TRUE(r.wait_for_published(head, 60s)) << r.stats().last_error;
  auto report = check_delivery(*store_, read_all());
  EXPECT_GE(report.messages, head);
}

TEST_F(relay_test, ThreeBrokersOneDownThenBack) {
  broker_ = start_broker({.broker_count = 3, .replication_factor = 3});
  relay r(*store_, *codec_, options());
  ASSERT_TRUE(r.start());
  auto head = append(600);
  ASSERT_TRUE(r.wait_for_published(head, 30s));
  ASSERT_TRUE(broker_->set_down(2));
  head = append(1500);
  std::this_thread::sleep_for(500ms);
  ASSERT_TRUE(broker_->set_up(2));
  ASSERT_TRUE(r.wait_for_published(head, 60s)) << r.stats().last_error;
  check_delivery(*store_, read_all());
}

TEST_F(relay_test, StatsReportBacklogAndLagOfTheOldestUnpublishedEvent) {
  // Reopen the store on a manual clock so recorded_at is known.
  store_.reset();
  manual_clock store_clock(*parse_rfc3339("2026-11-20T09:00:00Z"));
  store_clock_ = &store_clock;
  SetUp();
  manual_clock relay_clock(*parse_rfc3339("2026-11-20T09:00:30Z"));

  ASSERT_TRUE(broker_->set_down(1));
  auto head = append(10);
  auto o = options();
  o.clock = &relay_clock;
  relay r(*store_, *codec_, o);
  ASSERT_TRUE(r.start());
  std::this_thread::sleep_for(300ms);
  auto st = r.stats();
  EXPECT_TRUE(st.running);
  EXPECT_EQ(st.head_position, head);
  EXPECT_EQ(st.published_position, 0u);
  EXPECT_EQ(st.backlog, 10u);
  EXPECT_DOUBLE_EQ(st.lag_seconds, 30.0);
  EXPECT_FALSE(st.connected);

  ASSERT_TRUE(broker_->set_up(1));
  ASSERT_TRUE(r.wait_for_published(head, 30s));
  st = r.stats();
  EXPECT_EQ(st.backlog, 0u);
  EXPECT_EQ(st.lag_seconds, 0.0);
  EXPECT_EQ(st.messages_published, 10u);
  EXPECT_TRUE(st.connected);
  r.stop();
  EXPECT_FALSE(r.stats().running);
}

TEST_F(relay_test, RefusesBadConfiguration) {
  auto o = options();
  o.kafka_overrides["no.such.property"] = "1";
  relay bad(*store_, *codec_, o);
  auto started = bad.start();
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, errc::invalid_config);

  relay no_brokers(*store_, *codec_, {.checkpoint_path = dir_.sub("relay")});
  ASSERT_FALSE(no_brokers.start());

  relay ok(*store_, *codec_, options());
  ASSERT_TRUE(ok.start());
  auto again = ok.start();
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, errc::already_running);

  // One relay per checkpoint: a second one on the same folder is refused.
  relay twin(*store_, *codec_, options());
  auto second = twin.start();
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, errc::checkpoint);
}

// --- independent clients: kafka-python and kcat read what the relay published ---

struct command_output {
  int status = -1;
  std::string out;
};

command_output run(const std::string& command) {
  command_output r;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return r;
  char buf[65536];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  r.status = pclose(p);
  return r;
}

// Lines "partition \t offset \t key \t value".
std::vector<consumed_message> parse_lines(const std::string& text) {
  std::vector<consumed_message> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    consumed_message m;
    std::istringstream fields(line);
    std::string partition, offset;
    std::getline(fields, partition, '\t');
    std::getline(fields, offset, '\t');
    std::getline(fields, m.key, '\t');
    std::getline(fields, m.value);
    m.partition = std::stoi(partition);
    m.offset = std::stoll(offset);
    out.push_back(std::move(m));
  }
  return out;
}

TEST_F(relay_test, KafkaPythonReadsEveryEventInOrder) {
  std::string python;
  for (const char* candidate : {"/usr/bin/python3", "python3"}) {
    if (run(std::string(candidate) + " -c 'import kafka' 2>/dev/null").status == 0) {
      python = candidate;
      break;
    }
  }
  // scripts/setup.sh installs python3-kafka: its absence is a broken test environment.
  ASSERT_FALSE(python.empty())
      << "python3 with the kafka module (python3-kafka) not found: run scripts/setup.sh";

  auto head = append(1200, 10);
  relay r(*store_, *codec_, options());
  ASSERT_TRUE(r.start());
  ASSERT_TRUE(r.wait_for_published(head, 30s));

  const auto script = dir_.sub("read.py");
  std::ofstream(script) << R"(import sys, time
from kafka import KafkaConsumer, TopicPartition
topic = sys.argv[2]
c = KafkaConsumer(bootstrap_servers=sys.argv[1], enable_auto_commit=False, group_id=None)
parts = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic))]
c.assign(parts)
c.seek_to_beginning(*parts)
end = c.end_offsets(parts)
left = {tp for tp in parts if end[tp] > 0}
deadline = time.time() + 30
while left and time.time() < deadline:
    for tp, msgs in c.poll(timeout_ms=500).items():
        for m in msgs:
            print("%d\t%d\t%s\t%s" % (tp.partition, m.offset, m.key.decode(), m.value.decode()))
            if m.offset + 1 >= end[tp]:
                left.discard(tp)
c.close()
sys.exit(1 if left else 0)
)";
  auto out = run(python + " " + script + " " + broker_->bootstrap_servers() + " passage.events");
  ASSERT_EQ(out.status, 0) << out.out;
  auto report = check_delivery(*store_, parse_lines(out.out));
  EXPECT_EQ(report.messages, head);
  EXPECT_EQ(report.duplicates, 0u);
}

TEST_F(relay_test, KcatReadsEveryEventInOrder) {
  // scripts/setup.sh installs kcat: its absence is a broken test environment.
  ASSERT_EQ(run("kcat -V >/dev/null 2>&1").status, 0) << "kcat not found: run scripts/setup.sh";
  auto head = append(1200, 10);
  relay r(*store_, *codec_, options());
  ASSERT_TRUE(r.start());
  ASSERT_TRUE(r.wait_for_published(head, 30s));

  auto out = run("kcat -b " + broker_->bootstrap_servers() +
                 " -C -t passage.events -o beginning -e -q -f '%p\\t%o\\t%k\\t%s\\n'");
  ASSERT_EQ(out.status, 0) << out.out;
  auto report = check_delivery(*store_, parse_lines(out.out));
  EXPECT_EQ(report.messages, head);
  EXPECT_EQ(report.duplicates, 0u);
}

}  // namespace
}  // namespace passage::consumers
