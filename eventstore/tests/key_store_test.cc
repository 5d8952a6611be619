// The crypto-shredding key store: keys survive restarts, destroyed keys are never made
// again, and after destroy() the key bytes are in no file of the folder.

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/perf_context.h>
#include <rocksdb/perf_level.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "eventstore/key_store.h"
#include "eventstore/key_store_testing.h"
#include "tests/support/files_holding.h"
#include "tests/support/temp_dir.h"

namespace passage::eventstore {
namespace {

std::unique_ptr<key_store> open_at(const std::string& path, std::size_t cache = 1u << 16) {
  auto r = open_key_store({.path = path, .cache_entries = cache});
  EXPECT_TRUE(r) << (r ? "" : r.error().message);
  return r ? std::move(*r) : nullptr;
}

// Every file under `dir` that contains `key`'s bytes.
std::vector<std::string> files_holding(const std::string& dir, const data_key& key) {
  return testing::files_holding(
      dir, std::string_view(reinterpret_cast<const char*>(key.data()), key.size()));
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + " ";
  return s;
}

// The same contract holds for the RocksDB store and the in-memory one.
class key_store_contract : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    keys_ = GetParam() ? open_at(dir_.sub("keys")) : make_memory_key_store();
    ASSERT_NE(keys_, nullptr);
  }
  testing::temp_dir dir_;
  std::unique_ptr<key_store> keys_;
};

TEST_P(key_store_contract, get_or_create_returns_the_same_key_each_time) {
  auto a = keys_->get_or_create("learner:1");
  auto b = keys_->get_or_create("learner:1");
  auto c = keys_->get_or_create("learner:2");
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *c);
  EXPECT_NE(*a, data_key{});
  auto found = keys_->find("learner:1");
  ASSERT_TRUE(found);
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, *a);
}

TEST_P(key_store_contract, find_of_an_unknown_subject_is_empty_and_creates_nothing) {
  auto found = keys_->find("learner:nobody");
  ASSERT_TRUE(found);
  EXPECT_FALSE(found->has_value());
  EXPECT_FALSE(keys_->is_destroyed("learner:nobody"));
  auto again = keys_->find("learner:nobody");
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->has_value());
}

TEST_P(key_store_contract, destroyed_key_is_gone_and_never_made_again) {
  ASSERT_TRUE(keys_->get_or_create("learner:1"));
  ASSERT_TRUE(keys_->get_or_create("learner:2"));
  ASSERT_TRUE(keys_->destroy("learner:1"));
  EXPECT_TRUE(keys_->is_destroyed("learner:1"));
  EXPECT_FALSE(keys_->is_destroyed("learner:2"));
  auto found = keys_->find("learner:1");
  ASSERT_TRUE(found);
  EXPECT_FALSE(found->has_value());
  auto again = keys_->get_or_create("learner:1");
  ASSERT_FALSE(again);
  EXPECT_TRUE(again.error().destroyed);
  EXPECT_TRUE(keys_->destroy("learner:1")) << "destroy is idempotent";
  EXPECT_TRUE(keys_->get_or_create("learner:2")) << "other subjects are untouched";
}

TEST_P(key_store_contract, destroying_a_subject_that_never_had_a_key_blocks_it) {
  ASSERT_TRUE(keys_->destroy("email:abc"));
  EXPECT_TRUE(keys_->is_destroyed("email:abc"));
  EXPECT_FALSE(keys_->get_or_create("email:abc"));
}

TEST_P(key_store_contract, invalid_subjects_are_refused) {
  EXPECT_FALSE(keys_->get_or_create(""));
  EXPECT_FALSE(keys_->get_or_create(std::string_view("\0x", 2)));
  EXPECT_FALSE(keys_->find(""));
  EXPECT_FALSE(keys_->destroy(""));
  EXPECT_FALSE(keys_->is_destroyed(""));
}

