#pragma once
// An event store for tests that forwards every required call to a real one: the base of
// the stores that fail or damage some of its answers (derive, override those). It leaves
// the calls with defaults (scan_taking, scan_records, decode_record) to event_store's
// defaults, which a test of those defaults relies on; a store that forwards them
// overrides them itself.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string_view>
#include <utility>
#include <vector>

#include "eventstore/event_store.h"

namespace passage::testing {

class forwarding_store : public eventstore::event_store {
 public:
  explicit forwarding_store(eventstore::event_store& inner) : inner_(inner) {}

  eventstore::store_result<eventstore::append_result> append(
      std::vector<eventstore::stream_append> streams) override {
    return inner_.append(std::move(streams));
  }
  void append_async(std::vector<eventstore::stream_append> streams,
                    eventstore::append_callback done) override {
    inner_.append_async(std::move(streams), std::move(done));
  }
  eventstore::store_result<std::vector<eventstore::recorded_event>> read_stream(
      std::string_view stream, std::uint64_t from_version, eventstore::read_direction direction,
      std::size_t max_count) override {
    return inner_.read_stream(stream, from_version, direction, max_count);
  }
  eventstore::store_result<std::uint64_t> stream_version(std::string_view stream) override {
    return inner_.stream_version(stream);
  }
  eventstore::store_result<std::uint64_t> scan(
      const eventstore::log_filter& filter,
      const std::function<bool(const eventstore::recorded_event&)>& visit) override {
    return inner_.scan(filter, visit);
  }
  std::uint64_t head_position() const override { return inner_.head_position(); }
  std::uint64_t wait_for_head(std::uint64_t after,
                              std::chrono::steady_clock::time_point deadline) override {
    return inner_.wait_for_head(after, deadline);
  }
  eventstore::store_result<std::uint64_t> refresh() override { return inner_.refresh(); }
  void close() override { inner_.close(); }

 protected:
  eventstore::event_store& inner_;
};

}  // namespace passage::testing
