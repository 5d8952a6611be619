#pragma once
// A map from uuid to V for tables of millions of entries: the read models' claims, learners
// and invites after a long log's rebuild, the keys a replay preloads (key_store::preload). The
// applying thread, the one that bounds a rebuild's time, looks one or two of them up per event;
// std::unordered_map walked a bucket array, a node chain and a node malloc'd per entry for each (a
// third of that thread's time). Here an open-addressing table of 8-byte slots (linear
// probing, at most 3/4 full) points into entries stored in fixed-size chunks: one cache
// line of the table and the entry itself per lookup, no allocation per entry, and entries
// never move (references and pointers to them stay valid across inserts, as with
// std::unordered_map). A slot keeps the top half of its key's hash beside the entry's
// index: probing compares those, reading an entry's key only when they match (the entry
// is read next anyway), and growing rehashes from the slots alone.
//
// Only what its users need: find, operator[], try_emplace, at, reserve, size, clear and
// iteration (in insertion order). Entries are never erased one by one (records of the
// read models only change or get flagged; clear() drops them all).
//
//   uuid_map<claim_rec> claims;
//   auto& c = claims[id];                       // default-constructed when new
//   if (auto it = claims.find(id); it != claims.end()) use(it->first, it->second);

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <memory>
#include <new>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/uuid.h"

namespace passage {

template <typename V>
class uuid_map {
 public:
  using key_type = uuid;
  using mapped_type = V;
  using value_type = std::pair<const uuid, V>;

  template <bool Const>
  class basic_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = uuid_map::value_type;
    using difference_type = std::ptrdiff_t;
    using owner = std::conditional_t<Const, const uuid_map, uuid_map>;
    using reference = std::conditional_t<Const, const value_type&, value_type&>;
    using pointer = std::conditional_t<Const, const value_type*, value_type*>;

    basic_iterator() = default;
    basic_iterator(owner* map, std::size_t index) : map_(map), index_(index) {}
    // iterator -> const_iterator
    template <bool C = Const, typename = std::enable_if_t<C>>
    basic_iterator(const basic_iterator<false>& other)  // NOLINT: implicit as the std maps'
        : map_(other.map_), index_(other.index_) {}

    reference operator*() const { return map_->entry(index_); }
    pointer operator->() const { return &map_->entry(index_); }
    basic_iterator& operator++() {
      ++index_;
      return *this;
    }
    basic_iterator operator++(int) {
      auto old = *this;
      ++index_;
      return old;
    }
    friend bool operator==(const basic_iterator& a, const basic_iterator& b) {
      return a.index_ == b.index_;
    }
    // The entry's number: its place in insertion order (nth() finds it again), which never
    // changes (entries are never erased one by one). Smaller than 2^32 - 1.
    std::size_t index() const { return index_; }

   private:
    friend class uuid_map;
    template <bool>
    friend class basic_iterator;
    owner* map_ = nullptr;
    std::size_t index_ = 0;
  };
  using iterator = basic_iterator<false>;
  using const_iterator = basic_iterator<true>;

  uuid_map() = default;
  uuid_map(const uuid_map&) = delete;
  uuid_map& operator=(const uuid_map&) = delete;
  uuid_map(uuid_map&& other) noexcept { swap(other); }
  uuid_map& operator=(uuid_map&& other) noexcept {
    if (this != &other) {
      clear();
      swap(other);
    }
    return *this;
  }
  ~uuid_map() { destroy_entries(); }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  iterator begin() { return {this, 0}; }
  iterator end() { return {this, size_}; }
  const_iterator begin() const { return {this, 0}; }
  const_iterator end() const { return {this, size_}; }

  iterator find(const uuid& key) {
    const std::size_t i = find_index(key);
    return {this, i};
  }
  const_iterator find(const uuid& key) const {
    const std::size_t i = find_index(key);
    return {this, i};
  }
  bool contains(const uuid& key) const { return find_index(key) != size_; }

  V& at(const uuid& key) {
    const std::size_t i = find_index(key);
    if (i == size_) throw std::out_of_range("uuid_map::at");
    return entry(i).second;
  }
  const V& at(const uuid& key) const {
    const std::size_t i = find_index(key);
    if (i == size_) throw std::out_of_range("uuid_map::at");
    return entry(i).second;
  }

