#pragma once
// Per-subject data keys for crypto-shredding (SPEC §6). Personal data in events is
// encrypted with its subject's key; destroying the key makes that data unreadable
// everywhere at once while the events themselves stay immutable. Keys live in their
// own RocksDB folder, outside the event log.
//
//   auto keys = open_key_store({.path = "data/keys"});
//   auto k = (*keys)->get_or_create("learner:6f1c…");   // 32 random bytes, AES-256
//   (*keys)->destroy("learner:6f1c…");                   // gone from disk and cache

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace passage::eventstore {

using data_key = std::array<std::uint8_t, 32>;

struct key_store_error {
  std::string message;
  // get_or_create on a subject whose key was destroyed (not an I/O failure: retrying
  // will not help; the caller maps it to "forgotten").
  bool destroyed = false;
};

// Subjects are non-empty strings not starting with '\0' (reserved for the store's own
// bookkeeping). Thread-safe; owned by the application.
class key_store {
 public:
  virtual ~key_store() = default;
  // The subject's key, created (from the CSPRNG) on first use. Fails for a subject
  // whose key was destroyed: its data must stay unreadable, so no new key is made.
  virtual result<data_key, key_store_error> get_or_create(std::string_view subject) = 0;
  // The subject's key; nullopt when it never existed or was destroyed.
  virtual result<std::optional<data_key>, key_store_error> find(std::string_view subject) = 0;
  // True once destroy() ran for the subject. A read error answers false; find() and
  // get_or_create() report it.
  virtual bool is_destroyed(std::string_view subject) = 0;
  // Destroys the key for good: removed, a tombstone kept, memtables flushed and
  // files compacted so the key bytes leave the disk (WAL and SST files). Idempotent:
  // calling it again repeats the purge. Should the process die before the purge ran,
  // the next open_key_store() runs it.
  virtual result<void, key_store_error> destroy(std::string_view subject) = 0;
  // Makes every key created so far durable (a no-op unless new keys are written
  // with deferred syncing, see key_store_options::sync_new_keys).
  virtual result<void, key_store_error> sync() = 0;
  // Creates keys for subjects that will be used soon, all durable on return with one
  // synced write whatever sync_new_keys says; subjects that already have a key (or were
  // destroyed) are left as they are. For callers that draw fresh random subjects ahead
  // of use (new learners): a key made here is on disk before any event encrypted with
  // it is encoded, so appending that event needs no key fsync at all. A subject drawn
  // here and never used leaves an orphan key behind: random bytes of no one, harmless.
  virtual result<void, key_store_error> create_ahead(const std::vector<std::string>& subjects) = 0;
  // For one pass over a whole log (`passage replay`), which looks up every learner's key
  // once: reads the learners' keys ("learner:<id>") with one sequential scan of the store
  // and answers find() for them from memory until end_preload(), instead of a random read
  // of the store's files per subject (most of a long log's replay cost in keys). ~80
  // bytes of memory per key. Subjects not preloaded (other kinds, keys made later) are
  // looked up as usual, and this store's destroy() still removes a preloaded key (also one
  // destroyed while the scan ran). Returns whether keys were preloaded: never for a store
  // that follows another process's (read_only: that writer's destroy() could not reach the
  // table, and a learner forgotten during the replay would still be decrypted), nor when
  // the scan fails (then nothing is kept: lookups go to the store).
  virtual bool preload() = 0;
  // Drops (and wipes) what preload() read.
  virtual void end_preload() = 0;
};

struct key_store_options {
  std::string path;  // RocksDB folder, created if missing. Required.
  // Keys (and destroyed markers) kept in memory, least recently used evicted first;
  // 0 disables the cache. Default: 65536
  std::size_t cache_entries = 1u << 16;
  // fsync each new key before get_or_create returns. Default: true. With false, a
  // new key is durable only after the next sync(): the event store's before_commit
  // hook calls it once per group commit, so a key is always durable before the
  // first event encrypted with it, at one fsync per commit instead of per learner.
  bool sync_new_keys = true;
  // Follow a store another process writes (a RocksDB secondary instance): reads
  // only; keys created by the writer are found by catching up on a miss. For tools
  // that run beside the server. Default: false.
  bool read_only = false;
  // read_only: the follower also catches up with its writer at the first lookup after
  // each such interval, and then forgets what it cached, so that a key the server
  // destroys (a learner forgotten while `passage export` or `replay --out` runs) is not
  // used past the next catch-up; a catch-up that keeps failing fails the lookup. 0: at
  // every lookup (one at a time; lookups racing it use what they had). Default: 1 s.
  std::chrono::milliseconds follower_refresh{1000};
};

// Opens (or creates) the RocksDB key folder. It must not be the event log's folder.
result<std::unique_ptr<key_store>, key_store_error> open_key_store(const key_store_options& o);

// A key store in memory only: for tests and tools that must not touch a data folder.
std::unique_ptr<key_store> make_memory_key_store();

}  // namespace passage::eventstore
