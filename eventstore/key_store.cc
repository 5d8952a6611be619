#include "eventstore/key_store.h"

#include "eventstore/key_store_testing.h"

#include <openssl/crypto.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <atomic>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <list>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "common/random.h"
#include "common/uuid.h"
#include "common/uuid_map.h"

namespace passage::eventstore {

namespace {

// Stored value of a destroyed subject. Any value that is not 32 bytes long would do;
// readable text helps whoever inspects the folder with ldb.
constexpr std::string_view tombstone = "destroyed";
// Present while a destroy has written its tombstone but not yet purged the old key
// bytes from the files; open_key_store() finishes the purge. Subjects never start
// with '\0', so this cannot collide with one.
constexpr std::string_view purge_pending_key{"\0purge-pending", 14};
// Shards of the cache, each with its own lock: a synced write for a new key only
// holds up the subjects of one shard.
constexpr std::size_t shard_count = 16;

key_store_error io_error(std::string what, const rocksdb::Status& s) {
  return {what + ": " + s.ToString()};
}

bool valid_subject(std::string_view subject) { return !subject.empty() && subject.front() != '\0'; }

void wipe(data_key& k) { OPENSSL_cleanse(k.data(), k.size()); }

// Where keys live durably. Calls for one subject are serialised by the caller.
class key_backend {
 public:
  virtual ~key_backend() = default;
  // The stored value; nullopt when the subject was never written.
  virtual result<std::optional<std::string>, key_store_error> get(std::string_view subject) = 0;
  // Durable on return (or, for new keys with deferred syncing, on the next sync()).
  virtual result<void, key_store_error> put(std::string_view subject, std::string_view value,
                                            bool mark_purge_pending) = 0;
  // Writes new subjects' values with one synced write: durable on return.
  virtual result<void, key_store_error> put_synced(
      const std::vector<std::pair<std::string, std::string_view>>& values) = 0;
  // Makes every value written so far durable.
  virtual result<void, key_store_error> sync() = 0;
  // Makes values overwritten so far leave every file of the store.
  virtual result<void, key_store_error> purge(std::string_view subject) = 0;
  // Calls `visit` with every stored subject starting with `prefix` and its value, in one
  // pass (key_store::preload); false when that would cost more than it saves or failed.
  virtual bool scan(
      std::string_view prefix,
      const std::function<void(std::string_view subject, std::string_view value)>& visit) = 0;
  // A follower of another process's store reads what that writer wrote since it last
  // looked (destroys included); false when it could not. Nothing to do (true) for a store
  // this process writes.
  virtual bool catch_up() { return true; }
};

class memory_backend final : public key_backend {
 public:
  explicit memory_backend(testing_hooks::memory_backend_hooks hooks = {})
      : hooks_(std::move(hooks)) {}

  result<std::optional<std::string>, key_store_error> get(std::string_view subject) override {
    if (hooks_.on_get) hooks_.on_get(subject);
    std::lock_guard lock(mu_);
    auto it = values_.find(std::string(subject));
    if (it == values_.end()) return std::optional<std::string>{};
    return std::optional<std::string>{it->second};
  }
  result<void, key_store_error> put(std::string_view subject, std::string_view value,
                                    bool) override {
    std::lock_guard lock(mu_);
    auto& v = values_[std::string(subject)];
    OPENSSL_cleanse(v.data(), v.size());
    v = value;
    return {};
  }
  result<void, key_store_error> put_synced(
      const std::vector<std::pair<std::string, std::string_view>>& values) override {
    for (const auto& [subject, value] : values) {
      if (auto r = put(subject, value, false); !r) return r;
    }
    return {};
  }
  result<void, key_store_error> purge(std::string_view) override { return {}; }
  result<void, key_store_error> sync() override { return {}; }
  bool scan(std::string_view prefix,
            const std::function<void(std::string_view, std::string_view)>& visit) override {
    // A copy taken at once and visited without the lock, as a RocksDB iterator reads a
    // snapshot while writes go on (a test's hook destroys a key midway).
    std::vector<std::pair<std::string, std::string>> found;
    {
      std::lock_guard lock(mu_);
      for (const auto& [subject, value] : values_) {
        if (subject.starts_with(prefix)) found.emplace_back(subject, value);
      }
    }
    for (auto& [subject, value] : found) {
      visit(subject, value);
      OPENSSL_cleanse(value.data(), value.size());
      if (hooks_.after_scan_visit) hooks_.after_scan_visit(subject);
    }
    return true;
  }

