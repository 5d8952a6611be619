#pragma once
// RFC 3339 UTC text for timestamps: "2026-11-20T09:00:00Z", with fractional
// seconds only when present. Parsing accepts any offset and normalises to UTC.

#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"

namespace passage {

// Formats as YYYY-MM-DDTHH:MM:SSZ, or YYYY-MM-DDTHH:MM:SS.ffffffZ when the instant has
// a sub-second part.
std::string format_rfc3339(timestamp t);
// The same, appended to `out` (no temporary string).
void append_rfc3339(std::string& out, timestamp t);

// Parses "YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)"; 't' and 'z' accepted as well.
// Returns nullopt for anything else, including out-of-range fields.
std::optional<timestamp> parse_rfc3339(std::string_view s);

}  // namespace passage