TEST_P(key_store_contract, concurrent_callers_agree_on_one_key_per_subject) {
  constexpr int threads = 8, subjects = 40, rounds = 200;
  std::vector<std::map<int, data_key>> seen(threads);
  std::vector<int> failures(threads, 0);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < rounds; ++i) {
        int s = (i * 7 + t) % subjects;
        std::string subject = "learner:" + std::to_string(s);
        if (s % 10 == 9) {  // some subjects are destroyed while others use them
          if (!keys_->destroy(subject)) ++failures[t];
          continue;
        }
        auto k = keys_->get_or_create(subject);
        if (!k) {
          ++failures[t];
          continue;
        }
        auto [it, fresh] = seen[t].emplace(s, *k);
        if (!fresh && it->second != *k) ++failures[t];
        auto f = keys_->find(subject);
        if (!f || !f->has_value() || **f != *k) ++failures[t];
      }
    });
  }
  for (auto& th : pool) th.join();
  for (int t = 0; t < threads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
  for (int t = 1; t < threads; ++t) {
    for (const auto& [s, k] : seen[t]) {
      auto it = seen[0].find(s);
      if (it != seen[0].end()) {
        EXPECT_EQ(it->second, k) << "subject " << s;
      }
    }
  }
  for (int s = 9; s < subjects; s += 10) {
    EXPECT_TRUE(keys_->is_destroyed("learner:" + std::to_string(s)));
  }
}

TEST_P(key_store_contract, create_ahead_makes_keys_that_get_or_create_then_returns) {
  ASSERT_TRUE(keys_->get_or_create("learner:old"));
  auto old = keys_->find("learner:old");
  ASSERT_TRUE(old && *old);
  ASSERT_TRUE(keys_->get_or_create("learner:gone"));
  ASSERT_TRUE(keys_->destroy("learner:gone"));

  ASSERT_TRUE(keys_->create_ahead({"learner:a", "learner:b", "learner:old", "learner:gone"}));
  auto a = keys_->find("learner:a");
  auto b = keys_->find("learner:b");
  ASSERT_TRUE(a && *a && b && *b);
  EXPECT_NE(**a, **b);
  auto a_again = keys_->get_or_create("learner:a");
  ASSERT_TRUE(a_again);
  EXPECT_EQ(*a_again, **a);
  // An existing key is kept and a destroyed one stays destroyed.
  auto old_again = keys_->find("learner:old");
  ASSERT_TRUE(old_again && *old_again);
  EXPECT_EQ(**old_again, **old);
  EXPECT_TRUE(keys_->is_destroyed("learner:gone"));
  EXPECT_FALSE(keys_->get_or_create("learner:gone"));
  EXPECT_FALSE(keys_->create_ahead({"learner:c", ""})) << "an invalid subject fails the call";
  EXPECT_TRUE(keys_->create_ahead({})) << "nothing to make";
}

// learner_subject()'s spelling of a numbered learner.
std::string learner_of(int n) {
  char id[37];
  std::snprintf(id, sizeof id, "00000000-0000-4000-8000-%012d", n);
  return std::string("learner:") + id;
}

INSTANTIATE_TEST_SUITE_P(stores, key_store_contract, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "rocksdb" : "memory"; });

// The preload on both stores, without a cache (as `passage replay` opens its store), so a
// lookup is answered either by the preload or by a read of the store, which these count:
// the memory store through its backend's hook, RocksDB through its per-thread perf
// counters (bytes of values its Get() found).
class key_store_preload : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      keys_ = open_at(dir_.sub("keys"), /*cache=*/0);
      rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
    } else {
      keys_ = testing_hooks::make_memory_key_store(
          0, {.on_get = [this](std::string_view) { gets_.fetch_add(1); }});
    }
    ASSERT_NE(keys_, nullptr);
  }
  void TearDown() override { rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable); }
  // Reads of the store's backend so far that found a key.
  std::uint64_t store_reads() const {
    if (!GetParam()) return gets_.load();
    return rocksdb::get_perf_context()->get_read_bytes / sizeof(data_key);
  }
  testing::temp_dir dir_;
  std::unique_ptr<key_store> keys_;
  std::atomic<std::uint64_t> gets_{0};
};