 private:
  testing_hooks::memory_backend_hooks hooks_;
  std::mutex mu_;
  std::unordered_map<std::string, std::string> values_;
};

class rocksdb_backend final : public key_backend {
 public:
  static result<std::unique_ptr<rocksdb_backend>, key_store_error> open(const std::string& path,
                                                                        bool read_only = false) {
    if (read_only) return open_secondary(path);
    std::error_code ec;
    std::filesystem::create_directories(path, ec);
    if (ec) return key_store_error{"cannot create " + path + ": " + ec.message()};

    rocksdb::Options options;
    options.create_if_missing = true;
    options.paranoid_checks = true;
    // Keys are random bytes: compression gains nothing, and uncompressed files make
    // "the key bytes are gone" checkable by scanning the folder.
    options.compression = rocksdb::kNoCompression;
    options.bottommost_compression = rocksdb::kNoCompression;
    // Obsolete WAL files are deleted at once, never archived (an archived WAL would
    // keep a destroyed key on disk), and never recycled (a recycled file keeps old
    // records until they are overwritten).
    options.WAL_ttl_seconds = 0;
    options.WAL_size_limit_MB = 0;
    options.recycle_log_file_num = 0;
    options.keep_log_file_num = 3;
    options.max_background_jobs = 2;
    // Most lookups miss: create_ahead() checks that each fresh random subject has no key
    // yet (one per new learner). Bloom filters answer those without searching the
    // memtable's skip list or reading a block of each table file.
    rocksdb::BlockBasedTableOptions table;
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
    options.memtable_whole_key_filtering = true;
    options.memtable_prefix_bloom_size_ratio = 0.02;
    // Subjects of learners registered before ids were time-ordered are random
    // ("learner:<uuid>"), and so are other subjects' ids: in a skip list memtable each
    // insert searched among all of them (~80 % of the thread making keys ahead, ~4 us per
    // claim). Time-ordered learner ids (uuid::time_ordered) share their first 12 bytes for
    // ~50 days, so new learners now fill one bucket in key order (RocksDB's skip list
    // inserts a key after the last one without a search; a lookup is a skip-list search
    // in that bucket, logarithmic at the height below). Hashed by their first 12 bytes ("learner:"
    // and four hex digits of the id), a bucket holds subjects that are neighbours in key order: an
    // insert searches a small skip list, and the flush, which sorts the memtable by
    // inserting bucket after bucket into one skip list, finds each bucket's subjects in
    // a row (a search per 12-byte prefix, not per subject). Keys are read whole (get,
    // purge's flush and compaction) but for the replay's preload, whose scan seeks in total
    // order (scan()); the filters above stay whole-key ones. A capped extractor takes shorter keys
    // whole.
    options.prefix_extractor.reset(rocksdb::NewCappedPrefixTransform(12));
    // Each bucket's skip list gets RocksDB's full height (12 levels of branching 4, not the
    // default 4): with the default a bucket past a few hundred subjects is searched almost
    // linearly, and ids that share their first hex digits (the rebuild benchmark's numbered
    // learners: one bucket for all) made a 1M-event folder's first open replay its WAL in
    // ~20 s of CPU instead of ~1 s. The cost: each bucket's head node at full height, ~8 MiB
    // of a write buffer once every bucket is in use.
    options.memtable_factory.reset(rocksdb::NewHashSkipListRepFactory(1u << 16, 12, 4));
    options.allow_concurrent_memtable_write = false;  // hash memtables take one writer

    rocksdb::DB* raw = nullptr;
    auto s = rocksdb::DB::Open(options, path, &raw);
    if (!s.ok()) return io_error("cannot open key store " + path, s);
    auto backend = std::unique_ptr<rocksdb_backend>(new rocksdb_backend(raw));

    // A destroy that did not get to purge before the process ended: purge everything.
    auto pending = backend->get(purge_pending_key);
    if (!pending) return pending.error();
    if (*pending) {
      if (auto r = backend->purge({}); !r) return r.error();
    }
    return backend;
  }

