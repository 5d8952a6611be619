#pragma once
// The event store's cache of stream heads (stream name -> current version), bounded by a
// CLOCK policy: once full, each new stream takes the slot of one not looked up since the
// clock hand last passed it. Eviction is one entry per insertion, so the cache never
// empties at once (no pause freeing a million entries, no cold cache after it), and the
// streams appended to again and again (invites, organizations) stay while the many
// streams written once (a learner per claim) make way for each other.
//
//   head_cache heads(1u << 20);
//   if (auto v = heads.find("invite-42")) ...;
//   heads.put("invite-42", 7);
//
// Not thread-safe: the store's writer thread owns it.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace passage::eventstore {

class head_cache {
 public:
  // At most `capacity` entries (at least 1).
  explicit head_cache(std::size_t capacity) : capacity_(capacity ? capacity : 1) {}
  head_cache(const head_cache&) = delete;
  head_cache& operator=(const head_cache&) = delete;

  std::optional<std::uint64_t> find(std::string_view stream) {
    auto it = index_.find(stream);
    if (it == index_.end()) return std::nullopt;
    auto& s = slots_[it->second];
    s.referenced = true;
    return s.version;
  }

  void put(std::string_view stream, std::uint64_t version) {
    if (auto it = index_.find(stream); it != index_.end()) {
      auto& s = slots_[it->second];
      s.version = version;
      s.referenced = true;
      return;
    }
    if (slots_.size() < capacity_) {
      // A deque keeps its elements in place as it grows: the index's keys view them.
      slots_.push_back({std::string(stream), version, false});
      index_.emplace(slots_.back().stream, slots_.size() - 1);
      return;
    }
    // The hand gives each looked-up entry a second chance and takes the first that had
    // none; new entries start unreferenced, so a stream seen once goes first.
    for (;; hand_ = (hand_ + 1) % slots_.size()) {
      auto& s = slots_[hand_];
      if (s.referenced) {
        s.referenced = false;
        continue;
      }
      index_.erase(s.stream);
      s.stream.assign(stream);
      s.version = version;
      index_.emplace(s.stream, hand_);
      hand_ = (hand_ + 1) % slots_.size();
      return;
    }
  }

  std::size_t size() const { return index_.size(); }
  std::size_t capacity() const { return capacity_; }

 private:
  struct slot {
    std::string stream;
    std::uint64_t version = 0;
    bool referenced = false;
  };
  std::size_t capacity_;
  std::size_t hand_ = 0;
  std::deque<slot> slots_;
  std::unordered_map<std::string_view, std::size_t> index_;  // keys view slots_[i].stream
};

}  // namespace passage::eventstore
