// The flat uuid map of the read models' big tables: answers as std::unordered_map would
// through growth and probe collisions, keeps entries in place (references survive
// inserts), iterates in insertion order, and constructs and destroys each value once.

#include "common/uuid_map.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "tests/support/test_values.h"

namespace passage {
namespace {

// Ids that differ only in their last bytes (as sequential ids would): they share most of
// their bits, so only the hash's mixing spreads them.
using testing::sequential_uuid;

uuid random_id(std::mt19937_64& rng) {
  uuid u;
  for (auto& b : u.bytes) b = static_cast<std::uint8_t>(rng());
  return u;
}

// 2^32 slots is the most a table holds (32-bit slot indices, 0 for free; the home slot a
// shift of 32 - log2(slots)): growing past it throws instead of wrapping. A table that big
// is not allocated here, so the growth step itself is checked, and that growth uses it.
TEST(uuid_map_test, GrowthStopsAt2To32SlotsWithLengthError) {
  using map_type = uuid_map<int>;
  EXPECT_EQ(map_type::grown_table_size(0), 64u);
  EXPECT_EQ(map_type::grown_table_size(64), 128u);
  EXPECT_EQ(map_type::grown_table_size(std::size_t{1} << 31), std::size_t{1} << 32);
  EXPECT_EQ(map_type::max_table_size, std::size_t{1} << 32);
  EXPECT_THROW((void)map_type::grown_table_size(std::size_t{1} << 32), std::length_error);
  EXPECT_THROW((void)map_type::grown_table_size(std::size_t{1} << 33), std::length_error);
  map_type map;
  std::size_t expected = 0;
  for (std::uint64_t n = 0; n < 1000; ++n) {
    const bool grows = (map.size() + 1) * 4 > map.table_size() * 3;
    if (grows) expected = map_type::grown_table_size(expected);
    map[sequential_uuid(n)] = static_cast<int>(n);
    ASSERT_EQ(map.table_size(), expected) << n;
  }
}

// reserve(n): the table a run of growths would reach for n entries, sized at once; no
// growth up to n entries, entries already in it still found, never a smaller table.
TEST(uuid_map_test, ReserveSizesTheTableOnceForThatManyEntries) {
  using map_type = uuid_map<int>;
  EXPECT_EQ(map_type::reserved_table_size(0, 0), 0u);
  EXPECT_EQ(map_type::reserved_table_size(0, 1), 64u);
  EXPECT_EQ(map_type::reserved_table_size(0, 48), 64u);
  EXPECT_EQ(map_type::reserved_table_size(0, 49), 128u);
  EXPECT_EQ(map_type::reserved_table_size(1024, 10), 1024u);  // never shrinks
  EXPECT_EQ(map_type::reserved_table_size(0, std::size_t{3} << 20), std::size_t{1} << 22);
  EXPECT_EQ(map_type::reserved_table_size(0, (std::size_t{3} << 20) + 1), std::size_t{1} << 23);
  EXPECT_EQ(map_type::reserved_table_size(0, std::size_t{3} << 30), map_type::max_table_size);
  EXPECT_THROW((void)map_type::reserved_table_size(0, (std::size_t{3} << 30) + 1),
               std::length_error);

  map_type map;
  for (std::uint64_t n = 0; n < 100; ++n) map[sequential_uuid(n)] = static_cast<int>(n);
  map.reserve(5000);
  const std::size_t reserved = map.table_size();
  EXPECT_EQ(reserved, map_type::reserved_table_size(0, 5000));
  EXPECT_EQ(reserved, 8192u);
  for (std::uint64_t n = 0; n < 100; ++n)
    ASSERT_EQ(map.at(sequential_uuid(n)), static_cast<int>(n));
  for (std::uint64_t n = 100; n < 5000; ++n) map[sequential_uuid(n)] = static_cast<int>(n);
  EXPECT_EQ(map.table_size(), reserved);  // no growth up to the reserved count
  map.reserve(10);
  EXPECT_EQ(map.table_size(), reserved);
  map[sequential_uuid(5000)] = 5000;  // still 3/4 full at most: 6144 entries fit
  EXPECT_EQ(map.table_size(), reserved);
  for (std::uint64_t n = 5001; n < 6145; ++n) map[sequential_uuid(n)] = static_cast<int>(n);
  EXPECT_EQ(map.table_size(), 2 * reserved);  // and past it, grows as before
  for (std::uint64_t n = 0; n < 6145; ++n)
    ASSERT_EQ(map.at(sequential_uuid(n)), static_cast<int>(n));
  std::uint64_t next = 0;  // insertion order kept
  for (const auto& [key, value] : map) ASSERT_EQ(value, static_cast<int>(next++));
  EXPECT_EQ(next, 6145u);
}

TEST(uuid_map_test, FindsInsertsAndOverwrites) {
  uuid_map<std::string> map;
  EXPECT_TRUE(map.empty());
  EXPECT_EQ(map.find(sequential_uuid(1)), map.end());
  EXPECT_FALSE(map.contains(sequential_uuid(1)));
  EXPECT_THROW((void)map.at(sequential_uuid(1)), std::out_of_range);
  map[sequential_uuid(1)] = "one";
  auto [it, inserted] = map.try_emplace(sequential_uuid(2), "two");
  EXPECT_TRUE(inserted);
  EXPECT_EQ(it->first, sequential_uuid(2));
  EXPECT_EQ(it->second, "two");
  auto [again, inserted_again] = map.try_emplace(sequential_uuid(2), "not taken");
  EXPECT_FALSE(inserted_again);
  EXPECT_EQ(again->second, "two");
  map[sequential_uuid(1)] = "uno";
  EXPECT_EQ(map.size(), 2u);
  EXPECT_EQ(map.at(sequential_uuid(1)), "uno");
  EXPECT_EQ(map.find(sequential_uuid(2))->second, "two");
  EXPECT_EQ(map.find(sequential_uuid(3)), map.end());
  const auto& constant = map;
  EXPECT_EQ(constant.find(sequential_uuid(1))->second, "uno");
  EXPECT_EQ(constant.find(sequential_uuid(3)), constant.end());
}

TEST(uuid_map_test, AnswersAsUnorderedMapThroughGrowthAndCollisions) {
  // Far past the first table (64 slots): every growth rehashes, and at up to 3/4 full
  // linear probing runs over many occupied slots.
  uuid_map<std::uint64_t> map;
  std::unordered_map<uuid, std::uint64_t> model;
  std::mt19937_64 rng(7);
  std::vector<uuid> ids;
  for (std::uint64_t n = 0; n < 50'000; ++n) ids.push_back(sequential_uuid(n));
  for (std::uint64_t n = 0; n < 50'000; ++n) ids.push_back(random_id(rng));
  std::size_t last_table = 0;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    map[ids[i]] += i;
    model[ids[i]] += i;
    if (i % 7 == 0) {  // revisit an earlier id: found, not inserted again
      const auto& old = ids[rng() % (i + 1)];
      map[old] += 1;
      model[old] += 1;
    }
    ASSERT_EQ(map.size(), model.size());
    ASSERT_LE(map.size() * 4, map.table_size() * 3);  // never more than 3/4 full
    ASSERT_GE(map.table_size(), last_table);
    last_table = map.table_size();
  }
  EXPECT_GE(map.table_size(), 131072u);
  for (const auto& [id, v] : model) {
    auto it = map.find(id);
    ASSERT_NE(it, map.end());
    EXPECT_EQ(it->second, v);
  }
  for (std::uint64_t n = 50'000; n < 60'000; ++n) EXPECT_FALSE(map.contains(sequential_uuid(n)));
}

// Ids whose hashes differ only in their low bits: the same tag (the hash's top half) and
// home slot, one long probe run where only the entries' keys tell them apart. (The hash
// is (a ^ b * k2) * k1 over the id's two little-endian halves; with b = 0, adding the
// inverse of k1 to a adds 1 to the hash.)
uuid same_tag(std::uint64_t j) {
  constexpr std::uint64_t k1 = 0x9E3779B97F4A7C15ull;
  std::uint64_t inverse = k1;  // Newton's iteration: each step doubles the bits right
  for (int i = 0; i < 5; ++i) inverse *= 2 - k1 * inverse;
  const std::uint64_t a = j * inverse;
  uuid u;
  std::memcpy(u.bytes.data(), &a, 8);
  return u;
}

TEST(uuid_map_test, KeysSharingTheirTagAreToldApartByTheirEntries) {
  uuid_map<std::uint64_t> map;
  for (std::uint64_t j = 0; j < 300; ++j) map[same_tag(j)] = j;
  EXPECT_EQ(map.size(), 300u);
  for (std::uint64_t j = 0; j < 300; ++j) {
    auto it = map.find(same_tag(j));
    ASSERT_NE(it, map.end()) << j;
    EXPECT_EQ(it->first, same_tag(j));
    EXPECT_EQ(it->second, j);
    map.prefetch_entry(same_tag(j));
  }
  for (std::uint64_t j = 300; j < 400; ++j) EXPECT_FALSE(map.contains(same_tag(j))) << j;
  EXPECT_FALSE(map.try_emplace(same_tag(7), 0).second);
  EXPECT_EQ(map.at(same_tag(7)), 7u);
}

TEST(uuid_map_test, EntriesStayInPlaceAndIterateInInsertionOrder) {
  uuid_map<std::vector<int>> map;
  auto& first = map[sequential_uuid(0)];
  first.push_back(42);
  const auto* first_address = &first;
  for (std::uint64_t n = 1; n < 5000; ++n) map[sequential_uuid(n)].push_back(static_cast<int>(n));
  EXPECT_EQ(&map.at(sequential_uuid(0)), first_address);  // through table growth and new chunks
  EXPECT_EQ(first.front(), 42);
  std::uint64_t expected = 0;
  for (const auto& [id, v] : map) {
    EXPECT_EQ(id, sequential_uuid(expected));
    EXPECT_EQ(v.front(), expected == 0 ? 42 : static_cast<int>(expected));
    ++expected;
  }
  EXPECT_EQ(expected, 5000u);
}

// An entry's number (iterator::index()) is its place in insertion order, kept through
// growth; nth() of it is the same entry.
TEST(uuid_map_test, EntryNumbersNameTheSameEntryThroughGrowth) {
  uuid_map<std::uint64_t> map;
  std::vector<std::size_t> numbers;
  for (std::uint64_t n = 0; n < 5000; ++n) {
    auto [it, inserted] = map.try_emplace(sequential_uuid(n), n);
    ASSERT_TRUE(inserted);
    numbers.push_back(it.index());
  }
  for (std::uint64_t n = 0; n < 5000; ++n) {
    ASSERT_EQ(numbers[n], n);
    ASSERT_EQ(map.find(sequential_uuid(n)).index(), n);
    ASSERT_EQ(map.nth(numbers[n]).first, sequential_uuid(n));
    ASSERT_EQ(map.nth(numbers[n]).second, n);
  }
  const auto& cmap = map;
  EXPECT_EQ(&cmap.nth(7), &*map.find(sequential_uuid(7)));
}

TEST(uuid_map_test, PrefetchesChangeNothing) {
  uuid_map<int> map;
  map.prefetch(sequential_uuid(1));  // empty: no table yet
  map.prefetch_entry(sequential_uuid(1));
  EXPECT_EQ(map.table_size(), 0u);
  map[sequential_uuid(1)] = 1;
  for (std::uint64_t n = 0; n < 200; ++n) {  // present and absent ids, through growth
    map.prefetch(sequential_uuid(n));
    map.prefetch_entry(sequential_uuid(n));
    if (n % 2 == 0) map[sequential_uuid(1000 + n)] = static_cast<int>(n);
  }
  EXPECT_EQ(map.size(), 101u);
  EXPECT_EQ(map.at(sequential_uuid(1)), 1);
  EXPECT_FALSE(map.contains(sequential_uuid(2)));
}

// Counts live instances: each value constructed is destroyed once, by clear() or the map's
// end.
struct counted {
  static inline int live = 0;
  int v = 0;
  counted() { ++live; }
  explicit counted(int x) : v(x) { ++live; }
  counted(const counted& o) : v(o.v) { ++live; }
  ~counted() { --live; }
};

TEST(uuid_map_test, ClearAndDestructionDestroyEveryValueOnce) {
  counted::live = 0;
  {
    uuid_map<counted> map;
    for (std::uint64_t n = 0; n < 3000; ++n)
      map.try_emplace(sequential_uuid(n), static_cast<int>(n));
    EXPECT_EQ(counted::live, 3000);
    map.clear();
    EXPECT_EQ(counted::live, 0);
    EXPECT_TRUE(map.empty());
    EXPECT_EQ(map.find(sequential_uuid(5)), map.end());
    for (std::uint64_t n = 0; n < 100; ++n) map.try_emplace(sequential_uuid(n), 1);  // reusable
    EXPECT_EQ(map.at(sequential_uuid(99)).v, 1);
    EXPECT_EQ(counted::live, 100);
    uuid_map<counted> moved = std::move(map);
    EXPECT_EQ(counted::live, 100);
    EXPECT_EQ(moved.size(), 100u);
    EXPECT_TRUE(map.empty());  // NOLINT: moved-from maps are left empty
  }
  EXPECT_EQ(counted::live, 0);
}

}  // namespace
}  // namespace passage
