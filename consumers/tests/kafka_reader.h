#pragma once
// Test support: reads a whole topic back with an independent librdkafka consumer
// (every partition from the beginning up to its high watermark), and checks what
// was read against the event log: every event present, per-key order of first
// occurrences, duplicates only of already-seen ids. `raw_producer` writes chosen
// messages into chosen partitions.

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "eventstore/event_store.h"

namespace passage::consumers::testing {

struct consumed_message {
  std::string key;
  std::string value;
  std::string content_type;  // the `content-type` header, "" if absent
  int partition = -1;
  std::int64_t offset = -1;
};

// Everything in `topic` now, in offset order per partition. Fails the test on error.
inline std::vector<consumed_message> read_topic(
    const std::string& bootstrap, const std::string& topic,
    std::chrono::seconds timeout = std::chrono::seconds(30)) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), errstr, sizeof errstr);
  rd_kafka_conf_set(conf, "group.id", "passage-test-reader", errstr, sizeof errstr);
  rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr);
  rd_kafka_conf_set(conf, "enable.partition.eof", "false", errstr, sizeof errstr);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  EXPECT_NE(rk, nullptr) << errstr;
  if (!rk) return {};
  std::vector<consumed_message> out;

  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  auto err = rd_kafka_metadata(rk, 0, t, &md, 10'000);
  rd_kafka_topic_destroy(t);
  EXPECT_EQ(err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(err);
  int partitions = 0;
  if (!err && md->topic_cnt == 1) partitions = md->topics[0].partition_cnt;
  if (md) rd_kafka_metadata_destroy(md);
  EXPECT_GT(partitions, 0);

  std::map<int, std::int64_t> high;  // partition -> high watermark still to reach
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    std::int64_t lo = 0, hi = 0;
    auto werr = rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &lo, &hi, 10'000);
    EXPECT_EQ(werr, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(werr);
    if (hi > lo) high[p] = hi;
    rd_kafka_topic_partition_list_add(parts, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(rk, parts);
  rd_kafka_topic_partition_list_destroy(parts);

  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!high.empty() && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (!m) continue;
    if (m->err) {
      ADD_FAILURE() << "consume: " << rd_kafka_message_errstr(m);
      rd_kafka_message_destroy(m);
      continue;
    }
    consumed_message c;
    c.key.assign(static_cast<const char*>(m->key), m->key_len);
    c.value.assign(static_cast<const char*>(m->payload), m->len);
    c.partition = m->partition;
    c.offset = m->offset;
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const void* v = nullptr;
      size_t n = 0;
      if (rd_kafka_header_get_last(hdrs, "content-type", &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR)
        c.content_type.assign(static_cast<const char*>(v), n);
    }
    auto it = high.find(m->partition);
    if (it != high.end() && m->offset + 1 >= it->second) high.erase(it);
    out.push_back(std::move(c));
    rd_kafka_message_destroy(m);
  }
  EXPECT_TRUE(high.empty()) << "partitions not read to the end before the timeout";
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return out;
}

struct delivery_report {
  std::size_t messages = 0;
  std::size_t duplicates = 0;
};

// Checks `got` (values are CloudEvents JSON) against the whole log of `store`:
// every stored event appears; message key == subject == the event's stream; for
// each key the first occurrences of ids come in increasing position order; a
// repeated id is an exact copy of a message seen before.
inline delivery_report check_delivery(eventstore::event_store& store,
                                      const std::vector<consumed_message>& got) {
  struct logged_event {
    std::uint64_t position = 0;
    std::string stream;
  };
  std::map<std::string, logged_event> log;  // event id -> where it is in the log
  auto scanned = store.scan({}, [&](const eventstore::recorded_event& e) {
    log[e.event_id.to_string()] = {e.position, e.stream};
    return true;
  });
  EXPECT_TRUE(scanned.has_value());

  delivery_report report;
  report.messages = got.size();
  std::map<std::string, std::string> first_body;        // id -> message value
  std::map<std::string, std::uint64_t> last_first_pos;  // key -> position of last new id
  // Messages of one key share a partition; read them in offset order.
  std::map<std::pair<int, std::int64_t>, const consumed_message*> ordered;
  for (const auto& m : got) ordered[{m.partition, m.offset}] = &m;
  for (const auto& [where, m] : ordered) {
    auto ce = nlohmann::json::parse(m->value, nullptr, false);
    EXPECT_FALSE(ce.is_discarded()) << m->value;
    if (ce.is_discarded()) continue;
    const std::string id = ce.value("id", "");
    EXPECT_EQ(ce.value("subject", ""), m->key);
    auto logged = log.find(id);
    EXPECT_NE(logged, log.end()) << "message with an id not in the log: " << id;
    if (logged == log.end()) continue;
    EXPECT_EQ(ce.value("position", std::uint64_t{0}), logged->second.position);
    EXPECT_EQ(m->key, logged->second.stream) << "the key is the event's stream: " << id;
    auto [it, first] = first_body.emplace(id, m->value);
    if (!first) {
      ++report.duplicates;
      EXPECT_EQ(it->second, m->value) << "a duplicate differs from the first copy";
      continue;
    }
    auto& last = last_first_pos[m->key];
    EXPECT_LT(last, logged->second.position)
        << "key " << m->key << ": position " << logged->second.position
        << " first seen after position " << last;
    last = logged->second.position;
  }
  EXPECT_EQ(first_body.size(), log.size()) << "events missing from the topic";
  return report;
}

// A producer that puts messages into chosen partitions (what the relay does by key, and
// what a misbehaving or restarted publisher may repeat).
class raw_producer {
 public:
  explicit raw_producer(const std::string& bootstrap) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    EXPECT_NE(rk_, nullptr) << err;
  }
  ~raw_producer() { rd_kafka_destroy(rk_); }
  void produce(int partition, const std::string& key, const std::string& value,
               const std::string& topic = "passage.events") {
    auto e =
        rd_kafka_producev(rk_, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
                          RD_KAFKA_V_KEY(key.data(), key.size()),
                          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    ASSERT_EQ(e, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(e);
  }
  void flush() { ASSERT_EQ(rd_kafka_flush(rk_, 30'000), RD_KAFKA_RESP_ERR_NO_ERROR); }

 private:
  rd_kafka_t* rk_ = nullptr;
};

}  // namespace passage::consumers::testing