  // A secondary instance that follows a store another process writes (tools such
  // as `passage export` run beside the server); it never writes.
  static result<std::unique_ptr<rocksdb_backend>, key_store_error> open_secondary(
      const std::string& path) {
    if (!std::filesystem::exists(path)) return key_store_error{"no key store at " + path};
    auto scratch =
        std::filesystem::temp_directory_path() / ("passage-keys-secondary-" + secure_random_hex(8));
    rocksdb::Options options;
    options.max_open_files = -1;  // required by secondary instances
    // A secondary never flushes: the keys the writer has not flushed yet (all of them
    // below its 64 MiB write buffer, ~650k subjects) stay in this instance's memtable,
    // replayed from the WAL at open. A one-pass replay (`passage replay`, no cache)
    // looks up every learner's key once; in a skip list each lookup searched among
    // all of them (a quarter of a decoder thread at 200k keys). A hash table memtable
    // keyed by the whole subject finds it in O(1). The instance reads by whole key but for
    // the replay's preload, whose scan() walks this memtable in total order (declined while
    // it holds many keys), and the table files are read as the writer wrote them (this
    // instance sets no table filter policy, so the extractor changes nothing there). The
    // hash link list needs RocksDB >= 7.6 (a reader racing an insert could miss a key
    // before; a miss here is retried after a catch-up anyway).
    options.prefix_extractor.reset(rocksdb::NewNoopTransform());
    options.memtable_factory.reset(rocksdb::NewHashLinkListRepFactory(1u << 19));
    options.allow_concurrent_memtable_write = false;  // hash memtables take one writer
    // Past 64 MiB most keys are in table files and every lookup of one first misses
    // in the memtable: a bloom filter over the whole subjects answers that without
    // walking a bucket.
    options.memtable_prefix_bloom_size_ratio = 0.02;
    rocksdb::DB* raw = nullptr;
    auto s = rocksdb::DB::OpenAsSecondary(options, path, scratch.string(), &raw);
    if (!s.ok()) return io_error("cannot open key store " + path + " read-only", s);
    auto backend = std::unique_ptr<rocksdb_backend>(new rocksdb_backend(raw));
    backend->read_only_ = true;
    backend->scratch_ = scratch.string();
    return backend;
  }

  ~rocksdb_backend() override {
    db_.reset();
    if (!scratch_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(scratch_, ec);
    }
  }

  result<std::optional<std::string>, key_store_error> get(std::string_view subject) override {
    std::string value;
    auto s =
        db_->Get(rocksdb::ReadOptions(), rocksdb::Slice(subject.data(), subject.size()), &value);
    if (s.IsNotFound() && read_only_) {
      // The writer may have created it since we last looked.
      std::lock_guard lock(purge_mu_);
      if (db_->TryCatchUpWithPrimary().ok()) {
        s = db_->Get(rocksdb::ReadOptions(), rocksdb::Slice(subject.data(), subject.size()),
                     &value);
      }
    }
    if (s.IsNotFound()) return std::optional<std::string>{};
    if (!s.ok()) return io_error("key store read failed", s);
    return std::optional<std::string>{std::move(value)};
  }

  bool catch_up() override {
    if (!read_only_) return true;
    std::lock_guard lock(purge_mu_);
    return db_->TryCatchUpWithPrimary().ok();
  }

