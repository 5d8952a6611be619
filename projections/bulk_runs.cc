#include "projections/bulk_runs.h"

#include <rocksdb/slice.h>
#include <rocksdb/sst_file_writer.h>

#include <algorithm>
#include <cstring>
#include <future>
#include <memory>
#include <optional>

namespace passage::projections::bulk {

namespace {

// A run file's entry: key size and value size (4 bytes each, little-endian), key, value.
constexpr std::size_t entry_head = 8;
// Bytes a run file is written and read by.
constexpr std::size_t io_chunk = 256u << 10;

rocksdb::Env* env_or_default(rocksdb::Env* env) {
  return env != nullptr ? env : rocksdb::Env::Default();
}

void put_u32(std::string& out, std::uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out.append(b, 4);
}

std::uint32_t get_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  return v;
}

// A key's first 32 bytes as big-endian integers, zero-padded, with its size: keys compared
// by these (a row key is 25 bytes: a prefix, a uuid and a position) without a call to
// memcmp. A merge compares each key it writes several times (the heap of its runs, the
// range's end, the key after it), and such calls were a tenth of its time.
struct key_head {
  std::uint64_t words[4] = {0, 0, 0, 0};
  std::size_t size = 0;

  void set(std::string_view key) {
    char padded[sizeof(words)] = {};
    if (!key.empty()) std::memcpy(padded, key.data(), std::min(key.size(), sizeof(padded)));
    for (int w = 0; w < 4; ++w) {
      std::memcpy(&words[w], padded + 8 * w, 8);
      words[w] = __builtin_bswap64(words[w]);
    }
    size = key.size();
  }
};

// compare_keys(a, b) for keys with heads ha and hb.
int compare_headed(const key_head& ha, std::string_view a, const key_head& hb, std::string_view b) {
  for (int w = 0; w < 4; ++w) {
    if (ha.words[w] != hb.words[w]) return ha.words[w] < hb.words[w] ? -1 : 1;
  }
  // Equal heads of keys no longer than them: one is the other with zero bytes added.
  if (ha.size <= sizeof(ha.words) && hb.size <= sizeof(hb.words)) {
    return (ha.size > hb.size) - (ha.size < hb.size);
  }
  return compare_keys(a, b);
}

// Reads one run file's entries in order, from an entry's offset, until a key at or past
// `end` (none: to the file's end). key() and value() stay valid until the next next().
class run_cursor {
 public:
  run_cursor(std::size_t run, std::optional<std::string> end) : run_(run), end_(std::move(end)) {
    if (end_) end_head_.set(*end_);
  }

  rocksdb::Status open(rocksdb::Env* env, const std::string& path, std::uint64_t offset) {
    auto st = env->NewSequentialFile(path, &file_, rocksdb::EnvOptions());
    if (st.ok() && offset > 0) st = file_->Skip(offset);
    return st;
  }
  // Moves to the next entry; false at the end of the file or of the range (or on an
  // error: status()).
  bool next() {
    pos_ += consumed_;
    consumed_ = 0;
    if (!fill(entry_head)) {
      // The file's end falls between entries, or inside an entry's head: a short file.
      if (status_.ok() && end_of_buf_ > pos_) {
        status_ = rocksdb::Status::Corruption("run file ends inside an entry's head");
      }
      return false;
    }
    const std::uint32_t k = get_u32(buf_.data() + pos_);
    const std::uint32_t v = get_u32(buf_.data() + pos_ + 4);
    const std::size_t size = entry_head + k + v;
    if (!fill(size)) {
      if (status_.ok()) status_ = rocksdb::Status::Corruption("run file ends inside an entry");
      return false;
    }
    key_ = {buf_.data() + pos_ + entry_head, k};
    value_ = {buf_.data() + pos_ + entry_head + k, v};
    head_.set(key_);
    consumed_ = size;
    return !end_ || compare_headed(head_, key_, end_head_, *end_) < 0;
  }
  std::string_view key() const { return key_; }
  const key_head& head() const { return head_; }
  // compare_keys(key(), other.key()).
  int compare(const run_cursor& other) const {
    return compare_headed(head_, key_, other.head_, other.key_);
  }
  std::string_view value() const { return value_; }
  std::size_t run() const { return run_; }
  const rocksdb::Status& status() const { return status_; }

 private:
  // Makes `n` bytes from pos_ available; false at the file's end (or on an error).
  bool fill(std::size_t n) {
    if (end_of_buf_ - pos_ >= n) return true;
    if (eof_ || !status_.ok()) return false;
    // (Nothing to move before the first read: the buffer has no memory yet.)
    if (end_of_buf_ > pos_) std::memmove(buf_.data(), buf_.data() + pos_, end_of_buf_ - pos_);
    end_of_buf_ -= pos_;
    pos_ = 0;
    if (buf_.size() < std::max(n, io_chunk)) buf_.resize(std::max(n, io_chunk));
    while (end_of_buf_ < n && !eof_) {
      rocksdb::Slice got;
      const std::size_t want = buf_.size() - end_of_buf_;
      status_ = file_->Read(want, &got, buf_.data() + end_of_buf_);
      if (!status_.ok()) return false;
      if (got.size() > 0 && got.data() != buf_.data() + end_of_buf_) {
        std::memmove(buf_.data() + end_of_buf_, got.data(), got.size());
      }
      end_of_buf_ += got.size();
      if (got.size() < want) eof_ = true;
    }
    return end_of_buf_ >= n;
  }

