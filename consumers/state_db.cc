#include "consumers/state_db.h"

#include <rocksdb/slice_transform.h>

#include <filesystem>
#include <system_error>

namespace passage::consumers {

rocksdb::Status open_state_db(const std::string& path, std::unique_ptr<rocksdb::DB>& db,
                              std::size_t write_buffer_bytes, std::size_t hint_prefix_bytes) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);  // Open() names the problem if this failed
  rocksdb::Options o;
  o.create_if_missing = true;
  o.keep_log_file_num = 2;
  o.max_manifest_file_size = 1u << 20;
  o.write_buffer_size = write_buffer_bytes;
  if (hint_prefix_bytes > 0) {
    o.memtable_insert_with_hint_prefix_extractor.reset(
        rocksdb::NewFixedPrefixTransform(hint_prefix_bytes));
  }
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(o, path, &raw);
  if (s.ok()) db.reset(raw);
  return s;
}

}  // namespace passage::consumers
