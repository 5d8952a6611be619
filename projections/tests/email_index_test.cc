// The email index's table: answers as a map of strings would, through growth, overwrites
// and removals (its removal shifts entries back instead of leaving tombstones), though it
// keeps no hash itself, only a tag and the entry that keeps the hash (hashes sharing their
// tag are told apart by the entry's); and keyed_email, the form an entry keeps it in.

#include "projections/email_index.h"

#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace passage::projections {
namespace {

std::string subject_of(std::uint64_t n) {
  // Shaped as event_codec::email_subject's; the first 4 bytes are the tag, whose top bits
  // pick the home slot, so small numbers collide and build long probe runs, and numbers
  // that differ only past their fourth byte share their tag.
  static constexpr char hex[] = "0123456789abcdef";
  std::string s = "email:";
  for (int i = 0; i < 32; ++i) {
    const auto byte = static_cast<std::uint8_t>((i < 8 ? n >> (8 * i) : n * (i + 1)) & 0xff);
    s += hex[byte >> 4];
    s += hex[byte & 0xf];
  }
  return s;
}

email_hash hash_of(std::uint64_t n) {
  email_hash h;
  EXPECT_TRUE(parse_email_subject(subject_of(n), h));
  return h;
}

// Learners keeping their own email, as the read models' do; the index names them by number.
struct learners {
  std::deque<keyed_email> emails;
  struct hash_of_entry {
    const learners* all;
    const email_hash& operator()(std::uint32_t e) const { return *all->emails.at(e).hash(); }
  };
  email_index<hash_of_entry> index{hash_of_entry{this}};