  // Entry number `i` (iterator::index(), below size()): what a table that names entries
  // by number in 4 bytes rather than by key in 16 (the read models' email index) reads.
  value_type& nth(std::size_t i) { return entry(i); }
  const value_type& nth(std::size_t i) const { return entry(i); }

  // The entry of `key`, inserted (V constructed from `args`) when there is none.
  template <typename... Args>
  std::pair<iterator, bool> try_emplace(const uuid& key, Args&&... args) {
    if ((size_ + 1) * 4 > slots_.size() * 3) grow();
    const std::size_t s = locate(key);
    if (slots_[s].index != 0) return {iterator(this, slots_[s].index - 1), false};
    const std::size_t i = size_;
    if (i / chunk_entries == chunks_.size()) {
      chunks_.push_back(std::make_unique_for_overwrite<chunk>());  // raw: not zeroed
    }
    ::new (storage(i)) value_type(std::piecewise_construct, std::forward_as_tuple(key),
                                  std::forward_as_tuple(std::forward<Args>(args)...));
    ++size_;  // after the constructor: one that throws leaves the map as it was
    slots_[s].tag = tag_of(key);
    slots_[s].index = static_cast<std::uint32_t>(i + 1);
    return {iterator(this, i), true};
  }
  V& operator[](const uuid& key) { return try_emplace(key).first->second; }

  // Sizes the table for `n` entries at once: inserting up to `n` then never grows it (a
  // rebuild that knows its log's length sizes its tables once rather than zeroing a table
  // twice the size at each doubling and rehashing into it). Never shrinks the table;
  // entries' chunks are still allocated as entries come. Throws std::length_error as
  // growing would past max_table_size.
  void reserve(std::size_t n) {
    const std::size_t slots = reserved_table_size(slots_.size(), n);
    if (slots != slots_.size()) rehash(slots);
    chunks_.reserve((n + chunk_entries - 1) / chunk_entries);
  }

  // Drops every entry and the memory they and the table used.
  void clear() {
    destroy_entries();
    chunks_.clear();
    chunks_.shrink_to_fit();
    slots_.clear();
    slots_.shrink_to_fit();
    size_ = 0;
  }

  void swap(uuid_map& other) noexcept {
    std::swap(slots_, other.slots_);
    std::swap(chunks_, other.chunks_);
    std::swap(size_, other.size_);
    std::swap(shift_, other.shift_);
  }

