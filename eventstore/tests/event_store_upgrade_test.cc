// Event stores written before the event id index's memtable was hashed by the id's first two
// bytes: that family had a 16-byte fixed prefix extractor, a hash link list memtable and
// bloom filters. Their table files (filters built for that extractor) and their write-ahead
// log (replayed into today's memtable) must answer as before: a retried append is found
// already stored, a new id is stored once.

#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/table_properties.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "eventstore/format.h"
#include "eventstore/tests/store_fixture.h"

namespace passage::eventstore::testing {
namespace {

struct old_event {
  new_event event;
  std::string stream;
  std::uint64_t position;
};

// Writes events as the store did at 1087626 (the same format version and record layout),
// with that build's options for the event id family: `flushed` events end in table files,
// the rest only in the write-ahead log. `settle_log` compacts the log's table files to the
// bottom level first (their sequence numbers zeroed, as a long-lived store's are), so that
// RocksDB does not rewrite them in today's compression as soon as today's build opens them
// (a "bottommost files" compaction of a small store's only level).
std::vector<old_event> write_old_store(const std::string& path, int flushed, int in_wal_only,
                                       bool settle_log = false) {
  rocksdb::DBOptions db;
  db.create_if_missing = true;
  db.create_missing_column_families = true;
  db.allow_concurrent_memtable_write = false;  // the hash memtable takes one writer
  db.avoid_flush_during_shutdown = true;       // what is in the WAL stays there
  rocksdb::ColumnFamilyOptions ids;
  ids.prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(16));
  ids.memtable_factory.reset(rocksdb::NewHashLinkListRepFactory(1u << 20));
  ids.memtable_prefix_bloom_size_ratio = 0.1;
  rocksdb::BlockBasedTableOptions t;
  t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  ids.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, {}}, {format::kLogFamily, {}},
      {format::kStreamIndexFamily, {}},        {format::kEventIdsFamily, ids},
      {format::kTimeIndexFamily, {}},
  };
  std::vector<rocksdb::ColumnFamilyHandle*> h;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(db, path, families, &h, &raw);
  EXPECT_TRUE(s.ok()) << s.ToString();
  if (!s.ok()) return {};
  std::unique_ptr<rocksdb::DB> owner(raw);
  EXPECT_TRUE(raw->Put({}, h[0], std::string(format::kFormatVersionKey),
                       std::to_string(format::kFormatVersion))
                  .ok());

  std::vector<old_event> out;
  std::uint64_t versions[5] = {};
  const timestamp start = from_unix_micros(1'780'000'000'000'000);
  auto write = [&](int n) {
    for (int i = 0; i < n; ++i) {
      old_event o{make_event("T", std::to_string(out.size())),
                  "s-" + std::to_string(out.size() % 5), out.size() + 1};
      // Some ids share their first two bytes (one bucket of today's memtable).
      if (out.size() % 3 == 0) o.event.event_id.bytes[0] = o.event.event_id.bytes[1] = 0x42;
      const std::uint64_t version = ++versions[out.size() % 5];
      const timestamp at = start + std::chrono::microseconds(o.position);
      rocksdb::WriteBatch wb;
      std::string record;
      format::encode_new_record(o.event, o.stream, version, o.position, at, record);
      wb.Put(h[1], format::log_key(o.position), record);
      wb.Put(h[2], format::stream_index_key(o.stream, version), format::log_key(o.position));
      wb.Put(h[3], std::string(o.event.event_id.as_bytes()), format::log_key(o.position));
      wb.Put(h[4], format::time_index_key(at, o.position), "");
      EXPECT_TRUE(raw->Write({}, &wb).ok());
      out.push_back(std::move(o));
    }
  };
  write(flushed);
  rocksdb::FlushOptions fo;
  fo.wait = true;
  EXPECT_TRUE(raw->Flush(fo, h).ok());
  if (settle_log) {
    rocksdb::CompactRangeOptions co;
    co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    EXPECT_TRUE(raw->CompactRange(co, h[1], nullptr, nullptr).ok());
  }
  write(in_wal_only);

  // The set-up holds what it should: the ids' table files carry the old extractor, and
  // the last events are only in the memtable (so only in the WAL once closed).
  rocksdb::TablePropertiesCollection props;
  EXPECT_TRUE(raw->GetPropertiesOfAllTables(h[3], &props).ok());
  EXPECT_FALSE(props.empty());
  for (const auto& [file, p] : props) EXPECT_EQ(p->prefix_extractor_name, "rocksdb.FixedPrefix.16");
  std::uint64_t unflushed = 0;
  EXPECT_TRUE(raw->GetIntProperty(h[3], "rocksdb.num-entries-active-mem-table", &unflushed));
  EXPECT_EQ(unflushed, std::uint64_t(in_wal_only));
  for (auto* c : h) raw->DestroyColumnFamilyHandle(c);
  return out;
}

