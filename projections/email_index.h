#pragma once
// The read models' email index, keyed email hash (event_codec::email_subject: "email:" and
// 64 hex digits) -> learner, and keyed_email, the form a learner keeps its own hash in.
// A rebuild keeps millions of learners and adds one entry per registration on the thread
// that bounds its time, so neither holds a string: a learner keeps the hash's 32 bytes,
// and the index keeps no hash at all, only 8-byte slots of a tag (the hash's first 4
// bytes) and the learner's entry number in its table (uuid_map::index_of), reading the
// hash from the learner when a tag matches (~1/4 of the memory of slots that held the
// hash and the learner's id). Subjects of any other shape (none are made today; a record
// may hold one) are kept as text, beside the table, so the index answers for every
// string as a map of strings would.
//
//   // hash_of(entry): the hash the learner of that entry keeps (learner.email.hash()).
//   email_index<learner_hash> index(learner_hash{&learners});
//   learner.email.assign(hash);          // first the learner keeps it,
//   index.assign(learner.email, entry);  // then the index names that learner for it
//   if (auto entry = index.find(subject)) ...;
//   index.erase_if(learner.email, entry);  // only while it still names that learner
//   learner.email.clear();                 // after it is out of the index
//
// An entry named in the index must keep the hash it is named for (erase_if it before
// the learner's hash changes): probing compares against the learner's copy.

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace passage::projections {

// The 32 bytes of a keyed email hash (event_codec::email_hash).
using email_hash = std::array<std::uint8_t, 32>;

inline constexpr std::string_view email_subject_prefix = "email:";

// "email:" and 64 lowercase hex digits (as event_codec::email_subject writes them): their
// 32 bytes into `out`. Anything else: false (uppercase too: "email:AB..." is another
// subject than "email:ab...", so it must not share its hash).
inline bool parse_email_subject(std::string_view subject, email_hash& out) {
  static constexpr std::array<std::int8_t, 256> value = [] {
    std::array<std::int8_t, 256> t{};
    t.fill(-1);
    for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<std::int8_t>(c - '0');
    for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<std::int8_t>(c - 'a' + 10);
    return t;
  }();
  if (subject.size() != email_subject_prefix.size() + 64 ||
      !subject.starts_with(email_subject_prefix)) {
    return false;
  }
  const auto* hex =
      reinterpret_cast<const unsigned char*>(subject.data() + email_subject_prefix.size());
  int bad = 0;  // any digit's -1 sets the sign bit: one test at the end, no branch per digit
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = value[hex[2 * i]], lo = value[hex[2 * i + 1]];
    bad |= hi | lo;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return bad >= 0;
}

// "email:" and the hash's 64 lowercase hex digits.
inline std::string email_subject_of(const email_hash& hash) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string subject(email_subject_prefix);
  subject.resize(email_subject_prefix.size() + 2 * hash.size());
  char* out = subject.data() + email_subject_prefix.size();
  for (const auto b : hash) {
    *out++ = digits[b >> 4];
    *out++ = digits[b & 0xf];
  }
  return subject;
}

// A learner's keyed email hash: none, the 32 bytes of a subject of the usual shape (no
// allocation), or the text of any other subject (on the heap). 33 bytes, alignment 1,
// where a std::string was 32 bytes and, for a hash, an 80-byte heap block besides.
class keyed_email {
 public:
  keyed_email() = default;
  keyed_email(const keyed_email& other) { *this = other; }
  keyed_email& operator=(const keyed_email& other) {
    if (this == &other) return *this;
    if (other.kind_ == kind::other) {
      assign_text(other.text());
    } else {
      clear();
      bytes_ = other.bytes_;
      kind_ = other.kind_;
    }
    return *this;
  }
  keyed_email(keyed_email&& other) noexcept { *this = std::move(other); }
  keyed_email& operator=(keyed_email&& other) noexcept {
    if (this == &other) return *this;
    clear();
    bytes_ = other.bytes_;
    kind_ = other.kind_;
    other.bytes_.fill(0);  // the text (if any) is this one's now
    other.kind_ = kind::none;
    return *this;
  }
  ~keyed_email() { clear(); }