  result<void, key_store_error> put(std::string_view subject, std::string_view value,
                                    bool mark_purge_pending) override {
    if (read_only_) return key_store_error{"the key store is open read-only"};
    rocksdb::WriteBatch batch;
    batch.Put(rocksdb::Slice(subject.data(), subject.size()),
              rocksdb::Slice(value.data(), value.size()));
    if (mark_purge_pending) {
      batch.Put(rocksdb::Slice(purge_pending_key.data(), purge_pending_key.size()), "");
    }
    rocksdb::WriteOptions wo;
    // Destroying is always synced; new keys may wait for the next sync().
    wo.sync = mark_purge_pending || sync_new_keys_;
    auto s = db_->Write(wo, &batch);
    if (!s.ok()) return io_error("key store write failed", s);
    if (!wo.sync) unsynced_.store(true, std::memory_order_release);
    return {};
  }

  result<void, key_store_error> put_synced(
      const std::vector<std::pair<std::string, std::string_view>>& values) override {
    if (read_only_) return key_store_error{"the key store is open read-only"};
    rocksdb::WriteBatch batch;
    for (const auto& [subject, value] : values) {
      batch.Put(rocksdb::Slice(subject.data(), subject.size()),
                rocksdb::Slice(value.data(), value.size()));
    }
    rocksdb::WriteOptions wo;
    wo.sync = true;
    auto s = db_->Write(wo, &batch);
    if (!s.ok()) return io_error("key store write failed", s);
    return {};
  }

  result<void, key_store_error> sync() override {
    // A put that lands after the exchange sets the flag again for the next sync.
    if (!unsynced_.exchange(false, std::memory_order_acq_rel)) return {};
    auto s = db_->FlushWAL(true);
    if (!s.ok()) {
      unsynced_.store(true);
      return io_error("key store sync failed", s);
    }
    return {};
  }

  void set_sync_new_keys(bool on) { sync_new_keys_ = on; }

  bool scan(std::string_view prefix,
            const std::function<void(std::string_view, std::string_view)>& visit) override {
    // Never on a secondary: key_store::preload declines there (a snapshot would miss the
    // writer's destroys), and walking its hash memtable in order would need a sorted copy.
    if (read_only_) return false;
    // The writer's memtable is hashed by 12-byte prefix (open()): walking it in order
    // would first copy all of it into a sorted list (HashSkipListRep's total-order
    // iterator). Flushed, its keys are read from a table file in order like the others,
    // and the flush's own sort takes each bucket in a row (and lets the WAL go). A
    // preload runs once, at the start of a rebuild. A failed flush declines.
    rocksdb::FlushOptions fo;
    fo.wait = true;
    fo.allow_write_stall = true;
    if (!db_->Flush(fo).ok()) return false;
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;  // read once: would only evict the blocks lookups use
    ro.readahead_size = 2u << 20;
    // The memtable is hashed (by 12-byte prefix, see open()): without this an iterator
    // would only walk the sought key's bucket.
    ro.total_order_seek = true;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
    const rocksdb::Slice p(prefix.data(), prefix.size());
    for (it->Seek(p); it->Valid() && it->key().starts_with(p); it->Next()) {
      visit({it->key().data(), it->key().size()}, {it->value().data(), it->value().size()});
    }
    return it->status().ok();
  }

