#include "consumers/relay.h"

#include <librdkafka/rdkafka.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "consumers/checkpoint_tracker.h"
#include "consumers/cloudevent.h"
#include "consumers/state_db.h"
#include "eventstore/subscription.h"

namespace passage::consumers {

namespace {

// The checkpoint is kept per destination (topic and Kafka cluster id): positions a
// cluster acknowledged say nothing about another one, so a node moved to another
// cluster or topic publishes the whole log there instead of resuming past it.
//   "destination"               -> the destination published to last ("<topic>/<cluster id>")
//   "checkpoint/<destination>"  -> BE64 checkpoint of that destination
//   "checkpoint"                -> BE64 checkpoint written by builds before destinations;
//                                  adopted by the first destination the relay reaches
constexpr std::string_view legacy_checkpoint_key = "checkpoint";
constexpr std::string_view destination_key = "destination";

std::string checkpoint_key_of(std::string_view destination) {
  return std::string(legacy_checkpoint_key) + "/" + std::string(destination);
}

std::string encode_position(std::uint64_t p) {
  std::string s(8, '\0');
  for (int i = 7; i >= 0; --i, p >>= 8) s[i] = static_cast<char>(p & 0xff);
  return s;
}

std::optional<std::uint64_t> decode_position(std::string_view s) {
  if (s.size() != 8) return std::nullopt;
  std::uint64_t p = 0;
  for (unsigned char c : s) p = (p << 8) | c;
  return p;
}

consumer_error checkpoint_error(const std::string& what, const rocksdb::Status& s) {
  return {errc::checkpoint, "relay checkpoint: " + what + ": " + s.ToString()};
}

// The value stored under `key`; nullopt when there is none.
result<std::optional<std::string>, consumer_error> read_value(rocksdb::DB& db,
                                                              std::string_view key) {
  std::string value;
  auto s = db.Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::optional<std::string>{};
  if (!s.ok()) return checkpoint_error("read", s);
  return std::optional<std::string>{std::move(value)};
}

// The checkpoint stored under `key`; nullopt when there is none.
result<std::optional<std::uint64_t>, consumer_error> read_position(rocksdb::DB& db,
                                                                   std::string_view key) {
  auto value = read_value(db, key);
  if (!value) return value.error();
  if (!*value) return std::optional<std::uint64_t>{};
  auto p = decode_position(**value);
  if (!p) return consumer_error{errc::checkpoint, "relay checkpoint: malformed value"};
  return std::optional<std::uint64_t>{*p};
}

struct stored_state {
  std::string destination;  // "" when none was recorded yet
  std::uint64_t checkpoint = 0;
};

// The destination published to last and its checkpoint (the legacy checkpoint when
// no destination was recorded yet).
result<stored_state, consumer_error> read_from(rocksdb::DB& db) {
  auto destination = read_value(db, destination_key);
  if (!destination) return destination.error();
  stored_state st;
  if (*destination) st.destination = std::move(**destination);
  auto cp = read_position(
      db, st.destination.empty() ? legacy_checkpoint_key : checkpoint_key_of(st.destination));
  if (!cp) return cp.error();
  st.checkpoint = cp->value_or(0);
  return st;
}

// librdkafka configuration built from the options; the caller owns the result.
result<rd_kafka_conf_t*, consumer_error> make_conf(const relay_options& o) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char errstr[512];
  auto set = [&](const std::string& name, const std::string& value) -> bool {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), errstr, sizeof errstr) ==
        RD_KAFKA_CONF_OK)
      return true;
    return false;
  };
  const std::size_t queue_messages =
      std::max<std::size_t>(o.max_in_flight_messages + 1024, 100'000);
  const std::size_t queue_kbytes = o.max_in_flight_bytes / 1024 + 65'536;
  const std::pair<std::string, std::string> ours[] = {
      {"bootstrap.servers", o.brokers},
      {"client.id", o.client_id},
      // Idempotence keeps each partition's order through retries with up to 5
      // requests in flight; acks=all so an acknowledged message survives a leader loss.
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"max.in.flight.requests.per.connection", "5"},
      // A failure that could leave a gap in a partition becomes fatal instead of
      // letting later messages of the same key through: the relay then restarts
      // from its checkpoint, so first occurrences stay in order.
      {"enable.gapless.guarantee", "true"},
      // Never give up on a message during an outage; the in-flight window bounds memory.
      {"message.timeout.ms", "0"},
      {"linger.ms", std::to_string(o.linger.count())},
      {"batch.num.messages", std::to_string(o.batch_messages)},
      {"batch.size", std::to_string(o.batch_bytes)},
      {"compression.type", o.compression},
      {"queue.buffering.max.messages", std::to_string(queue_messages)},
      {"queue.buffering.max.kbytes", std::to_string(queue_kbytes)},
      // The Java client's key hashing, so other producers' keys land alike.
      {"partitioner", "murmur2_random"},
      // Come back quickly once brokers return (librdkafka's default backs off to 10 s).
      {"reconnect.backoff.max.ms", "1000"},
  };
  for (const auto& [name, value] : ours) {
    if (!set(name, value)) {
      rd_kafka_conf_destroy(conf);
      return consumer_error{errc::invalid_config, "relay: " + name + ": " + errstr};
    }
  }
  for (const auto& [name, value] : o.kafka_overrides) {
    if (!set(name, value)) {
      rd_kafka_conf_destroy(conf);
      return consumer_error{errc::invalid_config, "relay: override " + name + ": " + errstr};
    }
  }
  return conf;
}