  bool empty() const { return kind_ == kind::none; }
  // The hash, when the subject has the usual shape; nullptr otherwise (none, or other text).
  const email_hash* hash() const { return kind_ == kind::hash ? &bytes_ : nullptr; }
  // The subject as text ("email:" and hex for a hash); "" when none.
  std::string subject() const {
    switch (kind_) {
      case kind::hash:
        return email_subject_of(bytes_);
      case kind::other:
        return text();
      case kind::none:
        break;
    }
    return {};
  }
  void assign(const email_hash& hash) {
    clear();
    bytes_ = hash;
    kind_ = kind::hash;
  }
  // Any text: its hash when it has the usual shape, the text itself otherwise, none for "".
  void assign(std::string_view subject) {
    email_hash hash;
    if (parse_email_subject(subject, hash)) {
      assign(hash);
    } else if (subject.empty()) {
      clear();
    } else {
      assign_text(subject);
    }
  }
  // None again; the hash's bytes are zeroed.
  void clear() {
    if (kind_ == kind::other) delete text_pointer();
    bytes_.fill(0);
    kind_ = kind::none;
  }
  friend bool operator==(const keyed_email& a, const keyed_email& b) {
    if (a.kind_ != b.kind_) return false;
    switch (a.kind_) {
      case kind::hash:
        return a.bytes_ == b.bytes_;
      case kind::other:
        return a.text() == b.text();
      case kind::none:
        break;
    }
    return true;
  }
  // The text of a subject of another shape (only when not empty and hash() is nullptr).
  const std::string& text() const { return *text_pointer(); }

 private:
  enum class kind : std::uint8_t { none, hash, other };
  // Other text: the std::string's address in the first bytes (bytes, not a union with a
  // pointer: alignment 1 lets the learner's entry pack the kind beside its other bytes).
  std::string* text_pointer() const {
    std::string* p = nullptr;
    std::memcpy(&p, bytes_.data(), sizeof p);
    return p;
  }
  void assign_text(std::string_view subject) {
    auto* p = new std::string(subject);
    clear();
    std::memcpy(bytes_.data(), &p, sizeof p);
    kind_ = kind::other;
  }

  email_hash bytes_{};
  kind kind_ = kind::none;
};

// Keyed email hash -> entry number, for entries that keep their own keyed_email.
// HashOf: a callable entry -> const email_hash&, the hash that entry keeps (only asked of
// entries the table names for a hash). Not thread-safe: the read models' lock guards it.
template <typename HashOf>
class email_index {
 public:
  // An entry number: a learner's index in its table (uuid_map's, at most 2^32 - 2).
  using entry = std::uint32_t;

  explicit email_index(HashOf hash_of) : hash_of_(std::move(hash_of)) {}

  // The entry `subject` names, if any.
  std::optional<entry> find(std::string_view subject) const {
    email_hash h;
    if (!parse_email_subject(subject, h)) {
      auto it = other_.find(std::string(subject));
      if (it == other_.end()) return std::nullopt;
      return it->second;
    }
    return find(h);
  }
  std::optional<entry> find(const email_hash& h) const {
    if (slots_.empty()) return std::nullopt;
    const std::size_t s = locate(h);
    if (slots_[s].index == 0) return std::nullopt;
    return slots_[s].index - 1;
  }

  // Makes `email` (which entry `e` keeps) name `e`, replacing whom it named. Nothing for none.
  void assign(const keyed_email& email, entry e) {
    if (const auto* h = email.hash()) {
      assign(*h, e);
    } else if (!email.empty()) {
      other_[email.text()] = e;
    }
  }
  // hash_of(e) must be `h`.
  void assign(const email_hash& h, entry e) {
    if ((size_ + 1) * 4 > slots_.size() * 3) grow();
    const std::size_t s = locate(h);
    if (slots_[s].index == 0) {
      slots_[s].tag = tag_of(h);
      ++size_;
    }
    slots_[s].index = e + 1;
  }

