// The RocksDB implementation of event_store. One writer thread owns position
// assignment and stream versions; callers queue appends to it and the writer
// turns everything queued into one WriteBatch (group commit). Commits are pipelined:
// the writer writes a commit to RocksDB without syncing and hands it to the sync
// thread, which fsyncs the write-ahead log for every commit written so far and only
// then publishes the head and acknowledges them, in order. So the next commit is
// prepared and written while one is being synced, and a claim waits for at most
// the sync in flight and its own, not also for the preparing of its commit.
// Readers (scan, read_stream, stream_version) stop at the published head: nothing
// is seen before it is durable, although RocksDB's memtable already holds it.

#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/perf_level.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/options_util.h>
#include <rocksdb/write_batch.h>

#include <pthread.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "common/random.h"
#include "eventstore/event_store.h"
#include "eventstore/format.h"
#include "eventstore/head_cache.h"
#include "eventstore/tail_cache.h"

namespace passage::eventstore {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kMaxStreamName = 512;
constexpr std::size_t kMaxTypeName = 256;
constexpr std::size_t kMaxEventData = 4u << 20;
// Stream heads cached by the writer (head_cache.h: CLOCK, evicting one per new stream).
constexpr std::size_t kMaxHeadCache = 1u << 20;
// The newest records kept in memory for live subscriptions (tail_cache.h): ~6,000 events
// of ~1.3 KB, seconds of a busy node's log; a subscription further behind reads RocksDB.
constexpr std::size_t kTailCacheBytes = 8u << 20;

store_error make_error(errc code, std::string message) {
  return store_error{code, std::move(message), {}, 0, 0};
}

store_error rocks_error(const rocksdb::Status& s, std::string_view what) {
  errc code = s.IsCorruption() ? errc::corruption : errc::io_error;
  return make_error(code, std::string(what) + ": " + s.ToString());
}

store_error corrupt_record(std::uint64_t position, std::string_view what) {
  store_error e =
      make_error(errc::corruption, "event log record at position " + std::to_string(position) +
                                       " is damaged: " + std::string(what));
  e.position = position;
  return e;
}

bool same_content(const recorded_event& stored, std::string_view stream, const new_event& e) {
  return stored.stream == stream && stored.type == e.type &&
         stored.schema_version == e.schema_version && stored.org_id == e.org_id &&
         stored.correlation_id == e.correlation_id && stored.causation_id == e.causation_id &&
         stored.actor == e.actor && stored.data == e.data;
}

// Remembers values seen so far and tells whether one came before: by a linear search for
// the few of a usual append (a claim names two streams and two events), where a hash set
// cost an allocation per entry on the caller's thread; by a hash set past that.
template <typename T>
class seen_before {
 public:
  bool insert(const T& v) {
    if (!many_.empty()) return !many_.insert(v).second;
    if (std::find(few_.begin(), few_.end(), v) != few_.end()) return true;
    few_.push_back(v);
    if (few_.size() > 16) {
      many_.insert(few_.begin(), few_.end());
      few_.clear();
    }
    return false;
  }

 private:
  std::vector<T> few_;
  std::unordered_set<T> many_;
};

std::optional<store_error> validate(const std::vector<stream_append>& streams) {
  if (streams.empty()) return make_error(errc::invalid_argument, "append names no stream");
  std::size_t total = 0;
  seen_before<std::string_view> names;
  seen_before<uuid> ids;
  for (const auto& s : streams) {
    if (s.stream.empty() || s.stream.size() > kMaxStreamName ||
        s.stream.find('\0') != std::string::npos) {
      return make_error(errc::invalid_argument,
                        "stream name must be 1 to 512 bytes without NUL: '" + s.stream + "'");
    }
    if (names.insert(s.stream)) {
      return make_error(errc::invalid_argument, "stream '" + s.stream + "' named twice");
    }
    for (const auto& e : s.events) {
      if (e.event_id.is_nil()) return make_error(errc::invalid_argument, "event id is nil");
      if (ids.insert(e.event_id)) {
        return make_error(errc::invalid_argument,
                          "event id " + e.event_id.to_string() + " appears twice in one append");
      }
      if (e.type.empty() || e.type.size() > kMaxTypeName) {
        return make_error(errc::invalid_argument, "event type must be 1 to 256 bytes");
      }
      if (e.data.size() > kMaxEventData) {
        return make_error(errc::invalid_argument, "event data exceeds 4 MiB");
      }
    }
    total += s.events.size();
  }
  if (total == 0) return make_error(errc::invalid_argument, "append carries no event");
  return std::nullopt;
}

// Hints memtable inserts into the stream index by stream (the key up to its version):
// a stream's next event sorts right after its previous one, so the skip list splice
// kept for the stream places it without a search from the top (a search among up to
// 64 MiB of keys, most of them sharing a long prefix with it, cost the writer thread
// ~30 % of its time). A stream's first two events (versions 1 and 2) are left out: each
// hinted stream keeps a splice (~200 bytes of the memtable) and a map entry, which streams
// written once (a learner per claim) would pay for nothing. And a claim opens its new
// learner stream with two events in one append: unhinted, version 2 goes in through the
// memtable's own splice of the insert just before it (version 1, its neighbour), without
// a search; hinted, it searched the whole skip list again to start its splice (a second
// search per claim, ~2 us of the writer's ~19). A stream appended to one event at a time
// searches for versions 2 and 3 and keeps the splice from then on.
// Never DeleteRange from a key in this domain: RocksDB before 9.x keeps one hint map for
// point keys and range deletions (facebook/rocksdb#5118), and a range deletion starting at
// a hinted key would hand later inserts a splice of the wrong skip list (an assertion in
// debug builds, a corrupt memtable in release ones). The event store deletes no ranges.
class stream_hint_transform final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "passage.StreamIndexInsertHint"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return {key.data(), key.size() - 8};
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return key.size() > 8 && format::decode_be64({key.data() + key.size() - 8, 8}) > 2;
  }
};

// Pins one consistent view for a multi-step read. Secondary instances have no
// snapshots; their view only moves on refresh(), which readers tolerate.
class snapshot_guard {
 public:
  snapshot_guard(rocksdb::DB* db, bool read_only, rocksdb::ReadOptions& ro)
      : db_(db), snap_(read_only ? nullptr : db->GetSnapshot()) {
    ro.snapshot = snap_;
  }
  ~snapshot_guard() {
    if (snap_) db_->ReleaseSnapshot(snap_);
  }
  snapshot_guard(const snapshot_guard&) = delete;
  snapshot_guard& operator=(const snapshot_guard&) = delete;

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snap_;
};

// The read setup of a scan of the log (scan() and scan_records()): its options, the
// snapshot they read, and RocksDB's per-thread perf counters off for a one-pass scan,
// restored when the scan ends.
class scan_reading {
 public:
  scan_reading(rocksdb::DB* db, bool read_only, bool one_pass)
      : options_(make_options(one_pass)),
        snap_(db, read_only, options_),
        perf_before_(rocksdb::GetPerfLevel()) {
    // RocksDB's per-thread perf counters (kEnableCount by default) cost a thread-local
    // lookup per step of the iterator: a few percent of a whole-log pass. Off meanwhile.
    if (one_pass) rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  }
  ~scan_reading() { rocksdb::SetPerfLevel(perf_before_); }
  scan_reading(const scan_reading&) = delete;
  scan_reading& operator=(const scan_reading&) = delete;

