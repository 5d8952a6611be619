#pragma once
// Shared helpers for the event store tests: a store in a temp folder and a
// compact way to make events.

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "common/clock.h"
#include "eventstore/event_store.h"
#include "tests/support/temp_dir.h"

namespace passage::eventstore::testing {

inline new_event make_event(std::string type = "TestHappened", std::string data = "{}") {
  new_event e;
  e.event_id = uuid::random();
  e.type = std::move(type);
  e.org_id = "org-1";
  e.correlation_id = "corr";
  e.actor = "tester";
  e.data = std::move(data);
  return e;
}

inline stream_append to(std::string stream, expected_version expected,
                        std::vector<new_event> events) {
  return stream_append{std::move(stream), expected, std::move(events)};
}

class store_test : public ::testing::Test {
 protected:
  void SetUp() override { reopen(); }

  void reopen(event_store_options o = {}) {
    store_.reset();
    o.path = dir_.sub("events");
    if (!o.clock) o.clock = &clock_;
    auto s = open_event_store(o);
    ASSERT_TRUE(s) << s.error().message;
    store_ = std::move(*s);
  }

  append_result must_append(std::vector<stream_append> streams) {
    auto r = store_->append(std::move(streams));
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    return r ? *r : append_result{};
  }

  passage::testing::temp_dir dir_;
  manual_clock clock_{from_unix_micros(1'790'000'000'000'000)};
  std::unique_ptr<event_store> store_;
};

}  // namespace passage::eventstore::testing
