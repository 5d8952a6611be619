#include "eventstore/tail_cache.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace passage::eventstore {
namespace {

using chunk_ptr = std::shared_ptr<const tail_cache::chunk>;

// Records `first` to `last`, each "record-<position>" padded to `size` bytes.
chunk_ptr records(std::uint64_t first, std::uint64_t last, std::size_t size = 16) {
  auto c = std::make_shared<tail_cache::chunk>();
  for (auto p = first; p <= last; ++p) {
    std::string r = "record-" + std::to_string(p);
    r.resize(std::max(size, r.size()), '.');
    c->add(p, r);
  }
  return c;
}

// The same in a chunk reserved for `bytes` first (as the store's writer does).
chunk_ptr reserved(std::uint64_t first, std::uint64_t last, std::size_t bytes) {
  auto c = std::make_shared<tail_cache::chunk>();
  c->reserve(bytes);
  for (auto p = first; p <= last; ++p) {
    std::string r = "record-" + std::to_string(p);
    r.resize(std::max<std::size_t>(16, r.size()), '.');
    c->add(p, r);
  }
  return c;
}

std::vector<std::uint64_t> firsts(const std::vector<chunk_ptr>& chunks) {
  std::vector<std::uint64_t> out;
  for (const auto& c : chunks) out.push_back(c->first());
  return out;
}

TEST(TailCacheChunk, HandsEachRecordBackByItsPosition) {
  auto c = std::make_shared<tail_cache::chunk>();
  EXPECT_TRUE(c->empty());
  c->add(41, "a");
  c->add(42, "");
  c->add(43, "ccc");
  EXPECT_EQ(c->first(), 41u);
  EXPECT_EQ(c->last(), 43u);
  EXPECT_EQ(c->record(41), "a");
  EXPECT_EQ(c->record(42), "");
  EXPECT_EQ(c->record(43), "ccc");
  EXPECT_EQ(c->bytes(), 4u);
  EXPECT_GE(c->footprint(), sizeof(tail_cache::chunk) + 4);
  auto big = std::make_shared<tail_cache::chunk>();
  big->reserve(10000);
  big->add(1, "a");
  EXPECT_EQ(big->bytes(), 1u);
  EXPECT_GE(big->footprint(), 10000u);  // what it holds, not what it uses
}

TEST(TailCache, FindsTheChunksFromThePositionAskedUpToTheLastAsked) {
  tail_cache t(1u << 20);
  t.add(records(1, 3));
  t.add(records(4, 4));
  t.add(records(5, 9));
  std::vector<chunk_ptr> got;
  t.from(1, 9, got);
  EXPECT_EQ(firsts(got), (std::vector<std::uint64_t>{1, 4, 5}));
  t.from(3, 4, got);
  EXPECT_EQ(firsts(got), (std::vector<std::uint64_t>{1, 4}));
  t.from(6, 100, got);  // past the newest held: what is held
  EXPECT_EQ(firsts(got), (std::vector<std::uint64_t>{5}));
  EXPECT_EQ(got[0]->record(6).substr(0, 8), "record-6");
}

TEST(TailCache, HoldsNothingForAPositionOutsideIt) {
  tail_cache t(1u << 20);
  std::vector<chunk_ptr> got;
  t.from(1, 5, got);
  EXPECT_TRUE(got.empty());
  t.add(records(10, 12));
  t.from(9, 12, got);
  EXPECT_TRUE(got.empty());
  t.from(13, 20, got);
  EXPECT_TRUE(got.empty());
  got.push_back(records(1, 1));
  t.from(9, 12, got);  // cleared first
  EXPECT_TRUE(got.empty());
}

TEST(TailCache, LetsTheOldestChunksGoPastItsBytesAndKeepsNoChunkLargerThanItAll) {
  const std::size_t each = reserved(1, 10, 1000)->footprint();
  const std::size_t overhead = each - 1000;  // the chunk itself and its record ends
  tail_cache t(5 * each + each / 2);         // five such chunks
  for (std::uint64_t p = 1; p <= 100; p += 10) t.add(reserved(p, p + 9, 1000));
  std::vector<chunk_ptr> got;
  t.from(1, 100, got);
  EXPECT_TRUE(got.empty());  // let go
  t.from(51, 100, got);
  EXPECT_EQ(firsts(got), (std::vector<std::uint64_t>{51, 61, 71, 81, 91}));
  t.from(41, 100, got);
  EXPECT_TRUE(got.empty());
  t.add(reserved(101, 109, 5 * each - overhead));  // as much as five: the older ones make way
  t.from(101, 109, got);
  EXPECT_EQ(firsts(got), (std::vector<std::uint64_t>{101}));
  t.from(91, 109, got);
  EXPECT_TRUE(got.empty());
  t.from(101, 109, got);
  const auto reader = got;                         // a reader's chunks outlive their eviction
  t.add(reserved(110, 200, 6 * each - overhead));  // alone over the limit: not kept; nothing is
  t.from(101, 200, got);
  EXPECT_TRUE(got.empty());
  t.from(110, 200, got);
  EXPECT_TRUE(got.empty());
  ASSERT_EQ(reader.size(), 1u);
  EXPECT_EQ(reader[0]->record(105), "record-105" + std::string(6, '.'));
  t.add(records(201, 202));  // then starts again from the next chunk
  t.from(201, 202, got);
  EXPECT_EQ(firsts(got), (std::vector<std::uint64_t>{201}));
}

TEST(TailCache, CountsTheMemoryItsChunksHoldNotOnlyTheirRecords) {
  // Two chunks of one 16-byte record each, reserved for a 3,000-byte commit: their records
  // would fit 4 KiB many times over, their buffers do not fit it twice.
  tail_cache t(4096);
  t.add(reserved(1, 1, 3000));
  t.add(reserved(2, 2, 3000));
  std::vector<chunk_ptr> got;
  t.from(1, 2, got);
  EXPECT_TRUE(got.empty());
  t.from(2, 2, got);
  EXPECT_EQ(firsts(got), (std::vector<std::uint64_t>{2}));
}

TEST(TailCache, AChunkThatDoesNotFollowTheLastStartsAgainFromIt) {
  tail_cache t(1u << 20);
  t.add(records(1, 5));
  t.add(records(8, 9));  // 6 and 7 never added
  std::vector<chunk_ptr> got;
  t.from(1, 9, got);
  EXPECT_TRUE(got.empty());
  t.from(8, 9, got);
  EXPECT_EQ(firsts(got), (std::vector<std::uint64_t>{8}));
  t.clear();
  t.from(8, 9, got);
  EXPECT_TRUE(got.empty());
}

TEST(TailCache, IgnoresAnEmptyChunk) {
  tail_cache t(1u << 20);
  t.add(records(1, 2));
  t.add(std::make_shared<tail_cache::chunk>());
  t.add(nullptr);
  t.add(records(3, 3));
  std::vector<chunk_ptr> got;
  t.from(1, 3, got);
  EXPECT_EQ(firsts(got), (std::vector<std::uint64_t>{1, 3}));
}

}  // namespace
}  // namespace passage::eventstore
