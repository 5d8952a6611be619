#include "eventstore/format.h"

#include <bit>
#include <cstring>

#include "common/crc32c.h"
#include "common/record_format.h"

namespace passage::eventstore::format {
namespace {

void put_u32(std::string& out, std::uint32_t v) {
  char b[4];
  std::memcpy(b, &v, 4);  // little-endian hosts only (checked below)
  out.append(b, 4);
}
void put_u64(std::string& out, std::uint64_t v) {
  char b[8];
  std::memcpy(b, &v, 8);
  out.append(b, 8);
}
void put_str(std::string& out, std::string_view s) {
  append_varint(out, static_cast<std::uint32_t>(s.size()));
  out.append(s);
}

static_assert(std::endian::native == std::endian::little, "record codec assumes little-endian");

struct reader {
  std::string_view in;
  bool ok = true;

  template <typename T>
  T fixed() {
    T v{};
    if (in.size() < sizeof(T)) {
      ok = false;
      return v;
    }
    std::memcpy(&v, in.data(), sizeof(T));
    in.remove_prefix(sizeof(T));
    return v;
  }
  // Into `out`, reusing its buffer (record_reader::str() would make a new string).
  void str(std::string& out) {
    std::uint64_t len = 0;
    if (!read_varint(in, len) || len > in.size()) {
      ok = false;
      return;
    }
    out.assign(in.data(), len);
    in.remove_prefix(len);
  }
};

}  // namespace

std::string encode_be64(std::uint64_t v) {
  std::string s(8, '\0');
  for (int i = 7; i >= 0; --i) {
    s[i] = static_cast<char>(v & 0xFF);
    v >>= 8;
  }
  return s;
}

std::uint64_t decode_be64(std::string_view s) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<std::uint8_t>(s[i]);
  return v;
}

std::string log_key(std::uint64_t position) {
  std::string k;
  log_key_into(position, k);
  return k;
}

std::string stream_index_prefix(std::string_view stream) {
  std::string k(stream);
  k.push_back('\0');
  return k;
}

std::string stream_index_key(std::string_view stream, std::uint64_t version) {
  std::string k;
  stream_index_key_into(stream, version, k);
  return k;
}

std::string time_index_key(timestamp recorded_at, std::uint64_t first_position) {
  // Flip the sign bit so that negative (pre-1970) times still sort first.
  auto t = static_cast<std::uint64_t>(to_unix_micros(recorded_at)) ^ (1ull << 63);
  return encode_be64(t) + encode_be64(first_position);
}

timestamp time_index_time(std::string_view key) {
  return from_unix_micros(static_cast<std::int64_t>(decode_be64(key) ^ (1ull << 63)));
}

std::uint64_t time_index_position(std::string_view key) { return decode_be64(key.substr(8)); }

namespace {

// A record's bytes, field by field (kRecordVersion, crc32c of what follows it, the fields).
void encode_record_fields(std::string_view stream, std::uint64_t position,
                          std::uint64_t stream_version, timestamp recorded_at,
                          std::uint32_t schema_version, const uuid& event_id, std::string_view type,
                          std::string_view org_id, std::string_view correlation_id,
                          std::string_view causation_id, std::string_view actor,
                          std::string_view data, std::string& out) {
  out.clear();
  out.push_back(static_cast<char>(kRecordVersion));
  out.append(4, '\0');  // crc placeholder
  put_u64(out, position);
  put_u64(out, stream_version);
  put_u64(out, static_cast<std::uint64_t>(to_unix_micros(recorded_at)));
  put_u32(out, schema_version);
  out.append(event_id.as_bytes());
  put_str(out, type);
  put_str(out, stream);
  put_str(out, org_id);
  put_str(out, correlation_id);
  put_str(out, causation_id);
  put_str(out, actor);
  put_str(out, data);
  std::uint32_t crc = crc32c(std::string_view(out).substr(5));
  std::memcpy(out.data() + 1, &crc, 4);
}

}  // namespace

void encode_record(const recorded_event& e, std::string& out) {
  encode_record_fields(e.stream, e.position, e.stream_version, e.recorded_at, e.schema_version,
                       e.event_id, e.type, e.org_id, e.correlation_id, e.causation_id, e.actor,
                       e.data, out);
}

void encode_new_record(const new_event& e, std::string_view stream, std::uint64_t stream_version,
                       std::uint64_t position, timestamp recorded_at, std::string& out) {
  encode_record_fields(stream, position, stream_version, recorded_at, e.schema_version, e.event_id,
                       e.type, e.org_id, e.correlation_id, e.causation_id, e.actor, e.data, out);
}

void stream_index_key_into(std::string_view stream, std::uint64_t version, std::string& out) {
  out.assign(stream);
  out.push_back('\0');  // stream_index_prefix
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((version >> (8 * i)) & 0xFF));
}

void log_key_into(std::uint64_t position, std::string& out) {
  out.clear();
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((position >> (8 * i)) & 0xFF));
}

std::string decode_record(std::string_view bytes, recorded_event& out, bool check_crc) {
  if (bytes.size() < 5) return "record is truncated";
  auto version = static_cast<std::uint8_t>(bytes[0]);
  if (version != kRecordVersion) {
    return "record has unknown record version " + std::to_string(version);
  }
  std::uint32_t stored_crc;
  std::memcpy(&stored_crc, bytes.data() + 1, 4);
  if (check_crc && crc32c(bytes.substr(5)) != stored_crc) return "record checksum mismatch";
  reader r{bytes.substr(5)};
  out.position = r.fixed<std::uint64_t>();
  out.stream_version = r.fixed<std::uint64_t>();
  out.recorded_at = from_unix_micros(static_cast<std::int64_t>(r.fixed<std::uint64_t>()));
  out.schema_version = r.fixed<std::uint32_t>();
  if (r.in.size() < 16) return "record is truncated";
  std::memcpy(out.event_id.bytes.data(), r.in.data(), 16);
  r.in.remove_prefix(16);
  r.str(out.type);
  r.str(out.stream);
  r.str(out.org_id);
  r.str(out.correlation_id);
  r.str(out.causation_id);
  r.str(out.actor);
  r.str(out.data);
  if (!r.ok) return "record is truncated";
  if (!r.in.empty()) return "record has trailing bytes";
  return {};
}

}  // namespace passage::eventstore::format