  const rocksdb::ReadOptions& options() const { return options_; }

 private:
  static rocksdb::ReadOptions make_options(bool one_pass) {
    rocksdb::ReadOptions ro;
    ro.readahead_size = 2u << 20;
    // Blocks are cached (fill_cache stays on) but for a one-pass scan: without the cache
    // every short scan (a page of /v1/events, a lookup of one position) read its blocks
    // from the file through a fresh 2 MiB readahead buffer, while a whole-log replay reads
    // each block once and only pays for filling and evicting the cache.
    ro.fill_cache = !one_pass;
    return ro;
  }

  rocksdb::ReadOptions options_;
  snapshot_guard snap_;  // after options_, which it points at the snapshot
  rocksdb::PerfLevel perf_before_;
};

class rocksdb_event_store final : public event_store {
 public:
  explicit rocksdb_event_store(const event_store_options& o) : options_(o) {
    if (!options_.clock) options_.clock = &default_clock_;
  }

  ~rocksdb_event_store() override {
    close();
    if (db_) {
      for (auto* h : raw_handles_) db_->DestroyColumnFamilyHandle(h);
    }
    db_.reset();
    if (!owned_secondary_.empty()) {
      std::error_code ec;
      fs::remove_all(owned_secondary_, ec);
    }
  }

  store_result<bool> open();

  store_result<append_result> append(std::vector<stream_append> streams) override {
    std::promise<store_result<append_result>> p;
    auto f = p.get_future();
    append_async(std::move(streams),
                 [&p](store_result<append_result> r) { p.set_value(std::move(r)); });
    return f.get();
  }

  void append_async(std::vector<stream_append> streams, append_callback done) override {
    if (options_.read_only) {
      done(make_error(errc::read_only, "the event store is open read-only"));
      return;
    }
    if (auto bad = validate(streams)) {
      done(std::move(*bad));
      return;
    }
    {
      std::lock_guard lk(queue_mu_);
      if (!closing_) {
        queue_.push_back(request{std::move(streams), std::move(done)});
        queue_cv_.notify_one();
        return;
      }
    }
    done(make_error(errc::closed, "the event store is closed"));
  }

  store_result<std::vector<recorded_event>> read_stream(std::string_view stream,
                                                        std::uint64_t from_version,
                                                        read_direction direction,
                                                        std::size_t max_count) override;
  store_result<std::uint64_t> stream_version(std::string_view stream) override;
  store_result<std::uint64_t> scan(
      const log_filter& filter, const std::function<bool(const recorded_event&)>& visit) override {
    return scan_with(filter, [&](recorded_event& e) { return visit(e); });
  }
  store_result<std::uint64_t> scan_taking(
      const log_filter& filter, const std::function<bool(recorded_event&)>& visit) override {
    return scan_with(filter, visit);
  }
  store_result<std::uint64_t> scan_records(
      const log_filter& filter,
      const std::function<bool(std::uint64_t, std::string_view)>& visit) override;
  store_result<void> decode_record(std::uint64_t position, std::string_view bytes,
                                   recorded_event& out) const override {
    store_error err;
    bool ok = false;
    decode_at(position, bytes, out, err, ok);
    if (!ok) return err;
    return {};
  }

  std::uint64_t head_position() const override { return head_.load(std::memory_order_acquire); }