bool is_purge(rd_kafka_resp_err_t err) {
  return err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT;
}

}  // namespace

result<std::uint64_t, consumer_error> read_checkpoint(const std::string& path) {
  if (!std::filesystem::exists(path)) return std::uint64_t{0};
  rocksdb::DB* raw = nullptr;
  // Read-only opens take no lock, so this works while a relay runs.
  auto s = rocksdb::DB::OpenForReadOnly(rocksdb::Options(), path, &raw);
  if (!s.ok()) return checkpoint_error("open " + path, s);
  std::unique_ptr<rocksdb::DB> db(raw);
  auto st = read_from(*db);
  if (!st) return st.error();
  return st->checkpoint;
}

struct relay::impl {
  impl(eventstore::event_store& s, const eventstore::event_codec& c, relay_options o)
      : store(s), codec(c), opt(std::move(o)), clk(opt.clock ? opt.clock : &sys_clock) {}

  eventstore::event_store& store;
  const eventstore::event_codec& codec;
  relay_options opt;
  system_clock sys_clock;
  const passage::clock* clk;

  std::mutex lifecycle_mu;  // serialises start() and stop()
  std::unique_ptr<rocksdb::DB> db;
  // Relay thread (and start/stop while it is not running): the destination published
  // to ("" until the brokers first answer) and the checkpoint stored for it.
  std::string destination;
  std::uint64_t stored_checkpoint = 0;
  bool first_session = true;
  std::thread thread;
  std::atomic<bool> running{false};
  std::atomic<bool> stopping{false};

  // Guarded by mu: the current session's window and what stats() reports.
  mutable std::mutex mu;
  mutable std::condition_variable cv;  // window space, checkpoint moves, session end
  checkpoint_tracker tracker;
  std::uint64_t in_flight_bytes = 0;
  bool session_ending = false;
  // The session ends to re-encode what it sent, not after a failure: no back-off.
  bool restart_at_once = false;
  // The brokers told which cluster they are: the checkpoint is theirs, not assumed.
  bool destination_known = false;
  bool restart_wanted = false;
  bool connected = false;
  std::string last_error;

  // Moved by keys_destroyed(): messages encoded before it may hold personal data whose
  // keys are gone, and are encoded again.
  std::atomic<std::uint64_t> forget_generation{0};

  std::atomic<std::uint64_t> published{0};
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::uint64_t> restarts{0};

  rd_kafka_t* producer =
      nullptr;  // the current session's; created and destroyed by the relay thread

  result<rd_kafka_t*, consumer_error> new_producer();
  void run(rd_kafka_t* first);
  void run_session(rd_kafka_t* rk);
  bool on_batch(rd_kafka_t* rk, std::span<const eventstore::recorded_event> batch);
  std::string encode(const eventstore::recorded_event& e);
  void end_session(std::string why, bool restart);
  void store_checkpoint(bool sync);
  std::optional<std::string> await_destination(rd_kafka_t* rk);
  bool adopt_destination(const std::string& d);

  static void on_delivery(rd_kafka_t* rk, const rd_kafka_message_t* m, void* opaque);
  static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque);
};