TEST_P(key_store_preload, preloaded_keys_answer_from_memory_as_the_store_would) {
  std::map<std::string, data_key> made;
  for (int i = 0; i < 300; ++i) {
    auto k = keys_->get_or_create(learner_of(i));
    ASSERT_TRUE(k);
    made[learner_of(i)] = *k;
  }
  auto other = keys_->get_or_create("email:" + std::string(64, 'b'));  // not a learner's
  ASSERT_TRUE(other);
  ASSERT_TRUE(keys_->destroy(learner_of(5)));  // destroyed before: stays destroyed
  made.erase(learner_of(5));
  auto finds = [&](const std::string& subject) -> std::optional<data_key> {
    auto f = keys_->find(subject);
    EXPECT_TRUE(f) << subject;
    return f ? *f : std::nullopt;
  };
  // No cache: without a preload every lookup reads the store (the counters work).
  std::uint64_t before = store_reads();
  EXPECT_EQ(finds(learner_of(1)), made[learner_of(1)]);
  EXPECT_EQ(store_reads(), before + 1);

  ASSERT_TRUE(keys_->preload());
  before = store_reads();
  for (const auto& [subject, key] : made) EXPECT_EQ(finds(subject), key) << subject;
  EXPECT_EQ(store_reads(), before) << "every learner's key came from the preload";
  EXPECT_EQ(finds("email:" + std::string(64, 'b')), *other);
  EXPECT_EQ(store_reads(), before + 1) << "other subjects are read from the store";
  EXPECT_FALSE(finds(learner_of(5)));
  EXPECT_TRUE(keys_->is_destroyed(learner_of(5)));
  EXPECT_FALSE(finds(learner_of(400)));  // never made

  // The same id spelled in capitals is another subject: not the preloaded key.
  std::string upper = learner_of(7);
  upper.replace(upper.size() - 12, 1, "A");  // ...-A00000000007: differs only by its case
  std::string lower = upper;
  lower[lower.size() - 12] = 'a';
  auto lower_key = keys_->get_or_create(lower);
  ASSERT_TRUE(lower_key);
  ASSERT_TRUE(keys_->preload());  // again, now holding `lower`
  before = store_reads();
  EXPECT_EQ(finds(lower), *lower_key);
  EXPECT_EQ(store_reads(), before);
  EXPECT_FALSE(finds(upper));
  auto upper_key = keys_->get_or_create(upper);
  ASSERT_TRUE(upper_key);
  EXPECT_NE(*upper_key, *lower_key);
  EXPECT_EQ(finds(upper), *upper_key);

  // Made after the preload: looked up in the store. Destroyed after it: gone at once.
  auto late = keys_->get_or_create(learner_of(500));
  ASSERT_TRUE(late);
  before = store_reads();
  EXPECT_EQ(finds(learner_of(500)), *late);
  EXPECT_EQ(store_reads(), before + 1);
  ASSERT_TRUE(keys_->destroy(learner_of(9)));
  EXPECT_FALSE(finds(learner_of(9)));
  EXPECT_FALSE(keys_->get_or_create(learner_of(9)));
  made.erase(learner_of(9));

  keys_->end_preload();  // the store answers the same without it, a read per lookup
  before = store_reads();
  for (const auto& [subject, key] : made) EXPECT_EQ(finds(subject), key) << subject;
  EXPECT_EQ(store_reads(), before + made.size());
  EXPECT_FALSE(finds(learner_of(9)));
}

INSTANTIATE_TEST_SUITE_P(stores, key_store_preload, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "rocksdb" : "memory"; });

// A destroy() on another thread while preload() scans, just after the scan read that
// learner's key: the table read meanwhile must not answer for it (destroy() only marks a
// published table's keys, so preload() checks a count of destroys).
TEST(key_store_preload_race, a_key_destroyed_during_the_scan_is_not_found) {
  std::unique_ptr<key_store> keys;
  const std::string victim = learner_of(42);
  bool destroyed = false;
  keys = testing_hooks::make_memory_key_store(
      0, {.after_scan_visit = [&](std::string_view subject) {
        if (destroyed || subject != victim) return;
        destroyed = true;
        std::thread other([&] { EXPECT_TRUE(keys->destroy(victim)); });
        other.join();
      }});
  std::map<std::string, data_key> made;
  for (int i = 0; i < 100; ++i) {
    auto k = keys->get_or_create(learner_of(i));
    ASSERT_TRUE(k);
    made[learner_of(i)] = *k;
  }
  (void)keys->preload();  // declines, or keeps a table that no longer answers for victim
  ASSERT_TRUE(destroyed) << "the scan handed the victim's key over";
  auto f = keys->find(victim);
  ASSERT_TRUE(f);
  EXPECT_FALSE(f->has_value()) << "a key destroyed during the preload's scan was found";
  EXPECT_TRUE(keys->is_destroyed(victim));
  EXPECT_FALSE(keys->get_or_create(victim));
  made.erase(victim);
  for (const auto& [subject, key] : made) {
    auto k = keys->find(subject);
    ASSERT_TRUE(k && k->has_value()) << subject;
    EXPECT_EQ(**k, key) << subject;
  }
  keys->end_preload();
}

