#include "eventstore/head_cache.h"

#include <gtest/gtest.h>

#include <string>

namespace passage::eventstore {
namespace {

std::string learner(int i) { return "learner-" + std::to_string(i) + "-with-a-long-name"; }

TEST(HeadCache, KeepsWhatWasPutAndUpdatesIt) {
  head_cache c(4);
  EXPECT_FALSE(c.find("invite-1"));
  c.put("invite-1", 1);
  c.put("invite-1", 5);
  ASSERT_TRUE(c.find("invite-1"));
  EXPECT_EQ(*c.find("invite-1"), 5u);
  EXPECT_EQ(c.size(), 1u);
}

TEST(HeadCache, NeverHoldsMoreThanItsCapacityAndEvictsOneAtATime) {
  head_cache c(100);
  for (int i = 0; i < 1000; ++i) {
    c.put(learner(i), std::uint64_t(i));
    EXPECT_EQ(c.size(), std::size_t(std::min(i + 1, 100)));
  }
  // Full and still warm: the last streams put are there (one eviction per new stream,
  // never the whole cache at once).
  int kept = 0;
  for (int i = 900; i < 1000; ++i) {
    if (auto v = c.find(learner(i))) {
      EXPECT_EQ(*v, std::uint64_t(i));
      ++kept;
    }
  }
  EXPECT_EQ(kept, 100);
  EXPECT_FALSE(c.find(learner(0)));
}

TEST(HeadCache, StreamsLookedUpAgainOutliveStreamsSeenOnce) {
  head_cache c(64);
  for (int i = 0; i < 8; ++i) c.put("invite-" + std::to_string(i), std::uint64_t(i));
  for (int i = 0; i < 10'000; ++i) {
    // Each claim: its invite looked up (and its head moved), a new learner stream put.
    const std::string invite = "invite-" + std::to_string(i % 8);
    ASSERT_TRUE(c.find(invite)) << invite << " evicted at claim " << i;
    c.put(invite, std::uint64_t(i));
    c.put(learner(i), 1);
  }
  EXPECT_EQ(c.size(), 64u);
}

TEST(HeadCache, ACapacityOfOneStillWorks) {
  head_cache c(0);  // taken as 1
  EXPECT_EQ(c.capacity(), 1u);
  c.put("a", 1);
  c.put("b", 2);
  EXPECT_FALSE(c.find("a"));
  EXPECT_EQ(*c.find("b"), 2u);
  c.put("a", 3);
  EXPECT_FALSE(c.find("b"));
  EXPECT_EQ(*c.find("a"), 3u);
  EXPECT_EQ(c.size(), 1u);
}

}  // namespace
}  // namespace passage::eventstore
