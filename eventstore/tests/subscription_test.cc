// Catch-up subscriptions: backlog then live, no gap and no duplicate at the
// switch, filters, stopping, and independence from slow subscribers.

#include "eventstore/subscription.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <mutex>
#include <thread>

#include "eventstore/tests/store_fixture.h"

namespace passage::eventstore::testing {
namespace {

using namespace std::chrono_literals;

// Collects what a subscription delivers; thread-safe.
struct collector {
  std::mutex mu;
  std::vector<std::uint64_t> positions;
  std::vector<std::string> types;

  bool add(std::span<const recorded_event> batch) {
    std::lock_guard lk(mu);
    for (const auto& e : batch) {
      positions.push_back(e.position);
      types.push_back(e.type);
    }
    return true;
  }
  std::size_t size() {
    std::lock_guard lk(mu);
    return positions.size();
  }
  bool wait_for(std::size_t n, std::chrono::milliseconds timeout = 20s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (size() < n) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(1ms);
    }
    return true;
  }
};

TEST_F(store_test, SubscriptionSwitchesFromCatchUpToLiveWithoutGapOrDuplicate) {
  constexpr int kBefore = 3000, kWriters = 4, kPerWriter = 1500;
  for (int i = 0; i < kBefore; i += 100) {
    std::vector<new_event> events;
    for (int j = 0; j < 100; ++j) events.push_back(make_event());
    must_append({to("before-" + std::to_string(i), expected_version::any(), std::move(events))});
  }
  collector got;
  std::atomic<bool> go{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      while (!go) std::this_thread::yield();
      for (int i = 0; i < kPerWriter; ++i) {
        auto r = store_->append(
            {to("live-" + std::to_string(w), expected_version::any(), {make_event()})});
        ASSERT_TRUE(r);
      }
    });
  }
  // Writers start together with the subscription, so the switch from catch-up
  // to live happens while appends are landing.
  go = true;
  subscription sub(*store_, {.filter = {.from_position = 1}, .max_batch = 256},
                   [&](auto batch) { return got.add(batch); });
  for (auto& t : writers) t.join();
  const std::size_t total = kBefore + kWriters * kPerWriter;
  ASSERT_TRUE(got.wait_for(total)) << "delivered " << got.size() << " of " << total;
  std::this_thread::sleep_for(100ms);  // anything extra would show up now
  sub.stop();
  ASSERT_EQ(got.positions.size(), total);
  for (std::size_t i = 0; i < total; ++i) ASSERT_EQ(got.positions[i], i + 1) << "at index " << i;
  EXPECT_TRUE(sub.is_live());
  EXPECT_EQ(sub.next_position(), total + 1);
}

// A batch reuses the slots of earlier ones: every event arrives with its own fields, in
// batches of every size (full, then shorter than the one before), a big event included.
TEST_F(store_test, EachBatchCarriesExactlyItsOwnEvents) {
  std::mutex mu;
  std::vector<recorded_event> seen;
  std::vector<std::size_t> sizes;
  subscription sub(*store_, {.max_batch = 3}, [&](std::span<const recorded_event> batch) {
    std::lock_guard lk(mu);
    sizes.push_back(batch.size());
    seen.insert(seen.end(), batch.begin(), batch.end());
    return true;
  });
  auto wait_for = [&](std::size_t n) {
    for (int i = 0; i < 20000; ++i) {
      {
        std::lock_guard lk(mu);
        if (seen.size() >= n) return true;
      }
      std::this_thread::sleep_for(1ms);
    }
    return false;
  };
  std::vector<new_event> events;
  for (int i = 1; i <= 5; ++i) {
    events.push_back(make_event("Type" + std::to_string(i), std::string(i * 100, 'a' + i)));
  }
  events[1].data = std::string(200u << 10, 'x');  // released after its batch
  must_append({to("long-stream-name-" + std::string(40, 's'), expected_version::any(), events)});
  ASSERT_TRUE(wait_for(5));
  must_append({to("s", expected_version::any(), {make_event("Short", "1")})});
  ASSERT_TRUE(wait_for(6));
  sub.stop();
  ASSERT_EQ(seen.size(), 6u);
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(seen[i].position, i + 1);
    EXPECT_EQ(seen[i].stream_version, i + 1);
    EXPECT_EQ(seen[i].type, events[i].type);
    EXPECT_EQ(seen[i].data, events[i].data);
    EXPECT_EQ(seen[i].event_id, events[i].event_id);
  }
  EXPECT_EQ(seen[5].position, 6u);
  EXPECT_EQ(seen[5].stream, "s");
  EXPECT_EQ(seen[5].type, "Short");
  EXPECT_EQ(seen[5].data, "1");
  for (auto n : sizes) EXPECT_LE(n, 3u);
}