result<rd_kafka_t*, consumer_error> relay::impl::new_producer() {
  auto conf = make_conf(opt);
  if (!conf) return conf.error();
  rd_kafka_conf_set_opaque(*conf, this);
  rd_kafka_conf_set_dr_msg_cb(*conf, &impl::on_delivery);
  rd_kafka_conf_set_error_cb(*conf, &impl::on_error);
  char errstr[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, *conf, errstr, sizeof errstr);
  if (!rk) {
    rd_kafka_conf_destroy(*conf);
    return consumer_error{errc::invalid_config, std::string("relay: ") + errstr};
  }
  return rk;
}

// Runs on the relay thread, inside rd_kafka_poll()/rd_kafka_flush().
void relay::impl::on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* self = static_cast<impl*>(opaque);
  const auto position = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(m->_private));
  std::optional<std::uint64_t> moved_to;
  {
    std::lock_guard lk(self->mu);
    self->in_flight_bytes -= std::min<std::uint64_t>(self->in_flight_bytes, m->len + m->key_len);
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      self->connected = true;
      if (self->tracker.acknowledge(position)) moved_to = self->tracker.checkpoint();
    } else if (!is_purge(m->err)) {
      // A message the producer gave up on. Later messages of other keys may still
      // be acknowledged; the checkpoint cannot pass this one, and a new producer
      // starts again from the checkpoint.
      self->last_error = "delivery of position " + std::to_string(position) +
                         " failed: " + rd_kafka_err2str(m->err);
      self->session_ending = true;
      self->restart_wanted = true;
    }
  }
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    self->published.fetch_add(1, std::memory_order_relaxed);
  } else if (!is_purge(m->err)) {
    self->errors.fetch_add(1, std::memory_order_relaxed);
  }
  self->cv.notify_all();
  if (moved_to && self->opt.on_checkpoint) self->opt.on_checkpoint(*moved_to);
}

// Runs on librdkafka's threads via the relay thread's poll.
void relay::impl::on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
  auto* self = static_cast<impl*>(opaque);
  std::lock_guard lk(self->mu);
  self->errors.fetch_add(1, std::memory_order_relaxed);
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    // Purging in-flight messages on stop trips the gap-less guarantee: expected.
    if (self->session_ending && !self->restart_wanted) return;
    char why[512];
    auto cause = rd_kafka_fatal_error(rk, why, sizeof why);
    self->last_error = std::string("fatal: ") + rd_kafka_err2name(cause) + ": " + why;
    self->session_ending = true;
    self->restart_wanted = true;
    self->cv.notify_all();
    return;
  }
  if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) self->connected = false;
  self->last_error = reason ? reason : rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(err));
}

void relay::impl::end_session(std::string why, bool restart) {
  {
    std::lock_guard lk(mu);
    if (!why.empty()) last_error = std::move(why);
    session_ending = true;
    restart_wanted = restart_wanted || restart;
  }
  cv.notify_all();
}

std::string relay::impl::encode(const eventstore::recorded_event& e) {
  nlohmann::json data;
  if (auto shown = codec.to_public_json(e)) {
    data = std::move(*shown);
  } else {
    errors.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lk(mu);
    last_error = "position " + std::to_string(e.position) + ": " + shown.error().message;
  }
  return to_cloudevent_json(e, std::move(data));
}