  std::size_t run_;
  std::optional<std::string> end_;
  key_head end_head_;
  std::unique_ptr<rocksdb::SequentialFile> file_;
  std::vector<char> buf_;
  std::size_t pos_ = 0, end_of_buf_ = 0, consumed_ = 0;
  bool eof_ = false;
  rocksdb::Status status_;
  std::string_view key_, value_;
  key_head head_;
};

// Where the first entry at or past `begin` may be: the offset of the last indexed key
// before it (entries before it are skipped while reading).
std::uint64_t start_offset(const run_file& run, const std::optional<std::string>& begin) {
  if (!begin) return 0;
  auto it = std::lower_bound(
      run.index.begin(), run.index.end(), *begin,
      [](const auto& entry, const std::string& key) { return compare_keys(entry.first, key) < 0; });
  return it == run.index.begin() ? 0 : std::prev(it)->second;
}

// Merges the keys in [begin, end) of every run into files named <prefix>-<n>.sst.
rocksdb::Status merge_range(const std::vector<run_file>& runs, const merge_options& options,
                            const std::optional<std::string>& begin,
                            const std::optional<std::string>& end, const std::string& prefix,
                            std::vector<std::string>& out) {
  rocksdb::Env* env = env_or_default(options.sst.env);
  std::vector<std::unique_ptr<run_cursor>> cursors;
  // A min-heap on the key; of equal keys the latest run first.
  auto after = [](const run_cursor* a, const run_cursor* b) {
    const int c = a->compare(*b);
    return c != 0 ? c > 0 : a->run() < b->run();
  };
  std::vector<run_cursor*> heap;
  rocksdb::Status failed;
  // Advances a cursor (skipping keys before the range) and puts it back on the heap.
  auto advance = [&](run_cursor* c) {
    bool more = c->next();
    while (more && begin && compare_keys(c->key(), *begin) < 0) more = c->next();
    if (more) {
      heap.push_back(c);
      std::push_heap(heap.begin(), heap.end(), after);
    } else if (!c->status().ok() && failed.ok()) {
      failed = c->status();
    }
  };
  for (std::size_t r = 0; r < runs.size(); ++r) {
    cursors.push_back(std::make_unique<run_cursor>(r, end));
    auto st = cursors.back()->open(env, runs[r].path, start_offset(runs[r], begin));
    if (!st.ok()) return st;
    advance(cursors.back().get());
  }

  std::optional<rocksdb::SstFileWriter> writer;
  std::size_t files = 0;
  while (failed.ok() && !heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), after);
    run_cursor* top = heap.back();
    heap.pop_back();
    if (!writer) {
      writer.emplace(rocksdb::EnvOptions(), options.sst, nullptr, invalidate_page_cache);
      out.push_back(prefix + "-" + std::to_string(++files) + ".sst");
      if (auto st = writer->Open(out.back()); !st.ok()) return st;
    }
    auto st = writer->Put(rocksdb::Slice(top->key().data(), top->key().size()),
                          rocksdb::Slice(top->value().data(), top->value().size()));
    if (!st.ok()) return st;
    // The same key in earlier runs: overwritten (top's key stays valid until it moves).
    while (!heap.empty() && heap.front()->compare(*top) == 0) {
      std::pop_heap(heap.begin(), heap.end(), after);
      run_cursor* older = heap.back();
      heap.pop_back();
      advance(older);
    }
    if (writer->FileSize() >= options.file_bytes) {
      if (st = writer->Finish(); !st.ok()) return st;
      writer.reset();
    }
    advance(top);
  }
  if (!failed.ok()) return failed;
  if (writer) return writer->Finish();
  return rocksdb::Status::OK();
}

}  // namespace

int compare_keys(std::string_view a, std::string_view b) {
  const int c = a.compare(b);  // char_traits<char>: memcmp, bytes as unsigned
  return (c > 0) - (c < 0);
}

