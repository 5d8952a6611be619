#pragma once
// Puts a Kafka-fed copy of the log back into the log's order. The relay keys messages by
// stream, so each partition carries its streams in position order, but partitions run
// independently and delivery is at-least-once. A replica offers every message here and
// applies what take_ready() hands out: exactly positions applied+1, applied+2, … with no
// gap and no repeat. Pure (no Kafka, no clock), so every interleaving can be tested.
//
//   reorder_buffer buf(models.applied_position());
//   buf.offer(msg.partition, msg.offset, std::move(received));   // any order, repeats
//   for (auto& e : buf.take_ready(4096)) apply(e);                // strictly N+1 after N
//   store_offsets(buf.resume_offsets());                          // where a restart re-reads

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include "consumers/cloudevent.h"

namespace passage::consumers {

enum class offer_outcome {
  buffered,   // a first occurrence, kept until its turn
  duplicate,  // already applied or already buffered with the same event id: dropped
  conflict,   // a different event id at a position already buffered: dropped and counted
};

// Owned by one consumer thread; not thread-safe.
class reorder_buffer {
 public:
  // `applied`: the last position already applied (0: none).
  explicit reorder_buffer(std::uint64_t applied) : next_(applied + 1) {}

  // Offers a message read at `offset` of `partition`.
  offer_outcome offer(int partition, std::int64_t offset, received_event e);

  // The contiguous run from the next position on (at most `max` events), in order.
  // They count as applied from now on (the caller stops on a failure to apply them).
  std::vector<received_event> take_ready(std::size_t max);

  // The next position to apply (applied + 1).
  std::uint64_t next_position() const { return next_; }
  // Events held, waiting for an earlier position.
  std::size_t size() const { return held_.size(); }
  // The held event with the lowest position (nullptr when none is held).
  const received_event* first_held() const {
    return held_.empty() ? nullptr : &held_.begin()->second.event;
  }
  // Highest position offered so far (0: none).
  std::uint64_t highest_seen() const { return highest_seen_; }
  // Partitions holding at least one event. When the buffer is over its bound, pausing
  // them is safe: each partition carries first occurrences in position order, so the
  // missing next position sits in a partition that holds nothing.
  std::set<int> partitions_holding() const;
  // Per partition, the offset a restart must read from so that nothing not yet applied
  // is skipped: the lowest offset still held, else one past the last offset offered.
  std::map<int, std::int64_t> resume_offsets() const;
  // One past the last offset offered per partition.
  const std::map<int, std::int64_t>& consumed_offsets() const { return consumed_; }

 private:
  struct held {
    int partition;
    std::int64_t offset;
    received_event event;
  };
  std::uint64_t next_;
  std::uint64_t highest_seen_ = 0;
  std::map<std::uint64_t, held> held_;                       // by position
  std::map<int, std::multiset<std::int64_t>> held_offsets_;  // partition -> offsets held
  std::map<int, std::int64_t> consumed_;                     // partition -> last offset + 1
};

}  // namespace passage::consumers
