#include "consumers/replica.h"

#include <librdkafka/rdkafka.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "common/uuid.h"
#include "consumers/reorder_buffer.h"
#include "consumers/state_db.h"
#include "domain/events.h"

namespace passage::consumers {

namespace {

using namespace std::chrono_literals;

// State folder keys.
constexpr std::string_view group_key = "group";
constexpr std::string_view topic_key = "topic";
constexpr std::string_view applied_time_key = "applied_time";  // µs since the epoch
std::string offset_key(int partition) { return "o:" + std::to_string(partition); }

consumer_error state_error(const std::string& what, const rocksdb::Status& s) {
  return {errc::checkpoint, "replica state: " + what + ": " + s.ToString()};
}

std::optional<std::string> get(rocksdb::DB& db, std::string_view key) {
  std::string value;
  auto s = db.Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), &value);
  if (!s.ok()) return std::nullopt;
  return value;
}

std::optional<std::int64_t> to_int(const std::optional<std::string>& s) {
  if (!s) return std::nullopt;
  try {
    return std::stoll(*s);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

struct kafka_deleter {
  void operator()(rd_kafka_t* rk) const {
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
  }
};
struct partition_list_deleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const {
    rd_kafka_topic_partition_list_destroy(l);
  }
};
using partition_list = std::unique_ptr<rd_kafka_topic_partition_list_t, partition_list_deleter>;

}  // namespace

struct replica::impl {
  impl(projections::read_models& m, eventstore::key_store& k, const eventstore::event_codec& c,
       replica_options o)
      : models(m), keys(k), codec(c), opt(std::move(o)) {}

  projections::read_models& models;
  eventstore::key_store& keys;
  const eventstore::event_codec& codec;
  replica_options opt;

  std::unique_ptr<rocksdb::DB> db;
  std::unique_ptr<rd_kafka_t, kafka_deleter> rk;
  std::thread thread;
  std::atomic<bool> stopping{false};
  bool running = false;

  // Consumer thread only.
  std::map<int, std::int64_t> stored_offsets;  // from the state folder at start
  std::map<int, std::int64_t> start_high;      // high watermarks when assigned
  std::map<int, std::int64_t> position_in;     // partition -> next offset to read
  std::uint64_t ready_target = 0;              // caught up once applied reaches it
  bool reached_start_high = false;
  std::set<int> paused_partitions;

  mutable std::mutex mu;  // guards `st` and the times below
  replica_stats st;
  std::optional<timestamp> applied_time, seen_time;

  void set_error(std::string message, bool fatal) {
    std::lock_guard lk(mu);
    st.last_error = std::move(message);
    if (fatal) st.failed = true;
  }

  result<void, consumer_error> open_state();
  result<void, consumer_error> open_consumer();
  bool assign_partitions();
  void run();
  void on_message(reorder_buffer& buf, const rd_kafka_message_t* m);
  bool apply_ready(reorder_buffer& buf);
  result<void, consumer_error> apply_run(std::vector<received_event> run);
  result<void, consumer_error> flush(std::vector<eventstore::recorded_event>& batch);
  result<void, consumer_error> forget_learner(const received_event& e);
  void write_offsets(const reorder_buffer& buf, bool sync);
  void bound_buffer(const reorder_buffer& buf);
  void refresh_stats(const reorder_buffer& buf);
};

result<void, consumer_error> replica::impl::open_state() {
  auto s = open_state_db(opt.state_path, db);
  if (!s.ok()) return state_error("open " + opt.state_path, s);
  if (!get(*db, group_key)) {
    // One group per replica: replicas never split partitions between them.
    std::string group = "passage-replica-" + uuid::random().to_string();
    rocksdb::WriteOptions w;
    w.sync = true;
    if (auto p = db->Put(w, std::string(group_key), group); !p.ok()) return state_error("put", p);
  }
  // Offsets of another topic mean nothing here: read it from the beginning (what the read
  // models already hold is dropped by position).
  if (get(*db, topic_key) == opt.topic) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek("o:"); it->Valid() && it->key().starts_with("o:"); it->Next()) {
      auto p = to_int(it->key().ToString().substr(2));
      auto off = to_int(it->value().ToString());
      if (p && off) stored_offsets[static_cast<int>(*p)] = *off;
    }
  }
  if (auto t = to_int(get(*db, applied_time_key))) applied_time = from_unix_micros(*t);
  return {};
}