TEST_F(store_test, SubscriptionStartsAtAnyPositionAndAppliesFilters) {
  for (int i = 0; i < 50; ++i) {
    must_append({to("invite-" + std::to_string(i % 5), expected_version::any(),
                    {make_event(i % 2 ? "InviteClaimed" : "ClaimRejected")})});
  }
  collector got;
  subscription sub(
      *store_,
      {.filter = {.from_position = 21, .types = {"InviteClaimed"}, .stream_prefix = "invite-3"},
       .max_batch = 2},
      [&](auto batch) { return got.add(batch); });
  // Positions 21..50 in invite-3 (i % 5 == 3, position i+1) with odd i: i = 23, 33, 43.
  ASSERT_TRUE(got.wait_for(3));
  must_append({to("invite-3", expected_version::any(), {make_event("InviteClaimed")}),
               to("invite-4", expected_version::any(), {make_event("InviteClaimed")})});
  ASSERT_TRUE(got.wait_for(4));
  std::this_thread::sleep_for(100ms);
  sub.stop();
  EXPECT_EQ(got.positions, (std::vector<std::uint64_t>{24, 34, 44, 51}));
  EXPECT_EQ(sub.next_position(), 53u);
}

TEST_F(store_test, SlowSubscriberDoesNotStallAppends) {
  std::atomic<bool> release{false};
  std::atomic<int> calls{0};
  subscription slow(*store_, {}, [&](auto) {
    ++calls;
    while (!release) std::this_thread::sleep_for(1ms);
    return true;
  });
  must_append({to("s", expected_version::any(), {make_event()})});
  while (calls == 0) std::this_thread::sleep_for(1ms);
  // The subscriber is now stuck in its handler; appends must still complete.
  for (int i = 0; i < 200; ++i) must_append({to("s", expected_version::any(), {make_event()})});
  EXPECT_EQ(store_->head_position(), 201u);
  release = true;
  slow.stop();
}

TEST_F(store_test, HandlerReturningFalseEndsTheSubscription) {
  for (int i = 0; i < 10; ++i) must_append({to("s", expected_version::any(), {make_event()})});
  collector got;
  subscription sub(*store_, {.max_batch = 4}, [&](auto batch) {
    got.add(batch);
    return false;
  });
  while (sub.is_running()) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(got.size(), 4u);
}

TEST_F(store_test, ReadOnlySubscriptionFollowsAnotherWriter) {
  auto ro = open_event_store({.path = dir_.sub("events"), .read_only = true});
  ASSERT_TRUE(ro) << ro.error().message;
  collector got;
  subscription sub(**ro, {}, [&](auto batch) { return got.add(batch); });
  for (int i = 0; i < 5; ++i) must_append({to("s", expected_version::any(), {make_event()})});
  ASSERT_TRUE(got.wait_for(5));
  sub.stop();
  EXPECT_EQ(got.positions, (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
}

// A background subscription handles at nice 19 while its creator keeps its priority; a
// normal one at the creator's. Neither changes the scheduling policy (no SCHED_IDLE: its
// threads take locks the request path takes). Both still deliver everything.
TEST_F(store_test, BackgroundSubscriptionRunsAtTheLowestPriority) {
  for (int i = 0; i < 5; ++i) must_append({to("s", expected_version::any(), {make_event()})});
  const int creator = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()));
  const int creator_policy = ::sched_getscheduler(0);
  struct priority {
    int nice = -100;
    int policy = -1;
  };
  auto priority_seen = [&](bool background) {
    collector got;
    std::atomic<int> nice{-100}, policy{-1};
    subscription sub(*store_, {.background = background}, [&](auto batch) {
      nice = ::getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()));
      policy = ::sched_getscheduler(0);
      return got.add(batch);
    });
    EXPECT_TRUE(got.wait_for(5));
    sub.stop();
    EXPECT_EQ(got.positions, (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
    return priority{nice.load(), policy.load()};
  };
  const auto normal = priority_seen(false);
  EXPECT_EQ(normal.nice, creator);
  EXPECT_EQ(normal.policy, creator_policy);
  const auto background = priority_seen(true);
  EXPECT_EQ(background.nice, 19);
  EXPECT_EQ(background.policy, creator_policy);
  EXPECT_EQ(::getpriority(PRIO_PROCESS, static_cast<id_t>(::gettid())), creator);
  EXPECT_EQ(::sched_getscheduler(0), creator_policy);
}

}  // namespace
}  // namespace passage::eventstore::testing