void sorted_run::sort_entries() {
  sorted_.clear();
  sorted_.reserve(entries_.size());
  for (std::size_t i = 0; i < entries_.size(); ++i) {  // the chunks are read through once
    const entry& e = entries_[i];
    sort_entry s{{0, 0, 0, 0}, static_cast<std::uint32_t>(i), e.key_size};
    char padded[sizeof(s.head)] = {};
    if (e.key_size != 0) {  // (an empty pair added first has no chunk to point into)
      std::memcpy(padded, e.data, std::min<std::size_t>(e.key_size, sizeof(padded)));
    }
    for (int h = 0; h < 4; ++h) {
      std::memcpy(&s.head[h], padded + 8 * h, 8);
      s.head[h] = __builtin_bswap64(s.head[h]);
    }
    sorted_.push_back(s);
  }
  std::sort(sorted_.begin(), sorted_.end(), [&](const sort_entry& a, const sort_entry& b) {
    for (int h = 0; h < 4; ++h) {
      if (a.head[h] != b.head[h]) return a.head[h] < b.head[h];
    }
    // Equal heads of keys no longer than them: one is the other with zero bytes added.
    if (a.key_size <= sizeof(a.head) && b.key_size <= sizeof(b.head)) {
      if (a.key_size != b.key_size) return a.key_size < b.key_size;
    } else if (int c = compare_keys(key(entries_[a.index]), key(entries_[b.index])); c != 0) {
      return c < 0;
    }
    return a.index < b.index;  // equal keys: in the order added (the last one is kept)
  });
}

bool sorted_run::same_key(const sort_entry& a, const sort_entry& b) const {
  if (a.key_size != b.key_size) return false;
  for (int h = 0; h < 4; ++h) {
    if (a.head[h] != b.head[h]) return false;
  }
  return a.key_size <= sizeof(a.head) || key(entries_[a.index]) == key(entries_[b.index]);
}

rocksdb::Status sorted_run::write(rocksdb::Env* env, const std::string& path, run_file& out) {
  out = run_file{};
  out.path = path;
  std::unique_ptr<rocksdb::WritableFile> file;
  auto st = env_or_default(env)->NewWritableFile(path, &file, rocksdb::EnvOptions());
  if (!st.ok()) return st;
  std::string chunk;
  chunk.reserve(io_chunk + 4096);
  std::uint64_t offset = 0;
  for_each_in_key_order([&](std::string_view k, std::string_view v) {
    if (!st.ok()) return;
    if (out.entries % index_every == 0) out.index.emplace_back(std::string(k), offset);
    ++out.entries;
    put_u32(chunk, static_cast<std::uint32_t>(k.size()));
    put_u32(chunk, static_cast<std::uint32_t>(v.size()));
    chunk.append(k);
    chunk.append(v);
    offset += entry_head + k.size() + v.size();
    out.bytes = offset;
    if (chunk.size() >= io_chunk) {
      st = file->Append(rocksdb::Slice(chunk));
      chunk.clear();
    }
  });
  if (!st.ok()) return st;
  if (!chunk.empty()) st = file->Append(rocksdb::Slice(chunk));
  // Not synced: a crash deletes the load's files anyway.
  if (st.ok()) st = file->Close();
  return st;
}

rocksdb::Status merge_runs(const std::vector<run_file>& runs, const merge_options& options,
                           std::vector<std::string>& out) {
  // Range bounds at quantiles of the runs' bytes (rows differ in size by kind, and kinds
  // by prefix): each indexed key stands for the bytes up to the run's next one.
  std::vector<std::pair<std::string_view, std::uint64_t>> sample;
  std::uint64_t total = 0;
  for (const auto& r : runs) {
    for (std::size_t i = 0; i < r.index.size(); ++i) {
      const std::uint64_t next = i + 1 < r.index.size() ? r.index[i + 1].second : r.bytes;
      sample.emplace_back(r.index[i].first, next - r.index[i].second);
      total += next - r.index[i].second;
    }
  }
  std::sort(sample.begin(), sample.end(),
            [](const auto& a, const auto& b) { return compare_keys(a.first, b.first) < 0; });
  std::vector<std::optional<std::string>> bounds{std::nullopt};  // begin of each range
  const std::size_t ranges = std::max<std::size_t>(1, options.ranges);
  std::uint64_t seen = 0;
  for (const auto& [key, bytes] : sample) {
    if (bounds.size() == ranges) break;
    // The first key past the next quantile begins a range (never the first: the range
    // before it would be empty).
    if (seen >= total / ranges * bounds.size() && seen > 0) {
      if (!bounds.back() || compare_keys(*bounds.back(), key) < 0) bounds.emplace_back(key);
    }
    seen += bytes;
  }
  std::vector<std::vector<std::string>> files(bounds.size());
  std::vector<std::future<rocksdb::Status>> merging;
  merging.reserve(bounds.size());
  rocksdb::Status st = contained([&] {
    for (std::size_t i = 0; i < bounds.size(); ++i) {
      const auto& end = i + 1 < bounds.size() ? bounds[i + 1] : std::nullopt;
      merging.push_back(std::async(std::launch::async, [&, i, end] {
        return contained([&] {
          return merge_range(runs, options, bounds[i], end,
                             options.out_prefix + std::to_string(i + 1), files[i]);
        });
      }));
    }
    return rocksdb::Status::OK();
  });
  // Every range started waits for its thread here, also when starting another failed.
  for (auto& m : merging) {
    auto s = m.get();
    if (st.ok() && !s.ok()) st = s;
  }
  for (auto& f : files) out.insert(out.end(), f.begin(), f.end());
  return st;
}

}  // namespace passage::projections::bulk
