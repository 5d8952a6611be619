// The record codec's bytes (read-model rows, the mailer's welcome ledger): varints and
// big-endian positions pinned byte for byte, so that a faster encoder (the rebuild writes
// several per row) cannot change a stored record.

#include "common/record_format.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace passage {
namespace {

std::string varint_of(std::uint64_t v) {
  record_writer w;
  w.u64(v);
  return w.take();
}

std::string be64_of(std::uint64_t v) {
  std::string out = "k";  // appended after what is there, as after a row key's prefix
  append_be64(out, v);
  return out.substr(1);
}

TEST(record_format, VarintBytesArePinned) {
  const std::vector<std::pair<std::uint64_t, std::string>> golden = {
      {0, std::string("\x00", 1)},
      {0x7F, "\x7F"},
      {0x80, "\x80\x01"},
      {0x3FFF, "\xFF\x7F"},
      {0x4000, "\x80\x80\x01"},
      {0x0102030405060708ull, "\x88\x8E\x98\xA8\xC0\xE0\x80\x81\x01"},
      {UINT64_MAX, "\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x01"},
  };
  for (const auto& [v, bytes] : golden) {
    EXPECT_EQ(varint_of(v), bytes) << v;
    record_reader r(bytes);
    EXPECT_EQ(r.u64(), v);
    EXPECT_TRUE(r.ok());
  }
  // After other bytes: appended, not written over.
  record_writer w;
  w.u64(1);
  w.u64(0x4000);
  w.u64(0x7F);
  EXPECT_EQ(w.data(), std::string("\x01\x80\x80\x01\x7F"));
}

TEST(record_format, BigEndianBytesArePinned) {
  const std::vector<std::pair<std::uint64_t, std::string>> golden = {
      {0, std::string(8, '\0')},
      {0x7F, std::string("\x00\x00\x00\x00\x00\x00\x00\x7F", 8)},
      {0x80, std::string("\x00\x00\x00\x00\x00\x00\x00\x80", 8)},
      {0x3FFF, std::string("\x00\x00\x00\x00\x00\x00\x3F\xFF", 8)},
      {0x4000, std::string("\x00\x00\x00\x00\x00\x00\x40\x00", 8)},
      {0x0102030405060708ull, "\x01\x02\x03\x04\x05\x06\x07\x08"},
      {UINT64_MAX, "\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF"},
  };
  for (const auto& [v, bytes] : golden) EXPECT_EQ(be64_of(v), bytes) << v;
  std::string key = "r";
  append_be64(key, 0x0102030405060708ull);
  EXPECT_EQ(key, "r\x01\x02\x03\x04\x05\x06\x07\x08");
}

// The free varint functions are the writer's and reader's: the same bytes, and the reader
// refuses a varint cut short or longer than ten bytes.
TEST(record_format, FreeVarintFunctionsMatchTheWriterAndReader) {
  for (const std::uint64_t v : {0ull, 0x7Full, 0x80ull, 0x4000ull, 0xFFFFFFFFull, ~0ull}) {
    std::string out = "x";
    append_varint(out, v);
    EXPECT_EQ(out.substr(1), varint_of(v)) << v;
    std::string_view in = std::string_view(out).substr(1);
    std::uint64_t back = 1;
    EXPECT_TRUE(read_varint(in, back));
    EXPECT_EQ(back, v);
    EXPECT_TRUE(in.empty());
  }
  std::uint64_t v = 0;
  std::string_view cut("\x80\x80", 2);
  EXPECT_FALSE(read_varint(cut, v));
  const std::string eleven = std::string(10, '\x80') + '\x01';
  std::string_view too_long = eleven;
  EXPECT_FALSE(read_varint(too_long, v));
  std::string_view ten("\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01zz", 12);
  EXPECT_TRUE(read_varint(ten, v));
  EXPECT_EQ(v, 1ull << 63);
  EXPECT_EQ(ten, "zz");
}

// raw() bytes come back as written, with no length before them; too few left: not ok.
TEST(record_format, RawBytesRoundTrip) {
  record_writer w;
  w.u64(7);
  w.raw(std::string("\x00\xff\x10", 3));
  w.u64(9);
  record_reader r(w.data());
  EXPECT_EQ(r.u64(), 7u);
  EXPECT_EQ(r.raw(3), std::string_view("\x00\xff\x10", 3));
  EXPECT_EQ(r.u64(), 9u);
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(r.at_end());
  record_reader short_one(std::string_view("\x01\x02", 2));
  EXPECT_TRUE(short_one.raw(3).empty());
  EXPECT_FALSE(short_one.ok());
}

// u8() and be64() write the bytes append_be64 and a single byte are; the reader reads them
// back, counts what is left, and turns not ok() (zero values, nothing left) when short.
TEST(record_format, BytesAndBigEndianFieldsRoundTrip) {
  record_writer w;
  w.u8(0xFE);
  w.be64(0x0102030405060708ull);
  w.u8(3);
  EXPECT_EQ(w.data(), std::string("\xFE\x01\x02\x03\x04\x05\x06\x07\x08\x03"));
  record_reader r(w.data());
  EXPECT_EQ(r.left(), 10u);
  EXPECT_EQ(r.u8(), 0xFE);
  EXPECT_EQ(r.be64(), 0x0102030405060708ull);
  EXPECT_EQ(r.left(), 1u);
  EXPECT_EQ(r.u8(), 3);
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(r.at_end());
  EXPECT_EQ(r.u8(), 0);
  EXPECT_FALSE(r.ok());

  record_reader short_one(std::string_view("\x01\x02\x03\x04\x05\x06\x07", 7));
  EXPECT_EQ(short_one.be64(), 0u);
  EXPECT_FALSE(short_one.ok());
  EXPECT_EQ(short_one.left(), 0u);
}

}  // namespace
}  // namespace passage
