#pragma once
// A small binary record codec: varints (LEB128; zigzag for signed), big-endian u64s,
// length-prefixed strings, uuids and timestamps. The read models' RocksDB rows and the
// mailer's welcome-ledger records are written with it, the event log's records' string
// lengths with its varint functions; its bytes are pinned by
// common/tests/record_format_test.cc, since changing them changes those stored formats.
//
//   record_writer w;
//   w.id(invite_id); w.str(code); w.ts(created_at);
//   record_reader r(w.data());
//   uuid id = r.id(); std::string code = r.str(); timestamp t = r.ts();
//   if (!r.ok()) corrupt();

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/uuid.h"

namespace passage {

// `v` as 8 big-endian bytes (row keys' positions, the checkpoint): keys sort by it.
inline void append_be64(std::string& out, std::uint64_t v) {
  const std::uint64_t be = __builtin_bswap64(v);  // one append, not eight push_backs
  char bytes[8];
  std::memcpy(bytes, &be, 8);
  out.append(bytes, 8);
}

// `v` as a varint (LEB128: 7 bits a byte, low first, the high bit set on all but the last).
inline void append_varint(std::string& out, std::uint64_t v) {
  if (v < 0x80) {  // most: flags, kinds, small counts, short strings' lengths
    out.push_back(static_cast<char>(v));
    return;
  }
  // Gathered first, appended once: a rebuild writes several per row, and pushing byte by
  // byte checked the string's capacity for each.
  char buf[10];
  std::size_t n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  out.append(buf, n);
}

// The varint at the front of `in` into `v`, and `in` past it; false when `in` ends inside
// it or it runs past ten bytes (`in` is then past the bytes read).
inline bool read_varint(std::string_view& in, std::uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    const auto b = static_cast<std::uint8_t>(in.front());
    in.remove_prefix(1);
    v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

class record_writer {
 public:
  void u64(std::uint64_t v) { append_varint(out_, v); }
  void i64(std::int64_t v) {
    u64((static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
  }
  void boolean(bool v) { out_.push_back(v ? 1 : 0); }
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  // 8 bytes big-endian (append_be64).
  void be64(std::uint64_t v) { append_be64(out_, v); }
  void str(std::string_view s) {
    u64(s.size());
    out_.append(s);
  }
  void id(const uuid& u) { out_.append(u.as_bytes()); }
  // Bytes of a size the reader knows (no length written).
  void raw(std::string_view bytes) { out_.append(bytes); }
  void ts(timestamp t) { i64(to_unix_micros(t)); }
  void opt_ts(const std::optional<timestamp>& t) {
    boolean(t.has_value());
    if (t) ts(*t);
  }
  void opt_id(const std::optional<uuid>& u) {
    boolean(u.has_value());
    if (u) id(*u);
  }

  // Bytes written so far, and back to the first `n` of them (a writer that tried a form of
  // a value and must fall back to another).
  std::size_t size() const { return out_.size(); }
  void truncate(std::size_t n) { out_.resize(std::min(n, out_.size())); }
  // `n` more bytes for the caller to fill (zeroed): where binary values are decoded into.
  char* extend(std::size_t n) {
    const std::size_t at = out_.size();
    out_.resize(at + n);
    return out_.data() + at;
  }

  const std::string& data() const { return out_; }
  std::string take() { return std::move(out_); }
  void clear() { out_.clear(); }

 private:
  std::string out_;
};

// Reads what record_writer wrote. A short or malformed input makes ok() false and every
// later read return zero values, so callers check once at the end.
class record_reader {
 public:
  explicit record_reader(std::string_view in) : in_(in) {}

  std::uint64_t u64() {
    std::uint64_t v;
    return read_varint(in_, v) ? v : bad();
  }
  std::int64_t i64() {
    const std::uint64_t z = u64();
    return static_cast<std::int64_t>((z >> 1) ^ (~(z & 1) + 1));
  }
  bool boolean() {
    if (in_.empty()) return bad() != 0;
    const char c = in_.front();
    in_.remove_prefix(1);
    return c != 0;
  }
  std::uint8_t u8() {
    if (in_.empty()) return static_cast<std::uint8_t>(bad());
    const auto b = static_cast<std::uint8_t>(in_.front());
    in_.remove_prefix(1);
    return b;
  }
  std::uint64_t be64() {
    if (in_.size() < 8) return bad();
    std::uint64_t be;
    std::memcpy(&be, in_.data(), 8);
    in_.remove_prefix(8);
    return __builtin_bswap64(be);
  }
  std::string str() {
    const std::uint64_t n = u64();
    if (n > in_.size()) {
      bad();
      return {};
    }
    std::string s(in_.substr(0, n));
    in_.remove_prefix(n);
    return s;
  }
  uuid id() {
    uuid u;
    if (in_.size() < u.bytes.size()) {
      bad();
      return u;
    }
    for (std::size_t i = 0; i < u.bytes.size(); ++i) u.bytes[i] = static_cast<std::uint8_t>(in_[i]);
    in_.remove_prefix(u.bytes.size());
    return u;
  }
  // `n` bytes raw() wrote (empty, and not ok(), when fewer are left).
  std::string_view raw(std::size_t n) {
    if (in_.size() < n) {
      bad();
      return {};
    }
    const auto bytes = in_.substr(0, n);
    in_.remove_prefix(n);
    return bytes;
  }
  timestamp ts() { return from_unix_micros(i64()); }
  std::optional<timestamp> opt_ts() {
    if (!boolean()) return std::nullopt;
    return ts();
  }
  std::optional<uuid> opt_id() {
    if (!boolean()) return std::nullopt;
    return id();
  }

  bool ok() const { return ok_; }
  bool at_end() const { return in_.empty(); }
  // Bytes not read yet (0 once not ok()).
  std::size_t left() const { return in_.size(); }
  // Marks the input malformed (a value read was out of its range): as a short input,
  // ok() turns false and later reads return zero values.
  void corrupt() { (void)bad(); }

 private:
  std::uint64_t bad() {
    ok_ = false;
    in_ = {};
    return 0;
  }
  std::string_view in_;
  bool ok_ = true;
};

}  // namespace passage