result<void, consumer_error> replica::impl::open_consumer() {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  auto group = get(*db, group_key).value_or("passage-replica");
  for (auto [k, v] : {std::pair<const char*, std::string>{"bootstrap.servers", opt.brokers},
                      {"group.id", group},
                      {"enable.auto.commit", "false"},
                      {"enable.auto.offset.store", "false"},
                      {"enable.partition.eof", "false"},
                      {"auto.offset.reset", "earliest"},
                      {"client.id", "passage-replica"}}) {
    if (rd_kafka_conf_set(conf, k, v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return consumer_error{errc::invalid_config, std::string("replica: ") + k + ": " + err};
    }
  }
  rd_kafka_t* raw = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (raw == nullptr) return consumer_error{errc::invalid_config, std::string("replica: ") + err};
  rd_kafka_poll_set_consumer(raw);
  rk.reset(raw);
  return {};
}

// Assigns every partition of the topic once its metadata is known (the topic may not
// exist yet when the replica starts before the primary publishes).
bool replica::impl::assign_partitions() {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* t = rd_kafka_topic_new(rk.get(), opt.topic.c_str(), nullptr);
  auto e = rd_kafka_metadata(rk.get(), 0, t, &md, 2000);
  rd_kafka_topic_destroy(t);
  int count = 0;
  if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && md->topics[0].err == 0) {
    count = md->topics[0].partition_cnt;
  }
  if (md) rd_kafka_metadata_destroy(md);
  if (count <= 0) {
    set_error(
        "waiting for topic " + opt.topic + ": " + (e ? rd_kafka_err2str(e) : "no partitions yet"),
        false);
    return false;
  }
  std::map<int, std::int64_t> high;
  for (int p = 0; p < count; ++p) {
    std::int64_t lo = 0, hi = 0;
    auto w = rd_kafka_query_watermark_offsets(rk.get(), opt.topic.c_str(), p, &lo, &hi, 5000);
    if (w != RD_KAFKA_RESP_ERR_NO_ERROR) {
      set_error(std::string("watermarks of ") + opt.topic + ": " + rd_kafka_err2str(w), false);
      return false;
    }
    high[p] = hi;
  }
  partition_list parts(rd_kafka_topic_partition_list_new(count));
  for (int p = 0; p < count; ++p) {
    auto stored = stored_offsets.find(p);
    std::int64_t from = stored == stored_offsets.end() ? RD_KAFKA_OFFSET_BEGINNING : stored->second;
    rd_kafka_topic_partition_list_add(parts.get(), opt.topic.c_str(), p)->offset = from;
    position_in[p] = stored == stored_offsets.end() ? 0 : stored->second;
  }
  if (auto a = rd_kafka_assign(rk.get(), parts.get()); a != RD_KAFKA_RESP_ERR_NO_ERROR) {
    set_error(std::string("assign: ") + rd_kafka_err2str(a), false);
    return false;
  }
  start_high = std::move(high);
  std::lock_guard lk(mu);
  st.partitions = count;
  st.last_error.clear();
  return true;
}

void replica::impl::on_message(reorder_buffer& buf, const rd_kafka_message_t* m) {
  {
    std::lock_guard lk(mu);
    ++st.messages;
  }
  position_in[m->partition] = std::max(position_in[m->partition], m->offset + 1);
  auto r = from_cloudevent_json(
      std::string_view(static_cast<const char*>(m->payload), m->payload ? m->len : 0));
  if (!r) {
    std::lock_guard lk(mu);
    ++st.rejected;
    st.last_error = "partition " + std::to_string(m->partition) + " offset " +
                    std::to_string(m->offset) + ": " + r.error();
    return;
  }
  const auto time = r->event.recorded_at;
  const auto position = r->event.position;
  const bool newest = position > buf.highest_seen();
  auto outcome = buf.offer(m->partition, m->offset, std::move(*r));
  std::lock_guard lk(mu);
  if (newest) seen_time = time;
  if (outcome == offer_outcome::duplicate) ++st.duplicates;
  if (outcome == offer_outcome::conflict) {
    ++st.conflicts;
    st.last_error = "two event ids at position " + std::to_string(position);
  }
}