TEST(rocksdb_key_store, keys_and_tombstones_survive_a_reopen) {
  testing::temp_dir dir;
  data_key k1{};
  {
    auto keys = open_at(dir.sub("keys"));
    auto k = keys->get_or_create("learner:1");
    ASSERT_TRUE(k);
    k1 = *k;
    ASSERT_TRUE(keys->get_or_create("learner:2"));
    ASSERT_TRUE(keys->destroy("learner:2"));
  }
  auto keys = open_at(dir.sub("keys"));
  auto k = keys->get_or_create("learner:1");
  ASSERT_TRUE(k);
  EXPECT_EQ(*k, k1);
  EXPECT_TRUE(keys->is_destroyed("learner:2"));
  EXPECT_FALSE(keys->get_or_create("learner:2"));
}

// The writer's memtable hashes subjects by their first 12 bytes: subjects sharing them
// (one bucket), shorter ones, and ones that are prefixes of each other each keep their own
// key, in the memtable and after a reopen (the clean close flushes them into a table).
TEST(rocksdb_key_store, subjects_sharing_their_first_bytes_keep_their_own_keys) {
  testing::temp_dir dir;
  std::vector<std::string> subjects = {"learner:", "learner:ab", "learner:abcd", "x", "x1"};
  for (int i = 0; i < 200; ++i) {
    // "learner:abcd" and "learner:abce" then digits: two buckets of neighbours.
    subjects.push_back((i % 2 ? "learner:abcd-" : "learner:abce-") + std::to_string(i));
  }
  std::map<std::string, data_key> made;
  {
    auto keys = open_at(dir.sub("keys"), /*cache=*/0);
    std::vector<std::string> ahead(subjects.begin(), subjects.begin() + 100);
    ASSERT_TRUE(keys->create_ahead(ahead));
    for (const auto& s : subjects) {
      auto k = keys->get_or_create(s);
      ASSERT_TRUE(k) << s;
      made[s] = *k;
    }
    EXPECT_EQ(made.size(), subjects.size());
    ASSERT_TRUE(keys->destroy("learner:abcd-1"));
  }
  auto keys = open_at(dir.sub("keys"), /*cache=*/0);
  std::set<std::string> distinct;
  for (const auto& s : subjects) {
    auto f = keys->find(s);
    ASSERT_TRUE(f) << s;
    if (s == "learner:abcd-1") {
      EXPECT_FALSE(f->has_value());
      continue;
    }
    ASSERT_TRUE(f->has_value()) << s;
    EXPECT_EQ(**f, made[s]) << s;
    distinct.insert(
        std::string(reinterpret_cast<const char*>(f->value().data()), f->value().size()));
  }
  EXPECT_EQ(distinct.size(), subjects.size() - 1);  // every key its own
  EXPECT_FALSE(keys->find("learner:abcd-1000")->has_value());
}

TEST(rocksdb_key_store, deferred_new_keys_are_durable_after_sync) {
  testing::temp_dir dir;
  data_key k1{};
  {
    auto keys = open_key_store({.path = dir.sub("keys"), .sync_new_keys = false});
    ASSERT_TRUE(keys);
    auto k = (*keys)->get_or_create("learner:1");
    ASSERT_TRUE(k);
    k1 = *k;
    ASSERT_TRUE((*keys)->sync());
    ASSERT_TRUE((*keys)->sync()) << "a sync with nothing new is a no-op";
  }
  auto keys = open_key_store({.path = dir.sub("keys")});
  ASSERT_TRUE(keys);
  auto k = (*keys)->find("learner:1");
  ASSERT_TRUE(k);
  ASSERT_TRUE(*k);
  EXPECT_EQ(**k, k1);
}

