// The learner's claim list: one id in place, more on the heap; answers as a std::vector
// would through growth, copies and moves.

#include "common/uuid_list.h"

#include <gtest/gtest.h>

#include <utility>
#include <vector>

namespace passage {
namespace {

uuid numbered(std::uint64_t n) {
  uuid u;
  for (int i = 0; i < 8; ++i) u.bytes[15 - i] = static_cast<std::uint8_t>(n >> (8 * i));
  return u;
}

std::vector<uuid> numbers(std::uint64_t n) {
  std::vector<uuid> out;
  for (std::uint64_t i = 0; i < n; ++i) out.push_back(numbered(i));
  return out;
}

static_assert(sizeof(uuid_list) == sizeof(std::vector<uuid>), "no bigger than a vector");

TEST(uuid_list_test, KeepsIdsInOrderFromOneInPlaceToManyOnTheHeap) {
  uuid_list list;
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.begin(), list.end());
  for (std::uint64_t n = 0; n < 1000; ++n) {
    list.push_back(numbered(n));
    ASSERT_EQ(list.size(), n + 1);
    ASSERT_EQ(static_cast<std::vector<uuid>>(list), numbers(n + 1)) << n;
  }
  EXPECT_EQ(list[999], numbered(999));
  list.clear();
  EXPECT_TRUE(list.empty());
  list.push_back(numbered(5));  // in place again
  EXPECT_EQ(static_cast<std::vector<uuid>>(list), std::vector<uuid>{numbered(5)});
}

TEST(uuid_list_test, PushingOneOfItsOwnIdsWhileGrowing) {
  uuid_list list;
  list.push_back(numbered(1));
  list.push_back(list[0]);  // from the place that moves to the heap
  for (int i = 0; i < 3; ++i) list.push_back(list[0]);
  list.push_back(list[4]);  // 4 -> 8 on the heap
  EXPECT_EQ(list.size(), 6u);
  for (const auto& id : list) EXPECT_EQ(id, numbered(1));
}

TEST(uuid_list_test, CopiesAndMovesOfEverySize) {
  for (std::uint64_t n : {0, 1, 2, 4, 5, 17}) {
    uuid_list a;
    for (std::uint64_t i = 0; i < n; ++i) a.push_back(numbered(i));
    uuid_list b(a);
    EXPECT_EQ(b, a);
    EXPECT_EQ(static_cast<std::vector<uuid>>(b), numbers(n));
    uuid_list c;
    c.push_back(numbered(99));
    c.push_back(numbered(98));
    c = b;
    EXPECT_EQ(static_cast<std::vector<uuid>>(c), numbers(n));
    c = c;  // NOLINT: self-assignment keeps it
    EXPECT_EQ(static_cast<std::vector<uuid>>(c), numbers(n));
    uuid_list d(std::move(b));
    EXPECT_EQ(static_cast<std::vector<uuid>>(d), numbers(n));
    EXPECT_TRUE(b.empty());  // NOLINT: a moved-from list is empty
    b.push_back(numbered(7));
    EXPECT_EQ(b.size(), 1u);
    uuid_list e;
    for (int i = 0; i < 9; ++i) e.push_back(numbered(50));
    e = std::move(d);
    EXPECT_EQ(static_cast<std::vector<uuid>>(e), numbers(n));
    c.push_back(numbered(1000));  // copies own their ids
    EXPECT_EQ(static_cast<std::vector<uuid>>(e), numbers(n));
    EXPECT_FALSE(c == e);
  }
}

}  // namespace
}  // namespace passage