result<void, consumer_error> replica::impl::flush(std::vector<eventstore::recorded_event>& batch) {
  if (batch.empty()) return {};
  // Keys made for this batch are durable before the events encrypted with them.
  if (auto s = keys.sync(); !s)
    return consumer_error{errc::apply, "key store: " + s.error().message};
  if (auto a = models.apply(batch); !a) return consumer_error{errc::apply, a.error().message};
  batch.clear();
  return {};
}

// As the primary's ForgetLearner: the learner's key and every generation of its email's
// key go before LearnerForgotten is applied, so nothing here still opens their data.
result<void, consumer_error> replica::impl::forget_learner(const received_event& e) {
  auto it = e.data.find("learner_id");
  auto learner =
      it != e.data.end() && it->is_string() ? uuid::parse(it->get<std::string>()) : std::nullopt;
  if (!learner) return consumer_error{errc::apply, "LearnerForgotten without a learner_id"};
  if (auto subject = models.learner_email_subject(*learner)) {
    if (auto f = codec.forget_email_subject(*subject); !f)
      return consumer_error{errc::apply, f.error().message};
  }
  if (auto d = keys.destroy("learner:" + learner->to_string()); !d)
    return consumer_error{errc::apply, "key store: " + d.error().message};
  return {};
}

result<void, consumer_error> replica::impl::apply_run(std::vector<received_event> run) {
  std::vector<eventstore::recorded_event> batch;
  batch.reserve(run.size());
  for (auto& r : run) {
    if (r.event.type == domain::learner_forgotten::type_name) {
      // What came before (the learner's registration) must be applied to be looked up.
      if (auto f = flush(batch); !f) return f;
      if (auto f = forget_learner(r); !f) return f;
    }
    auto data =
        codec.encode_public_json(r.event.event_id, r.event.type, r.event.schema_version, r.data);
    if (!data) {
      return consumer_error{errc::apply, "position " + std::to_string(r.event.position) + ": " +
                                             data.error().message};
    }
    r.event.data = std::move(*data);
    batch.push_back(std::move(r.event));
  }
  return flush(batch);
}

// Applies every run that is ready; false once applying failed (the replica then stops
// applying, and its offsets stay where a restart re-reads the failed event).
bool replica::impl::apply_ready(reorder_buffer& buf) {
  bool applied_any = false;
  for (auto run = buf.take_ready(opt.max_batch); !run.empty();
       run = buf.take_ready(opt.max_batch)) {
    const auto last_time = run.back().event.recorded_at;
    if (auto a = apply_run(std::move(run)); !a) {
      set_error(a.error().message, true);
      return false;
    }
    applied_any = true;
    std::lock_guard lk(mu);
    applied_time = last_time;
  }
  if (applied_any) write_offsets(buf, false);
  return true;
}

void replica::impl::write_offsets(const reorder_buffer& buf, bool sync) {
  rocksdb::WriteBatch b;
  b.Put(std::string(topic_key), opt.topic);
  for (const auto& [p, off] : buf.resume_offsets()) b.Put(offset_key(p), std::to_string(off));
  {
    std::lock_guard lk(mu);
    if (applied_time)
      b.Put(std::string(applied_time_key), std::to_string(to_unix_micros(*applied_time)));
  }
  rocksdb::WriteOptions w;
  w.sync = sync;
  if (auto s = db->Write(w, &b); !s.ok()) set_error("replica state: write: " + s.ToString(), false);
}

void replica::impl::bound_buffer(const reorder_buffer& buf) {
  if (paused_partitions.empty() && buf.size() > opt.max_buffered) {
    paused_partitions = buf.partitions_holding();
    partition_list parts(
        rd_kafka_topic_partition_list_new(static_cast<int>(paused_partitions.size())));
    for (int p : paused_partitions)
      rd_kafka_topic_partition_list_add(parts.get(), opt.topic.c_str(), p);
    rd_kafka_pause_partitions(rk.get(), parts.get());
  } else if (!paused_partitions.empty() && buf.size() <= opt.max_buffered / 2) {
    partition_list parts(
        rd_kafka_topic_partition_list_new(static_cast<int>(paused_partitions.size())));
    for (int p : paused_partitions)
      rd_kafka_topic_partition_list_add(parts.get(), opt.topic.c_str(), p);
    rd_kafka_resume_partitions(rk.get(), parts.get());
    paused_partitions.clear();
  }
}

