#pragma once
// The event log's vocabulary: what callers append (new_event, stream_append with
// an expected version), what they read back (recorded_event) and the errors the
// store reports. The store treats `data` as opaque bytes (JSON in Passage).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "common/clock.h"
#include "common/result.h"
#include "common/uuid.h"

namespace passage::eventstore {

// An event as a caller hands it to append(). The store assigns position,
// stream version and recorded_at.
struct new_event {
  uuid event_id;                     // unique; appending the same id again is a no-op
  std::string type;                  // e.g. "InviteClaimed"
  std::uint32_t schema_version = 1;  // version of `data`'s shape for this type
  std::string org_id;
  std::string correlation_id;
  std::string causation_id;
  std::string actor;
  std::string data;  // opaque payload (JSON text in Passage)

  friend bool operator==(const new_event&, const new_event&) = default;
};

// An event as stored: the appended fields plus what the store assigned.
struct recorded_event {
  uuid event_id;
  std::string type;
  std::uint32_t schema_version = 1;
  std::string stream;
  std::uint64_t stream_version = 0;  // 1 for a stream's first event
  std::uint64_t position = 0;        // global, gap-free, 1 for the log's first event
  timestamp recorded_at{};           // non-decreasing in position order
  std::string org_id;
  std::string correlation_id;
  std::string causation_id;
  std::string actor;
  std::string data;

  friend bool operator==(const recorded_event&, const recorded_event&) = default;
};

// What the writer expects of a stream's current version before appending.
class expected_version {
 public:
  enum class kind : std::uint8_t { any, no_stream, stream_exists, exact };

  static expected_version any() { return {kind::any, 0}; }
  static expected_version no_stream() { return {kind::no_stream, 0}; }
  static expected_version stream_exists() { return {kind::stream_exists, 0}; }
  // `version` is the stream's last event's version; exact(0) means no stream.
  static expected_version exact(std::uint64_t version) { return {kind::exact, version}; }

  kind what() const { return kind_; }
  std::uint64_t version() const { return version_; }
  // Does a stream at `current` (0 = no stream) satisfy this expectation?
  bool admits(std::uint64_t current) const;
  std::string to_string() const;

 private:
  expected_version(kind k, std::uint64_t v) : kind_(k), version_(v) {}
  kind kind_;
  std::uint64_t version_;
};

// Events for one stream within an append.
struct stream_append {
  std::string stream;
  expected_version expected = expected_version::any();
  std::vector<new_event> events;
};

// Where one stream's events of an append landed.
struct stream_append_result {
  std::string stream;
  std::uint64_t first_version = 0;
  std::uint64_t last_version = 0;  // the stream's version after the append
  std::uint64_t first_position = 0;
  std::uint64_t last_position = 0;
};

struct append_result {
  std::vector<stream_append_result> streams;  // in the order they were given
  std::uint64_t first_position = 0;
  std::uint64_t last_position = 0;
  timestamp recorded_at{};
  // True when every event id was already stored: nothing was written and the
  // original positions are returned.
  bool already_stored = false;
};

// Error codes of the event store module (registered with std::error_code).
enum class errc {
  wrong_expected_version = 1,  // a stream's version did not match the expectation
  idempotency_conflict,        // an event id is stored with other content, or only some ids are
  invalid_argument,            // malformed append or read request
  corruption,                  // a stored record failed its checksum or could not be decoded
  unsupported_format,          // the data folder was written by a newer format version
  io_error,                    // RocksDB could not read or write
  read_only,                   // appends on a store opened read-only
  closed,                      // the store is shutting down
};

const std::error_category& error_category();
inline std::error_code make_error_code(errc e) { return {static_cast<int>(e), error_category()}; }

struct store_error {
  errc code;
  std::string message;
  std::string stream;                // wrong_expected_version: the stream
  std::uint64_t actual_version = 0;  // wrong_expected_version: its current version
  std::uint64_t position = 0;        // corruption: the damaged record's position

  std::error_code error_code() const { return make_error_code(code); }
};

template <typename T>
using store_result = result<T, store_error>;

}  // namespace passage::eventstore

template <>
struct std::is_error_code_enum<passage::eventstore::errc> : std::true_type {};
