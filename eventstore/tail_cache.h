#pragma once
// The event store's copy of the log's newest records, as written: the commits the sync
// thread made durable, each one chunk of consecutive records. A live subscription (the
// projector, the mailer, the relay) reads what was just committed from here instead of
// RocksDB: per scan a snapshot, an iterator over every memtable and table file and its
// seek, then a merging iterator's steps (~30 % of the projector's thread under api_bench's
// claims). Bounded by the memory its chunks hold: the oldest chunks go first; a reader further
// behind reads RocksDB as before.
//
//   tail_cache tail(8u << 20);
//   auto c = std::make_shared<tail_cache::chunk>();
//   c->add(7, record_bytes);                    // positions 7, 8, ... in order
//   tail.add(std::move(c));                     // once durable
//   auto chunks = tail.from(7, 9);              // empty: not held (read the log instead)
//   for (const auto& c : chunks) for (auto p = c->first(); p <= c->last(); ++p) c->record(p);
//
// Thread-safe: one thread adds (the store's sync thread), any number read. Chunks are
// immutable once added and shared with the readers holding them.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace passage::eventstore {

class tail_cache {
 public:
  // Consecutive records of one commit, in position order.
  class chunk {
   public:
    // The record at `position`: the first one added, or the one after the last.
    void add(std::uint64_t position, std::string_view record) {
      if (ends_.empty()) first_ = position;
      bytes_.append(record);
      ends_.push_back(bytes_.size());
    }
    // Room for `bytes` of records, so that adding them copies each once.
    void reserve(std::size_t bytes) { bytes_.reserve(bytes); }
    bool empty() const { return ends_.empty(); }
    std::uint64_t first() const { return first_; }
    std::uint64_t last() const { return first_ + ends_.size() - 1; }  // only if not empty
    std::size_t bytes() const { return bytes_.size(); }
    // The memory it holds: its buffers' capacity (a chunk reserved for a bigger commit
    // holds more than its records).
    std::size_t footprint() const {
      return sizeof(chunk) + bytes_.capacity() + ends_.capacity() * sizeof(std::size_t);
    }
    // For first() <= position <= last().
    std::string_view record(std::uint64_t position) const {
      const std::size_t i = position - first_;
      const std::size_t begin = i == 0 ? 0 : ends_[i - 1];
      return std::string_view(bytes_).substr(begin, ends_[i] - begin);
    }

   private:
    std::uint64_t first_ = 0;
    std::string bytes_;
    std::vector<std::size_t> ends_;  // where each record ends in bytes_
  };

  // Keeps chunks while their footprint() is at most `max_bytes` in all (the newest one
  // always, unless it alone holds more).
  explicit tail_cache(std::size_t max_bytes) : max_bytes_(max_bytes) {}
  tail_cache(const tail_cache&) = delete;
  tail_cache& operator=(const tail_cache&) = delete;

  // Adds the next commit's records. A chunk that does not follow the last one (a commit
  // was left out) empties the cache first: what it holds is always one run of positions.
  // A chunk whose footprint is larger than the whole cache is not kept (it empties the cache:
  // readers of it read the log). Chunks dropped are freed after the lock is released, by the
  // caller's thread, outside the readers' way.
  void add(std::shared_ptr<const chunk> c) {
    if (!c || c->empty()) return;
    std::vector<std::shared_ptr<const chunk>> dropped;
    std::lock_guard lock(mu_);
    const std::size_t size = c->footprint();
    if (size > max_bytes_ || (!chunks_.empty() && chunks_.back()->last() + 1 != c->first())) {
      dropped.assign(std::make_move_iterator(chunks_.begin()),
                     std::make_move_iterator(chunks_.end()));
      chunks_.clear();
      bytes_ = 0;
      if (size > max_bytes_) {
        dropped.push_back(std::move(c));
        return;
      }
    }
    bytes_ += size;
    chunks_.push_back(std::move(c));
    while (chunks_.size() > 1 && bytes_ > max_bytes_) {
      bytes_ -= chunks_.front()->footprint();
      dropped.push_back(std::move(chunks_.front()));
      chunks_.pop_front();
    }
  }

  // Drops everything (a failed commit: nothing after it is cached either until added).
  void clear() {
    std::lock_guard lock(mu_);
    chunks_.clear();
    bytes_ = 0;
  }

  // The chunks holding positions `from` to `to` (from <= to), in order, into `out`
  // (cleared first): the first holds `from`, the last `to` or the newest record held.
  // Empty when `from` is not held.
  void from(std::uint64_t from, std::uint64_t to,
            std::vector<std::shared_ptr<const chunk>>& out) const {
    out.clear();
    std::lock_guard lock(mu_);
    if (chunks_.empty() || from < chunks_.front()->first() || from > chunks_.back()->last()) {
      return;
    }
    // The last chunk starting at or before `from` holds it (the chunks are one run).
    auto it = std::partition_point(chunks_.begin(), chunks_.end(),
                                   [&](const auto& c) { return c->first() <= from; });
    for (--it; it != chunks_.end() && (*it)->first() <= to; ++it) out.push_back(*it);
  }

 private:
  const std::size_t max_bytes_;
  mutable std::mutex mu_;
  std::deque<std::shared_ptr<const chunk>> chunks_;
  std::size_t bytes_ = 0;  // the chunks' footprints
};

}  // namespace passage::eventstore