// Runs on the subscription's thread.
bool relay::impl::on_batch(rd_kafka_t* rk, std::span<const eventstore::recorded_event> batch) {
  static const std::string content_type(cloudevents_content_type);
  // Encoding (the codec's JSON, then the CloudEvent) is most of the CPU per
  // message: spread a batch over helper threads, then produce in log order.
  std::vector<std::string> bodies(batch.size());
  auto encoded_at = forget_generation.load();
  const std::size_t helpers = std::clamp<std::size_t>(
      std::min(opt.encode_threads, batch.size() / 128), 1, 16);  // >= 128 events each
  const std::size_t chunk = (batch.size() + helpers - 1) / helpers;
  auto encode_range = [&](std::size_t from) {
    for (std::size_t i = from; i < std::min(batch.size(), from + chunk); ++i)
      bodies[i] = encode(batch[i]);
  };
  {
    std::vector<std::jthread> threads;
    for (std::size_t h = 1; h < helpers; ++h) threads.emplace_back(encode_range, h * chunk);
    encode_range(0);
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto& e = batch[i];
    std::string& body = bodies[i];
    std::uint64_t bytes = body.size() + e.stream.size();
    {
      std::unique_lock lk(mu);
      for (;;) {
        cv.wait(lk, [&] {
          if (session_ending) return true;
          const auto n = tracker.unacknowledged();
          return n == 0 || (n < opt.max_in_flight_messages &&
                            in_flight_bytes + bytes <= opt.max_in_flight_bytes);
        });
        if (session_ending) return false;
        // A forget since these bodies were encoded: encode the rest again. Checked in
        // the same lock as sent() below, so the relay thread either sees this message
        // as unacknowledged (and restarts) or it is encoded after the keys went.
        const auto now = forget_generation.load();
        if (now == encoded_at) break;
        lk.unlock();
        encoded_at = now;
        for (std::size_t k = i; k < batch.size(); ++k) bodies[k] = encode(batch[k]);
        bytes = body.size() + e.stream.size();
        lk.lock();
      }
      if (!tracker.sent(e.position)) {
        last_error = "relay: log position " + std::to_string(e.position) + " out of order";
        session_ending = restart_wanted = true;
        cv.notify_all();
        return false;
      }
      in_flight_bytes += bytes;
    }
    for (;;) {
      auto err = rd_kafka_producev(
          rk, RD_KAFKA_V_TOPIC(opt.topic.c_str()), RD_KAFKA_V_KEY(e.stream.data(), e.stream.size()),
          RD_KAFKA_V_VALUE(body.data(), body.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<std::uintptr_t>(e.position))),
          RD_KAFKA_V_HEADER("content-type", content_type.data(),
                            static_cast<ssize_t>(content_type.size())),
          RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        std::unique_lock lk(mu);
        if (cv.wait_for(lk, std::chrono::milliseconds(5), [&] { return session_ending; }))
          return false;
        continue;
      }
      errors.fetch_add(1, std::memory_order_relaxed);
      end_session("produce position " + std::to_string(e.position) + ": " + rd_kafka_err2str(err),
                  true);
      return false;
    }
  }
  return true;
}

void relay::impl::store_checkpoint(bool sync) {
  std::uint64_t cp;
  {
    std::lock_guard lk(mu);
    cp = tracker.checkpoint();
  }
  // Monotonic: a from_start run overwrites the stored value only once it passes it.
  if (destination.empty() || cp <= stored_checkpoint) return;
  rocksdb::WriteOptions w;
  w.sync = sync;
  auto value = encode_position(cp);
  auto s = db->Put(w, checkpoint_key_of(destination), value);
  if (!s.ok()) {
    errors.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard lk(mu);
    last_error = checkpoint_error("write", s).message;
    return;
  }
  stored_checkpoint = cp;
}

// "<topic>/<cluster id>" once the brokers answer; nullopt if the session ends first.
// Brokers too old to report a cluster id are named by the bootstrap list instead.
std::optional<std::string> relay::impl::await_destination(rd_kafka_t* rk) {
  for (;;) {
    if (stopping.load()) return std::nullopt;
    {
      std::lock_guard lk(mu);
      if (session_ending) return std::nullopt;
    }
    std::string cluster;
    if (char* id = rd_kafka_clusterid(rk, 500)) {
      cluster = id;
      rd_kafka_mem_free(rk, id);
    } else {
      const rd_kafka_metadata_t* md = nullptr;
      if (rd_kafka_metadata(rk, 0, nullptr, &md, 500) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_metadata_destroy(md);
        cluster = "brokers " + opt.brokers;
      }
    }
    rd_kafka_poll(rk, 0);  // error callbacks: what stats() reports while brokers are away
    if (!cluster.empty()) {
      std::lock_guard lk(mu);
      connected = true;
      return opt.topic + "/" + cluster;
    }
  }
}

