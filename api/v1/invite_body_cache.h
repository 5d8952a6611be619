#pragma once
// The JSON body of GET /v1/invites/{id}, kept per invite so that repeated reads of an
// unchanged invite skip building and serializing it (most of such a request's CPU).
//
// An entry is keyed by everything the body is made of that can change: the invite
// stream's version (every event of the stream moves it, and all stored fields of the view
// come from that stream) and the fields computed from the clock and the claims count
// (status, days left, claims, remaining spots, share button). A lookup whose view differs
// in any of them misses and the caller stores the new body. Thread-safe.
//
//   auto body = cache.find(view);
//   if (!body) body = cache.store(view, to_json(view).dump());

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/uuid.h"
#include "projections/read_models.h"

namespace passage::api::v1 {

class invite_body_cache {
 public:
  // Entries kept at most; when full, the cache starts over (cheap, and a working set
  // that large is read rarely per invite anyway).
  explicit invite_body_cache(std::size_t capacity = 8192) : capacity_(capacity) {}

  std::shared_ptr<const std::string> find(const projections::invite_view& v) const {
    std::lock_guard lock(mu_);
    auto it = entries_.find(v.invite_id);
    if (it == entries_.end() || !(it->second.k == key_of(v))) return nullptr;
    return it->second.body;
  }

  std::shared_ptr<const std::string> store(const projections::invite_view& v, std::string body) {
    auto shared = std::make_shared<const std::string>(std::move(body));
    std::lock_guard lock(mu_);
    if (entries_.size() >= capacity_ && !entries_.contains(v.invite_id)) entries_.clear();
    entries_[v.invite_id] = entry{key_of(v), shared};
    return shared;
  }

 private:
  struct key {
    uuid org_id;
    std::uint64_t version = 0;
    domain::status_view status;
    std::int64_t claims_count = 0;
    std::optional<std::int64_t> remaining_spots;
    bool share_button_visible = false;
    friend bool operator==(const key&, const key&) = default;
  };
  struct entry {
    key k;
    std::shared_ptr<const std::string> body;
  };

  static key key_of(const projections::invite_view& v) {
    return {v.org_id,       v.version,         v.status,
            v.claims_count, v.remaining_spots, v.share_button_visible};
  }

  std::size_t capacity_;
  mutable std::mutex mu_;
  std::unordered_map<uuid, entry> entries_;
};

}  // namespace passage::api::v1
