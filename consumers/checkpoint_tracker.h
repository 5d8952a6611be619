#pragma once
// The relay's checkpoint: the highest position P such that the broker has
// acknowledged every position <= P. Messages are sent in position order but
// acknowledged in any order (partitions are independent), so an acknowledgement
// beyond a gap is remembered until the gap closes. Pure; no I/O, no locking.
//
//   checkpoint_tracker t(/*checkpoint=*/41);
//   t.sent(42); t.sent(43); t.sent(44);
//   t.acknowledge(44);   // checkpoint() stays 41: 42 and 43 are not acknowledged
//   t.acknowledge(42);   // checkpoint() == 42
//   t.acknowledge(43);   // checkpoint() == 44

#include <cstdint>
#include <deque>

namespace passage::consumers {

// Owned by one relay session; the caller serialises access.
class checkpoint_tracker {
 public:
  explicit checkpoint_tracker(std::uint64_t checkpoint = 0)
      : checkpoint_(checkpoint), next_(checkpoint + 1) {}

  // Records that `position` was handed to the producer. Positions are sent in
  // order without gaps; returns false (and records nothing) otherwise.
  bool sent(std::uint64_t position) {
    if (position != next_) return false;
    acked_.push_back(false);
    ++next_;
    return true;
  }

  // Records the broker's acknowledgement of `position`. Returns true when the
  // checkpoint moved. Positions never sent, or already acknowledged, are ignored.
  bool acknowledge(std::uint64_t position) {
    if (position <= checkpoint_ || position >= next_) return false;
    auto& slot = acked_[position - checkpoint_ - 1];
    if (slot) return false;
    slot = true;
    ++acknowledged_;
    bool moved = false;
    while (!acked_.empty() && acked_.front()) {
      acked_.pop_front();
      ++checkpoint_;
      --acknowledged_;
      moved = true;
    }
    return moved;
  }

  // Every position <= checkpoint() is acknowledged.
  std::uint64_t checkpoint() const { return checkpoint_; }
  // The next position sent() expects.
  std::uint64_t next_position() const { return next_; }
  // Sent but not yet acknowledged.
  std::uint64_t unacknowledged() const { return acked_.size() - acknowledged_; }

 private:
  std::uint64_t checkpoint_;
  std::uint64_t next_;
  std::deque<bool> acked_;          // positions checkpoint_+1 .. next_-1
  std::uint64_t acknowledged_ = 0;  // true entries in acked_
};

}  // namespace passage::consumers