  // `subject` empty: the whole key range (recovery after a crash mid-destroy).
  result<void, key_store_error> purge(std::string_view subject) override {
    std::lock_guard lock(purge_mu_);
    // The memtable (and so the WAL) may still hold the old key: flush it into an SST,
    // which makes the WAL obsolete.
    auto s = db_->FlushWAL(true);
    if (!s.ok()) return io_error("key store WAL flush failed", s);
    rocksdb::FlushOptions fo;
    fo.wait = true;
    fo.allow_write_stall = true;
    s = db_->Flush(fo);
    if (!s.ok()) return io_error("key store flush failed", s);

    // Rewrites every file holding a version of the subject down to the last level; the
    // tombstone shadows the old value and no snapshot keeps it, so it is dropped.
    rocksdb::CompactRangeOptions co;
    co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    co.allow_write_stall = true;
    rocksdb::Slice key(subject.data(), subject.size());
    s = subject.empty() ? db_->CompactRange(co, nullptr, nullptr)
                        : db_->CompactRange(co, &key, &key);
    if (!s.ok()) return io_error("key store compaction failed", s);

    // Compaction inputs and the old WAL are normally deleted by the background job,
    // possibly just after CompactRange returns; re-enabling file deletions runs a
    // full obsolete-file scan and deletes synchronously, so the bytes are gone now.
    s = db_->DisableFileDeletions();
    if (!s.ok()) return io_error("key store file deletion toggle failed", s);
    s = db_->EnableFileDeletions(/*force=*/true);
    if (!s.ok()) return io_error("key store file deletion failed", s);

    s = db_->Delete(rocksdb::WriteOptions(),
                    rocksdb::Slice(purge_pending_key.data(), purge_pending_key.size()));
    if (!s.ok()) return io_error("key store write failed", s);
    return {};
  }

 private:
  explicit rocksdb_backend(rocksdb::DB* db) : db_(db) {}

  std::unique_ptr<rocksdb::DB> db_;
  std::mutex purge_mu_;  // one flush/compaction/deletion sequence at a time
  bool sync_new_keys_ = true;
  std::atomic<bool> unsynced_{false};
  bool read_only_ = false;
  std::string scratch_;
};

// What the cache knows of a subject: its key, or that it was destroyed. Subjects whose
// key never existed are not cached (they may be created by the next call).
struct cache_entry {
  std::string subject;
  std::optional<data_key> key;  // nullopt: destroyed
};

class cached_key_store final : public key_store {
 public:
  cached_key_store(std::unique_ptr<key_backend> backend, std::size_t cache_entries,
                   bool read_only = false,
                   std::chrono::milliseconds follower_refresh = std::chrono::seconds(1))
      : backend_(std::move(backend)),
        per_shard_(cache_entries == 0 ? 0 : std::max<std::size_t>(1, cache_entries / shard_count)),
        read_only_(read_only),
        refresh_every_(follower_refresh) {}

  ~cached_key_store() override {
    end_preload();
    for (auto& sh : shards_) {
      for (auto& e : sh.lru) {
        if (e.key) wipe(*e.key);
      }
    }
  }

  result<data_key, key_store_error> get_or_create(std::string_view subject) override {
    if (!valid_subject(subject)) return key_store_error{"invalid key subject"};
    auto& sh = shard_of(subject);
    std::lock_guard lock(sh.mu);
    auto known = lookup(sh, subject);
    if (!known) return known.error();
    if (known->state == key_state::present) return known->key;
    if (known->state == key_state::destroyed) {
      return key_store_error{"the key of " + std::string(subject) + " was destroyed", true};
    }
    data_key k;
    secure_random_bytes(k);
    auto r = backend_->put(subject, as_view(k), false);
    if (!r) {
      wipe(k);
      return r.error();
    }
    remember(sh, subject, k);
    return k;
  }

  result<std::optional<data_key>, key_store_error> find(std::string_view subject) override {
    if (!valid_subject(subject)) return key_store_error{"invalid key subject"};
    if (read_only_ && !refresh_when_due()) return follower_behind();
    if (preloading_.load(std::memory_order_acquire)) {
      if (auto id = preloaded_id(subject)) {
        std::shared_lock lock(preload_mu_);
        if (auto it = preloaded_.find(*id); it != preloaded_.end() && !it->second.gone) {
          return std::optional<data_key>{it->second.key};
        }
      }
    }
    auto& sh = shard_of(subject);
    std::lock_guard lock(sh.mu);
    auto known = lookup(sh, subject);
    if (!known) return known.error();
    if (known->state == key_state::present) return std::optional<data_key>{known->key};
    return std::optional<data_key>{};
  }

