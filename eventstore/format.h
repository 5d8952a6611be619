#pragma once
// The on-disk layout of the event log: column families, key encodings and the
// record codec. Kept in one place so that tools and tests that inspect a data
// folder agree with the store. Changing anything here means a new format version.
//
// Column families:
//   default       meta: "format_version" -> decimal text
//   log           BE64(position) -> record (see encode_record)
//   stream_index  stream + '\0' + BE64(stream_version) -> BE64(position)
//   event_ids     16-byte event id -> BE64(position)
//   time_index    BE64(recorded_at micros, sign-flipped) + BE64(first position of the commit) -> ""
//                 one entry per group commit: every event of a commit shares its recorded_at.

#include <cstdint>
#include <string>
#include <string_view>

#include "eventstore/event.h"

namespace passage::eventstore::format {

// The layout this build writes. A folder with a larger version is refused.
inline constexpr std::uint32_t kFormatVersion = 1;
inline constexpr std::string_view kFormatVersionKey = "format_version";

inline constexpr const char* kLogFamily = "log";
inline constexpr const char* kStreamIndexFamily = "stream_index";
inline constexpr const char* kEventIdsFamily = "event_ids";
inline constexpr const char* kTimeIndexFamily = "time_index";

// Record layout v1 (all integers little-endian unless named BE):
//   u8  record_version (1)
//   u32 crc32c of every byte after this field
//   u64 position, u64 stream_version, i64 recorded_at (unix micros), u32 schema_version
//   16  event_id
//   7 x (varint32 length, bytes): type, stream, org_id, correlation_id, causation_id,
//                                 actor, data
inline constexpr std::uint8_t kRecordVersion = 1;

std::string encode_be64(std::uint64_t v);
std::uint64_t decode_be64(std::string_view s);  // s.size() must be >= 8

std::string log_key(std::uint64_t position);
std::string stream_index_key(std::string_view stream, std::uint64_t version);
std::string stream_index_prefix(std::string_view stream);  // stream + '\0'
std::string time_index_key(timestamp recorded_at, std::uint64_t first_position);
timestamp time_index_time(std::string_view key);
std::uint64_t time_index_position(std::string_view key);

void encode_record(const recorded_event& e, std::string& out);
// The bytes encode_record writes for `e` stored at `position` as version `stream_version`
// of `stream`, without copying its fields into a recorded_event first (the writer's path).
void encode_new_record(const new_event& e, std::string_view stream, std::uint64_t stream_version,
                       std::uint64_t position, timestamp recorded_at, std::string& out);
// stream_index_key(stream, version) and log_key(position), written into `out` (reused).
void stream_index_key_into(std::string_view stream, std::uint64_t version, std::string& out);
void log_key_into(std::uint64_t position, std::string& out);

// Decodes into `out`, reusing its string buffers (no allocation once warm).
// Returns an empty string on success, else what is wrong with the record.
// `check_crc`: false only for bytes that never left memory since encode_record made them
// (the store's tail cache): the checksum guards what was stored.
std::string decode_record(std::string_view bytes, recorded_event& out, bool check_crc = true);

}  // namespace passage::eventstore::format