TEST(rocksdb_key_store, keys_created_ahead_survive_a_reopen_with_deferred_syncing) {
  testing::temp_dir dir;
  data_key k1{};
  {
    // Deferred syncing of new keys does not apply: create_ahead writes synced, so no
    // sync() (the event store's before_commit hook) is needed for these keys.
    auto keys = open_key_store({.path = dir.sub("keys"), .sync_new_keys = false});
    ASSERT_TRUE(keys);
    ASSERT_TRUE((*keys)->create_ahead({"learner:1", "learner:2"}));
    auto k = (*keys)->get_or_create("learner:1");
    ASSERT_TRUE(k);
    k1 = *k;
  }
  auto keys = open_at(dir.sub("keys"));
  auto k = keys->find("learner:1");
  ASSERT_TRUE(k && *k);
  EXPECT_EQ(**k, k1);
  auto k2 = keys->find("learner:2");
  ASSERT_TRUE(k2 && *k2);
  // Crypto-shredding works as for any key: destroyed, its bytes leave every file.
  ASSERT_TRUE(keys->destroy("learner:1"));
  EXPECT_TRUE(files_holding(dir.sub("keys"), k1).empty())
      << joined(files_holding(dir.sub("keys"), k1));
  EXPECT_FALSE(files_holding(dir.sub("keys"), **k2).empty());
}

TEST(rocksdb_key_store, a_small_cache_still_answers_correctly) {
  testing::temp_dir dir;
  auto keys = open_at(dir.sub("keys"), /*cache=*/1);
  std::map<int, data_key> made;
  for (int i = 0; i < 100; ++i) {
    auto k = keys->get_or_create("learner:" + std::to_string(i));
    ASSERT_TRUE(k);
    made[i] = *k;
  }
  ASSERT_TRUE(keys->destroy("learner:5"));
  for (int i = 0; i < 100; ++i) {
    auto f = keys->find("learner:" + std::to_string(i));
    ASSERT_TRUE(f);
    if (i == 5) {
      EXPECT_FALSE(f->has_value());
    } else {
      ASSERT_TRUE(f->has_value());
      EXPECT_EQ(**f, made[i]);
    }
  }
  auto no_cache = open_key_store({.path = dir.sub("other"), .cache_entries = 0});
  ASSERT_TRUE(no_cache);
  auto a = (*no_cache)->get_or_create("learner:x");
  auto b = (*no_cache)->get_or_create("learner:x");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, *b);
}

// A read-only follower (`passage replay`, `passage export` beside the server) finds every
// key the writer has, whether it sits in the writer's table files or only in its WAL (the
// follower's own memtable, a hash table keyed by the whole subject), and keys made after
// it opened; destroyed and unknown subjects have none. Subjects that are prefixes of one
// another and of several lengths must not be mixed up by the whole-key hashing.
TEST(rocksdb_key_store, a_read_only_follower_finds_the_writers_keys) {
  testing::temp_dir dir;
  auto writer = open_at(dir.sub("keys"));
  std::map<std::string, data_key> made;
  auto make = [&](const std::string& subject) {
    auto k = writer->get_or_create(subject);
    ASSERT_TRUE(k);
    made[subject] = *k;
  };
  for (int i = 0; i < 50; ++i) make("learner:" + std::to_string(i));
  ASSERT_TRUE(writer->destroy("learner:7"));  // flushes: the keys so far are in a table file
  made.erase("learner:7");
  for (int i = 50; i < 120; ++i) make("learner:" + std::to_string(i));  // WAL only
  make("email:" + std::string(64, 'a'));
  make("e");

  auto follower = open_key_store({.path = dir.sub("keys"), .cache_entries = 0, .read_only = true});
  ASSERT_TRUE(follower) << follower.error().message;
  make("learner:120");  // after the follower opened: found by catching up
  make("learner:1200");
  auto finds_every_key_made = [&] {
    for (const auto& [subject, key] : made) {
      auto f = (*follower)->find(subject);
      ASSERT_TRUE(f) << subject;
      ASSERT_TRUE(f->has_value()) << subject;
      EXPECT_EQ(**f, key) << subject;
    }
  };
  finds_every_key_made();
  for (const char* absent : {"learner:7", "learner:", "learner:1201", "learner:12000", "email:"}) {
    auto f = (*follower)->find(absent);
    ASSERT_TRUE(f) << absent;
    EXPECT_FALSE(f->has_value()) << absent;
  }
  EXPECT_TRUE((*follower)->is_destroyed("learner:7"));
  EXPECT_FALSE((*follower)->is_destroyed("learner:8"));
  EXPECT_FALSE((*follower)->get_or_create("learner:new"));  // a follower never writes

  // The writer moves to a new WAL (a destroy flushes its memtable to a table file) and makes
  // more keys: the follower catches up past the switch (the memtable it replayed from the
  // old WAL dropped, those keys read from the new table file) and finds every key, old and
  // new. (The destroyed key is left out: a follower answers a key it holds until its
  // next refresh, key_store_options::follower_refresh.)
  ASSERT_TRUE(writer->destroy("learner:119"));
  made.erase("learner:119");
  make("learner:3000");
  make("learner:3001");
  finds_every_key_made();
  auto absent = (*follower)->find("learner:3002");
  ASSERT_TRUE(absent);
  EXPECT_FALSE(absent->has_value());
}

