// reorder_buffer: log order restored from partitions read in any interleaving, repeats
// dropped, and restart offsets that never skip an event not yet applied.

#include "consumers/reorder_buffer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace passage::consumers {
namespace {

received_event at(std::uint64_t position, uuid id = uuid::random()) {
  received_event r;
  r.event.position = position;
  r.event.event_id = id;
  return r;
}

std::vector<std::uint64_t> positions(const std::vector<received_event>& v) {
  std::vector<std::uint64_t> out;
  for (const auto& e : v) out.push_back(e.event.position);
  return out;
}

TEST(ReorderBuffer, HandsOutOnlyTheContiguousRunFromTheNextPosition) {
  reorder_buffer buf(0);
  EXPECT_EQ(buf.offer(1, 0, at(2)), offer_outcome::buffered);
  EXPECT_EQ(buf.offer(2, 0, at(3)), offer_outcome::buffered);
  EXPECT_TRUE(buf.take_ready(100).empty()) << "position 1 is missing";
  EXPECT_EQ(buf.offer(0, 0, at(1)), offer_outcome::buffered);
  EXPECT_EQ(buf.offer(0, 1, at(5)), offer_outcome::buffered);
  EXPECT_EQ(positions(buf.take_ready(100)), (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_EQ(buf.next_position(), 4u);
  EXPECT_EQ(buf.size(), 1u);
  EXPECT_EQ(buf.highest_seen(), 5u);
}

TEST(ReorderBuffer, RepeatsAreDroppedAndAnotherIdAtAPositionIsAConflict) {
  reorder_buffer buf(10);
  EXPECT_EQ(buf.offer(0, 0, at(9)), offer_outcome::duplicate) << "already applied";
  const auto id = uuid::random();
  EXPECT_EQ(buf.offer(0, 1, at(12, id)), offer_outcome::buffered);
  EXPECT_EQ(buf.offer(3, 7, at(12, id)), offer_outcome::duplicate) << "same id, other partition";
  EXPECT_EQ(buf.offer(3, 8, at(12)), offer_outcome::conflict);
  EXPECT_EQ(buf.offer(0, 2, at(11)), offer_outcome::buffered);
  auto run = buf.take_ready(100);
  ASSERT_EQ(positions(run), (std::vector<std::uint64_t>{11, 12}));
  EXPECT_EQ(run[1].event.event_id, id);
  EXPECT_EQ(buf.offer(0, 3, at(12, id)), offer_outcome::duplicate) << "applied since";
}

TEST(ReorderBuffer, TakeReadyRespectsItsBatchSize) {
  reorder_buffer buf(0);
  for (std::uint64_t p = 1; p <= 10; ++p) (void)buf.offer(0, std::int64_t(p), at(p));
  EXPECT_EQ(buf.take_ready(4).size(), 4u);
  EXPECT_EQ(buf.take_ready(4).size(), 4u);
  EXPECT_EQ(buf.take_ready(4).size(), 2u);
  EXPECT_EQ(buf.next_position(), 11u);
}

TEST(ReorderBuffer, ResumeOffsetsKeepEveryHeldEventAndPartitionsHoldingNameThem) {
  reorder_buffer buf(0);
  (void)buf.offer(0, 40, at(3));
  (void)buf.offer(0, 41, at(4));
  (void)buf.offer(1, 7, at(1));
  (void)buf.offer(2, 0, at(1));  // a repeat: partition 2 has nothing held
  EXPECT_EQ(buf.partitions_holding(), (std::set<int>{0, 1}));
  EXPECT_EQ(buf.resume_offsets(), (std::map<int, std::int64_t>{{0, 40}, {1, 7}, {2, 1}}));
  (void)buf.take_ready(100);  // applies 1
  EXPECT_EQ(buf.resume_offsets(), (std::map<int, std::int64_t>{{0, 40}, {1, 8}, {2, 1}}));
  (void)buf.offer(1, 8, at(2));
  EXPECT_EQ(positions(buf.take_ready(100)), (std::vector<std::uint64_t>{2, 3, 4}));
  EXPECT_EQ(buf.resume_offsets(), (std::map<int, std::int64_t>{{0, 42}, {1, 9}, {2, 1}}));
  EXPECT_TRUE(buf.partitions_holding().empty());
}

// Streams spread over partitions in log order (as the relay publishes them), read in a
// random interleaving with random repeats and restarts from resume_offsets(): the output
// is 1..N, each exactly once, in order.
TEST(ReorderBuffer, RandomInterleavingsWithRepeatsAndRestartsGiveTheLogInOrder) {
  for (unsigned seed = 1; seed <= 50; ++seed) {
    std::mt19937 rng(seed);
    constexpr int partitions = 5;
    constexpr std::uint64_t total = 400;
    std::vector<std::vector<received_event>> topic(partitions);
    for (std::uint64_t p = 1; p <= total; ++p) {
      auto e = at(p);
      auto& part = topic[rng() % partitions];
      part.push_back(e);
      if (rng() % 10 == 0) part.push_back(e);  // a resend
    }
    std::vector<std::uint64_t> applied;
    reorder_buffer buf(0);
    std::vector<std::int64_t> next(partitions, 0);
    while (applied.size() < total) {
      int p = static_cast<int>(rng() % partitions);
      if (next[p] < std::int64_t(topic[p].size())) {
        (void)buf.offer(p, next[p], topic[p][next[p]]);
        ++next[p];
      }
      for (const auto& e : buf.take_ready(7)) applied.push_back(e.event.position);
      if (rng() % 97 == 0) {  // restart: what was held is read again
        auto resume = buf.resume_offsets();
        buf = reorder_buffer(applied.size());
        for (int q = 0; q < partitions; ++q) next[q] = resume.contains(q) ? resume[q] : 0;
      }
    }
    ASSERT_EQ(applied.size(), total) << "seed " << seed;
    for (std::uint64_t i = 0; i < total; ++i) ASSERT_EQ(applied[i], i + 1) << "seed " << seed;
  }
}

}  // namespace
}  // namespace passage::consumers