// Makes `d` the destination the checkpoint belongs to. Returns false if it could not
// be recorded (the session then ends and a new one tries again).
bool relay::impl::adopt_destination(const std::string& d) {
  const bool first = std::exchange(first_session, false);
  if (d != destination) {
    auto stored = read_position(*db, checkpoint_key_of(d));
    if (!stored) {
      end_session(stored.error().message, true);
      return false;
    }
    rocksdb::WriteBatch batch;
    std::uint64_t cp = stored->value_or(0);
    if (!*stored && destination.empty()) {
      // A folder written before destinations were recorded: its checkpoint belongs to
      // the brokers reached first (a moved node publishes the whole log: no loss).
      auto legacy = read_position(*db, legacy_checkpoint_key);
      if (!legacy) {
        end_session(legacy.error().message, true);
        return false;
      }
      if (*legacy) {
        cp = **legacy;
        batch.Put(checkpoint_key_of(d), encode_position(cp));
        batch.Delete(legacy_checkpoint_key);
      }
    }
    batch.Put(destination_key, d);
    rocksdb::WriteOptions w;
    w.sync = true;
    if (auto s = db->Write(w, &batch); !s.ok()) {
      errors.fetch_add(1, std::memory_order_relaxed);
      end_session(checkpoint_error("write", s).message, true);
      return false;
    }
    destination = d;
    stored_checkpoint = cp;
    // from_start: the first session publishes from position 1 whatever is stored.
    if (!(first && opt.from_start)) {
      std::lock_guard lk(mu);
      tracker = checkpoint_tracker(cp);
    }
  }
  {
    std::lock_guard lk(mu);
    destination_known = true;
  }
  cv.notify_all();
  return true;
}

// One producer's life: from the checkpoint until stop() or a fatal error.
void relay::impl::run_session(rd_kafka_t* rk) {
  {
    std::lock_guard lk(mu);
    session_ending = false;
    restart_wanted = false;
    restart_at_once = false;
    in_flight_bytes = 0;
  }
  // Which cluster and topic this producer reaches decides where it resumes.
  auto d = await_destination(rk);
  if (!d || !adopt_destination(*d)) return;
  std::uint64_t from;
  {
    std::lock_guard lk(mu);
    // Whatever a previous producer left unacknowledged is sent again.
    tracker = checkpoint_tracker(tracker.checkpoint());
    from = tracker.checkpoint() + 1;
  }
  {
    eventstore::subscription sub(
        store, {.filter = {.from_position = from}, .max_batch = opt.read_batch, .background = true},
        [this, rk](std::span<const eventstore::recorded_event> batch) {
          return on_batch(rk, batch);
        },
        [this](const eventstore::store_error& e) {
          errors.fetch_add(1, std::memory_order_relaxed);
          end_session("reading the log: " + e.message, true);
        });
    auto last_store = std::chrono::steady_clock::now();
    auto forgets_seen = forget_generation.load();
    for (;;) {
      rd_kafka_poll(rk, 50);
      const auto forgets = forget_generation.load();
      if (forgets != forgets_seen) {
        forgets_seen = forgets;
        std::unique_lock lk(mu);
        if (tracker.unacknowledged() > 0) {
          // Keys were destroyed while messages wait for the brokers (an outage keeps
          // them for as long as it lasts): drop them and send them again from the
          // checkpoint, encoded now, so none arrives with personal data after a forget.
          session_ending = restart_wanted = restart_at_once = true;
          lk.unlock();
          cv.notify_all();  // on_batch may wait for room in the window
          break;
        }
      }
      {
        std::lock_guard lk(mu);
        if (session_ending) break;
      }
      if (stopping.load()) {
        end_session("", false);
        break;
      }
      auto now = std::chrono::steady_clock::now();
      if (now - last_store >= opt.checkpoint_interval) {
        store_checkpoint(false);
        last_store = now;
      }
    }
    sub.stop();
  }
  bool restart;
  {
    std::lock_guard lk(mu);
    restart = restart_wanted;
  }
  // A clean stop lets what is in flight finish; anything still unacknowledged is
  // dropped here and published again from the checkpoint next time.
  if (!restart) rd_kafka_flush(rk, static_cast<int>(opt.stop_timeout.count()));
  rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (rd_kafka_outq_len(rk) > 0 && std::chrono::steady_clock::now() < deadline)
    rd_kafka_poll(rk, 10);
  store_checkpoint(true);
}

void relay::impl::run(rd_kafka_t* first) {
  rd_kafka_t* rk = first;
  while (!stopping.load()) {
    if (!rk) {
      auto next = new_producer();
      if (!next) {
        errors.fetch_add(1, std::memory_order_relaxed);
        std::lock_guard lk(mu);
        last_error = next.error().message;
      } else {
        rk = *next;
      }
    }
    if (rk) {
      run_session(rk);
      rd_kafka_destroy(rk);
      rk = nullptr;
    }
    if (stopping.load()) break;
    restarts.fetch_add(1, std::memory_order_relaxed);
    std::unique_lock lk(mu);
    if (!std::exchange(restart_at_once, false))
      cv.wait_for(lk, opt.restart_backoff, [&] { return stopping.load(); });
  }
  if (rk) rd_kafka_destroy(rk);
}

