#include "domain/claim_index.h"

#include <algorithm>
#include <functional>
#include <stdexcept>
#include <utility>

namespace passage::domain {

claim_index::claim_index(const claim_index& other)
    : size_(other.size_), slots_(other.slots_), bits_(other.bits_) {
  blocks_.reserve(other.blocks_.size());
  for (std::size_t at = 0; at < size_; at += block_size) {
    blocks_.push_back(std::make_unique<claim_record[]>(block_size));
    const std::size_t n = std::min(block_size, size_ - at);
    std::copy_n(other.blocks_[at >> block_bits].get(), n, blocks_.back().get());
  }
}

claim_index& claim_index::operator=(const claim_index& other) {
  if (this != &other) *this = claim_index(other);
  return *this;
}

std::uint64_t claim_index::hash_of(const uuid& id) {
  // std::hash<uuid> folds the id's halves; the finaliser of MurmurHash3 spreads ids that
  // differ in a few bits only (tests' ids, say) over the top bits, which choose the slot.
  std::uint64_t h = std::hash<uuid>{}(id);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

std::size_t claim_index::probe(const uuid& id, std::uint32_t tag) const {
  const std::size_t mask = slots_.size() - 1;
  std::size_t at = bits_ == 0 ? 0 : static_cast<std::size_t>(tag >> (32 - bits_));
  while (true) {
    const slot& s = slots_[at];
    if (s.index == 0) return at;
    if (s.tag == tag && record_at(s.index - 1).learner_id_ == id) return at;
    at = (at + 1) & mask;
  }
}

const claim_record* claim_index::find(const uuid& learner_id) const {
  if (slots_.empty()) return nullptr;
  const auto tag = static_cast<std::uint32_t>(hash_of(learner_id) >> 32);
  const slot& s = slots_[probe(learner_id, tag)];
  return s.index == 0 ? nullptr : &record_at(s.index - 1);
}

const claim_record& claim_index::at(const uuid& learner_id) const {
  const claim_record* r = find(learner_id);
  if (r == nullptr) throw std::out_of_range("claim_index::at: no claim for this learner");
  return *r;
}

void claim_index::put(claim_record r) {
  // At most half full after this put: short probe runs.
  if ((size_ + 1) * 2 > slots_.size()) grow();
  const auto tag = static_cast<std::uint32_t>(hash_of(r.learner_id_) >> 32);
  slot& s = slots_[probe(r.learner_id_, tag)];
  if (s.index != 0) {
    record_at(s.index - 1) = std::move(r);
    return;
  }
  if ((size_ & (block_size - 1)) == 0) {
    blocks_.push_back(std::make_unique<claim_record[]>(block_size));
  }
  record_at(size_) = std::move(r);
  ++size_;
  s.tag = tag;
  s.index = static_cast<std::uint32_t>(size_);
}

void claim_index::grow() {
  // Positions come from the tags alone: the records are not read. Past 2^31 slots the
  // tags hold no more position bits (and the indexes would overflow first).
  if (bits_ >= 31) throw std::length_error("claim_index: too many claims");
  const unsigned bits = bits_ == 0 ? 4 : bits_ + 1;
  std::vector<slot> next(std::size_t{1} << bits);
  const std::size_t mask = next.size() - 1;
  for (const slot& s : slots_) {
    if (s.index == 0) continue;
    std::size_t at = s.tag >> (32 - bits);
    while (next[at].index != 0) at = (at + 1) & mask;
    next[at] = s;
  }
  slots_ = std::move(next);
  bits_ = bits;
}

bool operator==(const claim_index& a, const claim_index& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size_; ++i) {
    const claim_record& r = a.record_at(i);
    const claim_record* other = b.find(r.learner_id_);
    if (other == nullptr || !(*other == r)) return false;
  }
  return true;
}

}  // namespace passage::domain