  std::uint64_t wait_for_head(std::uint64_t after,
                              std::chrono::steady_clock::time_point deadline) override {
    if (options_.read_only) {
      while (head_position() <= after && std::chrono::steady_clock::now() < deadline) {
        (void)refresh();
        if (head_position() > after) break;
        std::this_thread::sleep_until(
            std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(20)));
      }
      return head_position();
    }
    std::unique_lock lk(head_mu_);
    head_cv_.wait_until(lk, deadline, [&] { return head_position() > after; });
    return head_position();
  }

  store_result<std::uint64_t> refresh() override {
    if (!options_.read_only) return head_position();
    std::lock_guard lk(refresh_mu_);
    auto s = db_->TryCatchUpWithPrimary();
    if (!s.ok()) return rocks_error(s, "catching up with the writer");
    auto last = last_record();
    if (!last) return last.error();
    head_.store(last->position, std::memory_order_release);
    return last->position;
  }

  void close() override {
    {
      std::lock_guard lk(queue_mu_);
      if (closing_) return;
      closing_ = true;
      queue_cv_.notify_all();
    }
    if (writer_.joinable()) writer_.join();  // hands the sync thread its last commit
    if (syncer_.joinable()) syncer_.join();
    // Memtables to SST files on a clean stop: the next open (`passage serve`, or a
    // secondary instance of `passage replay`/`export`, which cannot flush) then reads the
    // log from its tables instead of replaying up to max_total_wal_size of write-ahead log
    // into memtables first (a fifth of a 1M-event rebuild's CPU). A failure only costs
    // that replay: the write-ahead log still holds everything.
    // Not after a failed write or sync: the memtables may hold commits whose callers were
    // told they failed, which must not reach table files.
    if (db_ && !options_.read_only && !failure()) {
      rocksdb::FlushOptions flush;
      flush.wait = true;
      (void)db_->Flush(flush, raw_handles_);
    }
  }

 private:
  struct request {
    std::vector<stream_append> streams;
    append_callback done;
  };
  // An event id written earlier in the batch being built.
  struct pending_id {
    const new_event* event;
    std::string_view stream;
    std::uint64_t position;
    std::uint64_t stream_version;
  };
  // A commit the writer has finished with: written to RocksDB (or failed before), its
  // appends' outcomes waiting for the sync that makes them durable.
  struct written_commit {
    std::deque<request> batch;
    std::vector<store_result<append_result>> outcomes;
    std::uint64_t last_position = 0;  // 0: nothing was written
    // The records written, for the tail cache once they are durable (null: none written).
    std::shared_ptr<tail_cache::chunk> records;
  };
  // One per store, reused by every commit (writer thread only): a commit's WriteBatch grew
  // by doubling from empty, copying its records again at each step (a group commit of a few
  // dozen claims is 50-150 KiB), and its fresh buffers, maps and their nodes were allocated
  // (and the large ones page-faulted in) again for every commit. reset() empties it and
  // keeps the capacity, up to kKeptBatchBytes of WriteBatch (a larger one, from a burst of
  // big commits, is given back).
  struct batch_state {
    static constexpr std::size_t kKeptBatchBytes = 4u << 20;
    void reset() {
      if (wb.GetDataSize() > kKeptBatchBytes) {
        wb = rocksdb::WriteBatch();
      } else {
        wb.Clear();
      }
      // clear() zeroes every bucket even of an empty map (reset() runs before and after
      // each commit); maps a burst of big commits grew are made anew.
      clear_map(versions);
      clear_map(ids);
      looked_up.clear();
      looked_up_next = 0;
      new_ids.clear();
      // The tail cache's copy goes with each written commit (moved out) and is dropped
      // with a failed one: every commit starts a chunk of its own, with room for as many
      // bytes as the last commit's (so that its records are copied once).
      if (!records || !records->empty()) {
        records = std::make_shared<tail_cache::chunk>();
        records->reserve(std::min(last_records_bytes, kKeptBatchBytes));
      }
    }
    template <typename Map>
    static void clear_map(Map& m) {
      if (m.bucket_count() > kKeptBuckets) {
        m = Map();
      } else if (!m.empty()) {
        m.clear();
      }
    }
    static constexpr std::size_t kKeptBuckets = 4096;
    rocksdb::WriteBatch wb;
    // Streams written in this batch; the names are the requests' (alive until it is written).
    std::unordered_map<std::string_view, std::uint64_t> versions;
    std::unordered_map<uuid, pending_id> ids;
    // Whether each event id of the batch (in request, stream, event order) was stored
    // before the batch, looked up for all at once (see lookup_ids); prepare() reads them
    // in that order from `looked_up_next`.
    std::vector<store_result<std::optional<std::uint64_t>>> looked_up;
    std::size_t looked_up_next = 0;
    // The batch's new event ids and their positions, put in the id family in id order
    // when the batch is written (see put_new_ids).
    std::vector<std::pair<uuid, std::uint64_t>> new_ids;
    std::uint64_t next_position;
    timestamp recorded_at;
    // Scratch, reused for every event of the batch.
    std::string record, log_key, index_key;
    // A copy of every record written, for the tail cache, and the bytes of the last one
    // handed over.
    std::shared_ptr<tail_cache::chunk> records = std::make_shared<tail_cache::chunk>();
    std::size_t last_records_bytes = 0;
  };

  rocksdb::ColumnFamilyHandle* cf(int i) const { return raw_handles_[static_cast<size_t>(i)]; }
  rocksdb::ColumnFamilyHandle* log_cf() const { return cf(1); }
  rocksdb::ColumnFamilyHandle* stream_cf() const { return cf(2); }
  rocksdb::ColumnFamilyHandle* ids_cf() const { return cf(3); }
  rocksdb::ColumnFamilyHandle* time_cf() const { return cf(4); }

  void writer_loop();
  void commit(std::deque<request>& batch);
  void put_new_ids(batch_state& b);
  void syncer_loop();
  void hand_to_syncer(written_commit c);
  std::optional<store_error> failure();
  void fail_with(const store_error& e);
  // The highest position readers may see: the durable head on the writing process;
  // everything for a secondary instance (its view only moves on refresh()).
  std::uint64_t readable_head() const {
    return options_.read_only ? UINT64_MAX : head_.load(std::memory_order_acquire);
  }
  store_result<std::uint64_t> stored_version(std::string_view stream, std::uint64_t up_to);
  void lookup_ids(const std::deque<request>& batch, batch_state& b);
  store_result<append_result> prepare(const request& r, batch_state& b);
  store_result<append_result> replay_stored(const request& r, batch_state& b);
  store_result<std::uint64_t> current_version(const std::string& stream, const batch_state& b);
  store_result<std::optional<std::uint64_t>> stored_position(const uuid& id);
  store_result<recorded_event> read_at(std::uint64_t position);
  store_result<recorded_event> last_record();
  void decode_into(std::string_view key, std::string_view value, recorded_event& out,
                   store_error& err, bool& ok) const;
  // decode_into() of a record whose key was read as `position`.
  // `check_crc`: as format::decode_record's (false for the tail cache's records only).
  void decode_at(std::uint64_t position, std::string_view value, recorded_event& out,
                 store_error& err, bool& ok, bool check_crc = true) const;
  // scan() and scan_taking(): `visit` gets the store's event, which it may take.
  template <typename Visit>
  store_result<std::uint64_t> scan_with(const log_filter& filter, Visit&& visit);

  event_store_options options_;
  passage::system_clock default_clock_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> raw_handles_;
  std::string owned_secondary_;

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<request> queue_;
  bool closing_ = false;
  std::thread writer_;

  // Writer thread only.
  std::uint64_t next_position_ = 1;
  timestamp last_recorded_at_{};
  head_cache heads_{kMaxHeadCache};
  batch_state batch_;  // commit()'s, reused

  // Commits written and waiting for the sync thread, in position order.
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  std::deque<written_commit> to_sync_;
  bool writer_done_ = false;
  std::thread syncer_;

  // Set once a write or a sync failed: RocksDB stops accepting writes, so do we.
  std::mutex failed_mu_;
  std::optional<store_error> failed_;

  std::atomic<std::uint64_t> head_{0};
  // Records of the newest durable commits (added by the sync thread before it publishes
  // the head that covers them): live scans read them here rather than from RocksDB.
  tail_cache tail_{kTailCacheBytes};
  std::mutex head_mu_;
  std::condition_variable head_cv_;
  std::mutex refresh_mu_;
};

