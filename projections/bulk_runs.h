#pragma once
// A bulk load's rows on their way into the read-model folder (read_models::set_bulk_load):
// gathered in memory as sorted runs, each written to a plain file of its own, then merged
// once, at the load's end, into the folder's final compressed SST files, which are ingested
// with the load's records (they never overlap, so RocksDB places them at the bottom level
// and never compacts them again).
//
// Why not ingest each run and let RocksDB compact them (the former way): the runs overlap
// (rows are keyed by invite or learner, not by time), so the compaction was one job on one
// thread, rewriting every row, after the log was read. Here the merge is split by key range
// over several threads, the runs are plain files (no block building, no compression, no
// sync: a crash leaves them to be deleted), and the folder holds nothing of the load before
// its single ingestion: a load cut short leaves the folder as it was.

#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/status.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace passage::projections::bulk {

// A run file written by sorted_run::write: entries in key order, no key twice.
struct run_file {
  std::string path;
  // Every `index_every`-th key with the byte offset of its entry: where a merge of a key
  // range starts reading the file.
  std::vector<std::pair<std::string, std::uint64_t>> index;
  std::uint64_t entries = 0;
  std::uint64_t bytes = 0;  // the file's size
};

inline constexpr std::size_t index_every = 1024;

// Key-value pairs gathered in memory, then written in key order as one run file. One
// buffer holds every key and value: a run holds millions of rows.
class sorted_run {
 public:
  // On the applying thread: only copies (the sort keys are made by write(), on the
  // worker's).
  void add(std::string_view key, std::string_view value) {
    entries_.push_back({data_.size(), static_cast<std::uint32_t>(key.size()),
                        static_cast<std::uint32_t>(value.size())});
    data_.append(key);
    data_.append(value);
  }
  bool empty() const { return entries_.empty(); }
  std::size_t bytes() const { return data_.size() + entries_.size() * sizeof(entry); }
  void clear() {
    data_.clear();
    entries_.clear();
  }
  // clear(), and gives its memory back (clear() keeps it for the next run).
  void release() {
    std::string().swap(data_);
    std::vector<entry>().swap(entries_);
  }
  // Writes the pairs in key order to `path` through `env` (Env::Default() when null); of
  // equal keys the last added wins, as in a WriteBatch. `out` describes the file.
  rocksdb::Status write(rocksdb::Env* env, const std::string& path, run_file& out);

 private:
  struct entry {
    std::size_t offset;
    std::uint32_t key_size;
    std::uint32_t value_size;
  };
  // An entry with the key's first 32 bytes as big-endian integers, zero-padded: a whole
  // row key (a prefix, a uuid and a position: 25 bytes), so sorting compares entries
  // without reading the keys, scattered over the buffer once sorting moves them (many
  // share their first 17 bytes: the rows of one invite or learner).
  struct sort_entry {
    std::uint64_t head[4];
    entry e;
  };
  std::string_view key(const entry& e) const { return {data_.data() + e.offset, e.key_size}; }
  std::string_view value(const entry& e) const {
    return {data_.data() + e.offset + e.key_size, e.value_size};
  }
  std::string data_;
  std::vector<entry> entries_;
};

// Bytewise key order (RocksDB's default comparator): -1, 0 or 1.
int compare_keys(std::string_view a, std::string_view b);

struct merge_options {
  // The final files' options (compression, block size...) and environment.
  rocksdb::Options sst;
  // Output files are named <out_prefix><range>-<n>.sst.
  std::string out_prefix;
  // Key ranges merged in parallel (one thread each); fewer when the runs are small.
  std::size_t ranges = 2;
  // An output file ends at the first key after it reaches this size.
  std::uint64_t file_bytes = 64u << 20;
};

// Merges `runs` into SST files in key order; of equal keys the one of the latest run (in
// `runs`' order) wins. Returns the files written, in key order, in `out` (also on failure:
// the caller deletes them).
// Runs `f` (returning a Status) with any exception it throws (no memory, no thread) turned
// into a failed Status: the bulk load's threads report failures, never end the process.
template <typename F>
rocksdb::Status contained(F&& f) noexcept {
  try {
    return std::forward<F>(f)();
  } catch (const std::exception& e) {
    return rocksdb::Status::Aborted(e.what());
  } catch (...) {
    return rocksdb::Status::Aborted("unknown exception");
  }
}

rocksdb::Status merge_runs(const std::vector<run_file>& runs, const merge_options& options,
                           std::vector<std::string>& out);

}  // namespace passage::projections::bulk
