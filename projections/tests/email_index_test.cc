// The email index's table: answers as a map of strings would, through growth, overwrites
// and removals (its removal shifts entries back instead of leaving tombstones).

#include "projections/email_index.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <unordered_map>

namespace passage::projections {
namespace {

std::string subject_of(std::uint64_t n) {
  // Shaped as event_codec::email_subject's; the low bits of n pick the home slot, so
  // small numbers collide and build long probe runs.
  static constexpr char hex[] = "0123456789abcdef";
  std::string s = "email:";
  for (int i = 0; i < 32; ++i) {
    const auto byte = static_cast<std::uint8_t>((i < 8 ? n >> (8 * i) : n * (i + 1)) & 0xff);
    s += hex[byte >> 4];
    s += hex[byte & 0xf];
  }
  return s;
}

uuid learner(std::uint64_t n) {
  uuid u;
  for (int i = 0; i < 8; ++i) u.bytes[15 - i] = static_cast<std::uint8_t>(n >> (8 * i));
  return u;
}

TEST(email_index_test, FindsAssignsAndErasesOnlyForTheLearnerNamed) {
  email_index index;
  const auto ada = subject_of(1), bob = subject_of(2);
  EXPECT_FALSE(index.find(ada));
  index.assign(ada, learner(10));
  index.assign(bob, learner(20));
  EXPECT_EQ(index.find(ada), learner(10));
  EXPECT_EQ(index.size(), 2u);
  index.assign(ada, learner(11));  // another learner takes the address over
  EXPECT_EQ(index.find(ada), learner(11));
  EXPECT_EQ(index.size(), 2u);
  EXPECT_FALSE(index.erase_if(ada, learner(10)));  // the old one no longer owns it
  EXPECT_EQ(index.find(ada), learner(11));
  EXPECT_TRUE(index.erase_if(ada, learner(11)));
  EXPECT_FALSE(index.find(ada));
  EXPECT_EQ(index.find(bob), learner(20));
  index.clear();
  EXPECT_FALSE(index.find(bob));
  EXPECT_EQ(index.size(), 0u);
}

// reserve(n): the table a run of growths would reach for n subjects, sized at once; no
// growth up to n, subjects already in it still found, never a smaller table.
TEST(email_index_test, ReserveSizesTheTableOnceForThatManySubjects) {
  EXPECT_EQ(email_index::reserved_table_size(0, 0), 0u);
  EXPECT_EQ(email_index::reserved_table_size(0, 1), 1024u);
  EXPECT_EQ(email_index::reserved_table_size(0, 768), 1024u);
  EXPECT_EQ(email_index::reserved_table_size(0, 769), 2048u);
  EXPECT_EQ(email_index::reserved_table_size(4096, 10), 4096u);  // never shrinks
  EXPECT_EQ(email_index::reserved_table_size(0, std::size_t{3} << 20), std::size_t{1} << 22);

  email_index index;
  for (std::uint64_t n = 0; n < 100; ++n) index.assign(subject_of(n), learner(n));
  index.erase_if(subject_of(7), learner(7));
  index.assign("email:other", learner(1000));  // kept beside the table
  index.reserve(3000);
  const std::size_t reserved = index.table_size();
  EXPECT_EQ(reserved, 4096u);
  for (std::uint64_t n = 0; n < 100; ++n) {
    if (n == 7) {
      ASSERT_FALSE(index.find(subject_of(n)));
    } else {
      ASSERT_EQ(index.find(subject_of(n)), learner(n));
    }
  }
  EXPECT_EQ(index.find("email:other"), learner(1000));
  for (std::uint64_t n = 100; n < 3000; ++n) index.assign(subject_of(n), learner(n));
  EXPECT_EQ(index.table_size(), reserved);  // no growth up to the reserved count
  index.reserve(10);
  EXPECT_EQ(index.table_size(), reserved);
  for (std::uint64_t n = 3000; n < 3200; ++n) index.assign(subject_of(n), learner(n));
  EXPECT_EQ(index.table_size(), 2 * reserved);  // past 3/4 full, grows as before
  for (std::uint64_t n = 0; n < 3200; ++n) {
    if (n != 7) {
      ASSERT_EQ(index.find(subject_of(n)), learner(n)) << n;
    }
  }
  EXPECT_EQ(index.size(), 3200u);  // 3199 in the table and the other one
}

TEST(email_index_test, PrefetchesChangeNothing) {
  email_index index;
  index.prefetch(subject_of(1));  // empty: no table yet
  index.prefetch("email:not-a-digest");
  index.assign(subject_of(1), learner(1));
  index.prefetch(subject_of(1));
  index.prefetch(subject_of(2));
  EXPECT_EQ(index.size(), 1u);
  EXPECT_EQ(index.find(subject_of(1)), learner(1));
  EXPECT_FALSE(index.find(subject_of(2)));
}

TEST(email_index_test, SubjectsOfAnotherShapeAreKeptAsStrings) {
  email_index index;
  const auto upper = "email:" + std::string(64, 'A');  // not what email_subject writes
  const auto lower = "email:" + std::string(64, 'a');
  const std::string shorter = "email:abc", empty;
  index.assign(upper, learner(1));
  index.assign(lower, learner(2));
  index.assign(shorter, learner(3));
  index.assign(empty, learner(4));
  EXPECT_EQ(index.find(upper), learner(1));
  EXPECT_EQ(index.find(lower), learner(2));
  EXPECT_EQ(index.find(shorter), learner(3));
  EXPECT_EQ(index.find(empty), learner(4));
  EXPECT_FALSE(index.find("email:" + std::string(64, 'B')));
  EXPECT_EQ(index.size(), 4u);
  EXPECT_TRUE(index.erase_if(upper, learner(1)));
  EXPECT_FALSE(index.find(upper));
  EXPECT_EQ(index.find(lower), learner(2));
}

// Random assignments and removals over few home slots (long runs, wrapping around the
// table's end) against a map of strings.
TEST(email_index_test, MatchesAMapOfStringsUnderRandomChurn) {
  email_index index;
  std::unordered_map<std::string, uuid> expected;
  std::mt19937_64 rng(6);
  for (int step = 0; step < 200000; ++step) {
    const std::uint64_t n = rng() % 5000;
    // Multiples of 4096 share a home slot until the table outgrows them.
    const std::string s = subject_of(n % 7 == 0 ? (n << 12) : n);
    const uuid who = learner(rng() % 3);
    if (rng() % 3 == 0) {
      auto it = expected.find(s);
      const bool owned = it != expected.end() && it->second == who;
      if (owned) expected.erase(it);
      ASSERT_EQ(index.erase_if(s, who), owned) << "step " << step;
    } else {
      expected[s] = who;
      index.assign(s, who);
    }
    if (step % 997 == 0) {
      ASSERT_EQ(index.size(), expected.size());
      for (const auto& [k, v] : expected) ASSERT_EQ(index.find(k), v) << "step " << step;
    }
  }
  for (std::uint64_t n = 0; n < 5000; ++n) {
    for (const std::string& s : {subject_of(n), subject_of(n << 12)}) {
      auto it = expected.find(s);
      if (it == expected.end()) {
        EXPECT_FALSE(index.find(s));
      } else {
        EXPECT_EQ(index.find(s), it->second);
      }
    }
  }
}

}  // namespace
}  // namespace passage::projections
