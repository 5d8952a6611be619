#pragma once
// The event store: Passage's single source of truth, an append-only log of
// events on RocksDB. Appends are atomic across streams, checked against expected
// versions, idempotent by event id and acknowledged only once fsynced (concurrent
// appends share one synced write). Reads go by stream, by global position (with
// type / stream-prefix / time filters) or through catch-up subscriptions.
//
//   auto store = open_event_store({.path = "data/events"});
//   if (!store) die(store.error().message);
//   auto r = (*store)->append({{"invite-42", expected_version::no_stream(), {ev}}});
//   (*store)->scan({.from_position = 1}, [](const recorded_event& e) { ...; return true; });

#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "eventstore/event.h"
#include "eventstore/upcaster.h"

namespace passage::eventstore {

struct event_store_options {
  // Folder of the RocksDB database. Required.
  std::string path;
  // Open as a RocksDB secondary instance: reads only, safe while another process
  // writes; call refresh() to see newer events. Default: false.
  bool read_only = false;
  // Scratch folder for the secondary instance's own files. Default: "" means
  // a fresh folder under the system temp directory.
  std::string secondary_path;
  // fsync before acknowledging an append. Default: true. Only benchmarks that
  // measure the store's CPU cost turn this off.
  bool sync = true;
  // Most events that one group commit carries. Default: 8192.
  std::size_t max_commit_events = 8192;
  // RocksDB block cache for reads. Default: 256 MiB.
  std::size_t block_cache_bytes = 256u << 20;
  // Source of recorded_at. Default: nullptr means the system clock. Must outlive the store.
  const passage::clock* clock = nullptr;
  // Upgrades of old event shapes applied on every read. Default: none.
  std::shared_ptr<const upcaster_registry> upcasters;
  // Runs on the writer thread before each commit that stores events; an error
  // message fails that commit's appends (nothing is written). Passage makes new
  // encryption keys durable here, before any event that needs them. Default: none.
  std::function<std::optional<std::string>()> before_commit;
  // Runs on the sync thread before each fsync of commits already written (their appends
  // not yet acknowledged, their events not yet readable); an error message stands for a
  // failed fsync. Tests hold it to see the next commit prepared and written meanwhile, or
  // fail it. Default: none.
  std::function<std::optional<std::string>()> before_sync;
  // Runs on the sync thread after each successful fsync of the log, with how long that
  // fsync took (each makes one or more group commits durable): the disk's share of an
  // append's latency, for metrics. Must be quick. Default: none.
  std::function<void(std::chrono::nanoseconds took)> after_sync;
};

enum class read_direction { forward, backward };

// Which events of the global log a read returns.
struct log_filter {
  std::uint64_t from_position = 1;  // first position to consider (0 and 1 both mean "the start")
  std::uint64_t to_position = UINT64_MAX;  // last position to consider, inclusive
  std::vector<std::string> types;          // empty: every type
  std::string stream_prefix;               // empty: every stream
  std::optional<timestamp> since;          // recorded_at >= since (found through the time index)
  std::optional<timestamp> until;          // recorded_at < until
  // A scan read once from start to end (a rebuild's whole-log pass): its blocks skip the
  // block cache, whose fill and eviction would only churn for blocks never read again.
  // Short scans leave it off: uncached, each would read its blocks afresh from the file.
  bool one_pass = false;
};

using append_callback = std::function<void(store_result<append_result>)>;

// Owned by the application; every method is safe to call from any thread.
class event_store {
 public:
  virtual ~event_store() = default;

  // Appends atomically to one or more streams, each checked against its own
  // expectation: every event is stored or none. Returns once fsynced.
  virtual store_result<append_result> append(std::vector<stream_append> streams) = 0;

  // As append(), but returns at once; `done` runs on the store's sync thread once
  // the outcome is known (after the fsync), so it must be quick and must not call
  // append().
  virtual void append_async(std::vector<stream_append> streams, append_callback done) = 0;

  // One stream's events from `from_version` (inclusive; backward reads go down
  // from it, UINT64_MAX meaning "from the end"), at most `max_count` of them.
  virtual store_result<std::vector<recorded_event>> read_stream(std::string_view stream,
                                                                std::uint64_t from_version,
                                                                read_direction direction,
                                                                std::size_t max_count) = 0;

  // The stream's current version: its last event's stream_version, 0 if none.
  virtual store_result<std::uint64_t> stream_version(std::string_view stream) = 0;

  // Visits the global log in position order. The event passed to `visit` is
  // reused between calls (copy what you keep); return false to stop. Returns the
  // position of the last record examined (0 if none).
  virtual store_result<std::uint64_t> scan(
      const log_filter& filter, const std::function<bool(const recorded_event&)>& visit) = 0;

  // scan() for a caller that keeps what it is handed (a subscription's batch): `visit` may
  // take the event's contents, e.g. std::swap it with an event of its own, whose buffers
  // the store then reuses for the next one, so nothing is copied to be kept. This default
  // hands each event over as a copy. An implementation must not read `e` after `visit`
  // returns (its position, for the result, included): it may hold the caller's event.
  virtual store_result<std::uint64_t> scan_taking(
      const log_filter& filter, const std::function<bool(recorded_event&)>& visit);

  // scan() for a caller that decodes on threads of its own (a rebuild: one thread reads,
  // others decode): `visit` gets each record's position and stored bytes, valid during the
  // call only, neither decoded nor checked; decode_record() turns them into the event scan()
  // would have handed over, or names what is wrong with them. Of the filter, only the
  // positions, `until` and `one_pass` apply (types, stream_prefix or since: invalid_argument).
  // Records are handed over in position order with none skipped: a gap in the log fails the
  // scan as it fails scan(). The default encodes the events scan() hands over. A store
  // overrides both this and decode_record(), or neither: the defaults pair (encoded events,
  // decoded as they are), and a store's own stored bytes may need its upcasters.
  virtual store_result<std::uint64_t> scan_records(
      const log_filter& filter,
      const std::function<bool(std::uint64_t position, std::string_view bytes)>& visit);
  // A record scan_records() handed over for `position`, decoded into `out` (its buffers
  // reused), as scan() hands it over: its checksum and position checked, upcasters applied.
  // Safe on any thread, concurrently with everything else.
  virtual store_result<void> decode_record(std::uint64_t position, std::string_view bytes,
                                           recorded_event& out) const;

  // Convenience over scan(): at most `max_count` matching events.
  store_result<std::vector<recorded_event>> read_all(const log_filter& filter,
                                                     std::size_t max_count);

  // The last committed position (0 for an empty log).
  virtual std::uint64_t head_position() const = 0;

  // Blocks until head_position() > after or the deadline passes; returns the head.
  virtual std::uint64_t wait_for_head(std::uint64_t after,
                                      std::chrono::steady_clock::time_point deadline) = 0;

  // Read-only stores: catch up with the writing process. Returns the new head.
  // A no-op returning head_position() on a writable store.
  virtual store_result<std::uint64_t> refresh() = 0;

  // Stops the writer after the appends already queued; later appends fail with
  // errc::closed. Called by the destructor too.
  virtual void close() = 0;
};

store_result<std::unique_ptr<event_store>> open_event_store(const event_store_options& options);

}  // namespace passage::eventstore
