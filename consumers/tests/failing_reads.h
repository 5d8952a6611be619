#pragma once
// An event store for tests that delegates to a real one and fails its reads (or appends)
// while told to: for consumers that must keep their place when the log fails them.

#include <atomic>
#include <optional>
#include <string>

#include "eventstore/event_store.h"
#include "tests/support/forwarding_store.h"

namespace passage::consumers::testing {

// Delegates to a real store; reads and appends fail while told to. `fail_scans` and
// `fail_appends` may be switched while another thread uses the store; `fail_streams` only
// while none reads.
class failing_reads final : public passage::testing::forwarding_store {
 public:
  explicit failing_reads(eventstore::event_store& inner) : forwarding_store(inner) {}

  std::optional<std::string> fail_streams;  // reads of streams starting with this fail
  std::atomic<bool> fail_scans{false};
  std::atomic<bool> fail_appends{false};
  std::atomic<int> appends_failed{0};  // appends refused so far (append() only)

  eventstore::store_result<eventstore::append_result> append(
      std::vector<eventstore::stream_append> streams) override {
    if (fail_appends) {
      ++appends_failed;
      return injected();
    }
    return inner_.append(std::move(streams));
  }
  eventstore::store_result<std::vector<eventstore::recorded_event>> read_stream(
      std::string_view stream, std::uint64_t from_version, eventstore::read_direction direction,
      std::size_t max_count) override {
    if (fail_streams && stream.starts_with(*fail_streams)) return injected();
    return inner_.read_stream(stream, from_version, direction, max_count);
  }
  eventstore::store_result<std::uint64_t> scan(
      const eventstore::log_filter& filter,
      const std::function<bool(const eventstore::recorded_event&)>& visit) override {
    if (fail_scans) return injected();
    return inner_.scan(filter, visit);
  }

 private:
  static eventstore::store_error injected() {
    return {eventstore::errc::io_error, "injected failure", {}, 0, 0};
  }
};

}  // namespace passage::consumers::testing