TEST_F(store_test, EventIdsWrittenWithTheOldIdOptionsAreFoundAfterTheUpgrade) {
  store_.reset();
  const auto old = write_old_store(dir_.sub("events"), 200, 100);
  ASSERT_EQ(old.size(), 300u);
  reopen();
  ASSERT_EQ(store_->head_position(), 300u);

  std::uint64_t head = 300;
  auto check = [&] {
    for (const auto& o : old) {
      auto again = store_->append({to(o.stream, expected_version::no_stream(), {o.event})});
      ASSERT_TRUE(again) << o.position << ": " << again.error().message;
      EXPECT_TRUE(again->already_stored) << o.position;
      EXPECT_EQ(again->first_position, o.position);
    }
    EXPECT_EQ(store_->head_position(), head);
    // A new id in the bucket of stored ones (first two bytes shared, the last one not):
    // stored once, then found.
    auto fresh = make_event();
    fresh.event_id = old[0].event.event_id;
    fresh.event_id.bytes[15] ^= 0x80;
    fresh.event_id.bytes[14] ^= static_cast<std::uint8_t>(head);  // unlike last time
    for (bool stored_before : {false, true}) {
      auto r = store_->append({to("s-new", expected_version::any(), {fresh})});
      ASSERT_TRUE(r) << r.error().message;
      EXPECT_EQ(r->already_stored, stored_before);
      EXPECT_EQ(r->first_position, head + 1);
    }
    EXPECT_EQ(store_->head_position(), ++head);
  };
  check();
  // Closed (the flush writes today's table files beside the old ones) and opened again.
  reopen();
  check();
  auto all = store_->read_all({}, 1000);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 302u);
  for (const auto& o : old) EXPECT_EQ((*all)[o.position - 1].event_id, o.event.event_id);
}

// What the table files of a closed store's folder were written with: per column family
// (but the default one, which holds only the format key), per file name.
struct table_file {
  std::string compression;
  std::uint64_t data_size = 0;  // its data blocks as stored
  std::uint64_t raw_size = 0;   // their keys and values before any compression
};
std::map<std::string, std::map<std::string, table_file>> table_files(const std::string& path) {
  const std::vector<std::string> names = {format::kLogFamily, format::kStreamIndexFamily,
                                          format::kEventIdsFamily, format::kTimeIndexFamily};
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {{rocksdb::kDefaultColumnFamilyName, {}}};
  for (const auto& n : names) families.push_back({n, {}});
  std::vector<rocksdb::ColumnFamilyHandle*> h;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::OpenForReadOnly({}, path, families, &h, &raw);
  EXPECT_TRUE(s.ok()) << s.ToString();
  if (!s.ok()) return {};
  std::unique_ptr<rocksdb::DB> owner(raw);
  std::map<std::string, std::map<std::string, table_file>> out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    rocksdb::TablePropertiesCollection props;
    EXPECT_TRUE(raw->GetPropertiesOfAllTables(h[i + 1], &props).ok());
    for (const auto& [file, p] : props) {
      out[names[i]][file] = {p->compression_name, p->data_size,
                             p->raw_key_size + p->raw_value_size};
    }
  }
  for (auto* c : h) raw->DestroyColumnFamilyHandle(c);
  return out;
}

