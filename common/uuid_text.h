#pragma once
// uuid::to_string()'s characters without a string, for a caller that appends them to a
// buffer it reuses (the AAD of every personal-data block a replay opens). Apart from
// uuid.h so that its users do not all recompile for it.

#include <array>

#include "common/uuid.h"

namespace passage {

// The canonical lower-case "8-4-4-4-12" form, as uuid::to_string() (which uses it).
std::array<char, 36> uuid_chars(const uuid& u);

}  // namespace passage
