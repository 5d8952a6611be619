// The checkpoint never passes a position the broker has not acknowledged,
// whatever order acknowledgements arrive in.

#include "consumers/checkpoint_tracker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

namespace passage::consumers {
namespace {

TEST(checkpoint_tracker, InOrderAcknowledgementsMoveTheCheckpointOneByOne) {
  checkpoint_tracker t(10);
  for (std::uint64_t p = 11; p <= 15; ++p) ASSERT_TRUE(t.sent(p));
  EXPECT_EQ(t.unacknowledged(), 5u);
  for (std::uint64_t p = 11; p <= 15; ++p) {
    EXPECT_TRUE(t.acknowledge(p));
    EXPECT_EQ(t.checkpoint(), p);
  }
  EXPECT_EQ(t.unacknowledged(), 0u);
  EXPECT_EQ(t.next_position(), 16u);
}

TEST(checkpoint_tracker, AnAcknowledgementBeyondAGapWaitsForTheGap) {
  checkpoint_tracker t(0);
  for (std::uint64_t p = 1; p <= 5; ++p) ASSERT_TRUE(t.sent(p));
  EXPECT_FALSE(t.acknowledge(3));
  EXPECT_FALSE(t.acknowledge(5));
  EXPECT_EQ(t.checkpoint(), 0u);
  EXPECT_EQ(t.unacknowledged(), 3u);
  EXPECT_TRUE(t.acknowledge(1));
  EXPECT_EQ(t.checkpoint(), 1u);  // 2 still missing
  EXPECT_TRUE(t.acknowledge(2));
  EXPECT_EQ(t.checkpoint(), 3u);  // 4 still missing
  EXPECT_TRUE(t.acknowledge(4));
  EXPECT_EQ(t.checkpoint(), 5u);
}

TEST(checkpoint_tracker, RepeatedUnknownAndStaleAcknowledgementsAreIgnored) {
  checkpoint_tracker t(5);
  ASSERT_TRUE(t.sent(6));
  ASSERT_TRUE(t.sent(7));
  EXPECT_FALSE(t.acknowledge(5));  // already below the checkpoint
  EXPECT_FALSE(t.acknowledge(8));  // never sent
  EXPECT_FALSE(t.acknowledge(7));
  EXPECT_FALSE(t.acknowledge(7));  // twice
  EXPECT_EQ(t.unacknowledged(), 1u);
  EXPECT_TRUE(t.acknowledge(6));
  EXPECT_EQ(t.checkpoint(), 7u);
  EXPECT_FALSE(t.acknowledge(6));
}

TEST(checkpoint_tracker, SentRefusesGapsAndRepeats) {
  checkpoint_tracker t(0);
  EXPECT_FALSE(t.sent(2));
  EXPECT_TRUE(t.sent(1));
  EXPECT_FALSE(t.sent(1));
  EXPECT_TRUE(t.sent(2));
  EXPECT_EQ(t.next_position(), 3u);
}

// Random interleavings of sends and acknowledgements against a plain model: the
// checkpoint is always the largest P with every position <= P acknowledged.
TEST(checkpoint_tracker, MatchesTheDefinitionUnderRandomAcknowledgementOrder) {
  std::mt19937_64 rng(20240611);
  for (int round = 0; round < 200; ++round) {
    const std::uint64_t start = rng() % 1000;
    checkpoint_tracker t(start);
    std::vector<std::uint64_t> pending;
    std::set<std::uint64_t> acked;
    std::uint64_t next = start + 1;
    for (int step = 0; step < 300; ++step) {
      if (pending.empty() || rng() % 3 != 0) {
        ASSERT_TRUE(t.sent(next));
        pending.push_back(next++);
      } else {
        std::swap(pending[rng() % pending.size()], pending.back());
        const auto p = pending.back();
        pending.pop_back();
        t.acknowledge(p);
        acked.insert(p);
      }
      std::uint64_t expected = start;
      while (acked.count(expected + 1)) ++expected;
      ASSERT_EQ(t.checkpoint(), expected);
      ASSERT_EQ(t.unacknowledged(), pending.size());
      for (auto p : pending) ASSERT_GT(p, t.checkpoint());
    }
  }
}

}  // namespace
}  // namespace passage::consumers