store_result<bool> rocksdb_event_store::open() {
  rocksdb::Options db_options;
  db_options.create_if_missing = !options_.read_only;
  db_options.create_missing_column_families = !options_.read_only;
  db_options.paranoid_checks = true;
  // One writer thread: concurrent memtable inserts would only add atomic operations.
  db_options.allow_concurrent_memtable_write = false;
  db_options.max_background_jobs = 2;
  // Every write goes to the WAL file at once; the sync thread's SyncWAL then makes it
  // durable. With a manual WAL flush it would sync without what is still buffered.
  db_options.manual_wal_flush = false;
  db_options.bytes_per_sync = 1u << 20;
  db_options.keep_log_file_num = 5;
  // The small column families (the default one holds only the format key) would
  // otherwise rarely flush, so old write-ahead logs stay live up to RocksDB's default
  // cap (4x every write buffer, over a GB; the 1M-event bench log kept 660 MB, all its
  // history), and a secondary instance (`passage replay`, `passage export`) replays them
  // into memtables at open. Past this total RocksDB flushes the families holding the
  // oldest WAL, which lets it go. Loose: a WAL is only switched once an older one
  // exists, so about this plus one write buffer's worth stays.
  db_options.max_total_wal_size = 128u << 20;
  if (options_.read_only) db_options.max_open_files = -1;  // required by secondary instances

  auto cache = rocksdb::NewLRUCache(options_.block_cache_bytes);
  // Table files are LZ4-compressed where this RocksDB has it. On the stored events (JSON
  // with base64 ciphertext) it packs as tight as Snappy, RocksDB's default, did (the log
  // 2.3x, the indexes within 5 %) and costs the flush and compaction threads less to
  // compress and a scan less to decompress. Still one type for every level, as with
  // Snappy: the log's and the time index's files, whose keys only grow, keep moving down
  // the levels as they are (a trivial move needs the same compression on both levels).
  // Each block records its compression, so tables written with Snappy before read as they
  // did.
  const auto supported = rocksdb::GetSupportedCompressions();
  const bool lz4 =
      std::find(supported.begin(), supported.end(), rocksdb::kLZ4Compression) != supported.end();
  // Keys of the log and the time index only ever grow: inserts hinted by a
  // shared prefix go straight to the end of the memtable instead of searching.
  // Event ids are random and only ever looked up whole: a memtable hashed by their
  // first bytes (see by_id) and bloom filters answer the lookups that miss.
  enum class shape { sequential, by_id, stream_index, other };
  auto family = [&](shape k) {
    rocksdb::BlockBasedTableOptions t;
    t.block_cache = cache;
    t.block_size = 16 * 1024;
    rocksdb::ColumnFamilyOptions c;
    c.write_buffer_size = 64u << 20;
    if (lz4) c.compression = rocksdb::kLZ4Compression;
    if (k == shape::by_id) {
      // Only ever read by whole key. The ids a command's events get are time-ordered
      // (uuid::time_ordered(), command_service): each goes in right after the one made
      // before it, so the default skip list, hinted by the id's first byte as the log's
      // keys are, places it without a search, and its flush reads the memtable in order.
      // Until session 17 the ids were random and this family's memtable was a hash of
      // linked lists keyed by the id's first two bytes (an insert in O(1) without a
      // search); its flush then sorted every id into a fresh skip list, bucket by bucket in
      // hash order, a full search each (~8 k instructions per id under Debian's
      // assertions: ~43 % of the flush thread's instructions under claims). Ids that are
      // not time-ordered (the mailer's outcome ids, derived from the mail's event id so
      // that a retry repeats them; ids written before) still go in by a search, as any
      // key of a skip list does. The two-byte prefix extractor stays for the tables'
      // filters (files written before hold prefix entries too) and the memtable's filter.
      // Gets ask the memtable's whole-key bloom filter first (most ids looked up are new)
      // and the tables' whole-key filters, which files written with the earlier 16-byte
      // extractor also hold.
      c.prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(2));
      c.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(1));
      t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
      c.memtable_whole_key_filtering = true;
      c.memtable_prefix_bloom_size_ratio = 0.1;
    }
    if (k == shape::stream_index) {
      // Whole-key filters answer "no such stream" (stream_version of a new stream)
      // without reading a block; prefix seeks ignore them. The memtable gets one too:
      // a claim's new learner stream is then found absent without a search of the
      // skip list (up to 64 MiB of random keys), which took ~1/3 of the writer thread.
      t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
      c.memtable_whole_key_filtering = true;
      c.memtable_prefix_bloom_size_ratio = 0.02;
      c.memtable_insert_with_hint_prefix_extractor = std::make_shared<stream_hint_transform>();
    }
    if (k == shape::sequential) {
      c.memtable_insert_with_hint_prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(1));
    }
    c.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
    return c;
  };
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, family(shape::other)},
      {format::kLogFamily, family(shape::sequential)},
      {format::kStreamIndexFamily, family(shape::stream_index)},
      {format::kEventIdsFamily, family(shape::by_id)},
      {format::kTimeIndexFamily, family(shape::sequential)},
  };

  rocksdb::DB* raw = nullptr;
  rocksdb::Status s;
  if (options_.read_only) {
    std::string secondary = options_.secondary_path;
    if (secondary.empty()) {
      secondary =
          (fs::temp_directory_path() / ("passage-secondary-" + secure_random_hex(8))).string();
      owned_secondary_ = secondary;
    }
    s = rocksdb::DB::OpenAsSecondary(db_options, options_.path, secondary, families, &raw_handles_,
                                     &raw);
  } else {
    std::error_code ec;
    fs::create_directories(options_.path, ec);
    s = rocksdb::DB::Open(db_options, options_.path, families, &raw_handles_, &raw);
  }
  if (!s.ok()) {
    if (s.IsInvalidArgument() && s.ToString().find("Column fam") != std::string::npos) {
      return make_error(errc::unsupported_format,
                        "'" + options_.path + "' is not a Passage event store: " + s.ToString());
    }
    return rocks_error(s, "opening the event store at '" + options_.path + "'");
  }
  db_.reset(raw);

  std::string version;
  s = db_->Get(rocksdb::ReadOptions(), cf(0), std::string(format::kFormatVersionKey), &version);
  auto last = last_record();
  if (!last && last.error().code != errc::invalid_argument) return last.error();
  bool empty_log = !last;
  if (s.IsNotFound()) {
    if (!empty_log) {
      return make_error(errc::unsupported_format,
                        "event store at '" + options_.path + "' has events but no format version");
    }
    if (!options_.read_only) {
      rocksdb::WriteOptions wo;
      wo.sync = true;
      s = db_->Put(wo, cf(0), std::string(format::kFormatVersionKey),
                   std::to_string(format::kFormatVersion));
      if (!s.ok()) return rocks_error(s, "writing the format version");
    }
  } else if (!s.ok()) {
    return rocks_error(s, "reading the format version");
  } else {
    std::uint32_t stored = 0;
    try {
      stored = static_cast<std::uint32_t>(std::stoul(version));
    } catch (const std::exception&) {
      return make_error(errc::unsupported_format,
                        "event store format version '" + version + "' is not a number");
    }
    if (stored > format::kFormatVersion) {
      return make_error(errc::unsupported_format,
                        "event store at '" + options_.path + "' was written by format version " +
                            std::to_string(stored) + "; this build of passage reads up to " +
                            std::to_string(format::kFormatVersion) + ": upgrade passage");
    }
  }

  if (!empty_log) {
    next_position_ = last->position + 1;
    last_recorded_at_ = last->recorded_at;
    head_.store(last->position);
  }
  if (!options_.read_only) {
    writer_ = std::thread([this] {
      // Named for top, perf and the benches' CPU by thread.
      pthread_setname_np(pthread_self(), "store-writer");
      writer_loop();
    });
    syncer_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "store-sync");
      syncer_loop();
    });
  }
  return true;
}

void rocksdb_event_store::decode_into(std::string_view key, std::string_view value,
                                      recorded_event& out, store_error& err, bool& ok) const {
  if (key.size() != 8) {
    err = corrupt_record(0, "log key has " + std::to_string(key.size()) + " bytes");
    ok = false;
    return;
  }
  decode_at(format::decode_be64(key), value, out, err, ok);
}

void rocksdb_event_store::decode_at(std::uint64_t position, std::string_view value,
                                    recorded_event& out, store_error& err, bool& ok,
                                    bool check_crc) const {
  auto what = format::decode_record(value, out, check_crc);
  if (!what.empty()) {
    err = corrupt_record(position, what);
    ok = false;
    return;
  }
  if (out.position != position) {
    err = corrupt_record(position, "record claims position " + std::to_string(out.position));
    ok = false;
    return;
  }
  if (options_.upcasters) options_.upcasters->upcast(out);
  ok = true;
}

store_result<recorded_event> rocksdb_event_store::last_record() {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), log_cf()));
  it->SeekToLast();
  if (!it->status().ok()) return rocks_error(it->status(), "reading the end of the log");
  if (!it->Valid()) return make_error(errc::invalid_argument, "the log is empty");
  recorded_event e;
  store_error err;
  bool ok = false;
  decode_into(it->key().ToStringView(), it->value().ToStringView(), e, err, ok);
  if (!ok) return err;
  return e;
}

