#pragma once
// The claims of an invite, one per learner, found by learner id: what invite_state keeps
// to answer a returning learner with the claim they already have.
//
//   claim_index claims;
//   claims.put(claim_record{claim_id, learner_id, ...});   // inserts, or replaces the learner's
//   if (const claim_record* c = claims.find(learner_id)) ...
//
// Built for an invite with very many claims taking one more per claim: the records sit in
// blocks of 256 (appended in order, never moved) and an open-addressing table of 8-byte
// slots (32 bits of the learner id's hash and the record's position) finds them. Adding a
// claim touches one or two cache lines of the table and the last block; growing the table
// reads only the table. A node-based hash map spent several cache misses per insert (its
// bucket, the node before, the node, and re-linking every node when it grew): about a
// twentieth of an HTTP I/O thread's time in the claims benchmark.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/uuid.h"
#include "domain/types.h"

namespace passage::domain {

struct claim_record {
  uuid claim_id_;
  uuid learner_id_;
  bool anonymous_ = false;
  timestamp claimed_at_;
  claim_snapshot restrictions_;
  std::optional<timestamp> access_expires_at_;
  friend bool operator==(const claim_record&, const claim_record&) = default;
};

class claim_index {
 public:
  claim_index() = default;
  claim_index(const claim_index& other);
  claim_index& operator=(const claim_index& other);
  // Moves allocate nothing (a std::deque's did: invite_state moves in and out of evolve()
  // once per event).
  // A moved-from index is empty and usable (size and table bits go with the blocks: a
  // failed evolve() leaves the cached aggregate holding one).
  claim_index(claim_index&& other) noexcept
      : blocks_(std::move(other.blocks_)),
        size_(std::exchange(other.size_, 0)),
        slots_(std::move(other.slots_)),
        bits_(std::exchange(other.bits_, 0)) {
    other.blocks_.clear();
    other.slots_.clear();
  }
  claim_index& operator=(claim_index&& other) noexcept {
    if (this != &other) {
      blocks_ = std::move(other.blocks_);
      size_ = std::exchange(other.size_, 0);
      slots_ = std::move(other.slots_);
      bits_ = std::exchange(other.bits_, 0);
      other.blocks_.clear();
      other.slots_.clear();
    }
    return *this;
  }
  ~claim_index() = default;

  // The learner's claim, or nullptr. Points at the same place until the index is
  // destroyed, assigned or moved into (a put() of the same learner rewrites the record
  // there); other learners' puts leave it in place.
  const claim_record* find(const uuid& learner_id) const;
  bool contains(const uuid& learner_id) const { return find(learner_id) != nullptr; }
  // The learner's claim; throws std::out_of_range when there is none.
  const claim_record& at(const uuid& learner_id) const;

  // Adds `r` under r.learner_id_, replacing the claim that learner had.
  void put(claim_record r);

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // The same learners with equal claims, whatever order they came in.
  friend bool operator==(const claim_index& a, const claim_index& b);

 private:
  struct slot {
    std::uint32_t tag = 0;    // the top 32 bits of the learner id's hash
    std::uint32_t index = 0;  // 1 + the record's position in blocks_; 0: empty
  };

  static constexpr unsigned block_bits = 8;  // 256 records a block
  static constexpr std::size_t block_size = std::size_t{1} << block_bits;
  using block = std::unique_ptr<claim_record[]>;

  const claim_record& record_at(std::size_t i) const {
    return blocks_[i >> block_bits][i & (block_size - 1)];
  }
  claim_record& record_at(std::size_t i) { return blocks_[i >> block_bits][i & (block_size - 1)]; }
  static std::uint64_t hash_of(const uuid& id);
  // The slot holding `id`, or the empty slot where it would go; the table is never full.
  std::size_t probe(const uuid& id, std::uint32_t tag) const;
  void grow();

  std::vector<block> blocks_;  // records in the order they came; full blocks but the last
  std::size_t size_ = 0;
  std::vector<slot> slots_;  // a power of two in size, at most half full; empty: no claims
  unsigned bits_ = 0;        // slots_.size() == 1 << bits_
};

}  // namespace passage::domain