  bool is_destroyed(std::string_view subject) override {
    if (!valid_subject(subject)) return false;
    if (read_only_ && !refresh_when_due()) return false;
    auto& sh = shard_of(subject);
    std::lock_guard lock(sh.mu);
    auto known = lookup(sh, subject);
    return known && known->state == key_state::destroyed;
  }

  result<void, key_store_error> destroy(std::string_view subject) override {
    if (!valid_subject(subject)) return key_store_error{"invalid key subject"};
    {
      auto& sh = shard_of(subject);
      std::lock_guard lock(sh.mu);
      if (auto r = backend_->put(subject, tombstone, true); !r) return r.error();
      remember(sh, subject, std::nullopt);
      if (auto id = preloaded_id(subject)) {
        std::unique_lock preload_lock(preload_mu_);
        destroys_.fetch_add(1, std::memory_order_acq_rel);
        if (auto it = preloaded_.find(*id); it != preloaded_.end()) {
          wipe(it->second.key);
          it->second.gone = true;
        }
      }
    }
    // Slow (flush and compaction), so outside the shard lock: the tombstone is already
    // durable and cached, so nobody can read or recreate the key meanwhile.
    return backend_->purge(subject);
  }

  result<void, key_store_error> sync() override { return backend_->sync(); }

  result<void, key_store_error> create_ahead(const std::vector<std::string>& subjects) override {
    std::vector<std::pair<std::string, data_key>> made;
    made.reserve(subjects.size());
    auto wipe_made = [&] {
      for (auto& m : made) wipe(m.second);
    };
    for (const auto& subject : subjects) {
      if (!valid_subject(subject)) {
        wipe_made();
        return key_store_error{"invalid key subject"};
      }
      auto& sh = shard_of(subject);
      std::lock_guard lock(sh.mu);
      auto known = lookup(sh, subject);
      if (!known) {
        wipe_made();
        return known.error();
      }
      // Never overwrite: a key in use stays, and a tombstone must not come back to life.
      if (known->state != key_state::absent) continue;
      made.emplace_back(subject, data_key{});
      secure_random_bytes(made.back().second);
    }
    if (made.empty()) return {};
    // The synced write runs without any shard lock: the subjects are the caller's alone
    // until this returns (see key_store::create_ahead), so nobody else can create them
    // meanwhile, and readers of other subjects are not held up by the fsync.
    std::vector<std::pair<std::string, std::string_view>> values;
    values.reserve(made.size());
    for (const auto& [subject, k] : made) values.emplace_back(subject, as_view(k));
    auto r = backend_->put_synced(values);
    if (r) {
      for (const auto& [subject, k] : made) {
        auto& sh = shard_of(subject);
        std::lock_guard lock(sh.mu);
        remember(sh, subject, k);
      }
    }
    wipe_made();
    return r;
  }

  bool preload() override {
    end_preload();
    // A follower's table would be a snapshot for the whole replay: the writer (the
    // server) may destroy a learner's key meanwhile, in its own process, so nothing here
    // would mark the preloaded key gone (SPEC §6: from then on every replay shows the
    // learner forgotten). Lookups go to the follower's store, which catches up with the
    // writer on a miss.
    if (read_only_) return false;
    uuid_map<preloaded_key> table;
    auto drop = [&] {
      for (auto& [id, k] : table) wipe(k.key);
      return false;
    };
    // A destroy() while the scan runs may have come after it read that key: then the
    // table is not used (destroy() marks only a published table's keys).
    const std::uint64_t destroys_before = destroys_.load(std::memory_order_acquire);
    bool corrupt = false, scanned = false;
    try {
      scanned =
          backend_->scan(preload_prefix, [&](std::string_view subject, std::string_view value) {
            const auto id = preloaded_id(subject);
            if (!id) return;  // another spelling of subject: looked up as usual
            if (value.size() != data_key{}.size()) {
              if (value != tombstone) corrupt = true;  // lookups report it
              return;                                  // destroyed: lookups find the tombstone
            }
            auto& k = table[*id];
            std::copy(value.begin(), value.end(), reinterpret_cast<char*>(k.key.data()));
          });
    } catch (const std::bad_alloc&) {  // no memory for the table: lookups as without it
      return drop();
    }
    std::unique_lock lock(preload_mu_);
    if (!scanned || corrupt || destroys_.load(std::memory_order_acquire) != destroys_before) {
      return drop();
    }
    preloaded_ = std::move(table);
    preloading_.store(true, std::memory_order_release);
    return true;
  }

