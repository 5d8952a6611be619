#pragma once
// Idempotency-Key support for commands: the first response to a key is stored
// (in its own RocksDB folder, 24 hours by default) and a retry with the same key
// gets that response again, appending nothing. The same key with another request
// body is refused (422 idempotency_key_reused); a retry while the first request
// is still running gets 409 conflict.
//
//   auto store = idempotency_store::open({.path = "data/idempotency"});
//   router.add(post, "/v1/invites", with_idempotency(*store, "invites", create_invite));

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>

#include "api/http_types.h"
#include "common/clock.h"
#include "common/result.h"

namespace rocksdb {
class DB;
}

namespace passage::api::v1 {

struct idempotency_options {
  std::string path;                           // RocksDB folder. Required.
  std::chrono::seconds retention{24 * 3600};  // Default: 24 h
  const passage::clock* clock = nullptr;      // Default: system clock
};

struct stored_response {
  std::string fingerprint;  // of method, target and body
  unsigned status = 200;
  std::string content_type;
  std::string etag;
  std::string location;
  std::string body;
  timestamp stored_at{};
};

// Thread-safe; owned by the app.
class idempotency_store {
 public:
  static result<std::unique_ptr<idempotency_store>, std::string> open(idempotency_options o);
  ~idempotency_store();

  // Begins a request under `key`: the stored response if there is one, else
  // nullopt after marking the key in flight (false in `in_flight` when another
  // request holds it).
  std::optional<stored_response> begin(const std::string& key, bool& already_in_flight);
  // Stores the response (nullopt: none, a retry runs again) and releases the key.
  void finish(const std::string& key, const std::optional<stored_response>& r);
  const passage::clock& clock() const { return *options_.clock; }

 private:
  idempotency_store() = default;
  void purge_expired();

  idempotency_options options_;
  passage::system_clock system_clock_;
  std::unique_ptr<rocksdb::DB> db_;
  std::mutex mu_;
  std::unordered_set<std::string> in_flight_;
};

// Whose keys a request's key is among (the caller's API key id, a learner, a public
// invite code), so two callers never share keys; nullopt when the request names nobody
// it may act for (no or a wrong credential): it runs as is, nothing replayed or kept.
using idempotency_scope =
    std::function<std::optional<std::string>(const request&, const request_context&)>;

// Which settled answers are kept for retries with the same key.
enum class kept_answers {
  // Every answer but those that say the request was not acted on for reasons of the moment
  // (401, 429, 5xx): for callers that hold a credential.
  settled,
  // Only answers to a request that was acted on: 2xx, or a claim refusal the domain records
  // as ClaimRejected. For routes anyone may call: a malformed body or an unknown code stores
  // nothing, so requests that record nothing cannot fill the store either.
  acted_on,
};

// Wraps a command handler: without an Idempotency-Key header it runs as is. Answers not
// kept (see kept_answers) leave nothing behind: a retry with the same key runs again.
handler with_idempotency(idempotency_store& store, idempotency_scope scope, handler inner,
                         kept_answers kept = kept_answers::settled);

}  // namespace passage::api::v1
