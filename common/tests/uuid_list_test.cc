// The learner's claim list: one id in place, more on the heap; answers as a std::vector
// would through growth, copies and moves.

#include "common/uuid_list.h"

#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "tests/support/test_values.h"

namespace passage {
namespace {

using testing::sequential_uuid;

std::vector<uuid> numbers(std::uint64_t n) {
  std::vector<uuid> out;
  for (std::uint64_t i = 0; i < n; ++i) out.push_back(sequential_uuid(i));
  return out;
}

static_assert(sizeof(uuid_list) == sizeof(std::vector<uuid>), "no bigger than a vector");

TEST(uuid_list_test, KeepsIdsInOrderFromOneInPlaceToManyOnTheHeap) {
  uuid_list list;
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.begin(), list.end());
  for (std::uint64_t n = 0; n < 1000; ++n) {
    list.push_back(sequential_uuid(n));
    ASSERT_EQ(list.size(), n + 1);
    ASSERT_EQ(static_cast<std::vector<uuid>>(list), numbers(n + 1)) << n;
  }
  EXPECT_EQ(list[999], sequential_uuid(999));
  list.clear();
  EXPECT_TRUE(list.empty());
  list.push_back(sequential_uuid(5));  // in place again
  EXPECT_EQ(static_cast<std::vector<uuid>>(list), std::vector<uuid>{sequential_uuid(5)});
}

// The id pushed is one of the list's own, where the growth it causes moves it from: the
// one in place (1 -> 4 ids, the place becomes the heap pointer) and one in the heap block
// that is freed (4 -> 8).
TEST(uuid_list_test, PushingOneOfItsOwnIdsWhileGrowing) {
  uuid_list list;
  list.push_back(sequential_uuid(1));
  list.push_back(list[0]);  // 1 -> 4
  list.push_back(sequential_uuid(2));
  list.push_back(sequential_uuid(3));
  ASSERT_EQ(list.size(), 4u);  // full
  list.push_back(list[3]);     // 4 -> 8
  list.push_back(list[0]);     // room left: no growth
  const auto one = sequential_uuid(1), two = sequential_uuid(2), three = sequential_uuid(3);
  EXPECT_EQ(static_cast<std::vector<uuid>>(list),
            (std::vector<uuid>{one, one, two, three, three, one}));
}

TEST(uuid_list_test, CopiesAndMovesOfEverySize) {
  for (std::uint64_t n : {0, 1, 2, 4, 5, 17}) {
    uuid_list a;
    for (std::uint64_t i = 0; i < n; ++i) a.push_back(sequential_uuid(i));
    uuid_list b(a);
    EXPECT_EQ(b, a);
    EXPECT_EQ(static_cast<std::vector<uuid>>(b), numbers(n));
    uuid_list c;
    c.push_back(sequential_uuid(99));
    c.push_back(sequential_uuid(98));
    c = b;
    EXPECT_EQ(static_cast<std::vector<uuid>>(c), numbers(n));
    c = c;  // NOLINT: self-assignment keeps it
    EXPECT_EQ(static_cast<std::vector<uuid>>(c), numbers(n));
    uuid_list d(std::move(b));
    EXPECT_EQ(static_cast<std::vector<uuid>>(d), numbers(n));
    EXPECT_TRUE(b.empty());  // NOLINT: a moved-from list is empty
    b.push_back(sequential_uuid(7));
    EXPECT_EQ(b.size(), 1u);
    uuid_list e;
    for (int i = 0; i < 9; ++i) e.push_back(sequential_uuid(50));
    e = std::move(d);
    EXPECT_EQ(static_cast<std::vector<uuid>>(e), numbers(n));
    c.push_back(sequential_uuid(1000));  // copies own their ids
    EXPECT_EQ(static_cast<std::vector<uuid>>(e), numbers(n));
    EXPECT_FALSE(c == e);
  }
}

}  // namespace
}  // namespace passage
