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
#include <cstring>
#include <exception>
#include <memory>
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

// Key-value pairs gathered in memory, then written in key order as one run file (or, for a
// live batch of the read models, visited in key order into its WriteBatch). Keys and
// values are copied into chunks of memory that never move (a run holds millions of rows:
// one growing buffer copied itself, and touched fresh pages, each time it doubled).
class sorted_run {
 public:
  // On the applying thread: only copies (the sort keys are made by write(), on the
  // worker's).
  void add(std::string_view key, std::string_view value) {
    const std::size_t n = key.size() + value.size();
    if (left_ < n) next_chunk(n);
    char* at = chunk_end_ - left_;
    if (!key.empty()) std::memcpy(at, key.data(), key.size());
    if (!value.empty()) std::memcpy(at + key.size(), value.data(), value.size());
    left_ -= n;
    used_ += n;
    entries_.push_back(
        {at, static_cast<std::uint32_t>(key.size()), static_cast<std::uint32_t>(value.size())});
  }
  bool empty() const { return entries_.empty(); }
  std::size_t bytes() const { return used_ + entries_.size() * sizeof(entry); }
  // Empties the run; its memory is kept for the next one.
  void clear() {
    entries_.clear();
    used_ = 0;
    current_ = 0;
    left_ = 0;
    chunk_end_ = nullptr;
  }
  // Swaps the pairs (and the memory holding them) with `other`'s; each keeps its own sort
  // buffer. A bulk load fills one run while a worker writes the other: swapped so, only
  // the run being written ever holds a sort buffer, kept from one run file to the next (a
  // buffer freed after each file was given back to the system and faulted in again for
  // the next, tens of megabytes each time, zeroed by the kernel page by page).
  void swap_rows(sorted_run& other) noexcept {
    std::swap(chunks_, other.chunks_);
    std::swap(current_, other.current_);
    std::swap(chunk_end_, other.chunk_end_);
    std::swap(left_, other.left_);
    std::swap(used_, other.used_);
    std::swap(entries_, other.entries_);
  }
  // clear(), and gives its memory back (its sort buffer's too).
  void release() {
    clear();
    std::vector<chunk>().swap(chunks_);
    std::vector<entry>().swap(entries_);
    std::vector<sort_entry>().swap(sorted_);
  }
  // Calls visit(key, value) for the pairs in key order; of equal keys only for the last
  // added, as a WriteBatch would keep it. write() goes through it, and so do the read
  // models' live batches (gathered here, then put into their WriteBatch in key order).
  template <typename Visit>
  void for_each_in_key_order(Visit&& visit) {
    sort_entries();
    for (std::size_t i = 0; i < sorted_.size(); ++i) {
      if (i + 1 < sorted_.size() && same_key(sorted_[i], sorted_[i + 1])) continue;
      const entry& e = entries_[sorted_[i].index];
      visit(key(e), value(e));
    }
  }
  // Writes the pairs in key order to `path` through `env` (Env::Default() when null); of
  // equal keys the last added wins, as in a WriteBatch. `out` describes the file. The
  // sort's memory is kept for the next write (release() gives it back; see swap_rows).
  rocksdb::Status write(rocksdb::Env* env, const std::string& path, run_file& out);

 private:
  struct entry {
    const char* data;  // the key, then the value
    std::uint32_t key_size;
    std::uint32_t value_size;
  };
  struct chunk {
    std::unique_ptr<char[]> data;
    std::size_t size = 0;
  };
  // Bytes a chunk holds (more for a bigger pair).
  static constexpr std::size_t chunk_bytes = 1u << 20;
  // An entry, by its index in entries_ (the order added), with its key's size and first
  // 32 bytes as big-endian integers, zero-padded: a whole row key (a prefix, a uuid and a
  // position: 25 bytes), so sorting compares entries without reading the keys, scattered
  // over the chunks (many share their first 17 bytes: the rows of one invite or learner).
  struct sort_entry {
    std::uint64_t head[4];
    std::uint32_t index;  // (a run is far smaller than 2^32 entries of 16 bytes each)
    std::uint32_t key_size;
  };
  static std::string_view key(const entry& e) { return {e.data, e.key_size}; }
  static std::string_view value(const entry& e) { return {e.data + e.key_size, e.value_size}; }
  // Fills sorted_ with the entries in key order, equal keys in the order added.
  void sort_entries();
  // Neighbours in sorted_ with the same key: compared by their heads first.
  bool same_key(const sort_entry& a, const sort_entry& b) const;
  // Moves to the next chunk (kept from an earlier run when big enough) with room for `n`.
  void next_chunk(std::size_t n) {
    while (current_ < chunks_.size() && chunks_[current_].size < n) ++current_;
    if (current_ == chunks_.size()) {
      const std::size_t size = std::max(n, chunk_bytes);
      chunks_.push_back({std::make_unique_for_overwrite<char[]>(size), size});
    }
    chunk_end_ = chunks_[current_].data.get() + chunks_[current_].size;
    left_ = chunks_[current_].size;
    ++current_;
  }
  std::vector<chunk> chunks_;
  std::size_t current_ = 0;  // the next chunk to fill
  char* chunk_end_ = nullptr;
  std::size_t left_ = 0;  // room before chunk_end_
  std::size_t used_ = 0;  // bytes of keys and values
  std::vector<entry> entries_;
  std::vector<sort_entry> sorted_;  // for_each_in_key_order's order (kept for reuse)
};

// Bytewise key order (RocksDB's default comparator): -1, 0 or 1.
int compare_keys(std::string_view a, std::string_view b);

// The `invalidate_page_cache` argument of a bulk load's SstFileWriters. With true
// (RocksDB's default) each writer asks the kernel, every megabyte, to write the file's
// pages out at once and drop them (posix_fadvise DONTNEED) on the thread writing the rows:
// ~5 % of the merge's CPU and of the records'. The pages are written out in the background
// anyway, and the files are read right after (opened by the ingestion, then by queries).
inline constexpr bool invalidate_page_cache = false;

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
