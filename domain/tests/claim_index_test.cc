// claim_index: the claims of an invite found by learner id, through growth, replacement
// and comparison.
#include "domain/claim_index.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <stdexcept>

#include "domain/tests/fixtures.h"

namespace passage::domain {
namespace {

using testing::id;

claim_record record(const uuid& learner, std::uint64_t n) {
  claim_record r;
  r.claim_id_ = id(1'000'000 + n);
  r.learner_id_ = learner;
  r.anonymous_ = n % 2 == 0;
  r.claimed_at_ = timestamp(std::chrono::microseconds(n));
  r.restrictions_.tracks_.push_back(invite_track{"t" + std::to_string(n), n % 3 == 0});
  if (n % 5 == 0) r.access_expires_at_ = timestamp(std::chrono::microseconds(n + 7));
  return r;
}

TEST(ClaimIndex, EmptyFindsNothing) {
  claim_index c;
  EXPECT_TRUE(c.empty());
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.find(id(1)), nullptr);
  EXPECT_FALSE(c.contains(id(1)));
  EXPECT_THROW((void)c.at(id(1)), std::out_of_range);
}

TEST(ClaimIndex, FindsEveryLearnerThroughGrowthLikeAMap) {
  // Ids numbered alike (they differ in a few bits) and random ones, checked against
  // std::map after every put across many growths of the table.
  std::mt19937_64 rng(7);
  claim_index c;
  std::map<uuid, claim_record> expected;
  for (std::uint64_t n = 0; n < 5000; ++n) {
    uuid learner = id(n);
    if (n % 2 == 1) {
      for (auto& b : learner.bytes) b = static_cast<std::uint8_t>(rng());
    }
    c.put(record(learner, n));
    expected[learner] = record(learner, n);
    ASSERT_EQ(c.size(), expected.size());
    if (n % 97 == 0 || n < 40) {
      for (const auto& [k, v] : expected) {
        const claim_record* found = c.find(k);
        ASSERT_NE(found, nullptr) << n;
        EXPECT_EQ(*found, v);
      }
    }
  }
  for (const auto& [k, v] : expected) EXPECT_EQ(c.at(k), v);
  EXPECT_FALSE(c.contains(id(999'999)));
}

TEST(ClaimIndex, PutOfAKnownLearnerReplacesTheirClaim) {
  claim_index c;
  for (std::uint64_t n = 0; n < 100; ++n) c.put(record(id(n), n));
  const claim_record* other = c.find(id(3));
  c.put(record(id(42), 4242));
  EXPECT_EQ(c.size(), 100u);
  EXPECT_EQ(c.at(id(42)), record(id(42), 4242));
  // Another learner's claim stays where it was.
  EXPECT_EQ(other, c.find(id(3)));
  EXPECT_EQ(*other, record(id(3), 3));
}

TEST(ClaimIndex, EqualWithTheSameClaimsInAnyOrder) {
  claim_index a, b;
  for (std::uint64_t n = 0; n < 300; ++n) a.put(record(id(n), n));
  for (std::uint64_t n = 300; n-- > 0;) b.put(record(id(n), n));
  EXPECT_EQ(a, b);
  claim_index copy = a;
  EXPECT_EQ(copy, a);

  b.put(record(id(17), 9999));  // same learners, one claim differs
  EXPECT_NE(a, b);
  claim_index shorter;
  for (std::uint64_t n = 0; n < 299; ++n) shorter.put(record(id(n), n));
  EXPECT_NE(a, shorter);
  claim_index other_learner = shorter;
  other_learner.put(record(id(5000), 299));  // as many claims, one learner differs
  EXPECT_NE(a, other_learner);
}

TEST(ClaimIndex, CopiesAreIndependentAndMovesKeepTheClaims) {
  claim_index a;
  for (std::uint64_t n = 0; n < 600; ++n) a.put(record(id(n), n));  // three blocks
  claim_index copy = a;
  copy.put(record(id(5), 55));
  copy.put(record(id(7000), 7000));
  EXPECT_EQ(a.at(id(5)), record(id(5), 5));
  EXPECT_FALSE(a.contains(id(7000)));
  EXPECT_EQ(copy.size(), 601u);

  claim_index assigned;
  assigned.put(record(id(9), 9));
  assigned = a;
  EXPECT_EQ(assigned, a);
  EXPECT_FALSE(assigned.contains(id(7000)));

  claim_index moved = std::move(copy);
  EXPECT_EQ(moved.size(), 601u);
  EXPECT_EQ(moved.at(id(5)), record(id(5), 55));
  EXPECT_EQ(moved.at(id(599)), record(id(599), 599));
  moved.put(record(id(7001), 7001));
  EXPECT_TRUE(moved.contains(id(7001)));

  // What was moved from is empty and takes claims again (a failed evolve() leaves one).
  EXPECT_TRUE(copy.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_FALSE(copy.contains(id(5)));
  EXPECT_EQ(copy, claim_index{});
  for (std::uint64_t n = 0; n < 300; ++n) copy.put(record(id(n), n));
  EXPECT_EQ(copy.size(), 300u);
  EXPECT_EQ(copy.at(id(299)), record(id(299), 299));

  claim_index assigned_from;
  assigned_from.put(record(id(1), 1));
  moved = std::move(assigned_from);
  EXPECT_EQ(moved.size(), 1u);
  EXPECT_TRUE(assigned_from.empty());  // NOLINT(bugprone-use-after-move)
  assigned_from.put(record(id(2), 2));
  EXPECT_EQ(assigned_from.size(), 1u);
}

}  // namespace
}  // namespace passage::domain
