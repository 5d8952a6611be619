#include "consumers/reorder_buffer.h"

#include <algorithm>
#include <utility>

namespace passage::consumers {

offer_outcome reorder_buffer::offer(int partition, std::int64_t offset, received_event e) {
  auto& consumed = consumed_[partition];
  consumed = std::max(consumed, offset + 1);
  const std::uint64_t position = e.event.position;
  highest_seen_ = std::max(highest_seen_, position);
  if (position < next_) return offer_outcome::duplicate;
  auto [it, inserted] = held_.try_emplace(position, held{partition, offset, {}});
  if (!inserted) {
    return it->second.event.event.event_id == e.event.event_id ? offer_outcome::duplicate
                                                               : offer_outcome::conflict;
  }
  it->second.event = std::move(e);
  held_offsets_[partition].insert(offset);
  return offer_outcome::buffered;
}

std::vector<received_event> reorder_buffer::take_ready(std::size_t max) {
  std::vector<received_event> out;
  for (auto it = held_.begin(); it != held_.end() && it->first == next_ && out.size() < max;
       it = held_.erase(it)) {
    auto& offsets = held_offsets_[it->second.partition];
    offsets.erase(offsets.find(it->second.offset));
    out.push_back(std::move(it->second.event));
    ++next_;
  }
  return out;
}

std::set<int> reorder_buffer::partitions_holding() const {
  std::set<int> out;
  for (const auto& [p, offsets] : held_offsets_) {
    if (!offsets.empty()) out.insert(p);
  }
  return out;
}

std::map<int, std::int64_t> reorder_buffer::resume_offsets() const {
  std::map<int, std::int64_t> out = consumed_;
  for (const auto& [p, offsets] : held_offsets_) {
    if (!offsets.empty()) out[p] = *offsets.begin();
  }
  return out;
}

}  // namespace passage::consumers
