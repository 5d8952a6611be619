// The key store's preload scan and its hashed memtables: a key store written before the
// writer's memtable was hashed (no prefix extractor, a skip list) opens and answers every
// key, and the preload's scan visits every learner's key wherever it is — table files of
// either build, a writer's unflushed memtable over many 12-byte buckets; a follower finds
// every key of its memtable replayed from the writer's WAL (and never preloads).
//
// Whether a scan visited a key is seen through a damaged one: preload() declines when a
// learner's stored value is neither a key nor a tombstone, and accepts when it never saw
// it. The damaged subject sorts after every other learner's, so a scan that stops early,
// or walks one bucket only, misses it.

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/random.h"
#include "common/uuid.h"
#include "eventstore/key_store.h"
#include "tests/support/files_holding.h"
#include "tests/support/temp_dir.h"

namespace passage::eventstore {
namespace {

const std::string kDamaged = "learner:ffffffff-ffff-4fff-bfff-ffffffffffff";

// A learner's subject with a random id: its first 12 bytes ("learner:" and four hex
// digits) spread subjects over many buckets of the writer's memtable.
std::string random_learner() { return "learner:" + uuid::random().to_string(); }

data_key random_key() {
  data_key k;
  secure_random_bytes(k);
  return k;
}

std::string as_string(const data_key& k) {
  return {reinterpret_cast<const char*>(k.data()), k.size()};
}

// The key store's options at 1087626: bloom filters, no prefix extractor, a skip list.
rocksdb::Options old_options() {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.compression = rocksdb::kNoCompression;
  o.bottommost_compression = rocksdb::kNoCompression;
  o.avoid_flush_during_shutdown = true;  // what is in the WAL stays there
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  o.memtable_whole_key_filtering = true;
  o.memtable_prefix_bloom_size_ratio = 0.02;
  return o;
}

// Writes keys as that build did: `flushed` into a table file, then `in_wal` only into
// the write-ahead log. Each may hold the damaged subject.
void write_old(const std::string& path, const std::map<std::string, std::string>& flushed,
               const std::map<std::string, std::string>& in_wal) {
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(old_options(), path, &raw);
  ASSERT_TRUE(s.ok()) << s.ToString();
  std::unique_ptr<rocksdb::DB> db(raw);
  for (const auto& [subject, value] : flushed) ASSERT_TRUE(db->Put({}, subject, value).ok());
  if (!flushed.empty()) {
    ASSERT_TRUE(db->Flush({}).ok());
  }
  for (const auto& [subject, value] : in_wal) ASSERT_TRUE(db->Put({}, subject, value).ok());
  std::uint64_t unflushed = 0;
  ASSERT_TRUE(db->GetIntProperty("rocksdb.num-entries-active-mem-table", &unflushed));
  ASSERT_EQ(unflushed, in_wal.size());
}

std::map<std::string, std::string> random_keys(int n) {
  std::map<std::string, std::string> out;
  while (out.size() < std::size_t(n)) out.emplace(random_learner(), as_string(random_key()));
  return out;
}

void expect_finds_every_key(key_store& keys, const std::map<std::string, std::string>& made) {
  for (const auto& [subject, value] : made) {
    auto f = keys.find(subject);
    ASSERT_TRUE(f) << subject << ": " << f.error().message;
    ASSERT_TRUE(f->has_value()) << subject;
    EXPECT_EQ(as_string(**f), value) << subject;
  }
}

// Where the old build left the damaged subject, if anywhere.
enum class damaged_in { nowhere, table_file, wal };

class old_key_store : public ::testing::TestWithParam<damaged_in> {};

TEST_P(old_key_store, opens_with_every_key_found_and_preloaded) {
  testing::temp_dir dir;
  const auto path = dir.sub("keys");
  auto flushed = random_keys(200), in_wal = random_keys(100);
  if (GetParam() == damaged_in::table_file) flushed[kDamaged] = "damaged";
  if (GetParam() == damaged_in::wal) in_wal[kDamaged] = "damaged";
  write_old(path, flushed, in_wal);
  flushed.erase(kDamaged);
  in_wal.erase(kDamaged);

  auto keys = open_key_store({.path = path, .cache_entries = 0});
  ASSERT_TRUE(keys) << keys.error().message;
  expect_finds_every_key(**keys, flushed);
  expect_finds_every_key(**keys, in_wal);
  EXPECT_EQ((*keys)->preload(), GetParam() == damaged_in::nowhere)
      << "the preload's scan did not see the damaged key";
  expect_finds_every_key(**keys, flushed);
  expect_finds_every_key(**keys, in_wal);
  // Keys made today beside the old ones.
  auto made = (*keys)->get_or_create(random_learner());
  ASSERT_TRUE(made);
}

INSTANTIATE_TEST_SUITE_P(damaged, old_key_store,
                         ::testing::Values(damaged_in::nowhere, damaged_in::table_file,
                                           damaged_in::wal),
                         [](const auto& info) {
                           switch (info.param) {
                             case damaged_in::nowhere:
                               return "nowhere";
                             case damaged_in::table_file:
                               return "in_a_table_file";
                             case damaged_in::wal:
                               return "in_the_wal";
                           }
                           return "?";
                         });

using testing::files_holding;

// A writer holding unflushed keys over many buckets of its hashed memtable, no destroy or
// flush before: its preload visits every learner's key (the damaged one, sorting last, in
// a table file from the open), after flushing the memtable into a table file.
TEST(key_store_scan, a_writer_preload_visits_every_key_of_its_hashed_memtable) {
  for (bool damaged : {false, true}) {
    SCOPED_TRACE(damaged ? "damaged" : "intact");
    testing::temp_dir dir;
    const auto path = dir.sub("keys");
    if (damaged) write_old(path, {}, {{kDamaged, "damaged"}});
    auto keys = open_key_store({.path = path, .cache_entries = 0, .sync_new_keys = false});
    ASSERT_TRUE(keys) << keys.error().message;
    std::map<std::string, std::string> made;
    std::set<std::string> buckets;
    for (int i = 0; i < 300; ++i) {
      auto subject = random_learner();
      auto k = (*keys)->get_or_create(subject);
      ASSERT_TRUE(k);
      made[subject] = as_string(*k);
      buckets.insert(subject.substr(0, 12));
    }
    ASSERT_GT(buckets.size(), 200u);
    const std::string some_key = made.begin()->second;
    for (const auto& f : files_holding(path, some_key)) {
      EXPECT_EQ(f.find(".sst"), std::string::npos) << f << ": flushed before the preload";
    }

    EXPECT_EQ((*keys)->preload(), !damaged) << "the preload's scan did not see the damaged key";
    expect_finds_every_key(**keys, made);
    bool in_a_table = false;
    for (const auto& f : files_holding(path, some_key)) in_a_table |= f.ends_with(".sst");
    EXPECT_TRUE(in_a_table) << "the writer's memtable was not flushed before its scan";
  }
}

// A follower holds its writer's unflushed keys in a memtable of its own (hashed by whole
// subject), replayed from the writer's WAL: it finds every one. It never preloads (its table
// would be a snapshot that misses the writer's later destroys; key_store.h).
TEST(key_store_scan, a_follower_finds_every_key_of_its_memtable_and_never_preloads) {
  testing::temp_dir dir;
  const auto path = dir.sub("keys");
  auto made = random_keys(300);
  write_old(path, {}, made);
  auto follower = open_key_store({.path = path, .cache_entries = 0, .read_only = true});
  ASSERT_TRUE(follower) << follower.error().message;
  EXPECT_FALSE((*follower)->preload());
  expect_finds_every_key(**follower, made);
}

}  // namespace
}  // namespace passage::eventstore