  void end_preload() override {
    std::unique_lock lock(preload_mu_);
    preloading_.store(false, std::memory_order_release);
    for (auto& [id, k] : preloaded_) wipe(k.key);
    preloaded_.clear();
  }

 private:
  // What preload() keeps: learners' keys, by the learner id of their subject.
  static constexpr std::string_view preload_prefix = "learner:";
  struct preloaded_key {
    data_key key{};
    bool gone = false;  // destroyed since the preload (and wiped)
  };
  // The learner id of a "learner:<id>" subject in the canonical spelling (the one
  // learner_subject() writes), the only ones preloaded.
  static std::optional<uuid> preloaded_id(std::string_view subject) {
    if (subject.size() != preload_prefix.size() + 36 || !subject.starts_with(preload_prefix)) {
      return std::nullopt;
    }
    const auto text = subject.substr(preload_prefix.size());
    // "learner:<ID in capitals>" is another subject, which parse() would read as this id.
    if (std::any_of(text.begin(), text.end(), [](char c) { return c >= 'A' && c <= 'F'; })) {
      return std::nullopt;
    }
    return uuid::parse(text);
  }

  struct shard {
    std::mutex mu;
    std::list<cache_entry> lru;  // most recently used first
    // Views into the subjects of `lru`'s nodes, which never move.
    std::unordered_map<std::string_view, std::list<cache_entry>::iterator> index;
  };

  enum class key_state { absent, present, destroyed };
  struct known_key {
    key_state state = key_state::absent;
    data_key key{};
  };

  static std::string_view as_view(const data_key& k) {
    return {reinterpret_cast<const char*>(k.data()), k.size()};
  }

  shard& shard_of(std::string_view subject) {
    return shards_[std::hash<std::string_view>{}(subject) % shard_count];
  }

  // From the cache, else from the backend (and then cached). Caller holds sh.mu.
  result<known_key, key_store_error> lookup(shard& sh, std::string_view subject) {
    if (auto it = sh.index.find(subject); it != sh.index.end()) {
      sh.lru.splice(sh.lru.begin(), sh.lru, it->second);
      const auto& e = *it->second;
      if (!e.key) return known_key{key_state::destroyed, {}};
      return known_key{key_state::present, *e.key};
    }
    auto stored = backend_->get(subject);
    if (!stored) return stored.error();
    if (!*stored) return known_key{};
    std::string& value = **stored;
    known_key k;
    if (value.size() == k.key.size()) {
      k.state = key_state::present;
      std::copy(value.begin(), value.end(), reinterpret_cast<char*>(k.key.data()));
      OPENSSL_cleanse(value.data(), value.size());
      remember(sh, subject, k.key);
    } else if (value == tombstone) {
      k.state = key_state::destroyed;
      remember(sh, subject, std::nullopt);
    } else {
      return key_store_error{"corrupt key record for " + std::string(subject)};
    }
    return k;
  }