relay::relay(eventstore::event_store& store, const eventstore::event_codec& codec,
             relay_options options)
    : impl_(std::make_unique<impl>(store, codec, std::move(options))) {}

relay::~relay() { stop(); }

const relay_options& relay::options() const { return impl_->opt; }

result<void, consumer_error> relay::start() {
  auto& s = *impl_;
  std::lock_guard life(s.lifecycle_mu);
  if (s.running.load()) return consumer_error{errc::already_running, "relay: already running"};
  if (s.opt.brokers.empty()) return consumer_error{errc::invalid_config, "relay: no brokers"};
  if (s.opt.topic.empty()) return consumer_error{errc::invalid_config, "relay: no topic"};
  if (s.opt.max_in_flight_messages == 0 || s.opt.max_in_flight_bytes == 0 || s.opt.read_batch == 0)
    return consumer_error{errc::invalid_config,
                          "relay: in-flight bounds and read_batch must be > 0"};

  // The Kafka configuration first: a refused one leaves nothing open.
  auto rk = s.new_producer();
  if (!rk) return rk.error();
  auto fail = [&](consumer_error e) -> result<void, consumer_error> {
    rd_kafka_destroy(*rk);
    s.db.reset();
    return e;
  };
  auto st = open_state_db(s.opt.checkpoint_path, s.db);
  if (!st.ok()) return fail(checkpoint_error("open " + s.opt.checkpoint_path, st));
  auto stored = read_from(*s.db);
  if (!stored) return fail(stored.error());
  // Until the brokers answer, the destination published to last is assumed.
  s.destination = stored->destination;
  s.stored_checkpoint = stored->checkpoint;
  s.first_session = true;

  {
    std::lock_guard lk(s.mu);
    s.tracker = checkpoint_tracker(s.opt.from_start ? 0 : stored->checkpoint);
    s.destination_known = false;
    s.connected = false;
  }
  s.stopping = false;
  s.running = true;
  s.thread = std::thread([&s, first = *rk] { s.run(first); });
  return {};
}

void relay::stop() {
  auto& s = *impl_;
  std::lock_guard life(s.lifecycle_mu);
  if (!s.running.load()) return;
  s.stopping = true;
  s.cv.notify_all();
  s.thread.join();
  s.running = false;
  {
    std::lock_guard lk(s.mu);
    s.connected = false;
  }
  if (s.db) {
    s.db->FlushWAL(true);
    s.db->Close();
    s.db.reset();
  }
}

relay_stats relay::stats() const {
  auto& s = *impl_;
  relay_stats st;
  {
    std::lock_guard lk(s.mu);
    st.published_position = s.tracker.checkpoint();
    st.in_flight = s.tracker.unacknowledged();
    st.connected = s.connected;
    st.last_error = s.last_error;
  }
  st.head_position = s.store.head_position();
  st.backlog =
      st.head_position > st.published_position ? st.head_position - st.published_position : 0;
  if (st.backlog > 0) {
    std::optional<timestamp> oldest;
    auto r = s.store.scan(
        {.from_position = st.published_position + 1, .to_position = st.published_position + 1},
        [&](const eventstore::recorded_event& e) {
          oldest = e.recorded_at;
          return false;
        });
    if (r && oldest) {
      auto lag = std::chrono::duration<double>(s.clk->now() - *oldest).count();
      st.lag_seconds = std::max(0.0, lag);
    }
  }
  st.messages_published = s.published.load(std::memory_order_relaxed);
  st.errors = s.errors.load(std::memory_order_relaxed);
  st.restarts = s.restarts.load(std::memory_order_relaxed);
  st.running = s.running.load();
  return st;
}

void relay::keys_destroyed() {
  impl_->forget_generation.fetch_add(1);
  impl_->cv.notify_all();
}

bool relay::wait_for_published(std::uint64_t position, std::chrono::milliseconds timeout) const {
  auto& s = *impl_;
  std::unique_lock lk(s.mu);
  return s.cv.wait_for(lk, timeout,
                       [&] { return s.destination_known && s.tracker.checkpoint() >= position; });
}

}  // namespace passage::consumers