store_result<recorded_event> rocksdb_event_store::read_at(std::uint64_t position) {
  std::string value;
  auto s = db_->Get(rocksdb::ReadOptions(), log_cf(), format::log_key(position), &value);
  if (s.IsNotFound()) {
    return corrupt_record(position, "an index points at it but the log has no such record");
  }
  if (!s.ok()) return rocks_error(s, "reading position " + std::to_string(position));
  recorded_event e;
  store_error err;
  bool ok = false;
  decode_into(format::log_key(position), value, e, err, ok);
  if (!ok) return err;
  return e;
}

store_result<std::optional<std::uint64_t>> rocksdb_event_store::stored_position(const uuid& id) {
  std::string value;
  auto s =
      db_->Get(rocksdb::ReadOptions(), ids_cf(), rocksdb::Slice(id.as_bytes().data(), 16), &value);
  if (s.IsNotFound()) return std::optional<std::uint64_t>{};
  if (!s.ok()) return rocks_error(s, "looking up event id " + id.to_string());
  if (value.size() != 8) {
    return corrupt_record(0, "event id index entry of " + id.to_string() + " has a bad length");
  }
  return std::optional<std::uint64_t>{format::decode_be64(value)};
}

store_result<std::uint64_t> rocksdb_event_store::current_version(const std::string& stream,
                                                                 const batch_state& b) {
  if (auto it = b.versions.find(stream); it != b.versions.end()) return it->second;
  if (auto v = heads_.find(stream)) return *v;
  auto v = stored_version(stream, UINT64_MAX);
  if (!v) return v;
  heads_.put(stream, *v);
  return *v;
}

store_result<std::uint64_t> rocksdb_event_store::stream_version(std::string_view stream) {
  return stored_version(stream, readable_head());
}

// The stream's version counting only events at positions up to `up_to` (the writer, which
// must see what it wrote and has not synced yet, passes UINT64_MAX).
store_result<std::uint64_t> rocksdb_event_store::stored_version(std::string_view stream,
                                                                std::uint64_t up_to) {
  // No snapshot: whatever is at or below the head is in the memtable or the tables
  // before this starts, and the writer (UINT64_MAX) is the only one adding to them.
  rocksdb::ReadOptions ro;
  // Versions start at 1 and the log is append-only, so a stream exists iff its version 1
  // does: for a new stream (a claim's new learner) a point lookup, answered by the
  // memtable and the bloom filters, saves creating an iterator over every file.
  {
    rocksdb::PinnableSlice first;
    auto s = db_->Get(ro, stream_cf(), format::stream_index_key(stream, 1), &first);
    if (s.IsNotFound()) return std::uint64_t{0};
    if (!s.ok()) return rocks_error(s, "reading stream '" + std::string(stream) + "'");
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, stream_cf()));
  auto prefix = format::stream_index_prefix(stream);
  it->SeekForPrev(format::stream_index_key(stream, UINT64_MAX));
  // Events past `up_to` are the stream's newest: step back over them.
  for (; it->Valid() && it->key().starts_with(prefix) && it->key().size() == prefix.size() + 8 &&
         it->value().size() == 8 && format::decode_be64(it->value().ToStringView()) > up_to;
       it->Prev()) {
  }
  if (!it->status().ok())
    return rocks_error(it->status(), "reading stream '" + std::string(stream) + "'");
  if (!it->Valid() || !it->key().starts_with(prefix) || it->key().size() != prefix.size() + 8) {
    return std::uint64_t{0};
  }
  return format::decode_be64(it->key().ToStringView().substr(prefix.size()));
}

// Builds the result for a request whose every event id is already stored
// (possibly earlier in this same batch), or the error if contents differ.
store_result<append_result> rocksdb_event_store::replay_stored(const request& r, batch_state& b) {
  append_result out;
  out.already_stored = true;
  out.first_position = UINT64_MAX;
  for (const auto& s : r.streams) {
    stream_append_result sr{s.stream, UINT64_MAX, 0, UINT64_MAX, 0};
    for (const auto& e : s.events) {
      std::uint64_t position, version;
      timestamp recorded_at;
      if (auto it = b.ids.find(e.event_id); it != b.ids.end()) {
        const auto& p = it->second;
        if (p.stream != s.stream || !(*p.event == e)) {
          return make_error(
              errc::idempotency_conflict,
              "event id " + e.event_id.to_string() + " is already stored with other content");
        }
        position = p.position;
        version = p.stream_version;
        recorded_at = b.recorded_at;
      } else {
        auto pos = stored_position(e.event_id);
        if (!pos) return pos.error();
        auto stored = read_at(**pos);
        if (!stored) return stored.error();
        if (!same_content(*stored, s.stream, e)) {
          return make_error(
              errc::idempotency_conflict,
              "event id " + e.event_id.to_string() + " is already stored with other content");
        }
        position = stored->position;
        version = stored->stream_version;
        recorded_at = stored->recorded_at;
      }
      sr.first_version = std::min(sr.first_version, version);
      sr.last_version = std::max(sr.last_version, version);
      sr.first_position = std::min(sr.first_position, position);
      sr.last_position = std::max(sr.last_position, position);
      if (position < out.first_position) out.recorded_at = recorded_at;
      out.first_position = std::min(out.first_position, position);
      out.last_position = std::max(out.last_position, position);
    }
    if (s.events.empty()) sr = {s.stream, 0, 0, 0, 0};
    out.streams.push_back(std::move(sr));
  }
  return out;
}

// Looks up every event id of the batch in one MultiGet (three per claim): it takes the
// column family's current version once and probes the memtable's bloom filter and each
// table file's filter for all ids together, where a Get per id paid each of those per id
// (~7 % of the writer thread). Ids written earlier in the batch are not in RocksDB yet:
// prepare() checks the batch's own ids first, as before.
void rocksdb_event_store::lookup_ids(const std::deque<request>& batch, batch_state& b) {
  std::vector<rocksdb::Slice> keys;
  for (const auto& r : batch) {
    for (const auto& s : r.streams) {
      for (const auto& e : s.events) keys.emplace_back(e.event_id.as_bytes().data(), 16);
    }
  }
  // The i-th id, for an error naming it (the key slices are its bytes).
  auto id_at = [&](std::size_t i) {
    uuid id;
    std::copy_n(keys[i].data(), 16, reinterpret_cast<char*>(id.bytes.data()));
    return id.to_string();
  };
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  db_->MultiGet(rocksdb::ReadOptions(), ids_cf(), keys.size(), keys.data(), values.data(),
                statuses.data());
  b.looked_up.clear();
  b.looked_up.reserve(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (statuses[i].IsNotFound()) {
      b.looked_up.emplace_back(std::optional<std::uint64_t>{});
    } else if (!statuses[i].ok()) {
      b.looked_up.emplace_back(rocks_error(statuses[i], "looking up event id " + id_at(i)));
    } else if (values[i].size() != 8) {
      b.looked_up.emplace_back(
          corrupt_record(0, "event id index entry of " + id_at(i) + " has a bad length"));
    } else {
      b.looked_up.emplace_back(
          std::optional<std::uint64_t>{format::decode_be64(values[i].ToStringView())});
    }
  }
  b.looked_up_next = 0;
}