  // Caches what is known of `subject`, replacing (and wiping) what was there.
  void remember(shard& sh, std::string_view subject, std::optional<data_key> key) {
    if (auto it = sh.index.find(subject); it != sh.index.end()) {
      auto& e = *it->second;
      if (e.key) wipe(*e.key);
      e.key = key;
      sh.lru.splice(sh.lru.begin(), sh.lru, it->second);
      return;
    }
    if (per_shard_ == 0) return;
    if (sh.index.size() >= per_shard_) {
      auto& last = sh.lru.back();
      if (last.key) wipe(*last.key);
      sh.index.erase(last.subject);
      sh.lru.pop_back();
    }
    sh.lru.push_front(cache_entry{std::string(subject), key});
    sh.index.emplace(sh.lru.front().subject, sh.lru.begin());
  }

  // A follower: catches up with its writer once refresh_every_ has passed since it last
  // did, and drops every cached key and destroyed marker, which may be out of date (a key
  // the writer destroyed since). One caller does it; the others go on meanwhile with what
  // they had (so with an interval of 0, a lookup racing a refresh may still use the cache
  // being dropped). A catch-up that fails (the writer deleting the files it was reading)
  // is tried again a few times; if it keeps failing, this lookup fails and the next one
  // tries again: a follower that cannot see the writer's destroys answers no key.
  bool refresh_when_due() {
    using clock = std::chrono::steady_clock;
    const auto now = clock::now().time_since_epoch().count();
    auto due = next_refresh_.load(std::memory_order_relaxed);
    if (now < due) return true;
    const auto every = std::chrono::duration_cast<clock::duration>(
        std::min(refresh_every_, std::chrono::milliseconds(std::chrono::hours(24 * 365))));
    if (!next_refresh_.compare_exchange_strong(due, now + every.count())) return true;
    bool caught_up = false;
    for (int attempt = 0; attempt < 3 && !caught_up; ++attempt) {
      if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      caught_up = backend_->catch_up();
    }
    for (auto& sh : shards_) {
      std::lock_guard lock(sh.mu);
      for (auto& e : sh.lru) {
        if (e.key) wipe(*e.key);
      }
      sh.index.clear();
      sh.lru.clear();
    }
    if (!caught_up) next_refresh_.store(0, std::memory_order_relaxed);
    return caught_up;
  }
  static key_store_error follower_behind() {
    return key_store_error{"the read-only key store could not catch up with its writer"};
  }

  std::unique_ptr<key_backend> backend_;
  std::size_t per_shard_;
  bool read_only_;  // follows another process's store (key_store_options::read_only)
  std::chrono::milliseconds refresh_every_;    // read_only: key_store_options::follower_refresh
  std::atomic<std::int64_t> next_refresh_{0};  // steady_clock ticks; 0: at the next lookup
  std::array<shard, shard_count> shards_;
  // preload(): read by find() under a shared lock (decoding threads at once); destroy()
  // and end_preload() take it alone. preloading_ lets find() skip the lock otherwise.
  std::shared_mutex preload_mu_;
  uuid_map<preloaded_key> preloaded_;
  std::atomic<bool> preloading_{false};
  std::atomic<std::uint64_t> destroys_{0};  // of learners' keys, ever (preload's check)
};

}  // namespace

result<std::unique_ptr<key_store>, key_store_error> open_key_store(const key_store_options& o) {
  if (o.path.empty()) return key_store_error{"key store path is required"};
  auto backend = rocksdb_backend::open(o.path, o.read_only);
  if (!backend) return backend.error();
  (*backend)->set_sync_new_keys(o.sync_new_keys);
  return std::unique_ptr<key_store>(std::make_unique<cached_key_store>(
      std::move(*backend), o.cache_entries, o.read_only, o.follower_refresh));
}

std::unique_ptr<key_store> make_memory_key_store() {
  return std::make_unique<cached_key_store>(std::make_unique<memory_backend>(), 1u << 16);
}

namespace testing_hooks {

std::unique_ptr<key_store> make_memory_key_store(std::size_t cache_entries,
                                                 memory_backend_hooks hooks) {
  return std::make_unique<cached_key_store>(std::make_unique<memory_backend>(std::move(hooks)),
                                            cache_entries);
}

}  // namespace testing_hooks

}  // namespace passage::eventstore