  // Starts loading the line of the table where `key` is or would go, for a caller that
  // knows its lookups ahead (a rebuild's applying thread, some events ahead: its tables
  // are far bigger than the caches, and keys come at random). Changes nothing.
  // Always inlined: GCC takes a function that only prefetches for one without effects
  // and drops calls to it before it would inline them.
  [[gnu::always_inline]] void prefetch(const uuid& key) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[home_of(key)]);
  }
  // Starts loading the entry of `key`, if any: best once prefetch() brought its slot in.
  [[gnu::always_inline]] void prefetch_entry(const uuid& key) const {
    if (slots_.empty()) return;
    // The first slot with the key's tag (no entry read: this only prefetches).
    const std::uint32_t tag = tag_of(key);
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t s = home_of(tag); slots_[s].index != 0; s = (s + 1) & mask) {
      if (slots_[s].tag == tag) {
        __builtin_prefetch(address(slots_[s].index - 1));
        return;
      }
    }
  }

  // Slots of the table (a power of two, or 0 before the first insert): for tests.
  std::size_t table_size() const { return slots_.size(); }

  // The most slots a table may have: a slot's index is 32 bits (0 marks a free slot, so
  // at most 2^32 - 1 entries), and the home slot is the tag's top log2(slots) bits, a
  // shift of 32 - log2(slots). 2^32 slots, at most 3/4 used, keep both within range.
  static_assert(sizeof(std::size_t) >= 8, "tables of up to 2^32 slots");
  static constexpr std::size_t max_table_size = std::size_t{1} << 32;
  // The table size after growing one of `slots` (0: none yet). Throws std::length_error
  // past max_table_size rather than wrapping indices. Public for tests.
  static std::size_t grown_table_size(std::size_t slots) {
    if (slots >= max_table_size) throw std::length_error("uuid_map: more than 2^32 slots");
    return slots == 0 ? 64 : slots * 2;
  }
  // The table size reserve(n) leaves a table of `slots` at: the first of its growths (or
  // `slots` itself) that holds `n` entries at most 3/4 full. Public for tests.
  static std::size_t reserved_table_size(std::size_t slots, std::size_t n) {
    if (n == 0) return slots;
    if (slots == 0) slots = grown_table_size(0);
    while (n > slots / 4 * 3) slots = grown_table_size(slots);
    return slots;
  }

 private:
  // Entries per chunk: a chunk is allocated whole, once, and never moved.
  static constexpr std::size_t chunk_entries = 1024;
  struct chunk {
    alignas(value_type) unsigned char bytes[chunk_entries * sizeof(value_type)];
  };
  struct slot {
    std::uint32_t tag = 0;    // tag_of(the entry's key)
    std::uint32_t index = 0;  // entry's index + 1; 0: free
  };

  // Where entry i lives (or will be constructed: try_emplace's placement new takes this,
  // since no object is there yet for std::launder to reach).
  void* storage(std::size_t i) const {
    return chunks_[i / chunk_entries]->bytes + (i % chunk_entries) * sizeof(value_type);
  }
  // Entry i, constructed.
  value_type* address(std::size_t i) const {
    return std::launder(static_cast<value_type*>(storage(i)));
  }
  value_type& entry(std::size_t i) { return *address(i); }
  const value_type& entry(std::size_t i) const { return *address(i); }

  // Fibonacci hashing of both halves, its top 32 bits: the table's index is the tag's top
  // bits, so keys that differ only in a few bytes (sequential ids, any uuid version's
  // fixed nibbles) still spread over the whole table.
  static std::uint32_t tag_of(const uuid& key) {
    std::uint64_t a = 0, b = 0;
    std::memcpy(&a, key.bytes.data(), 8);
    std::memcpy(&b, key.bytes.data() + 8, 8);
    const std::uint64_t h = (a ^ (b * 0xC2B2AE3D27D4EB4Full)) * 0x9E3779B97F4A7C15ull;
    return static_cast<std::uint32_t>(h >> 32);
  }
  std::size_t home_of(std::uint32_t tag) const { return tag >> shift_; }
  std::size_t home_of(const uuid& key) const { return home_of(tag_of(key)); }
  // The slot holding `key`, else the free slot where it would go. The table is never full.
  std::size_t locate(const uuid& key) const {
    const std::uint32_t tag = tag_of(key);
    const std::size_t mask = slots_.size() - 1;
    std::size_t s = home_of(tag);
    while (slots_[s].index != 0 &&
           (slots_[s].tag != tag || entry(slots_[s].index - 1).first != key)) {
      s = (s + 1) & mask;
    }
    return s;
  }
  // The entry's index, or size_ when absent.
  std::size_t find_index(const uuid& key) const {
    if (slots_.empty()) return size_;
    const std::size_t s = locate(key);
    return slots_[s].index == 0 ? size_ : slots_[s].index - 1;
  }
  void grow() { rehash(grown_table_size(slots_.size())); }
  // Moves the slots into a table of `n` (a power of two that holds them at most 3/4 full).
  void rehash(std::size_t n) {
    std::vector<slot> old(n);
    old.swap(slots_);
    shift_ = 32 - static_cast<unsigned>(__builtin_ctzll(n));
    const std::size_t mask = n - 1;
    for (const auto& s : old) {  // distinct keys: the first free slot from home
      if (s.index == 0) continue;
      std::size_t to = home_of(s.tag);
      while (slots_[to].index != 0) to = (to + 1) & mask;
      slots_[to] = s;
    }
  }
  void destroy_entries() {
    if constexpr (!std::is_trivially_destructible_v<value_type>) {
      for (std::size_t i = 0; i < size_; ++i) address(i)->~value_type();
    }
  }

  std::vector<slot> slots_;  // a power of two of them (at most 2^32), at most 3/4 used
  std::vector<std::unique_ptr<chunk>> chunks_;
  std::size_t size_ = 0;
  unsigned shift_ = 32;  // 32 - log2(slots_.size())
};

}  // namespace passage