store_result<append_result> rocksdb_event_store::prepare(const request& r, batch_state& b) {
  // 1. Idempotency: all ids stored -> return the original; some -> conflict.
  std::size_t total = 0, found = 0;
  const std::size_t looked_up = b.looked_up_next;
  for (const auto& s : r.streams) total += s.events.size();
  b.looked_up_next += total;  // this request's, whether it goes on or not
  for (std::size_t i = 0; const auto& s : r.streams) {
    for (const auto& e : s.events) {
      const auto& pos = b.looked_up[looked_up + i++];
      if (b.ids.count(e.event_id)) {
        ++found;
        continue;
      }
      if (!pos) return pos.error();
      if (*pos) ++found;
    }
  }
  if (found == total) return replay_stored(r, b);
  if (found != 0) {
    return make_error(errc::idempotency_conflict,
                      std::to_string(found) + " of the " + std::to_string(total) +
                          " event ids are already stored; an append is stored whole or not at all");
  }

  // 2. Expected versions, all checked before anything is written.
  std::vector<std::uint64_t> current(r.streams.size());
  for (std::size_t i = 0; i < r.streams.size(); ++i) {
    const auto& s = r.streams[i];
    auto v = current_version(s.stream, b);
    if (!v) return v.error();
    if (!s.expected.admits(*v)) {
      store_error e = make_error(errc::wrong_expected_version,
                                 "stream '" + s.stream + "' is at version " + std::to_string(*v) +
                                     ", expected " + s.expected.to_string());
      e.stream = s.stream;
      e.actual_version = *v;
      return e;
    }
    current[i] = *v;
  }

  // 3. Assign positions and versions; add the records to the batch.
  append_result out;
  out.first_position = b.next_position;
  out.recorded_at = b.recorded_at;
  for (std::size_t i = 0; i < r.streams.size(); ++i) {
    const auto& s = r.streams[i];
    stream_append_result sr{s.stream, 0, current[i], 0, 0};
    std::uint64_t version = current[i];
    for (const auto& e : s.events) {
      ++version;
      std::uint64_t position = b.next_position++;
      format::encode_new_record(e, s.stream, version, position, b.recorded_at, b.record);
      format::log_key_into(position, b.log_key);
      format::stream_index_key_into(s.stream, version, b.index_key);
      b.wb.Put(log_cf(), b.log_key, b.record);
      b.records->add(position, b.record);
      b.wb.Put(stream_cf(), b.index_key, b.log_key);
      b.new_ids.emplace_back(e.event_id, position);
      b.ids.emplace(e.event_id, pending_id{&e, s.stream, position, version});
      if (sr.first_version == 0) {
        sr.first_version = version;
        sr.first_position = position;
      }
      sr.last_version = version;
      sr.last_position = position;
    }
    if (!s.events.empty()) b.versions[s.stream] = version;
    out.streams.push_back(std::move(sr));
  }
  out.last_position = b.next_position - 1;
  return out;
}

std::optional<store_error> rocksdb_event_store::failure() {
  std::lock_guard lk(failed_mu_);
  return failed_;
}

void rocksdb_event_store::fail_with(const store_error& e) {
  std::lock_guard lk(failed_mu_);
  if (!failed_) failed_ = e;
}

// Adds the batch's new event ids to its write batch in id order. Ids are time-ordered
// (uuid::time_ordered()), but a batch holds the ids of many commands, made on several
// threads, and a command's events are grouped by stream: in request order they come a
// little out of order, and the id family's skip list, hinted by the last insert, would
// then search for nearly every one. Sorted, each goes in right after the one before, and
// the next batch's (made later) after this one's. The order of a write batch's puts to
// distinct keys changes nothing of what it stores; the ids are distinct (prepare()
// answers a repeated one from `ids` without writing it).
void rocksdb_event_store::put_new_ids(batch_state& b) {
  std::sort(b.new_ids.begin(), b.new_ids.end(),
            [](const auto& x, const auto& y) { return x.first < y.first; });
  for (const auto& [id, position] : b.new_ids) {
    format::log_key_into(position, b.log_key);
    b.wb.Put(ids_cf(), rocksdb::Slice(id.as_bytes().data(), 16), b.log_key);
  }
}

// Prepares and writes one group commit without syncing it, then hands it to the sync
// thread, which acknowledges it once durable. Writer thread.
void rocksdb_event_store::commit(std::deque<request>& batch) {
  written_commit c;
  c.outcomes.reserve(batch.size());
  if (auto failed = failure()) {
    for (std::size_t i = 0; i < batch.size(); ++i) c.outcomes.push_back(*failed);
    c.batch = std::move(batch);
    hand_to_syncer(std::move(c));
    return;
  }
  batch_state& b = batch_;
  b.reset();
  b.next_position = next_position_;
  b.recorded_at = std::max(last_recorded_at_, options_.clock->now());
  lookup_ids(batch, b);
  for (const auto& r : batch) c.outcomes.push_back(prepare(r, b));

  bool wrote = b.next_position != next_position_;
  std::optional<store_error> error;
  if (wrote && options_.before_commit) {
    if (auto err = options_.before_commit()) {
      error = make_error(errc::io_error, "before the commit: " + *err);
      wrote = false;
    }
  }
  if (wrote) {
    b.wb.Put(time_cf(), format::time_index_key(b.recorded_at, next_position_), rocksdb::Slice());
    put_new_ids(b);
    // Not synced here: the sync thread fsyncs the write-ahead log (SyncWAL) for this
    // commit and any written after it, while this thread prepares the next one.
    auto s = db_->Write(rocksdb::WriteOptions(), &b.wb);
    if (!s.ok()) {
      // RocksDB stops accepting writes after a failed WAL write; so do we.
      error = rocks_error(s, "writing to the event log");
      fail_with(*error);
      wrote = false;
    } else {
      c.last_position = b.next_position - 1;
      b.last_records_bytes = b.records->bytes();
      c.records = std::move(b.records);
      next_position_ = b.next_position;
      last_recorded_at_ = b.recorded_at;
      for (auto& [stream, v] : b.versions) heads_.put(stream, v);
    }
  }
  if (error) {
    for (auto& o : c.outcomes) {
      if (o) o = *error;
    }
  }
  // The maps view the requests' strings, which go to the sync thread now.
  b.reset();
  c.batch = std::move(batch);
  hand_to_syncer(std::move(c));
}

void rocksdb_event_store::hand_to_syncer(written_commit c) {
  {
    std::lock_guard lk(sync_mu_);
    to_sync_.push_back(std::move(c));
  }
  sync_cv_.notify_one();
}

