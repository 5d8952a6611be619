#pragma once
// What the A, R and L rows of the read models keep of their event (internal to
// passage::projections): only its personal_data block, the one part a query needs from it
// (to show the email, names and answers, or "forgotten"); every other field is in the
// row's own fields or the records already. At query time the block goes back into a
// template event of the row's type for event_codec::decode: the ciphertext's associated
// data is the event's id, type and subject, never its other fields, so they need not be
// the event's.
//
//   if (auto block = sealed::personal_data_block(recorded.data)) keep(*block);
//   ...
//   recorded.data = sealed::template_of(recorded.type)->around(block);

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/record_format.h"
#include "common/result.h"
#include "common/uuid.h"

namespace passage::projections::sealed {

// The personal_data member of an event's data as the codec writes it (once, at the top
// level; null or an envelope object of strings): its text, or nullopt for anything else.
std::optional<std::string_view> personal_data_block(std::string_view data);

// An event of one type with every field at its default but personal_data, whose block
// goes between `before` and `after`.
struct event_template {
  std::string before, after;
  std::uint32_t schema_version = 0;
  std::string around(std::string_view block) const;
};

// The binary form of a sealed block (read-model format 7): the envelope exactly as the
// codec writes it, {"alg":"A256GCM","ct":"<base64>","iv":"<base64>","subject":"<s>"}
// with canonical padded base64 and a subject "learner:<uuid>" or "email:<64 hex>[.<n>]",
// kept as raw bytes: its subject (a kind, then nothing when it is the learner `owner`
// the row names, 16 bytes of a learner id, or 32 bytes of an email hash and its
// generation), then the iv and the ciphertext (a varint length each). About half the
// text's bytes (no base64, no member names), and what little LZ4 finds to compress in
// ciphertext it finds in the raw bytes too.
//
// Writes `block` in that form to `w`; false, with nothing written, for a block in any other layout
// (the caller keeps its text).
bool put_binary_block(record_writer& w, std::string_view block, const std::optional<uuid>& owner);
// Appends the text of the block put_binary_block wrote, read from `r`, to `out`: the same
// bytes. A short or malformed input is an error saying what is wrong, and `r` is then no
// longer ok().
result<void, std::string> get_binary_block(record_reader& r, const std::optional<uuid>& owner,
                                           std::string& out);

// The template of InviteClaimed, ClaimRejected or LeadCaptured (the events of rows);
// nullptr for any other type.
const event_template* template_of(std::string_view type);

}  // namespace passage::projections::sealed