// Table files written before the store compressed with LZ4 (with RocksDB's default, Snappy)
// read as they did beside the LZ4 files written since: each block records its compression.
TEST_F(store_test, SnappyTablesOfEarlierBuildsReadAsBeforeBesideLz4Ones) {
  const auto supported = rocksdb::GetSupportedCompressions();
  if (std::find(supported.begin(), supported.end(), rocksdb::kLZ4Compression) == supported.end() ||
      std::find(supported.begin(), supported.end(), rocksdb::kSnappyCompression) ==
          supported.end()) {
    GTEST_SKIP() << "this RocksDB lacks LZ4 or Snappy";
  }
  store_.reset();
  const std::string path = dir_.sub("events");
  const auto old = write_old_store(path, 200, 100, /*settle_log=*/true);
  ASSERT_EQ(old.size(), 300u);
  const auto before = table_files(path);
  ASSERT_TRUE(before.count(format::kLogFamily));
  for (const auto& [file, t] : before.at(format::kLogFamily)) {
    EXPECT_EQ(t.compression, "Snappy") << file;
    // Its blocks were compressed, not stored as they were (RocksDB keeps a block
    // uncompressed when compression saves too little, whatever the file's type says): under
    // 80 % of the raw keys and values (Snappy: ~50 %; the same files uncompressed: ~97 %,
    // key prefixes shared but lengths and restart points added).
    EXPECT_LT(t.data_size * 5, t.raw_size * 4)
        << file << ": " << t.data_size << " of " << t.raw_size << " bytes";
  }

  auto check = [&](std::size_t total) {
    auto all = store_->read_all({}, 1000);
    ASSERT_TRUE(all) << all.error().message;
    ASSERT_EQ(all->size(), total);
    for (const auto& o : old) {
      const auto& e = (*all)[o.position - 1];
      EXPECT_EQ(e.position, o.position);
      EXPECT_EQ(e.event_id, o.event.event_id);
      EXPECT_EQ(e.stream, o.stream);
      EXPECT_EQ(e.type, o.event.type);
      EXPECT_EQ(e.data, o.event.data);
    }
    for (int s = 0; s < 5; ++s) {
      const std::string stream = "s-" + std::to_string(s);
      auto events = store_->read_stream(stream, 1, read_direction::forward, 1000);
      ASSERT_TRUE(events) << events.error().message;
      ASSERT_EQ(events->size(), 60u) << stream;
      for (std::size_t v = 0; v < events->size(); ++v) {
        EXPECT_EQ((*events)[v].stream_version, v + 1);
        EXPECT_EQ((*events)[v].event_id, old[(*events)[v].position - 1].event.event_id);
      }
      auto version = store_->stream_version(stream);
      ASSERT_TRUE(version);
      EXPECT_EQ(*version, 60u);
    }
  };
  reopen();
  check(300);
  std::vector<new_event> more;
  for (int i = 0; i < 100; ++i) more.push_back(make_event("T", std::string(200, 'x')));
  must_append({to("s-new", expected_version::no_stream(), more)});
  check(400);
  store_.reset();  // the closing flush writes today's table files

  // Every family has files written since (the appended events, flushed at close), all LZ4;
  // the log keeps its Snappy files beside its new ones.
  const auto after = table_files(path);
  for (const auto& family : {format::kLogFamily, format::kStreamIndexFamily,
                             format::kEventIdsFamily, format::kTimeIndexFamily}) {
    const auto old_files =
        before.count(family) ? before.at(family) : std::map<std::string, table_file>{};
    int written_since = 0;
    ASSERT_TRUE(after.count(family)) << family;
    for (const auto& [file, t] : after.at(family)) {
      if (old_files.count(file)) continue;
      ++written_since;
      EXPECT_EQ(t.compression, "LZ4") << family << " " << file;
    }
    EXPECT_GT(written_since, 0) << family;
  }
  std::set<std::string> kinds;
  for (const auto& [file, t] : after.at(format::kLogFamily)) kinds.insert(t.compression);
  EXPECT_EQ(kinds, (std::set<std::string>{"LZ4", "Snappy"}));
  reopen();
  check(400);
  auto added = store_->read_stream("s-new", 1, read_direction::forward, 1000);
  ASSERT_TRUE(added);
  ASSERT_EQ(added->size(), 100u);
  for (std::size_t i = 0; i < 100; ++i) EXPECT_EQ((*added)[i].event_id, more[i].event_id);
}

}  // namespace
}  // namespace passage::eventstore::testing