// Syncs everything written so far with one fsync, then publishes the head and answers
// those commits' appends in order. A commit written while the sync runs waits for the
// next one: no append is acknowledged before the fsync that covers it, and a failed
// sync fails every commit it would have covered and every later one.
void rocksdb_event_store::syncer_loop() {
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);  // see writer_loop
  std::deque<written_commit> group;
  for (;;) {
    {
      std::unique_lock lk(sync_mu_);
      sync_cv_.wait(lk, [&] { return !to_sync_.empty() || writer_done_; });
      if (to_sync_.empty()) return;  // the writer stopped and everything is answered
      group.swap(to_sync_);
    }
    std::uint64_t last = 0;
    for (const auto& c : group) last = std::max(last, c.last_position);
    // Checked for every group, also one that wrote nothing: its answers (an id found
    // already stored, a version conflict) may rest on an earlier commit whose sync failed.
    std::optional<store_error> error = failure();
    if (last != 0) {
      if (!error && options_.before_sync) {
        if (auto err = options_.before_sync()) {
          error = make_error(errc::io_error, "syncing the event log: " + *err);
          fail_with(*error);
        }
      }
      if (!error && options_.sync) {
        // SyncWAL fsyncs every write-ahead log file written so far (RocksDB serializes
        // it with concurrent writes), so at least everything in `group`. It does not
        // flush RocksDB's own WAL buffer: that needs manual_wal_flush off (set at open).
        const auto started = std::chrono::steady_clock::now();
        auto s = db_->SyncWAL();
        if (!s.ok()) {
          error = rocks_error(s, "syncing the event log");
          fail_with(*error);
        } else if (options_.after_sync) {
          options_.after_sync(std::chrono::steady_clock::now() - started);
        }
      }
    }
    if (error) {
      for (auto& c : group) {
        for (auto& o : c.outcomes) {
          if (o) o = *error;
        }
      }
    } else if (last != 0) {
      // Durable now: readable from memory by the time readers see the head move.
      for (auto& c : group) tail_.add(std::move(c.records));
      {
        std::lock_guard lk(head_mu_);
        head_.store(last, std::memory_order_release);
      }
      head_cv_.notify_all();
    }
    for (auto& c : group) {
      for (std::size_t i = 0; i < c.batch.size(); ++i) c.batch[i].done(std::move(c.outcomes[i]));
    }
    group.clear();
  }
}

void rocksdb_event_store::writer_loop() {
  // RocksDB counts every key comparison into its thread-local perf context by default
  // (PerfLevel kEnableCount): a TLS lookup per comparison of every memtable insert and
  // lookup, several percent of this thread. Nothing here reads the counts.
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
  std::deque<request> batch;
  for (;;) {
    {
      std::unique_lock lk(queue_mu_);
      queue_cv_.wait(lk, [&] { return !queue_.empty() || closing_; });
      if (queue_.empty()) break;  // closing and drained
      std::size_t events = 0;
      while (!queue_.empty() && (batch.empty() || events < options_.max_commit_events)) {
        for (const auto& s : queue_.front().streams) events += s.events.size();
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    commit(batch);
    batch.clear();
  }
  {
    std::lock_guard lk(sync_mu_);
    writer_done_ = true;
  }
  sync_cv_.notify_one();
}

store_result<std::vector<recorded_event>> rocksdb_event_store::read_stream(
    std::string_view stream, std::uint64_t from_version, read_direction direction,
    std::size_t max_count) {
  std::vector<recorded_event> out;
  if (max_count == 0) return out;
  auto prefix = format::stream_index_prefix(stream);
  // Read before the snapshot is taken, so every event up to it is in the snapshot.
  const std::uint64_t head = readable_head();
  rocksdb::ReadOptions ro;
  snapshot_guard snap(db_.get(), options_.read_only, ro);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, stream_cf()));
  if (direction == read_direction::forward) {
    it->Seek(format::stream_index_key(stream, from_version));
  } else {
    it->SeekForPrev(format::stream_index_key(stream, from_version));
  }
  std::vector<std::string> keys;
  for (; it->Valid() && keys.size() < max_count;
       direction == read_direction::forward ? it->Next() : it->Prev()) {
    auto k = it->key();
    if (!k.starts_with(prefix) || k.size() != prefix.size() + 8) break;
    if (it->value().size() != 8) {
      return corrupt_record(0, "stream index entry of '" + std::string(stream) + "' is damaged");
    }
    // Past the durable head: a commit still being synced (the newest events of the stream).
    if (format::decode_be64(it->value().ToStringView()) > head) {
      if (direction == read_direction::forward) break;
      continue;
    }
    keys.emplace_back(it->value().ToString());
  }
  if (!it->status().ok()) return rocks_error(it->status(), "reading stream index");
  std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
  std::vector<std::string> values(keys.size());
  std::vector<rocksdb::ColumnFamilyHandle*> cfs(keys.size(), log_cf());
  auto statuses = db_->MultiGet(ro, cfs, slices, &values);
  out.resize(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    std::uint64_t position = format::decode_be64(keys[i]);
    if (statuses[i].IsNotFound()) {
      return corrupt_record(position, "the stream index points at it but the log has no record");
    }
    if (!statuses[i].ok()) return rocks_error(statuses[i], "reading the log");
    store_error err;
    bool ok = false;
    decode_into(keys[i], values[i], out[i], err, ok);
    if (!ok) return err;
  }
  return out;
}

// A scan from `start` whose last record was at `last` (0: none yet) met the record at
// `position` instead of the next one: positions are dense from 1, so records are missing
// (a damaged or tampered folder), never skipped silently.
store_error log_gap(std::uint64_t start, std::uint64_t last, std::uint64_t position) {
  const std::uint64_t missing = last != 0 ? last + 1 : start;
  if (last == 0) {
    return corrupt_record(missing, "the log has no record here: its first from position " +
                                       std::to_string(start) + " is at " +
                                       std::to_string(position));
  }
  return corrupt_record(missing, "the log skips from position " + std::to_string(last) + " to " +
                                     std::to_string(position));
}

template <typename Visit>
store_result<std::uint64_t> rocksdb_event_store::scan_with(const log_filter& filter,
                                                           Visit&& visit) {
  std::uint64_t start = std::max<std::uint64_t>(filter.from_position, 1);
  // Only what is durable; read before the snapshot is taken, so all of it is in it.
  const std::uint64_t to = std::min(filter.to_position, readable_head());
  recorded_event e;
  std::uint64_t last = 0;
  store_error err;
  const bool any_type = filter.types.empty();
  // Set once `visit` asked to stop or an event at or past `until` was read.
  bool stopped = false;
  // `stored`: read from RocksDB (checksummed), not from the tail cache, whose records are
  // the bytes the writer encoded, never stored nor read back since.
  auto deliver = [&](std::uint64_t position, std::string_view record,
                     bool stored) -> std::optional<store_error> {
    bool ok = false;
    decode_at(position, record, e, err, ok, stored);
    if (!ok) return err;
    // Decoded first: a damaged record after a gap is reported as damaged.
    if (e.position != (last != 0 ? last + 1 : start)) return log_gap(start, last, e.position);
    if (filter.until && e.recorded_at >= *filter.until) {
      stopped = true;
      return std::nullopt;
    }
    last = e.position;
    if (!any_type &&
        std::find(filter.types.begin(), filter.types.end(), e.type) == filter.types.end()) {
      return std::nullopt;
    }
    if (!filter.stream_prefix.empty() &&
        !std::string_view(e.stream).starts_with(filter.stream_prefix)) {
      return std::nullopt;
    }
    if (filter.since && e.recorded_at < *filter.since) return std::nullopt;
    if (!visit(e)) stopped = true;
    return std::nullopt;
  };

  // The newest records from memory (tail_cache.h), when they hold `start`: a live
  // subscription's scan. Not for a time-filtered scan (the time index finds its start) nor
  // a one-pass one (a whole log, far older than the tail).
  if (!filter.since && !filter.one_pass && start <= to) {
    std::vector<std::shared_ptr<const tail_cache::chunk>> chunks;
    tail_.from(start, to, chunks);
    for (const auto& c : chunks) {
      for (std::uint64_t p = std::max(start, c->first()); p <= std::min(to, c->last()); ++p) {
        if (auto failed = deliver(p, c->record(p), false)) return *failed;
        if (stopped) break;
      }
      if (stopped) break;
    }
    if (stopped || last == to) return last;
    // The rest (none, but for a cache emptied meanwhile) from RocksDB.
    if (last != 0) start = last + 1;
  }

  const scan_reading reading(db_.get(), options_.read_only, filter.one_pass);
  const rocksdb::ReadOptions& ro = reading.options();

  if (filter.since) {
    std::unique_ptr<rocksdb::Iterator> t(db_->NewIterator(ro, time_cf()));
    t->Seek(format::time_index_key(*filter.since, 0));
    if (!t->status().ok()) return rocks_error(t->status(), "reading the time index");
    if (!t->Valid()) return std::uint64_t{0};
    if (t->key().size() != 16) return corrupt_record(0, "time index entry is damaged");
    // Every event of a commit shares its recorded_at, so the first commit at or
    // after `since` holds the first matching event.
    start = std::max(start, format::time_index_position(t->key().ToStringView()));
  }

  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, log_cf()));
  for (it->Seek(format::log_key(start)); it->Valid(); it->Next()) {
    auto key = it->key().ToStringView();
    if (key.size() != 8) {
      return corrupt_record(0, "log key has " + std::to_string(key.size()) + " bytes");
    }
    const std::uint64_t position = format::decode_be64(key);
    if (position > to) break;
    if (auto failed = deliver(position, it->value().ToStringView(), true)) return *failed;
    if (stopped) break;
  }
  if (!it->status().ok()) {
    auto s = rocks_error(it->status(), "reading the log after position " + std::to_string(last));
    s.position = last + 1;
    return s;
  }
  return last;
}