  explicit learners(std::size_t n) : emails(n) {}
  learners(const learners&) = delete;
  // What the read models do for a registration: out of the index under the old email,
  // then the new one kept and named.
  void registers(std::uint32_t e, std::string_view subject) {
    keyed_email now;
    now.assign(subject);
    if (!(emails[e] == now)) {
      index.erase_if(emails[e], e);
      emails[e] = now;
    }
    index.assign(emails[e], e);
  }
  void forgotten(std::uint32_t e) {
    index.erase_if(emails[e], e);
    emails[e].clear();
  }
};

// The same as a map of strings, what the index replaced.
struct expected_index {
  std::unordered_map<std::string, std::uint32_t> by_subject;
  std::vector<std::string> subject;  // per entry
  explicit expected_index(std::size_t n) : subject(n) {}
  void registers(std::uint32_t e, const std::string& s) {
    if (subject[e] != s) {
      auto it = by_subject.find(subject[e]);
      if (!subject[e].empty() && it != by_subject.end() && it->second == e) by_subject.erase(it);
      subject[e] = s;
    }
    by_subject[s] = e;
  }
  void forgotten(std::uint32_t e) {
    auto it = by_subject.find(subject[e]);
    if (!subject[e].empty() && it != by_subject.end() && it->second == e) by_subject.erase(it);
    subject[e].clear();
  }
};

TEST(email_index_test, FindsAssignsAndErasesOnlyForTheLearnerNamed) {
  learners l(3);
  auto& index = l.index;
  const auto ada = subject_of(1), bob = subject_of(2);
  EXPECT_FALSE(index.find(ada));
  l.registers(0, ada);
  l.registers(1, bob);
  EXPECT_EQ(index.find(ada), 0u);
  EXPECT_EQ(index.find(hash_of(1)), 0u);
  EXPECT_EQ(index.size(), 2u);
  l.registers(2, ada);  // another learner takes the address over
  EXPECT_EQ(index.find(ada), 2u);
  EXPECT_EQ(index.size(), 2u);
  EXPECT_FALSE(index.erase_if(l.emails[0], 0));  // the old one no longer owns it
  EXPECT_EQ(index.find(ada), 2u);
  l.registers(0, subject_of(3));  // moving away leaves the new owner in place
  EXPECT_EQ(index.find(ada), 2u);
  EXPECT_EQ(index.find(subject_of(3)), 0u);
  EXPECT_TRUE(index.erase_if(l.emails[2], 2));
  EXPECT_FALSE(index.find(ada));
  EXPECT_EQ(index.find(bob), 1u);
  EXPECT_FALSE(index.erase_if(keyed_email{}, 1));  // none names nobody
  index.clear();
  EXPECT_FALSE(index.find(bob));
  EXPECT_EQ(index.size(), 0u);
}

// Hashes whose first 4 bytes (the tag) agree: the table holds only the tag, so it must
// read each learner's hash to tell them apart, in finds, overwrites and removals.
TEST(email_index_test, HashesSharingTheirTagAreToldApartByTheLearnersHashes) {
  learners l(64);
  expected_index want(64);
  std::vector<std::string> same_tag;
  for (std::uint64_t n = 0; n < 64; ++n) {
    same_tag.push_back(subject_of(7 + (n << 32)));
    ASSERT_EQ(same_tag.back().substr(0, 6 + 8), same_tag.front().substr(0, 6 + 8));
  }
  for (std::uint32_t e = 0; e < 64; ++e) {
    l.registers(e, same_tag[e]);
    want.registers(e, same_tag[e]);
  }
  for (std::uint32_t e = 0; e < 64; e += 3) {
    l.forgotten(e);
    want.forgotten(e);
  }
  for (std::uint32_t e = 1; e < 64; e += 5) {  // taking over one of the same tag
    l.registers(e, same_tag[(e + 1) % 64]);
    want.registers(e, same_tag[(e + 1) % 64]);
  }
  EXPECT_EQ(l.index.size(), want.by_subject.size());
  for (std::uint64_t n = 0; n < 70; ++n) {
    const auto s = subject_of(7 + (n << 32));
    auto it = want.by_subject.find(s);
    if (it == want.by_subject.end()) {
      EXPECT_FALSE(l.index.find(s)) << n;
    } else {
      EXPECT_EQ(l.index.find(s), it->second) << n;
    }
  }
}

// reserve(n): the table a run of growths would reach for n subjects, sized at once; no
// growth up to n, subjects already in it still found, never a smaller table.
TEST(email_index_test, ReserveSizesTheTableOnceForThatManySubjects) {
  using index_type = email_index<learners::hash_of_entry>;
  EXPECT_EQ(index_type::reserved_table_size(0, 0), 0u);
  EXPECT_EQ(index_type::reserved_table_size(0, 1), 1024u);
  EXPECT_EQ(index_type::reserved_table_size(0, 768), 1024u);
  EXPECT_EQ(index_type::reserved_table_size(0, 769), 2048u);
  EXPECT_EQ(index_type::reserved_table_size(4096, 10), 4096u);  // never shrinks
  EXPECT_EQ(index_type::reserved_table_size(0, std::size_t{3} << 20), std::size_t{1} << 22);

  learners l(3300);
  auto& index = l.index;
  for (std::uint32_t n = 0; n < 100; ++n) l.registers(n, subject_of(n));
  l.forgotten(7);
  l.registers(3200, "email:other");  // kept beside the table
  index.reserve(3000);
  const std::size_t reserved = index.table_size();
  EXPECT_EQ(reserved, 4096u);
  for (std::uint32_t n = 0; n < 100; ++n) {
    if (n == 7) {
      ASSERT_FALSE(index.find(subject_of(n)));
    } else {
      ASSERT_EQ(index.find(subject_of(n)), n);
    }
  }
  EXPECT_EQ(index.find("email:other"), 3200u);
  for (std::uint32_t n = 100; n < 3000; ++n) l.registers(n, subject_of(n));
  EXPECT_EQ(index.table_size(), reserved);  // no growth up to the reserved count
  index.reserve(10);
  EXPECT_EQ(index.table_size(), reserved);
  for (std::uint32_t n = 3000; n < 3200; ++n) l.registers(n, subject_of(n));
  EXPECT_EQ(index.table_size(), 2 * reserved);  // past 3/4 full, grows as before
  for (std::uint32_t n = 0; n < 3200; ++n) {
    if (n != 7) {
      ASSERT_EQ(index.find(subject_of(n)), n) << n;
    }
  }
  EXPECT_EQ(index.size(), 3200u);  // 3199 in the table and the other one
}

TEST(email_index_test, PrefetchesChangeNothing) {
  learners l(2);
  l.index.prefetch(hash_of(1));  // empty: no table yet
  l.registers(1, subject_of(1));
  l.index.prefetch(hash_of(1));
  l.index.prefetch(hash_of(2));
  EXPECT_EQ(l.index.size(), 1u);
  EXPECT_EQ(l.index.find(subject_of(1)), 1u);
  EXPECT_FALSE(l.index.find(subject_of(2)));
}

TEST(email_index_test, SubjectsOfAnotherShapeAreKeptAsStrings) {
  learners l(5);
  const auto upper = "email:" + std::string(64, 'A');  // not what email_subject writes
  const auto lower = "email:" + std::string(64, 'a');
  const std::string shorter = "email:abc";
  l.registers(1, upper);
  l.registers(2, lower);
  l.registers(3, shorter);
  EXPECT_EQ(l.emails[1].hash(), nullptr);
  EXPECT_NE(l.emails[2].hash(), nullptr);
  EXPECT_EQ(l.index.find(upper), 1u);
  EXPECT_EQ(l.index.find(lower), 2u);
  EXPECT_EQ(l.index.find(shorter), 3u);
  EXPECT_FALSE(l.index.find(""));
  EXPECT_FALSE(l.index.find("email:" + std::string(64, 'B')));
  EXPECT_EQ(l.index.size(), 3u);
  l.forgotten(1);
  EXPECT_FALSE(l.index.find(upper));
  EXPECT_EQ(l.index.find(lower), 2u);
  l.registers(3, lower);  // from text to a hash
  EXPECT_FALSE(l.index.find(shorter));
  EXPECT_EQ(l.index.find(lower), 3u);
  EXPECT_EQ(l.index.size(), 1u);
}

// keyed_email keeps the usual subject as its 32 bytes and gives back the same text; any
// other text as it is; copies and moves keep what they hold.
TEST(email_index_test, KeyedEmailGivesBackTheSubjectItWasGiven) {
  for (const std::string& s : {subject_of(42), std::string("email:abc"),
                               "email:" + std::string(64, 'F'), std::string("x")}) {
    keyed_email k;
    k.assign(s);
    EXPECT_FALSE(k.empty());
    EXPECT_EQ(k.subject(), s);
    EXPECT_EQ(k.hash() != nullptr, s == subject_of(42)) << s;
    keyed_email copy(k);
    EXPECT_TRUE(copy == k);
    EXPECT_EQ(copy.subject(), s);
    keyed_email moved(std::move(copy));
    EXPECT_TRUE(copy.empty());  // NOLINT: moved from
    EXPECT_EQ(moved.subject(), s);
    keyed_email assigned;
    assigned.assign("email:other-text");
    assigned = moved;
    EXPECT_EQ(assigned.subject(), s);
    assigned = std::move(moved);
    EXPECT_EQ(assigned.subject(), s);
    assigned.clear();
    EXPECT_TRUE(assigned.empty());
    EXPECT_EQ(assigned.subject(), "");
  }
  keyed_email none;
  none.assign("");
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(email_subject_of(hash_of(42)), subject_of(42));
  keyed_email a, b;
  a.assign(hash_of(1));
  b.assign(subject_of(1));
  EXPECT_TRUE(a == b);
  b.assign(subject_of(2));
  EXPECT_FALSE(a == b);
}

// Random registrations (new emails, emails other learners hold, the same one again) and
// forgettings against a map of strings, with thousands of learners: the table grows twice
// (1024 -> 2048 -> 4096 slots) in the middle of the churn, so each growth moves a table
// that removals shifted back, with runs that wrap around its end, long runs from shared
// home slots and shared tags. Every entry is looked up after each growth and every 997
// steps: an entry a growth drops or misplaces is found missing.
TEST(email_index_test, MatchesAMapOfStringsUnderRandomChurn) {
  constexpr std::uint32_t entries = 3000;
  constexpr std::uint64_t subjects = 20000;
  learners l(entries);
  expected_index want(entries);
  std::mt19937_64 rng(6);
  auto subject = [](std::uint64_t n) {
    // Most spread over the table by a multiplication (their tag is the low 32 bits of the
    // product); multiples of 7 in a band of shared home slots (their tag n << 12, whose
    // top bits are few); multiples of 11 all of tag 0, told apart by the learners' hashes.
    return subject_of(n % 7 == 0 ? (n << 12) : n % 11 == 0 ? (n << 32) : n * 0x9e3779b97f4a7c15ull);
  };
  auto expect_same = [&](const std::string& when) {
    ASSERT_EQ(l.index.size(), want.by_subject.size()) << when;
    for (const auto& [k, v] : want.by_subject) ASSERT_EQ(l.index.find(k), v) << when;
  };
  std::vector<std::size_t> table_sizes;  // each size the table had, in order
  std::size_t erased_before_growth = 0, erased = 0;
  for (int step = 0; step < 300000; ++step) {
    const auto e = static_cast<std::uint32_t>(rng() % entries);
    if (rng() % 3 == 0) {
      erased += want.subject[e].empty() ? 0 : 1;
      l.forgotten(e);
      want.forgotten(e);
    } else {
      const std::string s = subject(rng() % subjects);
      l.registers(e, s);
      want.registers(e, s);
    }
    const std::size_t table_size = l.index.table_size();  // 0 until the first registration
    if (table_size != 0 && (table_sizes.empty() || table_sizes.back() != table_size)) {
      table_sizes.push_back(l.index.table_size());
      if (table_sizes.size() > 2) erased_before_growth = erased;
      ASSERT_NO_FATAL_FAILURE(expect_same("after growing to " + std::to_string(table_sizes.back()) +
                                          " slots at step " + std::to_string(step)));
    }
    if (step % 997 == 0) {
      ASSERT_NO_FATAL_FAILURE(expect_same("step " + std::to_string(step)));
    }
  }
  EXPECT_EQ(table_sizes, (std::vector<std::size_t>{1024, 2048, 4096}));
  EXPECT_GT(erased_before_growth, 100u) << "the last growth came after many removals";
  for (std::uint64_t n = 0; n < subjects; ++n) {
    const std::string s = subject(n);
    auto it = want.by_subject.find(s);
    if (it == want.by_subject.end()) {
      EXPECT_FALSE(l.index.find(s));
    } else {
      EXPECT_EQ(l.index.find(s), it->second);
    }
  }
}

}  // namespace
}  // namespace passage::projections
