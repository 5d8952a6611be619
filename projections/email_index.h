#pragma once
// The read models' email index: keyed email hash (event_codec::email_subject, "email:"
// and 64 hex digits) -> learner. A rebuild adds one entry per registration on the thread
// that bounds its time, so the index keeps the hash's 32 bytes in an open-addressing
// table (no string, no node, no allocation per entry; the hash is random, so its first 8
// bytes serve as the table's hash) instead of a node-based map of ~70-character strings.
// Subjects of any other shape (none are made today) go to a plain map beside it, so the
// index answers for every string as a map of strings would.
//
//   email_index index;
//   index.assign(subject, learner_id);
//   if (auto id = index.find(subject)) ...;
//   index.erase_if(subject, learner_id);  // only while it still names that learner

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/uuid.h"

namespace passage::projections {

class email_index {
 public:
  // The learner `subject` names, if any.
  std::optional<uuid> find(std::string_view subject) const {
    digest d;
    if (!digest_of(subject, d)) {
      auto it = other_.find(std::string(subject));
      if (it == other_.end()) return std::nullopt;
      return it->second;
    }
    if (slots_.empty()) return std::nullopt;
    const std::size_t i = locate(d);
    if (!slots_[i].used) return std::nullopt;
    return slots_[i].learner;
  }

  // Makes `subject` name `learner` (replacing whom it named).
  void assign(std::string_view subject, const uuid& learner) {
    digest d;
    if (!digest_of(subject, d)) {
      other_[std::string(subject)] = learner;
      return;
    }
    if ((size_ + 1) * 4 > slots_.size() * 3) grow();
    const std::size_t i = locate(d);
    if (!slots_[i].used) {
      slots_[i].used = true;
      slots_[i].key = d;
      ++size_;
    }
    slots_[i].learner = learner;
  }

  // Removes `subject` if it names `learner`; true if it did.
  bool erase_if(std::string_view subject, const uuid& learner) {
    digest d;
    if (!digest_of(subject, d)) {
      auto it = other_.find(std::string(subject));
      if (it == other_.end() || it->second != learner) return false;
      other_.erase(it);
      return true;
    }
    if (slots_.empty()) return false;
    std::size_t i = locate(d);
    if (!slots_[i].used || slots_[i].learner != learner) return false;
    // Backward shift (linear probing without tombstones): move each later entry of the
    // run into the hole when its home slot does not lie between the hole and itself.
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t j = (i + 1) & mask; slots_[j].used; j = (j + 1) & mask) {
      const std::size_t home = home_of(slots_[j].key);
      if (((j - home) & mask) >= ((j - i) & mask)) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i].used = false;
    --size_;
    return true;
  }

  // Starts loading the line of the table where `subject` is or would go (as
  // uuid_map::prefetch, always inlined for the same reason). Changes nothing.
  [[gnu::always_inline]] void prefetch(std::string_view subject) const {
    digest d;
    if (!slots_.empty() && digest_of(subject, d)) __builtin_prefetch(&slots_[home_of(d)]);
  }

  std::size_t size() const { return size_ + other_.size(); }

  // Sizes the table for `n` subjects of the usual shape at once: assigning up to `n` then
  // never grows it (a rebuild that knows its log's length sizes the index once rather
  // than zeroing a table twice the size at each doubling and rehashing into it). Never
  // shrinks the table.
  void reserve(std::size_t n) {
    const std::size_t slots = reserved_table_size(slots_.size(), n);
    if (slots != slots_.size()) rehash(slots);
  }
  // The table size reserve(n) leaves a table of `slots` at: the first of its growths (or
  // `slots` itself) that holds `n` entries at most 3/4 full. Public for tests.
  static std::size_t reserved_table_size(std::size_t slots, std::size_t n) {
    if (n == 0) return slots;
    if (slots == 0) slots = first_table_size;
    while (n > slots / 4 * 3) slots *= 2;
    return slots;
  }
  // Slots of the table (a power of two, or 0 before the first assign): for tests.
  std::size_t table_size() const { return slots_.size(); }

  void clear() {
    slots_.clear();
    slots_.shrink_to_fit();
    size_ = 0;
    other_.clear();
  }

 private:
  using digest = std::array<std::uint8_t, 32>;
  struct slot {
    digest key;
    uuid learner;
    bool used = false;
  };

  // "email:" and 64 lowercase hex digits (as event_codec::email_subject writes them):
  // their 32 bytes. Anything else: false.
  static bool digest_of(std::string_view subject, digest& out) {
    constexpr std::string_view prefix = "email:";
    if (subject.size() != prefix.size() + 64 || !subject.starts_with(prefix)) return false;
    const auto* hex = reinterpret_cast<const unsigned char*>(subject.data() + prefix.size());
    int bad = 0;  // any digit's -1 sets the sign bit: one test at the end, no branch per digit
    for (std::size_t i = 0; i < out.size(); ++i) {
      const int hi = hex_value[hex[2 * i]], lo = hex_value[hex[2 * i + 1]];
      bad |= hi | lo;
      out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    }
    return bad >= 0;
  }
  // Lowercase hex digits' values, -1 for anything else (uppercase too: "email:AB..." is
  // another subject than "email:ab...", so it must not share its digest).
  static constexpr std::array<std::int8_t, 256> hex_value = [] {
    std::array<std::int8_t, 256> t{};
    t.fill(-1);
    for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<std::int8_t>(c - '0');
    for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<std::int8_t>(c - 'a' + 10);
    return t;
  }();

  std::size_t home_of(const digest& d) const {
    std::uint64_t h = 0;
    std::memcpy(&h, d.data(), sizeof h);
    return static_cast<std::size_t>(h) & (slots_.size() - 1);
  }
  // The slot holding `d`, else the free slot where it would go. The table is never full.
  std::size_t locate(const digest& d) const {
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = home_of(d);
    while (slots_[i].used && slots_[i].key != d) i = (i + 1) & mask;
    return i;
  }
  static constexpr std::size_t first_table_size = 1024;
  void grow() { rehash(slots_.empty() ? first_table_size : slots_.size() * 2); }
  // Moves the entries into a table of `n` (a power of two that holds them at most 3/4 full).
  void rehash(std::size_t n) {
    std::vector<slot> old(n);
    old.swap(slots_);
    for (const auto& s : old) {
      if (s.used) slots_[locate(s.key)] = s;
    }
  }

  std::vector<slot> slots_;  // a power of two of them, at most 3/4 used
  std::size_t size_ = 0;     // used slots
  std::unordered_map<std::string, uuid> other_;
};

}  // namespace passage::projections
