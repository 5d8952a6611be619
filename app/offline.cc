#include "app/offline.h"

#include <filesystem>
#include <fstream>

#include "app/server.h"

namespace passage::app {

result<std::unique_ptr<offline_data>, std::string> open_offline(const std::string& data_dir,
                                                                key_access access,
                                                                std::size_t key_cache_entries) {
  namespace fs = std::filesystem;
  fs::path dir(data_dir);
  std::ifstream secret_file(dir / "server.secret");
  std::string secret;
  if (!std::getline(secret_file, secret) || secret.empty()) {
    return fail((dir / "server.secret").string() + " not found: is " + data_dir +
                " a Passage data folder?");
  }
  auto out = std::make_unique<offline_data>();
  // Offline commands read the log once from end to end: a big block cache would only
  // hold blocks never read again (RocksDB fills it on every scan), growing the peak
  // memory of an export or a replay by its whole size.
  auto store = eventstore::open_event_store({.path = (dir / "events").string(),
                                             .read_only = true,
                                             .block_cache_bytes = offline_block_cache_bytes});
  if (!store) return fail(store.error().message);
  out->store = std::move(*store);
  auto keys = eventstore::open_key_store({.path = (dir / "keys").string(),
                                          .cache_entries = key_cache_entries,
                                          .read_only = access == key_access::shared});
  if (!keys) return fail(keys.error().message);
  out->keys = std::move(*keys);
  out->codec = std::make_unique<eventstore::event_codec>(*out->keys, derive_key(secret, "pepper"));
  return out;
}

}  // namespace passage::app
