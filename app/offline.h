#pragma once
// A data folder opened for reading beside a running server: the event log and the key
// store as RocksDB secondaries (never written), and a codec that decrypts with them.
// Used by `passage export`, `passage usage` and `passage replay --out`.
//
//   auto data = open_offline("data");
//   if (!data) die(data.error());
//   (*data)->store->scan(filter, visit);   // decode with *(*data)->codec

#include <cstddef>
#include <memory>
#include <string>

#include "common/result.h"
#include "eventstore/event_codec.h"
#include "eventstore/event_store.h"
#include "eventstore/key_store.h"

namespace passage::app {

struct offline_data {
  std::unique_ptr<eventstore::event_store> store;
  std::unique_ptr<eventstore::key_store> keys;
  std::unique_ptr<eventstore::event_codec> codec;
};

// shared: the key store as a secondary (beside a server). exclusive: the key store's own
// lock, so opening fails while a server runs (`passage replay` of the live read models).
enum class key_access { shared, exclusive };

// The event log's block cache when opened offline (see open_offline).
inline constexpr std::size_t offline_block_cache_bytes = 16u << 20;

// The key store's cache (key_store_options::cache_entries) when opened offline. An export
// decrypts several events per learner and gains from it; a replay decrypts only each
// learner's registration, once, so it passes 0: a cache would only churn (a lookup, an
// eviction and two allocations per key).
inline const std::size_t offline_key_cache_entries = eventstore::key_store_options{}.cache_entries;

// Fails with a message naming the folder when it is not a Passage data folder.
result<std::unique_ptr<offline_data>, std::string> open_offline(
    const std::string& data_dir, key_access keys = key_access::shared,
    std::size_t key_cache_entries = offline_key_cache_entries);

}  // namespace passage::app
