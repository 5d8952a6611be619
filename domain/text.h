#pragma once
// Small text rules shared by the aggregates: email normalisation and validation,
// identifier checks. Emails compare case-insensitively (whole address lower-cased).

#include <string>
#include <string_view>

namespace passage::domain {

std::string to_lower_ascii(std::string_view s);
std::string_view trim(std::string_view s);

// Trimmed and lower-cased: the form used for comparisons and indexes.
std::string normalize_email(std::string_view email);
// normalize_email(email) appended to `out` (no string of its own: the codec hashes the
// email of every registration a replay reads).
void append_normalized_email(std::string& out, std::string_view email);

// A deliberately plain check (one '@', non-empty local part, a domain with a dot and no
// spaces, at most 254 characters); real verification is the email round-trip.
bool is_valid_email(std::string_view email);

// The part after '@' of a normalised email ("" when there is none).
std::string_view email_domain(std::string_view normalized_email);

// Track ids and lead-form field names: 1..64 characters of [a-z0-9_.-] (track ids also
// allow upper case), so they are safe inside stream names and JSON keys.
bool is_valid_track_id(std::string_view id);
bool is_valid_field_name(std::string_view name);

}  // namespace passage::domain
