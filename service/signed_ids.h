#pragma once
// Two ids and an HMAC-SHA256 tag under a server secret, base64url-encoded behind a prefix:
// the shape of learner tokens ("lt1.") and personal links ("pl1."). Stateless and
// unforgeable without the secret. Internal to the service module.

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/uuid.h"

namespace passage::service {

// `context` is MACed before the ids, so a token of one kind never verifies as another.
std::string sign_ids(const std::string& secret, std::string_view prefix, std::string_view context,
                     const uuid& a, const uuid& b);
// nullopt for anything not made by sign_ids with the same secret, prefix and context.
std::optional<std::pair<uuid, uuid>> verify_ids(const std::string& secret, std::string_view prefix,
                                                std::string_view context, std::string_view token);

}  // namespace passage::service