  // Removes `email` if it names `e`; true if it did.
  bool erase_if(const keyed_email& email, entry e) {
    if (const auto* h = email.hash()) return erase_if(*h, e);
    if (email.empty()) return false;
    auto it = other_.find(email.text());
    if (it == other_.end() || it->second != e) return false;
    other_.erase(it);
    return true;
  }
  bool erase_if(const email_hash& h, entry e) {
    if (slots_.empty()) return false;
    std::size_t i = locate(h);
    if (slots_[i].index != e + 1) return false;  // free (0), or another entry's
    // Backward shift (linear probing without tombstones): move each later slot of the
    // run into the hole when its home does not lie between the hole and itself. Homes
    // come from the tags: no entry is read.
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t j = (i + 1) & mask; slots_[j].index != 0; j = (j + 1) & mask) {
      const std::size_t home = home_of(slots_[j].tag);
      if (((j - home) & mask) >= ((j - i) & mask)) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = slot{};
    --size_;
    return true;
  }

  // Starts loading the line of the table where `h` is or would go (as
  // uuid_map::prefetch, always inlined for the same reason). Changes nothing.
  [[gnu::always_inline]] void prefetch(const email_hash& h) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[home_of(tag_of(h))]);
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
  // The most slots a table may have: the home slot is the tag's top log2(slots) bits.
  static constexpr std::size_t max_table_size = std::size_t{1} << 32;
  // The table size reserve(n) leaves a table of `slots` at: the first of its growths (or
  // `slots` itself) that holds `n` entries at most 3/4 full. Public for tests.
  static std::size_t reserved_table_size(std::size_t slots, std::size_t n) {
    if (n == 0) return slots;
    if (slots == 0) slots = first_table_size;
    while (n > slots / 4 * 3 && slots < max_table_size) slots *= 2;
    return slots;
  }
  // Slots of the table (a power of two, or 0 before the first assign): for tests.
  std::size_t table_size() const { return slots_.size(); }

  void clear() {
    slots_.clear();
    slots_.shrink_to_fit();
    size_ = 0;
    shift_ = 32;
    other_.clear();
  }

 private:
  struct slot {
    std::uint32_t tag = 0;    // tag_of(the hash)
    std::uint32_t index = 0;  // entry + 1; 0: free
  };

  // The hash is random (an HMAC): its first 4 bytes are the tag, and the tag's top bits
  // the home slot, so that growing and removing move slots without reading an entry.
  static std::uint32_t tag_of(const email_hash& h) {
    std::uint32_t t = 0;
    std::memcpy(&t, h.data(), sizeof t);
    return t;
  }
  std::size_t home_of(std::uint32_t tag) const {
    return shift_ == 32 ? 0 : static_cast<std::size_t>(tag >> shift_);
  }
  // The slot naming `h`, else the free slot where it would go. The table is never full.
  // An entry's hash is read only when its tag matches (1 in 2^32 for another hash).
  std::size_t locate(const email_hash& h) const {
    const std::uint32_t tag = tag_of(h);
    const std::size_t mask = slots_.size() - 1;
    std::size_t s = home_of(tag);
    while (slots_[s].index != 0 && (slots_[s].tag != tag || hash_of_(slots_[s].index - 1) != h)) {
      s = (s + 1) & mask;
    }
    return s;
  }
  static constexpr std::size_t first_table_size = 1024;
  void grow() {
    if (slots_.size() >= max_table_size) throw std::length_error("email_index: 2^32 slots");
    rehash(slots_.empty() ? first_table_size : slots_.size() * 2);
  }
  // Moves the slots into a table of `n` (a power of two that holds them at most 3/4 full).
  void rehash(std::size_t n) {
    std::vector<slot> old(n);
    old.swap(slots_);
    shift_ = 32 - static_cast<unsigned>(__builtin_ctzll(n));
    const std::size_t mask = n - 1;
    for (const auto& s : old) {  // distinct hashes: the first free slot from home
      if (s.index == 0) continue;
      std::size_t to = home_of(s.tag);
      while (slots_[to].index != 0) to = (to + 1) & mask;
      slots_[to] = s;
    }
  }

  HashOf hash_of_;
  std::vector<slot> slots_;  // a power of two of them, at most 3/4 used
  std::size_t size_ = 0;     // used slots
  unsigned shift_ = 32;      // 32 - log2(slots_.size())
  std::unordered_map<std::string, entry> other_;
};

}  // namespace passage::projections