void replica::impl::refresh_stats(const reorder_buffer& buf) {
  const std::uint64_t applied = buf.next_position() - 1;
  if (!reached_start_high && !start_high.empty()) {
    bool all = true;
    for (const auto& [p, hi] : start_high) all = all && position_in[p] >= hi;
    if (all) {
      reached_start_high = true;
      ready_target = buf.highest_seen();
    }
  }
  std::int64_t kafka_lag = 0;
  for (const auto& [p, next] : position_in) {
    std::int64_t lo = 0, hi = 0;
    if (rd_kafka_get_watermark_offsets(rk.get(), opt.topic.c_str(), p, &lo, &hi) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        hi > next) {
      kafka_lag += hi - std::max(next, lo);
    }
  }
  std::lock_guard lk(mu);
  st.applied_position = applied;
  st.last_seen_position = std::max(buf.highest_seen(), applied);
  st.lag_events = st.last_seen_position - applied;
  st.lag_seconds = 0;
  if (st.lag_events > 0 && seen_time) {
    // Nothing applied yet: measure from the oldest event held instead.
    const auto* first = buf.first_held();
    auto from = applied_time.value_or(first ? first->event.recorded_at : *seen_time);
    st.lag_seconds = std::max(0.0, std::chrono::duration<double>(*seen_time - from).count());
  }
  st.buffered = buf.size();
  st.waiting_for_position = buf.size() > 0 ? buf.next_position() : 0;
  st.kafka_lag_messages = kafka_lag;
  st.paused = !paused_partitions.empty();
  if (reached_start_high && applied >= ready_target) st.caught_up = true;
}

void replica::impl::run() {
  reorder_buffer buf(models.applied_position());
  bool assigned = false;
  bool healthy = true;
  while (!stopping.load()) {
    if (!assigned) {
      assigned = assign_partitions();
      if (!assigned) {
        std::this_thread::sleep_for(200ms);
        continue;
      }
    }
    // Drain what is there (up to a batch), then apply in log order.
    for (std::size_t n = 0; n < opt.max_batch && !stopping.load(); ++n) {
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), n == 0 ? 100 : 0);
      if (m == nullptr) break;
      if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
          set_error(std::string("consume: ") + rd_kafka_message_errstr(m), false);
      } else if (healthy) {
        on_message(buf, m);
      }
      rd_kafka_message_destroy(m);
    }
    if (healthy) healthy = apply_ready(buf);
    if (healthy) bound_buffer(buf);
    refresh_stats(buf);
  }
  if (assigned && healthy) write_offsets(buf, true);
}

replica::replica(projections::read_models& models, eventstore::key_store& keys,
                 const eventstore::event_codec& codec, replica_options options)
    : impl_(std::make_unique<impl>(models, keys, codec, std::move(options))) {}

replica::~replica() { stop(); }

result<void, consumer_error> replica::start() {
  auto& s = *impl_;
  if (s.running) return consumer_error{errc::already_running, "replica: already running"};
  if (s.opt.brokers.empty()) return consumer_error{errc::invalid_config, "replica: no brokers"};
  if (s.opt.topic.empty()) return consumer_error{errc::invalid_config, "replica: no topic"};
  if (s.opt.state_path.empty())
    return consumer_error{errc::invalid_config, "replica: no state folder"};
  if (s.opt.max_batch == 0 || s.opt.max_buffered == 0)
    return consumer_error{errc::invalid_config, "replica: max_batch and max_buffered must be > 0"};
  if (auto o = s.open_state(); !o) return o.error();
  if (auto c = s.open_consumer(); !c) {
    s.db.reset();
    return c.error();
  }
  {
    std::lock_guard lk(s.mu);
    s.st.applied_position = s.models.applied_position();
  }
  s.stopping = false;
  s.running = true;
  s.thread = std::thread([&s] { s.run(); });
  return {};
}

void replica::stop() {
  auto& s = *impl_;
  if (!s.running) return;
  s.stopping = true;
  s.thread.join();
  s.rk.reset();
  s.db.reset();
  s.running = false;
}

replica_stats replica::stats() const {
  std::lock_guard lk(impl_->mu);
  return impl_->st;
}

}  // namespace passage::consumers
