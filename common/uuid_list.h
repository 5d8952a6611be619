#pragma once
// A list of uuids that keeps one in place and more on the heap: the read models' learner
// keeps its claims in one, and a rebuild keeps millions of learners of one claim each. A
// std::vector<uuid> of the same size (24 bytes) took a 16-byte heap block for that one
// claim: a malloc on the applying thread and fresh memory per learner, freed at teardown.
// Only what its user needs: push_back, size, iteration, clear.
//
//   uuid_list claims;
//   claims.push_back(id);              // no allocation for the first
//   for (const auto& c : claims) use(c);

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

#include "common/uuid.h"

namespace passage {

class uuid_list {
 public:
  uuid_list() = default;
  uuid_list(const uuid_list& other) { *this = other; }
  uuid_list& operator=(const uuid_list& other) {
    if (this == &other) return *this;
    clear();
    reserve(other.size_);
    std::copy(other.begin(), other.end(), data());
    size_ = other.size_;
    return *this;
  }
  uuid_list(uuid_list&& other) noexcept { steal(other); }
  uuid_list& operator=(uuid_list&& other) noexcept {
    if (this != &other) {
      release();
      steal(other);
    }
    return *this;
  }
  ~uuid_list() { release(); }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const uuid* begin() const { return data(); }
  const uuid* end() const { return data() + size_; }
  const uuid& operator[](std::size_t i) const { return data()[i]; }

  void push_back(const uuid& id) {
    if (size_ == capacity()) {
      if (size_ == max_size) throw std::length_error("uuid_list: 2^32 - 1 ids");
      const uuid copy = id;  // `id` may be one of ours, about to move
      reserve(size_ < 4 ? 4 : std::min<std::size_t>(std::size_t{size_} * 2, max_size));
      data()[size_++] = copy;
      return;
    }
    data()[size_++] = id;
  }
  // Empty, with no heap block.
  void clear() {
    release();
    size_ = 0;
    heap_capacity_ = 0;
  }

  friend bool operator==(const uuid_list& a, const uuid_list& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }
  explicit operator std::vector<uuid>() const { return {begin(), end()}; }

 private:
  static constexpr std::size_t max_size = 0xffffffffu;
  // Ids held where inline_ is: one (heap_capacity_ 0), else heap_capacity_ on the heap.
  std::size_t capacity() const { return heap_capacity_ == 0 ? 1 : heap_capacity_; }
  uuid* heap() const {
    uuid* p = nullptr;
    std::memcpy(&p, inline_.bytes.data(), sizeof p);
    return p;
  }
  const uuid* data() const { return heap_capacity_ == 0 ? &inline_ : heap(); }
  uuid* data() { return heap_capacity_ == 0 ? &inline_ : heap(); }
  // Room for `n` ids (n > capacity(): moves them to a new heap block).
  void reserve(std::size_t n) {
    if (n <= capacity()) return;
    auto* block = new uuid[n];
    std::copy(begin(), end(), block);
    release();
    std::memcpy(inline_.bytes.data(), &block, sizeof block);
    heap_capacity_ = static_cast<std::uint32_t>(n);
  }
  void release() {
    if (heap_capacity_ != 0) delete[] heap();
  }
  void steal(uuid_list& other) {
    inline_ = other.inline_;
    size_ = other.size_;
    heap_capacity_ = other.heap_capacity_;
    other.size_ = 0;
    other.heap_capacity_ = 0;
  }

  std::uint32_t size_ = 0;
  std::uint32_t heap_capacity_ = 0;  // 0: the one id in place
  uuid inline_{};                    // the id, or (heap) the block's address
};

}  // namespace passage