// A learner forgotten by the server while a tool follows its key store (`passage export`,
// `replay --out`): the follower catches up at its next refresh and from then on answers
// the key as destroyed, also one it had cached. Until then it may still answer it.
TEST(rocksdb_key_store, a_follower_sees_a_destroy_after_its_next_refresh) {
  testing::temp_dir dir;
  auto writer = open_at(dir.sub("keys"));
  for (auto refresh : {std::chrono::milliseconds(0), std::chrono::milliseconds(10),
                       std::chrono::milliseconds(3'600'000)}) {
    SCOPED_TRACE(refresh.count());
    const std::string subject = "learner:" + std::to_string(refresh.count());
    auto k = writer->get_or_create(subject);
    ASSERT_TRUE(k);
    auto follower =
        open_key_store({.path = dir.sub("keys"), .read_only = true, .follower_refresh = refresh});
    ASSERT_TRUE(follower) << follower.error().message;
    auto before = (*follower)->find(subject);  // now cached by the follower
    ASSERT_TRUE(before && before->has_value());
    EXPECT_EQ(**before, *k);
    ASSERT_TRUE(writer->destroy(subject));
    if (refresh.count() == 10) std::this_thread::sleep_for(std::chrono::milliseconds(30));
    auto after = (*follower)->find(subject);
    ASSERT_TRUE(after);
    if (refresh.count() < 1000) {
      EXPECT_FALSE(after->has_value()) << "a destroyed key was still used";
      EXPECT_TRUE((*follower)->is_destroyed(subject));
    } else {
      // Not due yet: the key it holds is answered without catching up.
      EXPECT_TRUE(after->has_value());
    }
  }
}

// A follower's preloaded table would be a snapshot: a learner the server forgets during
// a replay beside it (`passage replay --out`, exports) would still be decrypted with it.
// It declines, with the keys in table files or in the writer's memtable alike, and its
// lookups answer as before.
TEST(rocksdb_key_store, a_follower_never_preloads) {
  testing::temp_dir dir;
  auto writer = open_at(dir.sub("keys"));
  std::vector<std::string> subjects;
  for (int i = 0; i < 100; ++i) subjects.push_back(learner_of(i));
  ASSERT_TRUE(writer->create_ahead(subjects));
  ASSERT_TRUE(writer->destroy(learner_of(0)));  // flushes: those keys are in a table file
  subjects.clear();
  for (int i = 1000; i < 1100; ++i) subjects.push_back(learner_of(i));  // unflushed
  ASSERT_TRUE(writer->create_ahead(subjects));
  auto follower = open_key_store({.path = dir.sub("keys"), .cache_entries = 0, .read_only = true});
  ASSERT_TRUE(follower) << follower.error().message;
  EXPECT_FALSE((*follower)->preload());
  for (int i : {1, 99, 1000, 1099}) {
    auto mine = writer->find(learner_of(i));
    auto theirs = (*follower)->find(learner_of(i));
    ASSERT_TRUE(mine && theirs && mine->has_value() && theirs->has_value()) << i;
    EXPECT_EQ(**mine, **theirs);
  }
  auto gone = (*follower)->find(learner_of(0));
  ASSERT_TRUE(gone);
  EXPECT_FALSE(gone->has_value());
  (*follower)->end_preload();  // harmless without a preload
  // The writer itself (the exclusive open of `passage replay` in place) still preloads.
  EXPECT_TRUE(writer->preload());
  writer->end_preload();
}

