#pragma once
// For tests only: the in-memory key store with hooks into its backend, to count the
// store's reads (does a lookup reach the backend or the preload?) and to act while
// key_store::preload() scans (a destroy() racing the scan). Not for other callers.

#include <cstddef>
#include <functional>
#include <memory>
#include <string_view>

#include "eventstore/key_store.h"

namespace passage::eventstore::testing_hooks {

struct memory_backend_hooks {
  // Before each read of one subject from the backend (a lookup the cache and the preload
  // did not answer).
  std::function<void(std::string_view subject)> on_get;
  // During preload()'s scan, after it handed `subject` over (outside the backend's lock).
  std::function<void(std::string_view subject)> after_scan_visit;
};

// As make_memory_key_store(), with `cache_entries` (0: no cache) and the hooks.
std::unique_ptr<key_store> make_memory_key_store(std::size_t cache_entries,
                                                 memory_backend_hooks hooks);

}  // namespace passage::eventstore::testing_hooks