store_result<std::uint64_t> rocksdb_event_store::scan_records(
    const log_filter& filter, const std::function<bool(std::uint64_t, std::string_view)>& visit) {
  if (!filter.types.empty() || !filter.stream_prefix.empty() || filter.since) {
    return make_error(errc::invalid_argument,
                      "a scan of records filters by position and `until` only");
  }
  const std::uint64_t start = std::max<std::uint64_t>(filter.from_position, 1);
  const std::uint64_t to = std::min(filter.to_position, readable_head());
  const scan_reading reading(db_.get(), options_.read_only, filter.one_pass);

  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(reading.options(), log_cf()));
  recorded_event e;  // `until` only: the record decoded here to read its time
  store_error err;
  std::uint64_t last = 0;
  for (it->Seek(format::log_key(start)); it->Valid(); it->Next()) {
    const auto key = it->key();
    if (key.size() != 8) {
      return corrupt_record(0, "log key has " + std::to_string(key.size()) + " bytes");
    }
    const std::uint64_t position = format::decode_be64(key.ToStringView());
    if (position > to) break;
    const auto value = it->value().ToStringView();
    // scan() finds a gap by the positions records claim; each is checked against its key
    // when decoded (decode_record), so the keys tell the same here. As scan() decodes the
    // record after a gap first, a damaged one is reported as damaged, as scan() does.
    if (position != (last != 0 ? last + 1 : start)) {
      bool ok = false;
      decode_at(position, value, e, err, ok);
      if (!ok) return err;
      return log_gap(start, last, position);
    }
    if (filter.until) {
      // Its time is trusted only once the record is checked, as scan() reads it.
      bool ok = false;
      decode_at(position, value, e, err, ok);
      if (!ok) return err;
      if (e.recorded_at >= *filter.until) break;
    }
    last = position;
    if (!visit(position, value)) break;
  }
  if (!it->status().ok()) {
    auto s = rocks_error(it->status(), "reading the log after position " + std::to_string(last));
    s.position = last + 1;
    return s;
  }
  return last;
}

}  // namespace

bool expected_version::admits(std::uint64_t current) const {
  switch (kind_) {
    case kind::any:
      return true;
    case kind::no_stream:
      return current == 0;
    case kind::stream_exists:
      return current > 0;
    case kind::exact:
      return current == version_;
  }
  return false;
}

std::string expected_version::to_string() const {
  switch (kind_) {
    case kind::any:
      return "any";
    case kind::no_stream:
      return "no stream";
    case kind::stream_exists:
      return "an existing stream";
    case kind::exact:
      return "version " + std::to_string(version_);
  }
  return "?";
}

const std::error_category& error_category() {
  struct category final : std::error_category {
    const char* name() const noexcept override { return "passage.eventstore"; }
    std::string message(int c) const override {
      switch (static_cast<errc>(c)) {
        case errc::wrong_expected_version:
          return "wrong expected version";
        case errc::idempotency_conflict:
          return "idempotency conflict";
        case errc::invalid_argument:
          return "invalid argument";
        case errc::corruption:
          return "corruption";
        case errc::unsupported_format:
          return "unsupported format";
        case errc::io_error:
          return "i/o error";
        case errc::read_only:
          return "read-only";
        case errc::closed:
          return "closed";
      }
      return "unknown";
    }
  };
  static const category instance;
  return instance;
}

store_result<std::uint64_t> event_store::scan_taking(
    const log_filter& filter, const std::function<bool(recorded_event&)>& visit) {
  recorded_event copy;
  return scan(filter, [&](const recorded_event& e) {
    copy = e;
    return visit(copy);
  });
}

store_result<std::uint64_t> event_store::scan_records(
    const log_filter& filter, const std::function<bool(std::uint64_t, std::string_view)>& visit) {
  if (!filter.types.empty() || !filter.stream_prefix.empty() || filter.since) {
    return store_error{
        errc::invalid_argument, "a scan of records filters by position and `until` only", {}, 0, 0};
  }
  std::string bytes;
  return scan(filter, [&](const recorded_event& e) {
    format::encode_record(e, bytes);
    return visit(e.position, bytes);
  });
}

store_result<void> event_store::decode_record(std::uint64_t position, std::string_view bytes,
                                              recorded_event& out) const {
  auto what = format::decode_record(bytes, out);
  if (what.empty() && out.position != position) {
    what = "record claims position " + std::to_string(out.position);
  }
  if (!what.empty()) return corrupt_record(position, what);
  return {};
}

store_result<std::vector<recorded_event>> event_store::read_all(const log_filter& filter,
                                                                std::size_t max_count) {
  std::vector<recorded_event> out;
  if (max_count == 0) return out;
  auto r = scan(filter, [&](const recorded_event& e) {
    out.push_back(e);
    return out.size() < max_count;
  });
  if (!r) return r.error();
  return out;
}

store_result<std::unique_ptr<event_store>> open_event_store(const event_store_options& options) {
  if (options.path.empty()) {
    return store_error{errc::invalid_argument, "event store path is empty", {}, 0, 0};
  }
  auto store = std::make_unique<rocksdb_event_store>(options);
  auto r = store->open();
  if (!r) return r.error();
  return std::unique_ptr<event_store>(std::move(store));
}

}  // namespace passage::eventstore