TEST(rocksdb_key_store, destroyed_key_bytes_leave_every_file_while_in_the_wal) {
  testing::temp_dir dir;
  const auto path = dir.sub("keys");
  auto keys = open_at(path);
  auto k = keys->get_or_create("learner:victim");
  ASSERT_TRUE(k);
  std::vector<data_key> others;
  for (int i = 0; i < 20; ++i) {
    auto o = keys->get_or_create("learner:" + std::to_string(i));
    ASSERT_TRUE(o);
    others.push_back(*o);
  }
  // Not vacuous: before destroy the bytes are on disk (in the synced WAL).
  ASSERT_FALSE(files_holding(path, *k).empty());

  ASSERT_TRUE(keys->destroy("learner:victim"));
  EXPECT_TRUE(files_holding(path, *k).empty()) << joined(files_holding(path, *k));
  // The other keys are still on disk and readable after a restart.
  keys.reset();
  keys = open_at(path);
  for (int i = 0; i < 20; ++i) {
    auto f = keys->find("learner:" + std::to_string(i));
    ASSERT_TRUE(f && f->has_value());
    EXPECT_EQ(**f, others[i]);
  }
  EXPECT_TRUE(keys->is_destroyed("learner:victim"));
  EXPECT_TRUE(files_holding(path, *k).empty());
}

TEST(rocksdb_key_store, destroyed_key_bytes_leave_every_file_once_in_sst_files) {
  testing::temp_dir dir;
  const auto path = dir.sub("keys");
  data_key k{};
  {
    auto keys = open_at(path);
    auto made = keys->get_or_create("learner:victim");
    ASSERT_TRUE(made);
    k = *made;
  }
  // Reopening recovers the WAL into an SST file; more keys land in further ones.
  for (int round = 0; round < 3; ++round) {
    auto keys = open_at(path);
    for (int i = 0; i < 10; ++i) {
      ASSERT_TRUE(
          keys->get_or_create("learner:" + std::to_string(round) + "-" + std::to_string(i)));
    }
  }
  ASSERT_FALSE(files_holding(path, k).empty());

  auto keys = open_at(path);
  ASSERT_TRUE(keys->destroy("learner:victim"));
  EXPECT_TRUE(files_holding(path, k).empty()) << joined(files_holding(path, k));
  auto found = keys->find("learner:victim");
  ASSERT_TRUE(found);
  EXPECT_FALSE(found->has_value());
  EXPECT_TRUE(keys->get_or_create("learner:0-0"));
}

// A crash between the durable tombstone and the purge: the next open finishes the purge.
// White-box: writes what destroy() writes first (tombstone + purge marker) by hand.
TEST(rocksdb_key_store, open_finishes_a_purge_interrupted_by_a_crash) {
  testing::temp_dir dir;
  const auto path = dir.sub("keys");
  data_key k{};
  {
    auto keys = open_at(path);
    auto made = keys->get_or_create("learner:victim");
    ASSERT_TRUE(made);
    k = *made;
  }
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), path, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::WriteBatch batch;
    batch.Put("learner:victim", "destroyed");
    batch.Put(rocksdb::Slice("\0purge-pending", 14), "");
    rocksdb::WriteOptions wo;
    wo.sync = true;
    ASSERT_TRUE(db->Write(wo, &batch).ok());
  }
  ASSERT_FALSE(files_holding(path, k).empty());
  auto keys = open_at(path);
  EXPECT_TRUE(files_holding(path, k).empty()) << joined(files_holding(path, k));
  EXPECT_TRUE(keys->is_destroyed("learner:victim"));
}

TEST(rocksdb_key_store, open_requires_a_path) { EXPECT_FALSE(open_key_store({.path = ""})); }

}  // namespace
}  // namespace passage::eventstore
